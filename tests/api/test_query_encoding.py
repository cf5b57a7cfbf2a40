"""Issue 15: a query string typed with raw UTF-8 (`?gender=女`, unencoded by curl) is read as the
same UTF-8 the client meant, when the server passes it on; bytes that are not UTF-8 answer a
problem+json 400."""

from __future__ import annotations

import asyncio
import json

import pytest
from starlette.requests import Request
from starlette.types import Message, Receive, Scope, Send

from gateway.api.limits import SizeLimits


def call(query: bytes) -> tuple[list[Message], Scope | None]:
    seen: list[Scope] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)

    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        sent.append(message)

    scope: Scope = {
        "type": "http",
        "method": "GET",
        "path": "/v1/datasets/residents/rows",
        "query_string": query,
        "headers": [],
    }
    asyncio.run(SizeLimits(inner)(scope, receive, send))
    return sent, (seen[0] if seen else None)


def test_raw_utf8_query_is_read_as_utf8() -> None:
    """A raw UTF-8 filter value reaches the handlers as the text the client typed."""
    sent, scope = call("purpose=statistics&gender=女&city=广州市".encode())
    assert scope is not None
    assert not sent
    params = Request(scope).query_params
    assert params["gender"] == "女"
    assert params["city"] == "广州市"
    assert Request(call(b"gender=%E5%A5%B3")[1]).query_params["gender"] == "女"  # type: ignore[arg-type]


def test_query_that_is_not_utf8_answers_problem_json() -> None:
    """Bytes that are not UTF-8 are refused with a problem+json 400, never guessed at."""
    sent, scope = call(b"gender=\xff\xfe")
    assert scope is None
    start = sent[0]
    assert start["status"] == 400
    assert (b"content-type", b"application/problem+json") in start["headers"]
    assert json.loads(sent[1]["body"])["status"] == 400


def _serve_once(http: str, raw_target: bytes) -> tuple[bytes, bytes]:
    """Start uvicorn with one of the gateway's protocols, send one raw request line, return the
    status line and the rest of the response."""
    import socket
    import threading
    import time

    import uvicorn
    from starlette.responses import PlainTextResponse

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await PlainTextResponse("ok")(scope, receive, send)

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, http=http, log_level="error")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(
                b"GET " + raw_target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
    finally:
        server.should_exit = True
        thread.join(10)
    status, _, rest = data.partition(b"\r\n")
    return status, rest


@pytest.mark.parametrize(
    "http",
    ["gateway.httpserver:ProblemH11Protocol", "gateway.httpserver:ProblemHttpToolsProtocol"],
)
def test_raw_utf8_refused_by_the_http_parser_answers_problem_json(http: str) -> None:
    """uvicorn's parsers refuse raw UTF-8 in the request line; the gateway's protocols answer
    that with problem+json (not uvicorn's text/plain), and serve a valid request as usual."""
    if "HttpTools" in http:
        pytest.importorskip("httptools")
    status, rest = _serve_once(http, "/rows?gender=女".encode())
    assert status == b"HTTP/1.1 400 Bad Request"
    head, _, body = rest.partition(b"\r\n\r\n")
    assert b"content-type: application/problem+json" in head.lower()
    problem = json.loads(body)
    assert problem["status"] == 400
    assert "percent-encode" in problem["detail"]
    status, _ = _serve_once(http, b"/rows?gender=%E5%A5%B3")
    assert status == b"HTTP/1.1 200 OK"
