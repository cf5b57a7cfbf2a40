"""create_app(settings) -> the ASGI application: routes, errors, and the audit middleware around
all of it."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from gateway.api import datasets, health, oauth
from gateway.api.audit_middleware import AuditMiddleware
from gateway.api.context import audit_context
from gateway.api.problems import problem_response
from gateway.errors import ApiError, MethodNotAllowed, NotFound
from gateway.services import Services, build_services
from gateway.settings import Settings

log = logging.getLogger("gateway")


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)  # noqa: S101 - registered for ApiError only
    ctx = audit_context(request)
    ctx.reason = ctx.reason or exc.reason
    ctx.decision = "error" if exc.status >= 500 else "deny"
    ctx.rows = 0
    return problem_response(exc, ctx.rid)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)  # noqa: S101 - registered for HTTPException only
    error: ApiError = MethodNotAllowed() if exc.status_code == 405 else NotFound("no such endpoint")
    return await _api_error(request, error)


async def _crash(request: Request, exc: Exception) -> Response:
    log.error("internal error", exc_info=exc)
    return await _api_error(
        request, ApiError("internal error; the request id identifies it in the logs")
    )


def create_app(settings: Settings, services: Services | None = None) -> ASGIApp:
    """Build the gateway. Raises ConfigError (with a message naming what to fix) at start-up."""
    svc = services or build_services(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        svc.close()

    app = Starlette(
        routes=[
            Route("/healthz", health.healthz, methods=["GET"]),
            Route("/oauth/token", oauth.token, methods=["POST"]),
            Route("/.well-known/jwks.json", oauth.jwks, methods=["GET"]),
            Route("/.well-known/oauth-authorization-server", oauth.metadata, methods=["GET"]),
            Route("/v1/datasets", datasets.list_datasets, methods=["GET"]),
            Route("/v1/datasets/{dataset_id}", datasets.get_dataset, methods=["GET"]),
            Route("/v1/datasets/{dataset_id}/rows", datasets.rows, methods=["GET"]),
        ],
        exception_handlers={
            ApiError: _api_error,
            HTTPException: _http_error,
            Exception: _crash,
        },
        lifespan=lifespan,
    )
    app.state.services = svc
    return AuditMiddleware(app, svc.audit_log, svc.audit_signer)


def app_from_env() -> ASGIApp:
    """Factory for uvicorn worker processes: settings come from GATEWAY_* variables."""
    return create_app(Settings.from_env())
