"""Helpers shared by handlers: the services, the caller, JSON responses."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.api.context import AuditContext, audit_context
from gateway.auth.tokens import Principal, token_sha256
from gateway.errors import InsufficientScope
from gateway.model.scopes import ADMIN, AUDIT_READ, DATASETS_READ
from gateway.runtime.services import Services

DATASETS_SCOPE = DATASETS_READ
AUDIT_SCOPE = AUDIT_READ
ADMIN_SCOPE = ADMIN
_PRINCIPAL = "gateway.principal"  # where `authenticate` keeps the caller in the request state


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


def authenticate(request: Request, scope: str | None) -> Principal:
    """Authenticate the bearer token, check its scope (when one is needed) and the client's
    request rate; record each step in the audit context. Run by a scoped endpoint's route
    before its handler (gateway/api/endpoints.py); the principal is kept for `caller`."""
    svc = services(request)
    ctx = audit_context(request)
    ctx.policy = svc.policy.hash
    ctx.decision = "deny"
    authorization = request.headers.get("authorization")
    if authorization:
        # Every failure is logged with a hash of what was presented, never the token itself.
        ctx.token_sha256 = token_sha256(authorization.partition(" ")[2].strip())
    principal = svc.tokens.authenticate(authorization)
    ctx.client = principal.client_id
    ctx.token_sha256 = principal.token_sha256
    if scope is not None and scope not in principal.scopes:
        raise InsufficientScope(scope)
    state = svc.limiter.request(principal)
    ctx.headers.update(state.headers)
    svc.inflight.acquire(principal.client_id)
    ctx.on_finish.append(lambda: svc.inflight.release(principal.client_id))
    request.scope["state"][_PRINCIPAL] = principal
    return principal


def caller(request: Request) -> tuple[Services, AuditContext, Principal]:
    """The services, the audit context and the caller authenticated for this request."""
    principal = request.scope.get("state", {}).get(_PRINCIPAL)
    if not isinstance(principal, Principal):
        raise RuntimeError("caller() in a handler whose endpoint declares no scope")
    return services(request), audit_context(request), principal
