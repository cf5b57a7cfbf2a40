"""uvicorn's HTTP/1.1 protocols, answering a request their parser refuses (a raw non-ASCII byte
in the URL, `?gender=女` typed into curl; a malformed request line or header) with an RFC 9457
problem+json 400 like every other refusal, instead of uvicorn's text/plain one. Such a request
never reaches the app, so it has no audit entry (it released nothing).

These classes are what `benchmarks/throughput.py` measures the server choice with. `gateway
serve` ships `gateway.api.protocol.GatewayH11Protocol` instead: it also answers refusals with
problem+json, and gives each one a signed audit entry (promise 6), which the httptools parser
offers no hook for; see docs/performance.md for what that choice costs."""

from __future__ import annotations

import json

from uvicorn.protocols.http.h11_impl import H11Protocol

from gateway.errors import BadRequest

_DETAIL = (
    "the request is not valid HTTP/1.1; percent-encode characters outside ASCII in the URL "
    "(curl --data-urlencode with -G, or encode them yourself)"
)


def problem_400() -> bytes:
    """The whole HTTP/1.1 response: status line, headers and problem+json body."""
    error = BadRequest(_DETAIL)
    body = json.dumps(
        {"type": error.type_uri, "title": error.title, "status": 400, "detail": _DETAIL},
        separators=(",", ":"),
    ).encode()
    return b"".join(
        [
            b"HTTP/1.1 400 Bad Request\r\n",
            b"content-type: application/problem+json\r\n",
            b"cache-control: no-store\r\n",
            b"content-length: " + str(len(body)).encode() + b"\r\n",
            b"connection: close\r\n\r\n",
            body,
        ]
    )


class ProblemH11Protocol(H11Protocol):
    def send_400_response(self, msg: str) -> None:
        self.transport.write(problem_400())
        self.transport.close()


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class ProblemHttpToolsProtocol(HttpToolsProtocol):
        def send_400_response(self, msg: str) -> None:
            self.transport.write(problem_400())
            self.transport.close()

except ImportError:  # httptools not installed: only the pure-Python parser
    pass
