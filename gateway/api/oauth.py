"""OAuth 2.0 endpoints: token (RFC 6749 4.4), JWKS, authorization server metadata (RFC 8414)."""

from __future__ import annotations

from urllib.parse import parse_qsl

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response

from gateway.api.common import DATA_SCOPE, json_response, services
from gateway.api.context import audit_context
from gateway.auth.server import TokenRequest
from gateway.errors import BadRequest

MAX_FORM_BYTES = 16 * 1024


async def token(request: Request) -> Response:
    svc = services(request)
    ctx = audit_context(request)
    ctx.route = "/oauth/token"
    ctx.policy = svc.policy.hash
    ctx.decision = "deny"
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        ctx.reason = "invalid_request"
        raise BadRequest("the token request must be application/x-www-form-urlencoded")
    body = await request.body()  # read first: authlib's request object is synchronous
    if len(body) > MAX_FORM_BYTES:
        ctx.reason = "invalid_request"
        raise BadRequest("the token request body is too large")
    try:
        form = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        ctx.reason = "invalid_request"
        raise BadRequest("the token request body is not UTF-8") from None
    oauth_request = TokenRequest(request.method, str(request.url), request.headers, form)
    # Secret checks run scrypt (tens of ms): keep them off the event loop.
    status, payload, headers, client_id = await anyio.to_thread.run_sync(
        svc.token_server.issue, oauth_request
    )
    ctx.client = client_id
    if status == 200:
        ctx.decision, ctx.reason = "allow", "token_issued"
    else:
        ctx.reason = str(payload.get("error", "invalid_request"))
    return json_response(payload, status, dict(headers))


async def jwks(request: Request) -> Response:
    svc = services(request)
    audit_context(request).route = "/.well-known/jwks.json"
    return json_response(svc.token_keys.jwks, headers={"Cache-Control": "public, max-age=300"})


async def metadata(request: Request) -> Response:
    svc = services(request)
    audit_context(request).route = "/.well-known/oauth-authorization-server"
    base = svc.settings.base_url
    return json_response(
        {
            "issuer": svc.settings.issuer,
            "token_endpoint": f"{base}/oauth/token",
            "jwks_uri": f"{base}/.well-known/jwks.json",
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "scopes_supported": [DATA_SCOPE],
            "response_types_supported": [],
        }
    )
