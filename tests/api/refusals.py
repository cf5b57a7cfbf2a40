"""Requests the gateway's HTTP protocols must refuse themselves, before the app runs: one list
for the in-process protocol tests (test_http_protocols.py) and the real server's
(test_hostile_http.py)."""

from __future__ import annotations

REFUSED = [
    # (what, raw request, expected status, expected defect)
    ("NUL in a header", b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-A: a\x00b\r\n\r\n", 400, "header"),
    (
        "conflicting Content-Length",
        b"POST /oauth/token HTTP/1.1\r\nHost: a\r\n"
        b"Content-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        400,
        "content_length",
    ),
    (
        "negative Content-Length",
        b"POST /oauth/token HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
        400,
        "content_length",
    ),
    ("missing Host", b"GET /healthz HTTP/1.1\r\n\r\n", 400, "host"),
    ("two Host headers", b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "host"),
    ("raw bytes in the path", b"GET /v1/datasets/\xff\xfe HTTP/1.1\r\nHost: a\r\n\r\n", 400, None),
    ("NUL in the path", b"GET /healthz\x00 HTTP/1.1\r\nHost: a\r\n\r\n", 400, None),
    ("raw UTF-8 in the query", "GET /healthz?g=女 HTTP/1.1\r\nHost: a\r\n\r\n".encode(), 400, None),
    (
        "unfinished headers past the limit",
        b"GET /healthz HTTP/1.1\r\nHost: a\r\n" + b"X-A: " + b"a" * 60_000,
        431,
        "too_large",
    ),
]
