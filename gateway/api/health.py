from __future__ import annotations

from importlib.resources import files

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response

from gateway.api.common import json_response, services
from gateway.api.context import audit_context
from gateway.api.openapi import build_openapi
from gateway.errors import ConfigError
from gateway.runtime.services import Services


async def healthz(request: Request) -> Response:
    """Liveness: the process serves, its policy set is loaded (the audit append proves the log)."""
    svc = services(request)
    audit_context(request).route = "/healthz"
    return json_response({"status": "ok", "policy": svc.policy.hash})


def _readiness(svc: Services) -> dict[str, str]:
    checks: dict[str, str] = {}
    try:
        svc.token_keys.current()
        svc.audit_log.signer(svc.audit_log.active_kid)
        checks["keys"] = "ok"
    except (ConfigError, KeyError) as exc:
        checks["keys"] = f"failed: {exc}"
    checks["policies"] = f"ok ({svc.policy.hash[:12]})"
    halted = svc.audit_log.halted
    if halted:
        checks["audit"] = f"halted: {halted}"
    else:
        problem = svc.audit_log.writable()
        checks["audit"] = "ok" if problem is None else f"not writable: {problem}"
    return checks


async def readyz(request: Request) -> Response:
    """Ready to serve: keys loaded, a valid policy set active, the audit log writable."""
    svc = services(request)
    audit_context(request).route = "/readyz"
    checks = await anyio.to_thread.run_sync(_readiness, svc)
    ready = all(v.startswith("ok") for v in checks.values())
    return json_response({"ready": ready, "checks": checks}, status=200 if ready else 503)


async def metrics(request: Request) -> Response:
    svc = services(request)
    audit_context(request).route = "/metrics"
    return Response(svc.metrics.render(), media_type="text/plain; version=0.0.4")


async def openapi(request: Request) -> Response:
    svc = services(request)
    audit_context(request).route = "/openapi.json"
    return json_response(
        build_openapi(svc.settings.base_url), headers={"Cache-Control": "public, max-age=300"}
    )


DOCS_HTML = (files("gateway.api") / "static" / "docs.html").read_bytes()


async def docs(request: Request) -> Response:
    audit_context(request).route = "/docs"
    return Response(
        DOCS_HTML,
        media_type="text/html; charset=utf-8",
        headers={
            "Content-Security-Policy": (
                "default-src 'self'; script-src 'unsafe-inline' 'self'; style-src 'unsafe-inline'"
            )
        },
    )
