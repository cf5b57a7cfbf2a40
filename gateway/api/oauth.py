"""OAuth 2.0 endpoints: token (RFC 6749 4.4), revocation (RFC 7009), introspection (RFC 7662),
JWKS, and authorization server metadata (RFC 8414)."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qsl

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response

from gateway.api.common import json_response, services
from gateway.api.context import audit_context
from gateway.api.endpoints import endpoint, json_content
from gateway.api.schemas import (
    OBJECT,
    TOKEN_ARG_FORM,
    TOKEN_FORM,
    form,
    oauth_responses,
    requiring,
)
from gateway.auth.keys import JWKS_MAX_AGE
from gateway.auth.limits import address_key
from gateway.auth.server import ASSERTION_ALGORITHMS, AUTH_METHODS, Outcome, TokenRequest
from gateway.errors import BadRequest
from gateway.model.decision import Verdict
from gateway.model.scopes import SCOPES

MAX_FORM_BYTES = 16 * 1024


async def _form_request(request: Request) -> TokenRequest:
    svc = services(request)
    ctx = audit_context(request)
    ctx.policy = svc.policy.hash
    ctx.decision = Verdict.DENY
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        ctx.reason = "invalid_request"
        raise BadRequest("the request body must be application/x-www-form-urlencoded")
    body = await request.body()  # read first: authlib's request object is synchronous
    if len(body) > MAX_FORM_BYTES:
        ctx.reason = "invalid_request"
        raise BadRequest("the request body is too large")
    try:
        form = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        ctx.reason = "invalid_request"
        raise BadRequest("the request body is not UTF-8") from None
    return TokenRequest(
        request.method,
        str(request.url),
        request.headers,
        form,
        authorization=request.headers.getlist("authorization"),
        address=address_key(request.client.host if request.client else None),
    )


async def _run(request: Request, call: Callable[[TokenRequest], Outcome], done: str) -> Response:
    oauth_request = await _form_request(request)
    ctx = audit_context(request)
    server = services(request).token_server
    # Throttled callers and malformed credentials are answered from store reads alone, without
    # waiting for a hashing slot.
    outcome = await anyio.to_thread.run_sync(server.screen, oauth_request)
    if outcome is None:
        # Client authentication runs scrypt (~0.1 s of CPU): off the event loop, in a bounded
        # pool of its own, so that guessers queue among themselves and other requests (and the
        # default thread pool the audit log and data calls use) are not starved.
        outcome = await anyio.to_thread.run_sync(call, oauth_request, limiter=server.hash_limiter)
    ctx.client = outcome.client_id
    if outcome.status == 200:
        ctx.decision, ctx.reason = Verdict.ALLOW, done
    else:
        ctx.reason = outcome.reason
    return json_response(outcome.body, outcome.status, dict(outcome.headers))


_FORM_PROBLEMS = (413, 414, 431, 503)


@endpoint(
    "POST",
    "/oauth/token",
    summary="Access token (client credentials)",
    request_body=form(TOKEN_FORM),
    responses=oauth_responses(OBJECT),
    problems=_FORM_PROBLEMS,
)
async def token(request: Request) -> Response:
    svc = services(request)
    return await _run(request, svc.token_server.issue, "token_issued")


@endpoint(
    "POST",
    "/oauth/revoke",
    summary="Revoke your token (RFC 7009)",
    request_body=form(TOKEN_ARG_FORM),
    responses=oauth_responses(OBJECT),
    problems=_FORM_PROBLEMS,
)
async def revoke(request: Request) -> Response:
    svc = services(request)
    return await _run(request, lambda r: svc.token_server.endpoint("revocation", r), "revoked")


@endpoint(
    "POST",
    "/oauth/introspect",
    summary="Introspect a token (RFC 7662)",
    request_body=form(TOKEN_ARG_FORM),
    responses=oauth_responses(requiring("active")),
    problems=_FORM_PROBLEMS,
)
async def introspect(request: Request) -> Response:
    svc = services(request)
    return await _run(
        request, lambda r: svc.token_server.endpoint("introspection", r), "introspected"
    )


@endpoint(
    "GET",
    "/.well-known/jwks.json",
    summary="Token signing keys",
    responses={"200": json_content(requiring("keys"))},
    problems=(503,),
)
async def jwks(request: Request) -> Response:
    svc = services(request)
    return json_response(
        svc.token_keys.current().jwks, headers={"Cache-Control": f"public, max-age={JWKS_MAX_AGE}"}
    )


@endpoint(
    "GET",
    "/.well-known/oauth-authorization-server",
    summary="OAuth metadata (RFC 8414)",
    responses={"200": json_content(requiring("issuer"))},
    problems=(503,),
)
async def metadata(request: Request) -> Response:
    svc = services(request)
    base = svc.settings.base_url
    return json_response(
        {
            "issuer": svc.settings.issuer,
            "token_endpoint": f"{base}/oauth/token",
            "jwks_uri": f"{base}/.well-known/jwks.json",
            "revocation_endpoint": f"{base}/oauth/revoke",
            "introspection_endpoint": f"{base}/oauth/introspect",
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": AUTH_METHODS,
            "token_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGORITHMS,
            "revocation_endpoint_auth_methods_supported": AUTH_METHODS,
            "introspection_endpoint_auth_methods_supported": AUTH_METHODS,
            "scopes_supported": list(SCOPES),
            "response_types_supported": [],
        }
    )
