"""Request size limits, checked before any handler runs (inside the audit middleware, so every
refusal is logged): query string, header fields, and body; and headers that must not repeat.
Per-client concurrency is enforced by `auth.limits.InFlight`, once the caller is authenticated."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.api.problems import problem_response
from gateway.errors import (
    ApiError,
    BadRequest,
    HeadersTooLarge,
    LengthRequired,
    PayloadTooLarge,
    UriTooLong,
)
from gateway.integers import parse_int
from gateway.model.decision import Verdict

MAX_QUERY = 8 * 1024
MAX_HEADER = 16 * 1024  # (Authorization has its own, lower limit: 8 KB, see auth/tokens.py)
MAX_HEADERS_TOTAL = 32 * 1024
MAX_BODY = 64 * 1024
# Headers that must occur at most once: a second one is a 400, never "the first wins".
SINGLE_HEADERS = frozenset(
    {b"authorization", b"host", b"content-length", b"content-type", b"data-purpose"}
)


class SizeLimits:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        error: ApiError | None = None
        query = scope.get("query_string", b"")
        if len(query) > MAX_QUERY:
            error = UriTooLong(f"the query string is longer than {MAX_QUERY} bytes")
        elif not query.isascii():
            # Typed unencoded (`?gender=女` in curl) and passed on by a server that allows it:
            # parsed as Latin-1 it would silently match nothing. UTF-8 is percent-encoded as
            # the client should have done; anything else is refused.
            try:
                query.decode("utf-8")
                scope = {**scope, "query_string": _percent_encode(query)}
            except UnicodeDecodeError:
                error = BadRequest("the query string is not UTF-8; percent-encode its values")
        headers = scope.get("headers", [])
        too_long, total, repeated, declared, chunked = _scan(headers)
        if too_long:
            error = HeadersTooLarge(f"a header field is longer than {MAX_HEADER} bytes")
        elif total > MAX_HEADERS_TOTAL:
            error = HeadersTooLarge(f"the header fields exceed {MAX_HEADERS_TOTAL} bytes")
        if repeated == "authorization" and str(scope.get("path", "")).startswith("/oauth/"):
            # The OAuth endpoints refuse it themselves, as RFC 6749 invalid_request (the error
            # shape OAuth clients parse), and audit it with that reason.
            repeated = None
        if error is None and repeated is not None:
            # Which of two Authorization headers counts? Different parts of a chain (a proxy,
            # this server, a library) may pick different ones: refuse rather than pick.
            error = BadRequest(f"give the {repeated} header once", parameter=repeated)
        if error is None and chunked:
            # A body without a declared length could only be limited after the app has started
            # answering; refuse it up front (the server enforces a declared length itself).
            error = LengthRequired("send the request body with a Content-Length header")
        elif error is None and declared:
            error = _body_length(declared)
        if error is not None:
            await self._refuse(scope, error, receive, send)
            return
        await self.app(scope, receive, send)

    @staticmethod
    async def _refuse(scope: Scope, error: ApiError, receive: Receive, send: Send) -> None:
        ctx = scope.get("state", {}).get("audit")
        if ctx is not None:
            ctx.decision, ctx.reason = Verdict.DENY, error.reason
        response = problem_response(error, getattr(ctx, "rid", None))
        await response(scope, receive, send)


def _percent_encode(query: bytes) -> bytes:
    """Percent-encode the bytes of a query string outside ASCII (RFC 3986 2.1)."""
    return b"".join(b"%%%02X" % byte if byte > 0x7F else bytes((byte,)) for byte in query)


def _scan(
    headers: list[tuple[bytes, bytes]],
) -> tuple[bool, int, str | None, list[bytes], bool]:
    """One pass over the header fields: whether one is longer than MAX_HEADER, their total
    size, the first header of SINGLE_HEADERS that occurs more than once (if any), the
    Content-Length values, and whether a Transfer-Encoding is present."""
    too_long, total, repeated, chunked = False, 0, None, False
    seen: set[bytes] = set()
    declared: list[bytes] = []
    for name, value in headers:
        size = len(name) + len(value)
        total += size
        if size > MAX_HEADER:
            too_long = True
        lowered = name.lower()
        if lowered in SINGLE_HEADERS:
            if lowered in seen:
                repeated = repeated or lowered.decode("ascii")
            seen.add(lowered)
        if name == b"content-length":
            declared.append(value)
        elif name == b"transfer-encoding":
            chunked = True
    return too_long, total, repeated, declared, chunked


def _body_length(declared: list[bytes]) -> ApiError | None:
    """One Content-Length of ASCII digits, at most MAX_BODY (the HTTP server refuses most
    malformed ones before the app sees them; this is the same rule for any server)."""
    if len(declared) > 1:
        return BadRequest("give Content-Length once", parameter="content-length")
    try:
        length = parse_int(declared[0], "content-length")
    except BadRequest as exc:
        return exc
    if length > MAX_BODY:
        return PayloadTooLarge(f"the body is larger than {MAX_BODY} bytes")
    return None
