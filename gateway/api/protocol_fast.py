"""The HTTP/1.1 server protocol `gateway serve` ships: uvicorn's httptools (llhttp) protocol with
the same two additions as the h11 one (gateway/api/protocol.py), so the faster parser keeps
every promise the h11 protocol made:

1. Requests the parser refuses (a NUL in a header, conflicting or malformed Content-Length,
   bytes outside ASCII in the request line, a missing or repeated Host, which llhttp alone would
   let through, a head past `MAX_HEAD_BYTES`, which llhttp does not bound) go through the app as
   a *rejected* call: one signed audit entry naming the peer and the kind of defect, a
   problem+json answer with an Audit-Receipt, the connection closed.
2. A request must arrive whole within `request_seconds` (default `REQUEST_SECONDS`) of the
   connection opening or of the previous response: a partial head gets an audited 408, an idle
   connection is closed silently, a trickling body is closed; a peer that leaves in the middle
   of a head is audited (`incomplete`).
"""

from __future__ import annotations

import asyncio
import http
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.api.protocol import MAX_HEAD_BYTES, REQUEST_SECONDS, Refusals

# What llhttp refused, as a code safe to log (its messages never quote the request, but the
# codes are the audit log's vocabulary, shared with the h11 protocol).
_DEFECTS = (
    ("content-length", "content_length"),
    ("transfer-encoding", "transfer_encoding"),
    ("header", "header"),
    ("method", "request_line"),
    ("url", "request_line"),
    ("version", "version"),
    ("http/", "version"),
)

IDLE, HEAD, BODY, DONE = "idle", "head", "body", "done"  # the peer's side of the exchange


class _Refused(Exception):
    """Raised in a parser callback: the request breaks a rule llhttp does not check."""

    def __init__(self, defect: str) -> None:
        super().__init__(defect)
        self.defect = defect


def defect_of(exc: Exception) -> str:
    """The kind of defect, never the offending bytes."""
    cause = exc.__context__ if isinstance(exc.__context__, _Refused) else exc
    if isinstance(cause, _Refused):
        return cause.defect
    if isinstance(cause, UnicodeDecodeError):
        return "request_line"  # bytes outside ASCII in the path
    message = str(exc).lower()
    return next((code for needle, code in _DEFECTS if needle in message), "malformed")


class GatewayHttpToolsProtocol(Refusals, HttpToolsProtocol):
    """uvicorn's httptools protocol: parser rejections audited, a deadline for each request."""

    def __init__(self, *args: Any, request_seconds: float = REQUEST_SECONDS, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._request_seconds = request_seconds
        self._deadline: asyncio.TimerHandle | None = None
        self._rejecting = False
        self._state = IDLE
        self._head_bytes = 0
        self._hosts = 0

    # --- the request deadline ----------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        # (uvicorn narrows the transport type the same way)
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if not self._rejecting and self._state == HEAD:
            # The peer left in the middle of a request's head: still a call, still audited.
            self._rejecting = True
            self._answer_later("incomplete", http.HTTPStatus.BAD_REQUEST)
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        if not self.transport.is_closing():
            self._arm()  # before a pipelined request is handled
        super().on_response_complete()

    def _request_timeout(self) -> None:
        self._deadline = None
        if self.transport.is_closing() or self._rejecting:
            return
        if self._state == HEAD:
            self._reject("timeout", http.HTTPStatus.REQUEST_TIMEOUT)  # part of a request came
        elif self._state in (IDLE, BODY):
            self.transport.close()  # nothing came (no call), or a body is trickling in

    # --- parsing -----------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._rejecting:
            return  # the answer is on its way; nothing more is read
        if self._state in (IDLE, DONE) and data:
            self._state, self._head_bytes, self._hosts = HEAD, 0, 0
        if self._state == HEAD:
            self._head_bytes += len(data)
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # `gateway serve` runs with ws="none": the request is served as plain HTTP (its
            # call is audited as any other) and the upgrade is not made.
            self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError as exc:
            self._reject(defect_of(exc), http.HTTPStatus.BAD_REQUEST)
            return
        if self._state == HEAD and self._head_bytes > MAX_HEAD_BYTES:
            self._reject("too_large", http.HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE)

    def send_400_response(self, msg: str) -> None:
        """Never uvicorn's text/plain 400: every refusal is audited."""
        self._reject("malformed", http.HTTPStatus.BAD_REQUEST)

    def on_message_begin(self) -> None:
        if self._state != HEAD:
            self._head_bytes = 0  # a pipelined request starting inside the chunk just read
        self._state, self._hosts = HEAD, 0
        super().on_message_begin()

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"host":
            self._hosts += 1
            if self._hosts > 1:
                raise _Refused("host")  # which one counts? refuse rather than pick
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._hosts == 0 and self.parser.get_http_version() == "1.1":
            raise _Refused("host")  # RFC 9112 3.2: a 1.1 request without Host is refused
        self._state = BODY
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._state = DONE
        self._disarm()  # the request is complete
        super().on_message_complete()
