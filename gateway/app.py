"""create_app(settings) -> the ASGI application: routes, errors, and the audit middleware around
all of it."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import signal
import time
from collections.abc import AsyncIterator

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp

from gateway.api.audit_middleware import AuditMiddleware
from gateway.api.context import audit_context
from gateway.api.limits import SizeLimits
from gateway.api.problems import problem_response
from gateway.api.router import CachedRouter
from gateway.api.routes import ENDPOINTS
from gateway.console.views import console_routes
from gateway.errors import (
    ApiError,
    AuditUnavailable,
    Denied,
    MethodNotAllowed,
    NotFound,
    RequestTimeout,
    StoreUnavailable,
)
from gateway.model.decision import Verdict
from gateway.runtime.reloader import PolicyReloader
from gateway.runtime.services import Services, build_services
from gateway.settings import Settings
from gateway.store.db import StoreError

log_ = logging.getLogger("gateway")


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)  # noqa: S101 - registered for ApiError only
    ctx = audit_context(request)
    ctx.reason = ctx.reason or (exc.code if isinstance(exc, Denied) else exc.reason)
    ctx.decision = Verdict.ERROR if exc.status >= 500 else Verdict.DENY
    ctx.rows = 0
    return problem_response(exc, ctx.rid)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)  # noqa: S101 - registered for HTTPException only
    error: ApiError
    if exc.status_code == 405:
        allow = (exc.headers or {}).get("Allow", "")
        error = MethodNotAllowed(
            f"use {allow}" if allow else None, headers={"Allow": allow} if allow else None
        )
    else:
        error = NotFound("no such endpoint")
    return await _api_error(request, error)


async def _store_error(request: Request, exc: Exception) -> Response:
    """The registry's database could not answer (lost, locked, down): fail closed with a 503
    the client may retry, not a 500."""
    log_.error("store unavailable: %s", exc)
    return await _api_error(
        request, StoreUnavailable("the gateway's store is unavailable; retry in a few seconds")
    )


async def _client_left(request: Request, exc: Exception) -> Response:
    """The body did not arrive whole: the request deadline closed the connection, or the
    client left. Nobody reads the answer, but the call is audited as what it was, not a 500."""
    return await _api_error(
        request, RequestTimeout("the request body did not arrive whole within the deadline")
    )


async def _crash(request: Request, exc: Exception) -> Response:
    log_.error("internal error", exc_info=exc)
    return await _api_error(
        request, ApiError("internal error; the request id identifies it in the logs")
    )


async def _checkpoint_loop(svc: Services) -> None:
    """Sign a checkpoint every `checkpoint_every` entries or `checkpoint_seconds` seconds."""
    settings, log = svc.settings, svc.audit_log
    while True:
        await anyio.sleep(min(1.0, settings.checkpoint_seconds))
        latest = await anyio.to_thread.run_sync(log.latest_checkpoint)
        size = await anyio.to_thread.run_sync(log.size)
        signed = latest.size if latest else 0
        age_ms = time.time() * 1000 - (latest.ts if latest else 0)
        if size > signed and (
            size - signed >= settings.checkpoint_every
            or age_ms >= settings.checkpoint_seconds * 1000
        ):
            try:
                await anyio.to_thread.run_sync(log.checkpoint)
            except AuditUnavailable:
                log_.exception("could not sign a checkpoint")


async def _policy_watch(reloader: PolicyReloader, every: float) -> None:
    """Pick up edited policy files every `every` seconds (every worker for itself)."""
    while True:
        await anyio.sleep(every)
        if await anyio.to_thread.run_sync(reloader.changed):  # a directory scan: off the loop
            try:
                await anyio.to_thread.run_sync(reloader.reload, "file change")
            except Exception:  # the reloader rejects bad sets itself; never stop watching
                log_.exception("policy reload failed")


async def _sighup_watch(reloader: PolicyReloader) -> None:
    """`kill -HUP <worker pid>` reloads at once (where the platform has signals)."""
    try:
        with anyio.open_signal_receiver(signal.SIGHUP) as signals:
            async for _ in signals:
                try:
                    await anyio.to_thread.run_sync(reloader.reload, "SIGHUP")
                except Exception:  # the reloader rejects bad sets itself; never stop listening
                    log_.exception("policy reload failed")
    except (NotImplementedError, RuntimeError, ValueError, AttributeError):
        # No signals here (Windows), or not the main thread (an app served by a test client).
        log_.info("SIGHUP reload not available here; file changes are still picked up")


def create_app(
    settings: Settings,
    services: Services | None = None,
    *,
    policy_poll_seconds: float | None = None,
) -> ASGIApp:
    """Build the gateway. Raises ConfigError (with a message naming what to fix) at start-up.
    `policy_poll_seconds`: how often the policy directory is looked at; by default the setting
    (GATEWAY_POLICY_POLL_SECONDS, 2 s). In-process tests pass it to shorten or stop polling."""
    svc = services or build_services(settings)
    poll = settings.policy_poll_seconds if policy_poll_seconds is None else policy_poll_seconds

    reloader = PolicyReloader(svc)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Read the log's Merkle tree before serving: built later (at the first checkpoint) it
        # would take the GIL from requests for as long as the log is long.
        await anyio.to_thread.run_sync(svc.audit_log.tree)
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(_checkpoint_loop, svc)
            tasks.start_soon(_policy_watch, reloader, poll)
            tasks.start_soon(_sighup_watch, reloader)
            yield
            tasks.cancel_scope.cancel()
        # At shutdown: one last checkpoint covering everything this gateway logged.
        with contextlib.suppress(AuditUnavailable):
            await anyio.to_thread.run_sync(svc.audit_log.checkpoint)
        svc.close()

    app = Starlette(
        exception_handlers={
            ApiError: _api_error,
            HTTPException: _http_error,
            StoreError: _store_error,
            ClientDisconnect: _client_left,
            Exception: _crash,
        },
    )
    app.router = CachedRouter(
        # The API's declared endpoints, then the console's HTML pages (not part of the API
        # document; they label their audit entries themselves).
        [*(item.route() for item in ENDPOINTS), *console_routes()],
        lifespan=lifespan,
        # Never redirect: a redirect built from the Host header sends the caller wherever the
        # request said (`GET /v1/datasets/` with `Host: evil.example`). A trailing slash is a
        # 404.
        redirect_slashes=False,
    )
    app.state.endpoints = ENDPOINTS  # the OpenAPI document is generated from them
    app.state.services = svc
    app.state.reloader = reloader
    hash_key = hmac.new(
        svc.pseudonym_secret, b"public-data-gateway/audit-hmac/v1", hashlib.sha256
    ).digest()
    return AuditMiddleware(SizeLimits(app), svc.audit_log, svc.metrics, hash_key)


def app_from_env() -> ASGIApp:
    """Factory for uvicorn worker processes: settings come from GATEWAY_* variables."""
    return create_app(Settings.from_env())
