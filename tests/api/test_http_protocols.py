"""Issue 15 item 3 (the shipped server): `gateway serve` runs uvicorn's httptools parser, and it
keeps the promises the h11 protocol kept (issue 14). Both of the gateway's protocols are served
in-process by uvicorn over plain HTTP, the whole gateway app behind them, and raw requests are
sent: every request the parser refuses gets exactly one signed audit entry (promise 6) and a
problem+json answer (promise 10), and nothing of the request is logged."""

from __future__ import annotations

import functools
import json
import pickle
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from gateway.api.protocol import REQUEST_SECONDS, GatewayH11Protocol
from gateway.app import create_app
from gateway.audit.reader import read_entries
from gateway.cli.serve import http_protocol
from gateway.settings import Settings
from tests.api.refusals import REFUSED
from tests.conftest import Demo

httptools = pytest.importorskip("httptools")
from gateway.api.protocol_fast import GatewayHttpToolsProtocol  # noqa: E402 - needs httptools

PROTOCOLS = [GatewayHttpToolsProtocol, GatewayH11Protocol]
PROBLEM = b"application/problem+json"

# REFUSED (tests/api/refusals.py): what each protocol must refuse itself, before the app.


@pytest.fixture(params=PROTOCOLS, ids=lambda p: p.__name__)
def served(request: pytest.FixtureRequest, demo: Demo) -> Iterator[tuple[int, Demo]]:
    """The gateway app served by uvicorn in a thread with one of the gateway's protocols."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    config = uvicorn.Config(
        create_app(demo.settings),
        host="127.0.0.1",
        port=port,
        http=request.param,
        ws="none",
        log_level="critical",
        h11_max_incomplete_event_size=48 * 1024,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "uvicorn did not start"
    try:
        yield port, demo
    finally:
        server.should_exit = True
        thread.join(30)


def _exchange(port: int, raw: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(raw)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


def _entries(demo: Demo) -> list[dict[str, Any]]:
    _, entries = read_entries(demo.home / "audit" / "log.sqlite3")
    return [json.loads(e.line) for e in entries]


def test_the_shipped_protocol_is_the_httptools_one() -> None:
    """`gateway serve` runs the httptools protocol wherever httptools is installed, with the
    request deadline of its settings (10 s unless GATEWAY_REQUEST_SECONDS says otherwise), in
    a form uvicorn can hand to its worker processes (pickled)."""
    shipped = http_protocol(Settings().request_seconds)
    assert isinstance(shipped, functools.partial)
    assert shipped.func is GatewayHttpToolsProtocol
    assert shipped.keywords == {"request_seconds": REQUEST_SECONDS} == {"request_seconds": 10.0}
    again = pickle.loads(pickle.dumps(shipped))  # noqa: S301 - our own bytes, just made
    assert (again.func, again.keywords) == (shipped.func, shipped.keywords)
    assert Settings.from_env({"GATEWAY_REQUEST_SECONDS": "1.5"}).request_seconds == 1.5


@pytest.mark.parametrize(("what", "raw", "status", "defect"), REFUSED, ids=[r[0] for r in REFUSED])
def test_a_refused_request_gets_one_audit_entry_and_problem_json(
    served: tuple[int, Demo], what: str, raw: bytes, status: int, defect: str | None
) -> None:
    """Promise 6 and 10: a request the parser refuses is answered with problem+json carrying an
    Audit-Receipt, and leaves exactly one entry naming the peer and the kind of defect, with no
    byte of the request (no method, route or query)."""
    port, demo = served
    before = len(_entries(demo))
    head, _, body = _exchange(port, raw).partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0].startswith(b"HTTP/1.1 %d " % status), (what, lines[0])
    headers = {k.lower(): v.strip() for k, _, v in (x.partition(b":") for x in lines[1:])}
    assert headers[b"content-type"] == PROBLEM, what
    assert b"audit-receipt" in headers, what
    assert json.loads(body)["status"] == status
    entries = _entries(demo)
    assert len(entries) == before + 1, what
    entry = entries[-1]
    assert (entry["status"], entry["decision"], entry["peer"]) == (status, "deny", "127.0.0.1")
    assert entry["rejected"] == (defect or entry["rejected"]), what
    assert (entry["method"], entry["route"], entry["query_hmac"]) == ("", None, None)
    assert entry["rid"] == headers[b"x-request-id"].decode()
    if what == "raw UTF-8 in the query":  # item 4: the answer says what to do
        assert "percent-encode" in json.loads(body)["detail"]


def test_a_peer_leaving_mid_head_is_audited(served: tuple[int, Demo]) -> None:
    """A peer that closes the connection in the middle of a request's head made a call: it gets
    an entry (`incomplete`), though there is nobody to answer."""
    port, demo = served
    before = len(_entries(demo))
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-A: 1")
    for _ in range(200):  # (the entry is written after the peer left)
        if len(_entries(demo)) > before:
            break
        time.sleep(0.05)
    entries = _entries(demo)
    assert len(entries) == before + 1
    assert (entries[-1]["rejected"], entries[-1]["status"]) == ("incomplete", 400)


def test_valid_requests_are_served_and_audited_on_one_connection(
    served: tuple[int, Demo],
) -> None:
    """Two pipelined valid requests on one keep-alive connection: two answers, two entries
    (the parser's bookkeeping of heads does not refuse the second)."""
    port, demo = served
    before = len(_entries(demo))
    one = b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"
    last = b"GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    answer = _exchange(port, one + last)
    assert answer.count(b"HTTP/1.1 200 ") == 2, answer[:200]
    assert len(_entries(demo)) == before + 2
