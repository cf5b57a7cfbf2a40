"""The outermost layer: every HTTP call gets exactly one signed audit entry, committed before the
response leaves. If the entry cannot be committed, the caller gets 503 and no data (fail closed).

The whole response is buffered so its SHA-256 can go into the entry; nothing is sent before the
commit. A streamed export (`ctx.stream` set by its handler) is the one exception: its entry,
naming every row it releases, is committed when the response starts and before the first byte
of the body; if that fails the caller gets the 503 instead and the stream is never read.
"""

from __future__ import annotations

import logging
import os
import random
import secrets
import time
import weakref
from typing import Any

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.api.context import AuditContext, CallHmacs
from gateway.api.problems import problem_response
from gateway.api.protocol import MAX_HEAD_BYTES, REJECTED, REQUEST_SECONDS
from gateway.audit.entry import Appended
from gateway.audit.receipt import make_receipt
from gateway.audit.store import AuditLog
from gateway.errors import (
    ApiError,
    AuditUnavailable,
    HeadersTooLarge,
    MalformedRequest,
    RequestTimeout,
    ServiceUnavailable,
)
from gateway.model.decision import Verdict
from gateway.runtime.metrics import Metrics

log = logging.getLogger("gateway.audit")


class AuditMiddleware:
    def __init__(
        self, app: ASGIApp, audit_log: AuditLog, metrics: Metrics, hash_key: bytes
    ) -> None:
        self.app = app
        self.audit_log = audit_log
        self.metrics = metrics
        self.hmacs = CallHmacs(hash_key)  # of raw paths and query strings, under this key
        # Request ids need to be unique, not secret: 64 bits from a generator seeded once from
        # the system's CSPRNG (a system call per request for `secrets` costs more than it buys).
        self._ids = random.Random(secrets.randbits(128))  # noqa: S311 - ids, not secrets
        ids = weakref.ref(self._ids)
        os.register_at_fork(after_in_child=lambda: _reseed(ids()))  # a forked worker's own ids

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        ctx = AuditContext(rid=f"{self._ids.getrandbits(64):016x}")
        scope = {**scope, "state": {**scope.get("state", {}), "audit": ctx}}
        start: Message | None = None
        chunks: list[bytes] = []
        complete = False
        streaming = False  # a streamed response whose entry is committed: pass the body on

        async def capture(message: Message) -> None:
            nonlocal start, complete, streaming
            if streaming:
                await send(message)
                return
            if message["type"] == "http.response.start":
                start = message
                if ctx.stream is not None and int(message["status"]) == 200:
                    await self._start_stream(scope, ctx, message, started, send)
                    streaming = True
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                complete = not message.get("more_body", False)

        rejected = scope.get("extensions", {}).get(REJECTED)
        try:
            if rejected is not None:
                await _refuse(rejected, scope, ctx, capture)
            else:
                await self.app(scope, receive, capture)
        except _StreamRefused:
            return  # the 503 is sent; the stream was never read
        except Exception:
            log.exception("unhandled error in request %s", ctx.rid)
            if streaming:
                return  # logged before its first byte; the cut stream shows the client a failure
        finally:
            for release in ctx.on_finish:
                release()
        if streaming:
            self.metrics.record(
                ctx.route, 200, ctx.reason, ctx.decision, time.perf_counter() - started, None
            )
            return
        if start is None or not complete:
            # Never a partial release: an unfinished response is replaced by a 500.
            ctx.decision, ctx.reason, ctx.rows = Verdict.ERROR, "internal_error", 0
            start, chunks = _render(problem_response(ApiError(), ctx.rid))
        status = int(start["status"])
        body = b"".join(chunks)
        audit_started = time.perf_counter()
        appended = await self._commit(scope, ctx, status, body, started, send, "request")
        if appended is None:
            return
        audit_seconds = time.perf_counter() - audit_started
        receipt = make_receipt(appended)
        headers = _with_context_headers(start, ctx)
        headers += [
            (b"content-length", str(len(body)).encode()),
            (b"audit-receipt", receipt.encode()),
            (b"x-request-id", ctx.rid.encode()),
        ]
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        self.metrics.record(
            ctx.route,
            status,
            ctx.reason,
            ctx.decision,
            time.perf_counter() - started,
            audit_seconds,
        )

    async def _start_stream(
        self, scope: Scope, ctx: AuditContext, start: Message, started: float, send: Send
    ) -> None:
        """Commit the entry of a streamed response, then send its head (with the receipt).
        If the entry cannot be committed, send the 503 and stop the stream (_StreamRefused)."""
        appended = await self._commit(scope, ctx, 200, b"", started, send, "export")
        if appended is None:
            raise _StreamRefused
        headers = _with_context_headers(start, ctx)
        headers += [
            (b"audit-receipt", make_receipt(appended).encode()),
            (b"x-request-id", ctx.rid.encode()),
        ]
        await send({**start, "headers": headers})

    async def _commit(
        self,
        scope: Scope,
        ctx: AuditContext,
        status: int,
        body: bytes,
        started: float,
        send: Send,
        what: str,
    ) -> Appended | None:
        """Commit the call's one entry. If the log cannot take it, answer 503 instead (nothing
        of the response leaves) and return None."""
        event = ctx.event(
            method=scope["method"],
            path=scope.get("path", ""),
            query=scope.get("query_string", b"").decode("latin-1"),
            status=status,
            body=body,
            hmacs=self.hmacs,
        )
        try:
            return await self.audit_log.append_async(event)
        except AuditUnavailable as exc:
            self.metrics.record(
                ctx.route,
                503,
                "audit_unavailable",
                Verdict.ERROR,
                time.perf_counter() - started,
                None,
            )
            # One line, no traceback: the cause is in the message, and during a writer outage
            # every refused call logs (a traceback each would bury the cause).
            log.error("audit log unavailable (%s); refusing %s %s", exc, what, ctx.rid)
            error = ServiceUnavailable("the audit log cannot be written; no data is released")
            head, chunks = _render(problem_response(error, ctx.rid))
            await send(head)
            await send({"type": "http.response.body", "body": b"".join(chunks)})
            return None


def _with_context_headers(start: Message, ctx: AuditContext) -> list[tuple[bytes, bytes]]:
    """The response's headers without its length, plus the context's (limits, budget) where
    the response set none of the same name."""
    headers: list[tuple[bytes, bytes]] = []
    present: set[bytes] = set()
    for name, value in start.get("headers", []):
        lowered = name.lower()
        if lowered != b"content-length":
            headers.append((name, value))
            present.add(lowered)
    for key, text in ctx.headers.items():
        name = key.lower().encode()
        if name not in present:
            headers.append((name, text.encode()))
    return headers


class _StreamRefused(Exception):
    """The entry of a streamed response could not be committed: the 503 went out instead."""


async def _refuse(rejected: dict[str, Any], scope: Scope, ctx: AuditContext, send: Send) -> None:
    """A request the HTTP parser refused (gateway/api/protocol.py): answer it, record who sent
    it and why; no handler runs."""
    status, defect = int(rejected["status"]), str(rejected["reason"])[:32]
    error: ApiError
    if status == 431:
        error = HeadersTooLarge(f"the request line and headers exceed {MAX_HEAD_BYTES} bytes")
    elif status == 408:
        seconds = float(rejected.get("seconds", REQUEST_SECONDS))
        error = RequestTimeout(f"the request did not arrive within {seconds:g} s")
    elif defect == "request_line":
        # Most often a URL typed with raw UTF-8 (`?gender=女` in curl): say how to send it.
        error = MalformedRequest(
            "the HTTP parser refused the request line (request_line); percent-encode "
            "characters outside ASCII in the URL (curl -G --data-urlencode)"
        )
    else:
        error = MalformedRequest(f"the HTTP parser refused the request ({defect})")
    client = scope.get("client")
    ctx.peer = str(client[0])[:64] if client else None
    ctx.rejected, ctx.decision, ctx.reason = defect, Verdict.DENY, error.reason
    start, chunks = _render(problem_response(error, ctx.rid))
    await send(start)
    await send({"type": "http.response.body", "body": b"".join(chunks)})


def _reseed(ids: random.Random | None) -> None:
    if ids is not None:
        ids.seed(secrets.randbits(128))


def _render(response: Response) -> tuple[Message, list[bytes]]:
    """A Starlette Response as its ASGI messages."""
    start: Message = {
        "type": "http.response.start",
        "status": response.status_code,
        "headers": response.raw_headers,
    }
    return start, [bytes(response.body)]
