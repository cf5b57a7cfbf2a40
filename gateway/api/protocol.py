"""The HTTP/1.1 server protocol: uvicorn's h11 protocol with two additions.

1. Requests the HTTP parser rejects (a NUL in a header, conflicting or negative Content-Length,
   a missing or repeated Host, bytes that are not ASCII in the request line, headers past
   `MAX_HEAD_BYTES`) are not answered by uvicorn's text/plain 400 and forgotten: they go through
   the gateway's own app as a *rejected* call (an ASGI scope extension), so the audit middleware
   signs an entry for them (peer address, the kind of defect; no bytes of the request) and the
   caller gets problem+json with an Audit-Receipt, like every other call.
2. A request must arrive whole (request line, headers and body) within `request_seconds` (the
   setting GATEWAY_REQUEST_SECONDS, default `REQUEST_SECONDS`) of the connection opening or of
   the previous response. A connection that sent part of a request by then gets a 408 (audited
   the same way) and is closed; one that sent nothing is closed silently (it made no call); one
   still sending its body is closed (the app sees the client leave, and its call is audited as
   usual). uvicorn alone never times out a connection that has not completed a first request
   (slowloris). A peer that closes the connection in the middle of a request's head is audited
   too (`incomplete`), with no answer to send.
"""

from __future__ import annotations

import asyncio
import http
import logging
from collections.abc import MutableMapping
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

REJECTED = "gateway.rejected"  # ASGI scope extension: {"reason": str, "status": int, "seconds"}
REQUEST_SECONDS = 10.0  # the whole request must arrive within this (slowloris), by default
KEEP_ALIVE_SECONDS = 5  # an idle connection between requests is closed after this
MAX_HEAD_BYTES = 48 * 1024  # request line + headers; past it the parser refuses (431)

log = logging.getLogger("gateway.http")

# What the parser refused, as a code safe to log: h11's messages may quote the request's bytes.
_DEFECTS = (
    ("receive buffer too long", "too_large"),
    ("host", "host"),
    ("content-length", "content_length"),
    ("transfer-encoding", "transfer_encoding"),
    ("request line", "request_line"),
    ("header", "header"),
    ("version", "version"),
)


def defect_of(exc: h11.RemoteProtocolError) -> str:
    """The kind of defect the parser found, never the offending bytes."""
    message = str(exc).lower()
    return next((code for needle, code in _DEFECTS if needle in message), "malformed")


class _Parser(h11.Connection):
    """h11's connection, remembering why it refused the peer's data."""

    rejection: tuple[str, int] | None = None

    def next_event(self) -> Any:
        try:
            return super().next_event()
        except h11.RemoteProtocolError as exc:
            self.rejection = (defect_of(exc), exc.error_status_hint)
            raise


class Refusals:
    """What both of the gateway's HTTP protocols (h11 here, httptools in protocol_fast.py) do
    with a request their parser refuses: pass it through the app as a rejected call (an ASGI
    scope extension; its audit middleware signs the entry), send the answer, close. Mixed into
    a uvicorn protocol class, whose attributes it uses."""

    # (set by the uvicorn protocol class this is mixed into)
    app: Any
    loop: Any
    tasks: Any
    transport: Any
    asgi_version: Any
    server: Any
    client: Any
    scheme: Any
    root_path: Any
    app_state: Any
    _rejecting: bool
    _deadline: asyncio.TimerHandle | None
    _request_seconds: float

    def _request_timeout(self) -> None:
        raise NotImplementedError

    def _arm(self) -> None:
        """(Re)start the whole-request deadline (`request_seconds`)."""
        self._disarm()
        self._deadline = self.loop.call_later(self._request_seconds, self._request_timeout)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def shutdown(self) -> None:
        """The server is stopping. uvicorn closes an idle connection and lets one in the middle
        of a call finish. Over TLS, a close waits for the peer's close_notify, which an idle
        client that is not reading never sends: the server then sat in its graceful shutdown for
        the whole timeout (10 s) per restart. An idle connection with nothing left to send (and
        no refusal being answered) is dropped at once instead."""
        super().shutdown()  # type: ignore[misc]  # the uvicorn protocol this is mixed into
        if (
            self.transport.is_closing()
            and not self._rejecting
            and not self.transport.get_write_buffer_size()
        ):
            self.transport.abort()

    def _reject(self, reason: str, status: int) -> None:
        self._rejecting = True
        self._disarm()
        self.transport.pause_reading()
        self._answer_later(reason, status)

    def _answer_later(self, reason: str, status: int) -> None:
        task = self.loop.create_task(self._answer(reason, status))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _answer(self, reason: str, status: int) -> None:
        """Run the rejection through the app (its audit middleware signs the entry), send its
        answer, close."""
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": self.asgi_version, "spec_version": "2.3"},
            "http_version": "1.1",
            "server": self.server,
            "client": self.client,
            "scheme": self.scheme,
            "method": "",  # not parsed: nothing of the request is passed on
            "root_path": self.root_path,
            "path": "",
            "raw_path": b"",
            "query_string": b"",
            "headers": [],
            "state": self.app_state.copy(),
            "extensions": {
                REJECTED: {
                    "reason": reason,
                    "status": int(status),
                    "seconds": self._request_seconds,  # (the deadline a 408 names)
                }
            },
        }
        start: MutableMapping[str, Any] | None = None
        body: list[bytes] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.disconnect"}

        async def send(message: MutableMapping[str, Any]) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                body.append(message.get("body", b""))

        try:
            await self.app(scope, receive, send)
        except Exception:
            log.exception("could not answer a request the HTTP parser refused")
        try:
            if start is not None and not self.transport.is_closing():
                self.transport.write(_response(start, b"".join(body)))
        finally:
            self.transport.close()


class GatewayH11Protocol(Refusals, H11Protocol):
    """uvicorn's h11 protocol: parser rejections audited, a deadline for each request."""

    def __init__(self, *args: Any, request_seconds: float = REQUEST_SECONDS, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._request_seconds = request_seconds
        limit = self.config.h11_max_incomplete_event_size or MAX_HEAD_BYTES
        self._parser = _Parser(h11.SERVER, limit)
        self.conn = self._parser
        self._deadline: asyncio.TimerHandle | None = None
        self._rejecting = False

    # --- the request deadline ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        # (uvicorn narrows the transport type the same way)
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if not self._rejecting and self.conn.their_state is h11.IDLE and self.conn.trailing_data[0]:
            # The peer left in the middle of a request's head: still a call, still audited.
            self._rejecting = True
            self._answer_later("incomplete", http.HTTPStatus.BAD_REQUEST)
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        if not self.transport.is_closing():
            self._arm()  # before a pipelined request is handled (that may disarm it again)
        super().on_response_complete()

    def handle_events(self) -> None:
        super().handle_events()
        if self.conn.their_state not in (h11.IDLE, h11.SEND_BODY):
            self._disarm()  # the request is complete (or refused, or the connection ends)

    def _request_timeout(self) -> None:
        self._deadline = None
        if self.transport.is_closing() or self._rejecting:
            return
        state = self.conn.their_state
        if state is h11.IDLE and self.conn.trailing_data[0]:
            self._reject("timeout", http.HTTPStatus.REQUEST_TIMEOUT)  # part of a request came
        elif state in (h11.IDLE, h11.SEND_BODY):
            self.transport.close()  # nothing came (no call), or a body is trickling in

    # --- parser rejections -------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._rejecting:
            return  # the answer is on its way; nothing more is read
        super().data_received(data)

    def send_400_response(self, msg: str) -> None:
        """Called by uvicorn when h11 refuses the request (instead of its text/plain 400)."""
        reason, status = self._parser.rejection or ("malformed", 400)
        self._reject(reason, status)


def _response(start: MutableMapping[str, Any], body: bytes) -> bytes:
    """An HTTP/1.1 response (the connection closes after it)."""
    status = int(start["status"])
    phrase = http.HTTPStatus(status).phrase.encode("ascii")
    head = [b"HTTP/1.1 %d %s" % (status, phrase)]
    for name, value in start.get("headers", []):
        if name.lower() not in (b"connection", b"content-length"):
            head.append(bytes(name) + b": " + bytes(value))
    head += [b"content-length: %d" % len(body), b"connection: close"]
    return b"\r\n".join(head) + b"\r\n\r\n" + body
