"""Helpers shared by handlers: the services, the caller, JSON responses."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.api.context import AuditContext, audit_context
from gateway.auth.tokens import Principal, token_sha256
from gateway.errors import InsufficientScope, TooManyRequests
from gateway.model.decision import Verdict
from gateway.model.policyset import PolicySet
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


def query_values(request: Request, name: str) -> list[str]:
    """`request.query_params.getlist(name)`, without parsing the whole query string when it
    holds no escapes: with no `%` and no `+`, parse_qsl's unquoting changes nothing, so the
    values are the pairs split at `&` and their first `=` (an empty pair skipped, a bare name
    an empty value), exactly as Starlette would have them."""
    raw: bytes = request.scope.get("query_string", b"")
    if b"%" in raw or b"+" in raw:
        return request.query_params.getlist(name)
    prefix = name + "="
    return [
        pair.partition("=")[2]
        for pair in raw.decode("latin-1").split("&")
        if pair == name or pair.startswith(prefix)
    ]


UNDECLARED_PURPOSE = "(undeclared)"


def recorded_purpose(policy: PolicySet, purpose: str | None) -> str | None:
    """The purpose as the audit entry records it: a purpose some grant of the policy set
    declares, as stated; any other text as UNDECLARED_PURPOSE (it is caller input and could hold
    anything, a personal value included)."""
    if purpose is None:
        return None
    return purpose if purpose in policy.purposes else UNDECLARED_PURPOSE


def _record_subject(request: Request, svc: Services, ctx: AuditContext) -> None:
    """For a call refused before its handler decided anything (the client's request rate):
    the dataset it asked for when the policy set knows that id, and its purpose."""
    dataset_id = request.path_params.get("dataset_id")
    if isinstance(dataset_id, str) and dataset_id in svc.policy.datasets:
        ctx.dataset = dataset_id
    header = request.headers.get("data-purpose")
    stated = request.query_params.getlist("purpose") or ([header] if header else [])
    if len(stated) == 1 and stated[0]:
        ctx.purpose = recorded_purpose(svc.policy, stated[0])


def authenticate(request: Request, scope: str | tuple[str, ...] | None) -> Principal:
    """Authenticate the bearer token, check its scope (when one is needed; one of them, for a
    tuple) and the client's request rate; record each step in the audit context. Run by a
    scoped endpoint's route before its handler (gateway/api/endpoints.py); the principal is kept
    for `caller`."""
    svc = services(request)
    ctx = audit_context(request)
    ctx.policy = svc.policy.hash
    ctx.decision = Verdict.DENY
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
    if scope is not None:
        accepted = (scope,) if isinstance(scope, str) else scope
        if not any(s in principal.scopes for s in accepted):
            raise InsufficientScope(" or ".join(accepted))
    try:
        state = svc.limiter.request(principal)
    except TooManyRequests:
        _record_subject(request, svc, ctx)
        raise
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
