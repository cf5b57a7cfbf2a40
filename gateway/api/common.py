"""Helpers shared by handlers: the services, the caller, JSON responses."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.api.context import AuditContext, audit_context
from gateway.auth.tokens import Principal, token_sha256
from gateway.errors import InsufficientScope
from gateway.scopes import ADMIN, AUDIT_READ, DATASETS_READ
from gateway.services import Services

DATASETS_SCOPE = DATASETS_READ
AUDIT_SCOPE = AUDIT_READ
ADMIN_SCOPE = ADMIN


def services(request: Request) -> Services:
    found = request.app.state.services
    if not isinstance(found, Services):
        raise RuntimeError("the app was built without services")
    return found


def json_response(
    payload: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return Response(body, status_code=status, headers=headers, media_type="application/json")


def caller(
    request: Request, route: str, scope: str = DATASETS_SCOPE
) -> tuple[Services, AuditContext, Principal]:
    """Authenticate the bearer token, check its scope and the client's request rate; record
    each step in the audit context."""
    svc = services(request)
    ctx = audit_context(request)
    ctx.route = route
    ctx.policy = svc.policy.hash
    ctx.decision = "deny"
    authorization = request.headers.get("authorization")
    try:
        principal = svc.tokens.authenticate(authorization)
    except Exception:
        if authorization:
            # Every failure is logged with a hash of what was presented, never the token.
            ctx.token_sha256 = token_sha256(authorization.partition(" ")[2].strip())
        raise
    ctx.client = principal.client_id
    ctx.token_sha256 = principal.token_sha256
    if scope not in principal.scopes:
        raise InsufficientScope(scope)
    state = svc.limiter.request(principal)
    ctx.headers.update(state.headers)
    svc.inflight.acquire(principal.client_id)
    ctx.on_finish.append(lambda: svc.inflight.release(principal.client_id))
    return svc, ctx, principal
