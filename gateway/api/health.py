from __future__ import annotations

from importlib.resources import files

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response

from gateway.api.common import json_response, services
from gateway.api.endpoints import endpoint, json_content, text_content
from gateway.api.openapi import served_openapi
from gateway.api.schemas import OBJECT, requiring
from gateway.errors import ConfigError
from gateway.runtime.services import Services


@endpoint(
    "GET",
    "/healthz",
    summary="Liveness",
    responses={"200": json_content(requiring("status"))},
    problems=(503,),
)
async def healthz(request: Request) -> Response:
    """Liveness: the process serves, its policy set is loaded (the audit append proves the log)."""
    svc = services(request)
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


@endpoint(
    "GET",
    "/readyz",
    summary="Readiness: keys, policies, audit log",
    responses={
        "200": json_content(requiring("ready", "checks")),
        "503": {"description": "Not ready (or the audit log cannot record the call)"},
    },
)
async def readyz(request: Request) -> Response:
    """Ready to serve: keys loaded, a valid policy set active, the audit log writable."""
    svc = services(request)
    checks = await anyio.to_thread.run_sync(_readiness, svc)
    ready = all(v.startswith("ok") for v in checks.values())
    return json_response({"ready": ready, "checks": checks}, status=200 if ready else 503)


@endpoint(
    "GET",
    "/metrics",
    summary="Prometheus metrics of this worker",
    responses={"200": text_content("Prometheus text format")},
    problems=(503,),
)
async def metrics(request: Request) -> Response:
    svc = services(request)
    return Response(svc.metrics.render(), media_type="text/plain; version=0.0.4")


@endpoint(
    "GET",
    "/openapi.json",
    summary="This description; with a bearer token, typed rows of the datasets you may read",
    responses={"200": json_content(OBJECT)},
    problems=(400, 401, 429, 503),
    optional_auth=True,
)
async def openapi(request: Request) -> Response:
    """The OpenAPI document: public and generic, or, for a caller who presents a token, with
    the released columns of each dataset the caller holds a grant for (gateway/api/openapi.py)."""
    return await served_openapi(request)


DOCS_HTML = (files("gateway.api") / "static" / "docs.html").read_bytes()


@endpoint(
    "GET",
    "/docs",
    summary="API reference page (renders /openapi.json)",
    responses={"200": text_content("HTML page", "text/html")},
    problems=(503,),
)
async def docs(request: Request) -> Response:
    return Response(
        DOCS_HTML,
        media_type="text/html; charset=utf-8",
        headers={
            "Content-Security-Policy": (
                "default-src 'self'; script-src 'unsafe-inline' 'self'; style-src 'unsafe-inline'"
            )
        },
    )
