from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from gateway.api.common import json_response, services
from gateway.api.context import audit_context


async def healthz(request: Request) -> Response:
    """Liveness: the process serves, its policy set is loaded (the audit append proves the log)."""
    svc = services(request)
    audit_context(request).route = "/healthz"
    return json_response({"status": "ok", "policy": svc.policy.hash})
