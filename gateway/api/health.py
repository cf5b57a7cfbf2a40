from __future__ import annotations

from importlib.resources import files

from starlette.requests import Request
from starlette.responses import Response

from gateway.api.common import json_response, services
from gateway.api.context import audit_context
from gateway.api.openapi import build_openapi


async def healthz(request: Request) -> Response:
    """Liveness: the process serves, its policy set is loaded (the audit append proves the log)."""
    svc = services(request)
    audit_context(request).route = "/healthz"
    return json_response({"status": "ok", "policy": svc.policy.hash})


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
