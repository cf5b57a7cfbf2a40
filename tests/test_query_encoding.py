"""Issue 15: a query string typed with raw UTF-8 (`?gender=女`, unencoded by curl) is read as the
same UTF-8 the client meant, when the server passes it on; bytes that are not UTF-8 answer a
problem+json 400."""

from __future__ import annotations

import asyncio
import json

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
