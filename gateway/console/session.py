"""Console sign-in: a client id and secret, exchanged for an access token by the gateway's own
token endpoint (the same authlib server, throttle and audit as POST /oauth/token), kept in a
`__Host-` cookie that is HttpOnly, Secure and SameSite=Strict. The cookie holds the access token
itself: it expires with the token (GATEWAY_TOKEN_TTL), and signing out revokes the token's jti.

Cross-site requests: pages are GETs that change nothing; the two POSTs (sign in, sign out) are
refused unless the browser says they come from this origin (`Sec-Fetch-Site`, else `Origin`).
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response

from gateway.api.common import services
from gateway.api.context import AuditContext, audit_context
from gateway.auth.limits import address_key
from gateway.auth.server import Outcome, TokenRequest
from gateway.auth.tokens import Principal, token_sha256
from gateway.errors import BadRequest, Forbidden, Unauthorized
from gateway.model.scopes import ADMIN, AUDIT_READ

COOKIE = "__Host-gateway-console"
CONSOLE_SCOPES = frozenset({ADMIN, AUDIT_READ})
MAX_FORM_BYTES = 4096


class CrossSite(Forbidden):
    reason = "cross_site"


class NotForConsole(Forbidden):
    reason = "scope_missing"


def same_origin(request: Request) -> bool:
    """True when the browser says the request comes from a page of this origin."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site == "same-origin"
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return False
    return urlsplit(origin).netloc == request.headers.get("host", "")


async def sign_in_form(request: Request) -> tuple[str, str]:
    """(client id, secret) from the sign-in form; BadRequest for anything else."""
    if not same_origin(request):
        raise CrossSite("sign in and out from the console's own pages")
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise BadRequest("the sign-in form must be sent as application/x-www-form-urlencoded")
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise BadRequest("the sign-in form is too large")
    try:
        form = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError:
        raise BadRequest("the sign-in form is not UTF-8") from None
    return form.get("client_id", "").strip(), form.get("client_secret", "")


async def issue_token(request: Request, client_id: str, secret: str) -> Outcome:
    """Run the gateway's token endpoint for these credentials (client_secret_post, the console
    scopes requested); the outcome says whether a token was issued."""
    svc = services(request)
    server = svc.token_server
    form = [
        ("grant_type", "client_credentials"),
        ("client_id", client_id),
        ("client_secret", secret),
        ("scope", " ".join(sorted(CONSOLE_SCOPES))),
    ]
    token_request = TokenRequest(
        "POST",
        f"{svc.settings.base_url}/oauth/token",
        request.headers,
        form,
        authorization=[],
        address=address_key(request.client.host if request.client else None),
    )
    outcome = await anyio.to_thread.run_sync(server.screen, token_request)
    if outcome is None:
        outcome = await anyio.to_thread.run_sync(
            server.issue, token_request, limiter=server.hash_limiter
        )
    return outcome


def principal_of(request: Request, ctx: AuditContext) -> Principal:
    """The signed-in console user, or Unauthorized/Forbidden; recorded in the audit context the
    way API calls record a bearer token (its hash, never the token)."""
    svc = services(request)
    token = request.cookies.get(COOKIE)
    if not token:
        raise Unauthorized("sign in to use the console", error=None)
    ctx.token_sha256 = token_sha256(token)
    principal = svc.tokens.authenticate(f"Bearer {token}")
    ctx.client = principal.client_id
    if not principal.scopes & CONSOLE_SCOPES:
        raise NotForConsole("the console is for clients with the admin or audit:read scope")
    state = svc.limiter.request(principal)
    ctx.headers.update(state.headers)
    return principal


def set_session(response: Response, token: str, max_age: int) -> None:
    response.set_cookie(
        COOKIE,
        token,
        max_age=max_age,
        path="/",
        secure=True,
        httponly=True,
        samesite="strict",
    )


def clear_session(response: Response) -> None:
    response.delete_cookie(COOKIE, path="/", secure=True, httponly=True, samesite="strict")


def console_context(request: Request, route: str) -> AuditContext:
    svc = services(request)
    ctx = audit_context(request)
    ctx.route = route
    ctx.policy = svc.policy.hash
    return ctx
