"""Issue 14 (items 5, 7, 10): hostile HTTP. Odd numerals and raw bytes in every parameter get a
clear 4xx, never a 500 (promise 10); every call, hostile or not, gets exactly one audit entry
(promise 6); HEAD releases nothing; no redirect is built from the Host header; a resumed halt is
seen by the serving process; repeated Authorization headers are refused."""

from __future__ import annotations

import json
import re
import shutil
import signal
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from gateway.audit.checkpoint import parse_checkpoint
from gateway.audit.halt import resume
from gateway.audit.reader import read_log
from gateway.audit.store import AuditLog
from gateway.audit.verify import _size_of
from gateway.cli import main as gateway_main
from gateway.data.checksums import id_card_valid
from gateway.errors import AuditUnavailable, BadRequest
from gateway.integers import MAX_DIGITS, parse_int
from gateway.query import RESERVED
from tests.api.refusals import REFUSED
from tests.audit.test_transparency import new_signer
from tests.conftest import Demo, services_of, token_for
from tests.paths import REPO

PROBLEM = "application/problem+json"
REGISTER = "/v1/datasets/enterprise_registry/rows"
ROWS = "/v1/datasets/residents/rows"
ODD_NUMERALS = [
    "²",  # superscript two: str.isdigit() is true, int() fails
    "①",  # circled one: the same
    "١٢",  # Arabic-Indic digits: int() accepts them
    "１２",  # fullwidth digits: int() accepts them
    " 12",
    "12\n",
    "1_000",
    "+5",
    "0x10",
    "9" * (MAX_DIGITS + 1),
    "",
]
FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def auditor(client: TestClient) -> str:
    """A token of a client holding audit:read."""
    _, secret = services_of(client).registry.add("auditor", scopes=("audit:read",))
    assert secret is not None
    return token_for(client, "auditor", secret)


@pytest.fixture
def admin(client: TestClient) -> str:
    """A token of a client holding admin."""
    _, secret = services_of(client).registry.add("operator", scopes=("admin",))
    assert secret is not None
    return token_for(client, "operator", secret)


def log_size(client: TestClient) -> int:
    size: int = services_of(client).audit_log.size()
    return size


def last_entry(client: TestClient) -> dict[str, Any]:
    log = services_of(client).audit_log
    size = log.size()
    entry: dict[str, Any] = json.loads(log.entries(size - 1, size)[0].line)
    return entry


def assert_clean(
    status: int, content_type: str, before: int, after: int, *, oauth: bool = False
) -> None:
    """Never a 5xx; every error is problem+json (OAuth endpoints: the JSON error of RFC 6749
    5.2); exactly one audit entry for the call."""
    assert status < 500, status
    if status >= 400:
        oauth_error = oauth and content_type.startswith("application/json")
        assert oauth_error or content_type.startswith(PROBLEM), (status, content_type)
    assert after == before + 1, (before, after)


# --- item 5: one strict integer parser -------------------------------------------------------


@given(st.one_of(st.text(), st.sampled_from(ODD_NUMERALS), st.integers().map(str)))
@settings(max_examples=500, deadline=None)
def test_parse_int_accepts_ascii_digits_only(raw: str) -> None:
    """Promise 10: the one integer parser accepts 1-18 ASCII digits and refuses everything else
    (Unicode digits included) with a 400 naming the parameter, never a ValueError."""
    if re.fullmatch(r"-?[0-9]{1,18}", raw) is None:
        with pytest.raises(BadRequest) as caught:
            parse_int(raw, "n", minimum=None)
        assert caught.value.parameter == "n"
    else:
        assert parse_int(raw, "n", minimum=None) == int(raw)


@pytest.mark.parametrize("raw", ["²", "①", "١٢", "１２", "-1", "1" * 19])
def test_parse_int_refuses_odd_numerals_without_echoing_them(raw: str) -> None:
    """Promise 10 and 2: the refusal names the parameter and never repeats the value."""
    with pytest.raises(BadRequest) as caught:
        parse_int(raw, "_size", minimum=1, maximum=500)
    assert caught.value.parameter == "_size"
    assert raw not in caught.value.detail


@pytest.mark.parametrize(
    ("url", "parameter", "who"),
    [
        (f"{ROWS}?purpose=statistics&_size=²", "_size", "data"),
        (f"{ROWS}?purpose=statistics&_size=①", "_size", "data"),
        (f"{ROWS}?purpose=statistics&_size=１２", "_size", "data"),
        # Integer filters on an integer column the register releases as it is (the residents'
        # age is a generalized text label since issue 13).
        (
            f"{REGISTER}?purpose=market-analysis&registered_capital__gt=١٢",
            "registered_capital__gt",
            "data",
        ),
        (
            f"{REGISTER}?purpose=market-analysis&registered_capital=99999999999999999999",
            "registered_capital",
            "data",
        ),
        (
            f"{REGISTER}?purpose=market-analysis&registered_capital__in=1,²",
            "registered_capital__in",
            "data",
        ),
        ("/v1/audit/proof?idx=²&size=3", "idx", None),
        ("/v1/audit/proof?idx=0&size=①", "size", None),
        ("/v1/audit/consistency?from=²&to=³", "from", None),
        ("/v1/audit/entries?from=²&to=3", "from", "auditor"),
    ],
)
def test_odd_numerals_are_a_400_naming_the_parameter(
    client: TestClient, token: str, auditor: str, url: str, parameter: str, who: str | None
) -> None:
    """Promise 10: Unicode digits, huge numbers and the like in any integer parameter are a
    400 problem+json naming that parameter (they were 500s or silently accepted), audited."""
    for _ in range(3):  # a few entries, so that proofs of small sizes exist
        client.get("/healthz")
    bearer = {"data": token, "auditor": auditor}.get(who or "")
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    before = log_size(client)
    response = client.get(url, headers=headers)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.json()["parameter"] == parameter
    assert log_size(client) == before + 1
    assert last_entry(client)["status"] == 400


def test_content_length_is_parsed_strictly(client: TestClient, token: str) -> None:
    """Promise 10: a Content-Length of Unicode digits or thousands of digits is a 4xx with an
    audit entry (the parser behind another server may let it through)."""
    for value in ("²", "1" * 5000, "-1"):
        before = log_size(client)
        status, content_type, _ = asgi_call(
            client,
            "POST",
            b"/oauth/revoke",
            b"",
            [(b"content-length", value.encode()), (b"content-type", b"text/plain")],
        )
        assert 400 <= status < 500
        assert_clean(status, content_type, before, log_size(client))


def test_no_bare_isdigit_in_the_gateway() -> None:
    """Promise 10, the whole class: no code trusts str.isdigit() alone (true for "²", which
    int() rejects); integers go through gateway/integers.py or check isascii() as well."""
    root = REPO / "gateway"
    bare = [
        f"{path.relative_to(root)}:{number}"
        for path in sorted(root.rglob("*.py"))
        if path.name != "integers.py"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if ".isdigit()" in line and ".isascii()" not in line
    ]
    assert bare == []


def test_other_digit_checks_refuse_unicode_digits() -> None:
    """Promise 10: the ID-card checksum and the verifier's checkpoint reader refuse "²" instead
    of raising ValueError from int()."""
    assert id_card_valid("²" * 17 + "X") is False
    assert _size_of("origin\n²\nroot") == -1
    with pytest.raises(ValueError, match="not a decimal number"):
        parse_checkpoint("origin\n²\nAAAA\n\n— sig\n", {})


# --- item 5: fuzz every parameter of every endpoint -----------------------------------------

RESIDENT_PARAMS = [
    *RESERVED,  # every reserved query parameter of the rows endpoint
    "age",
    "age__gt",
    "age__in",
    "age__isnull",
    "name__startswith",
    "gender__not",
    "province__contains",
]
ENTERPRISE_PARAMS = [
    "_size",
    "_sort",
    "purpose",
    "registered_capital__lte",
    "founded__gte",
    "founded",
    "credit_code__in",
]
# (method, path, parameter names, who calls: data client, auditor, admin or nobody)
ENDPOINTS: list[tuple[str, str, list[str], str | None]] = [
    ("GET", ROWS, RESIDENT_PARAMS, "data"),
    ("GET", "/v1/datasets/enterprise_registry/rows", ENTERPRISE_PARAMS, "data"),
    ("GET", "/v1/datasets/residents", ["purpose"], "data"),
    ("GET", "/v1/datasets", ["purpose", "_size"], "data"),
    ("GET", "/v1/audit/proof", ["idx", "size"], None),
    ("GET", "/v1/audit/consistency", ["from", "to"], None),
    ("GET", "/v1/audit/entries", ["from", "to"], "auditor"),
    ("GET", "/v1/audit/checkpoint", ["size"], None),
    ("GET", "/v1/admin/explain", ["client", "dataset", "purpose", "at", "scope"], "admin"),
    ("GET", "/v1/admin/status", ["verbose"], "admin"),
    ("GET", "/healthz", ["x"], None),
    ("GET", "/.well-known/jwks.json", ["kid"], None),
    ("POST", "/oauth/token", ["grant_type", "scope", "client_id", "client_secret"], None),
    ("POST", "/oauth/introspect", ["token", "token_type_hint"], "data"),
    ("POST", "/oauth/revoke", ["token", "token_type_hint"], "data"),
]

numeral = st.one_of(
    st.sampled_from(ODD_NUMERALS),
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
    st.text(alphabet=st.characters(categories=["Nd", "No", "Nl"]), min_size=1, max_size=4),
)
value = st.one_of(st.text(max_size=40), numeral, st.sampled_from(["statistics", "age", "1,2"]))


def params_for(names: list[str]) -> st.SearchStrategy[list[tuple[str, str]]]:
    name = st.one_of(st.sampled_from(names), st.text(max_size=12))
    return st.lists(st.tuples(name, value), max_size=6)


FORM = b"application/x-www-form-urlencoded"


def form(params: list[tuple[str, str]]) -> bytes:
    """Parameters encoded as a browser or httpx encodes a query string or a form body (UTF-8,
    percent-escapes, `+` for a space)."""
    return urlencode(params).encode("ascii")


@pytest.fixture
def callers(client: TestClient, token: str, auditor: str, admin: str) -> dict[str, str]:
    return {"data": token, "auditor": auditor, "admin": admin}


@pytest.mark.parametrize(
    ("method", "path", "names", "who"), ENDPOINTS, ids=[f"{m} {p}" for m, p, _, _ in ENDPOINTS]
)
@FUZZ
@given(data=st.data())
def test_fuzzed_parameters_never_cause_a_5xx(
    client: TestClient,
    callers: dict[str, str],
    method: str,
    path: str,
    names: list[str],
    who: str | None,
    data: st.DataObject,
) -> None:
    """Promises 6 and 10: any Unicode in any parameter of any endpoint gives a 2xx or a 4xx
    problem+json, never a 5xx, and exactly one audit entry."""
    params = data.draw(params_for(names), label="params")
    headers = [(b"authorization", f"Bearer {callers[who]}".encode())] if who else []
    if data.draw(st.booleans(), label="data-purpose header"):
        headers.append((b"data-purpose", quote(data.draw(st.text(max_size=20))).encode()))
    before = log_size(client)
    # The encoded request a client library sends (a query string, or a form body as an HTML
    # form posts it), handed to the app in one call: the app sees the bytes it would see
    # through the test client's HTTP layer, at a quarter of the cost per example.
    if method == "GET":
        status, content_type, _ = asgi_call(client, method, path.encode(), form(params), headers)
    else:
        body = form(list(dict(params).items()))
        headers += [(b"content-type", FORM), (b"content-length", str(len(body)).encode())]
        status, content_type, _ = asgi_call(client, method, path.encode(), b"", headers, body)
    assert_clean(status, content_type, before, log_size(client), oauth=path.startswith("/oauth/"))


@FUZZ
@given(segment=st.text(min_size=1, max_size=40), suffix=st.sampled_from(["", "/rows"]))
def test_fuzzed_dataset_ids_never_cause_a_5xx(
    client: TestClient, token: str, segment: str, suffix: str
) -> None:
    """Promises 6 and 10: any Unicode as a dataset id is a 2xx or 4xx, audited once."""
    before = log_size(client)
    path = f"/v1/datasets/{quote(segment, safe='')}{suffix}".encode("ascii")
    headers = [(b"authorization", f"Bearer {token}".encode())]
    status, content_type, _ = asgi_call(client, "GET", path, b"purpose=statistics", headers)
    assert_clean(status, content_type, before, log_size(client))


def asgi_call(
    client: TestClient,
    method: str,
    raw_path: bytes,
    query: bytes,
    headers: list[tuple[bytes, bytes]],
    body: bytes = b"",
) -> tuple[int, str, bytes]:
    """Call the app with a hand-made ASGI scope (any bytes the test client would encode)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "https",
        "server": ("testserver", 443),
        "client": ("127.0.0.1", 50000),
        "root_path": "",
        # What a lenient server could hand over: bytes that are not UTF-8 become surrogates.
        "path": unquote(raw_path.decode("latin-1"), errors="surrogateescape"),
        "raw_path": raw_path,
        "query_string": query,
        "headers": [(b"host", b"testserver"), *headers],
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    async def run() -> None:
        await client.app(scope, receive, send)

    assert client.portal is not None
    client.portal.call(run)
    start = next(m for m in sent if m["type"] == "http.response.start")
    content_type = dict(start["headers"]).get(b"content-type", b"").decode("latin-1")
    body_out = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return int(start["status"]), content_type, body_out


raw_query = st.one_of(
    st.binary(max_size=120),
    st.builds(
        lambda k, v: k.encode() + b"=" + v,
        st.sampled_from([*RESIDENT_PARAMS, "idx", "size", "from", "to"]),
        st.binary(max_size=40),
    ),
)
RAW_PATHS = [
    b"/v1/datasets/residents/rows",
    b"/v1/datasets/residents",
    b"/v1/audit/proof",
    b"/v1/audit/consistency",
    b"/v1/audit/entries",
]


@FUZZ
@given(
    path=st.one_of(
        st.sampled_from(RAW_PATHS),
        st.binary(max_size=40).map(lambda b: b"/v1/datasets/" + b),
        st.binary(max_size=40).map(lambda b: b"/" + b),
    ),
    query=raw_query,
    purpose=st.one_of(st.none(), st.binary(max_size=30)),
    accept=st.one_of(st.none(), st.binary(max_size=30)),
    bearer=st.one_of(st.none(), st.binary(max_size=40)),
)
def test_raw_bytes_in_path_query_and_headers_never_cause_a_5xx(
    client: TestClient,
    token: str,
    path: bytes,
    query: bytes,
    purpose: bytes | None,
    accept: bytes | None,
    bearer: bytes | None,
) -> None:
    """Promises 6 and 10: bytes that are not UTF-8 (or not text at all) in the path, the query
    string and the headers give a 2xx or a 4xx problem+json and exactly one audit entry."""
    headers = [(b"authorization", b"Bearer " + (bearer or token.encode()))]
    if purpose is not None:
        headers.append((b"data-purpose", purpose))
    if accept is not None:
        headers.append((b"accept", accept))
    before = log_size(client)
    status, content_type, _ = asgi_call(client, "GET", path, query, headers)
    assert_clean(status, content_type, before, log_size(client))


# --- item 10: HEAD, redirects, repeated headers -----------------------------------------------


def _grant_rows_used(client: TestClient, demo: Demo, grant: str) -> int:
    """Rows of the grant's daily quota used so far (reading the shared counter)."""
    day = int(time.time() // 86400)
    registry = services_of(client).registry
    _, used = registry.take(f"grows:{grant}:{demo.client_id}:{day}", 0, 10**12, (day + 2) * 86400)
    return int(used)


def test_head_on_rows_releases_nothing(client: TestClient, demo: Demo, token: str) -> None:
    """Promise 6 (the log tells what left): HEAD on rows sends no body, so it releases nothing:
    405, no rows or row ids in its audit entry, no quota used."""
    bearer = {"Authorization": f"Bearer {token}"}
    grant = client.get("/v1/datasets/residents?purpose=statistics", headers=bearer).json()["grant"]
    used = _grant_rows_used(client, demo, grant)
    before = log_size(client)
    response = client.head(f"{ROWS}?purpose=statistics&_size=7", headers=bearer)
    assert response.status_code == 405
    assert response.headers["allow"] == "GET"
    assert log_size(client) == before + 1
    entry = last_entry(client)
    assert (entry["status"], entry["rows"]) == (405, 0)
    assert "row_ids" not in entry
    assert entry["decision"] == "deny"
    assert _grant_rows_used(client, demo, grant) == used
    # ... while a GET of the same page is counted.
    assert client.get(f"{ROWS}?purpose=statistics&_size=7", headers=bearer).status_code == 200
    assert _grant_rows_used(client, demo, grant) == used + 7


@pytest.mark.parametrize(
    "path", ["/v1/datasets", "/v1/datasets/residents", "/v1/audit/entries", "/oauth/token"]
)
def test_head_is_refused_on_every_api_route(client: TestClient, token: str, path: str) -> None:
    """Promise 6: HEAD runs no API handler (no data, no quota); it is a 405, audited."""
    before = log_size(client)
    response = client.head(path, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 405
    assert log_size(client) == before + 1
    assert client.head("/healthz").status_code == 200  # health checks may still use HEAD


@pytest.mark.parametrize("path", ["/v1/datasets/", "/v1/datasets/residents/rows/", "/healthz/"])
def test_trailing_slash_never_redirects_to_the_host_header(
    client: TestClient, token: str, path: str
) -> None:
    """Promise 10: a trailing slash is a 404 problem+json; no redirect is ever built from a
    (hostile) Host header."""
    response = client.get(
        path,
        headers={"Authorization": f"Bearer {token}", "Host": "evil.example"},
        follow_redirects=False,
    )
    assert response.status_code == 404
    assert response.headers["content-type"].startswith(PROBLEM)
    assert "location" not in response.headers
    assert "evil.example" not in response.text


@pytest.mark.parametrize(
    "headers",
    [
        [("Authorization", "Bearer {token}"), ("Authorization", "Bearer forged")],
        [("Authorization", "Bearer forged"), ("Authorization", "Bearer {token}")],
        [("Authorization", "Bearer {token}"), ("Authorization", "Bearer {token}")],
        [("Authorization", "Bearer {token}"), ("Data-Purpose", "statistics")] * 2,
    ],
)
def test_repeated_authorization_is_a_400(
    client: TestClient, token: str, headers: list[tuple[str, str]]
) -> None:
    """Promise 9: two Authorization (or Data-Purpose) headers are a 400 problem+json, audited;
    never "the first one wins"."""
    before = log_size(client)
    response = client.get(
        f"{ROWS}?purpose=statistics",
        headers=[(k, v.format(token=token)) for k, v in headers],
    )
    assert response.status_code == 400
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.json()["parameter"] in ("authorization", "data-purpose")
    assert log_size(client) == before + 1
    entry = last_entry(client)
    assert (entry["status"], entry["rows"], entry["decision"]) == (400, 0, "deny")


# --- item 10: a resumed halt is seen by the serving process ----------------------------------


def test_resume_clears_a_halt_whose_note_could_not_be_written(
    client: TestClient, demo: Demo, capsys: pytest.CaptureFixture[str]
) -> None:
    """Promise 6: when even the halt note cannot be written (a full disk fails every write),
    the server answers 503 until `gateway audit resume`, and then serves again without a
    restart (it used to say "not halted" and stay halted)."""
    log = services_of(client).audit_log
    assert client.get("/healthz").status_code == 200
    # Every write of the serving process fails: its own connection's and its writer process's.
    log._pragma("query_only", 1)
    assert client.get("/healthz").status_code == 503
    assert log.halted is not None
    assert read_log(demo.settings.audit_database).halted is None  # the note was not written
    log._pragma("query_only", 0)  # space is back ...
    capsys.readouterr()
    assert gateway_main(["audit", "resume", "--home", str(demo.home)]) == 0
    assert "resumed" in capsys.readouterr().out
    assert log.halted is None
    response = client.get("/healthz")
    assert response.status_code == 200
    assert client.get("/readyz").json()["checks"]["audit"] == "ok"


def test_unrecorded_halt_is_recorded_once_writes_work_again(tmp_path: Any) -> None:
    """Promise 6: a process halted without a note keeps refusing appends, records its note once
    the database takes writes again (so `resume` names the reason), and resumes after it."""
    db = tmp_path / "log.sqlite3"
    log = AuditLog(db, new_signer())
    log.append({"kind": "test"})
    log._conn.execute("PRAGMA query_only = ON")
    with pytest.raises(AuditUnavailable):
        log.append({"kind": "test"})
    assert read_log(db).halted is None
    log._conn.execute("PRAGMA query_only = OFF")
    with pytest.raises(AuditUnavailable, match="halted"):
        log.append({"kind": "test"})  # still halted: no entry without an operator ...
    for _ in range(100):  # (the note is written by a thread of its own)
        if read_log(db).halted is not None:
            break
        time.sleep(0.1)
    assert read_log(db).halted is not None  # ... but now the halt is on record
    assert resume(db) is not None
    assert log.append({"kind": "test"}).idx == 1
    log.close()


# --- item 7 and 10: a real `gateway serve` over TLS, raw sockets ------------------------------
# (the requests its parser must refuse: tests/api/refusals.py)


def _tls(server: Any) -> Any:
    """A TLS connection to the server, trusting the workspace's CA."""
    import socket

    port = int(server.base.rsplit(":", 1)[1])
    raw = socket.create_connection(("127.0.0.1", port), timeout=30)
    return server.ca.wrap_socket(raw, server_hostname="127.0.0.1")


def _read_all(sock: Any) -> bytes:
    """Everything the server sends until it closes the connection."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return bytes(received)


def _entries(home: Any) -> list[dict[str, Any]]:
    from gateway.audit.reader import read_entries

    _, entries = read_entries(home / "audit" / "log.sqlite3")
    return [json.loads(e.line) for e in entries]


@pytest.fixture(scope="module")
def small_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`gateway init --demo --rows 200`, once for the module's live servers."""
    from tests.servers import gateway

    home = tmp_path_factory.mktemp("hostile-http") / "ws"
    gateway("init", "--demo", "--rows", "200", home=home)
    return home


@pytest.fixture
def served_home(small_workspace: Path, tmp_path: Path) -> Path:
    """A copy of it for one test: its own log, registry and state."""
    home = tmp_path / "ws"
    shutil.copytree(small_workspace, home, symlinks=True)
    return home


@pytest.mark.e2e
def test_an_idle_tls_client_does_not_hold_a_stopping_server(served_home: Path) -> None:
    """Fail closed, not slow: a restart stops at once when a client keeps an idle keep-alive
    TLS connection open (before, the server waited for the client's close_notify until its
    graceful-shutdown timeout ran out, 10 s per restart); a call in flight still finishes."""
    from tests.servers import start_server

    server = start_server(served_home)
    try:
        with _tls(server) as idle:
            idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
            assert idle.recv(65536).startswith(b"HTTP/1.1 200 ")
            server.process.send_signal(signal.SIGTERM)  # the client neither reads nor closes
            server.process.wait(60)  # (uvicorn re-raises the SIGTERM it handled: -15)
            assert server.process.stderr is not None
            log = server.process.stderr.read().decode()
            assert "timeout graceful shutdown exceeded" not in log
            assert "Waiting for connections to close" not in log
    finally:
        server.stop()


@pytest.mark.e2e
def test_requests_the_parser_refuses_are_audited(served_home: Path) -> None:
    """Promise 6 and 10: requests the HTTP parser refuses (NUL in a header, bad or conflicting
    Content-Length, missing or repeated Host, raw bytes in the path, huge headers) get a
    problem+json answer with an Audit-Receipt and exactly one audit entry naming the peer and
    the defect, and no byte of the request."""
    from tests.servers import start_server

    home = served_home
    server = start_server(home)
    try:
        for what, request, status, defect in REFUSED:
            before = len(_entries(home))
            with _tls(server) as sock:
                sock.sendall(request)
                answer = _read_all(sock)
            head, _, body = answer.partition(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            assert lines[0].startswith(b"HTTP/1.1 %d " % status), (what, lines[0])
            headers = {k.lower(): v.strip() for k, _, v in (x.partition(b":") for x in lines[1:])}
            assert headers[b"content-type"] == PROBLEM.encode(), what
            assert b"audit-receipt" in headers, what
            assert json.loads(body)["status"] == status
            entries = _entries(home)
            assert len(entries) == before + 1, what
            entry = entries[-1]
            assert (entry["status"], entry["decision"], entry["peer"]) == (
                status,
                "deny",
                "127.0.0.1",
            )
            assert entry["rejected"] == (defect or entry["rejected"]), what
            assert (entry["method"], entry["route"], entry["query_hmac"]) == ("", None, None)
            assert entry["rid"] == headers[b"x-request-id"].decode()
        # A peer that leaves in the middle of a request's head made a call too.
        before = len(_entries(home))
        with _tls(server) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-A: 1")
        for _ in range(100):  # (the entry is written after the peer left: wait for it)
            if len(_entries(home)) > before:
                break
            time.sleep(0.1)
        entries = _entries(home)
        assert len(entries) == before + 1
        assert (entries[-1]["rejected"], entries[-1]["status"]) == ("incomplete", 400)
        # ... and each refusal is counted in /metrics.
        with _tls(server) as sock:
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            metrics = _read_all(sock).decode()
        # every 400 the parser refused (the 431 is counted apart) and the 1 incomplete head
        malformed = sum(1 for *_, status, _ in REFUSED if status == 400) + 1
        assert re.search(
            rf'gateway_denials_total\{{worker="\d+",reason="malformed_request"\}} {malformed}\n',
            metrics,
        )
    finally:
        server.stop()


@pytest.mark.e2e
def test_half_open_and_slowloris_connections_are_closed(served_home: Path) -> None:
    """Promise 6 and availability: a connection that sends nothing is closed (no entry: no call
    was made); one that trickles a request's headers is answered 408 (audited) and closed
    within the request deadline, however often it sends a byte; one that trickles a body is
    closed too, and its call is audited as a 408, not a 500. The server runs with a short
    deadline (GATEWAY_REQUEST_SECONDS; the default, 10 s, is checked in
    test_http_protocols.py), the peers send a byte six times per deadline and give up only
    after six deadlines."""
    import threading

    from tests.servers import start_server

    home = served_home
    deadline = 1.5
    every = deadline / 6  # how often the slow peers send one more byte
    tries = 36  # six deadlines of that
    server = start_server(home, env={"GATEWAY_REQUEST_SECONDS": str(deadline)})
    results: dict[str, bytes] = {}

    def idle() -> None:
        with _tls(server) as sock:
            sock.settimeout(deadline * 6)
            results["idle"] = _read_all(sock)

    def slowloris() -> None:
        with _tls(server) as sock:
            sock.settimeout(every)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: a\r\n")
            received = b""
            for _ in range(tries):
                try:
                    chunk = sock.recv(65536)
                except TimeoutError:
                    try:
                        sock.sendall(b"X-Slow: 1\r\n")  # one more header line each time
                    except OSError:
                        break
                    continue
                except OSError:
                    break
                if not chunk:
                    break
                received += chunk
            else:
                received += b"<still open>"
            results["slowloris"] = received

    def slow_body() -> None:
        with _tls(server) as sock:
            sock.settimeout(every)
            sock.sendall(
                b"POST /oauth/token HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n"
                b"Content-Type: application/x-www-form-urlencoded\r\n\r\ngrant_type="
            )
            for _ in range(tries):
                try:
                    if not sock.recv(65536):
                        break
                except TimeoutError:
                    try:
                        sock.sendall(b"a")  # one more byte of the body each time
                    except OSError:
                        break
                except OSError:
                    break
            else:
                results["slow body"] = b"<still open>"

    try:
        before = len(_entries(home))
        threads = [
            threading.Thread(target=idle),
            threading.Thread(target=slowloris),
            threading.Thread(target=slow_body),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert results["idle"] == b""  # closed without a word
        assert results["slowloris"].startswith(b"HTTP/1.1 408 "), results["slowloris"][:80]
        assert not results["slowloris"].endswith(b"<still open>")
        # (the deadline the server ran with, named in the answer: the setting reached it)
        assert b"did not arrive within 1.5 s" in results["slowloris"]
        assert "slow body" not in results  # closed too
        for _ in range(100):  # (the slow body's entry is written after the connection closed)
            if len(_entries(home)) >= before + 2:
                break
            time.sleep(0.1)
        entries = _entries(home)
        # The slowloris call and the slow body's call; the idle connection made none.
        assert len(entries) == before + 2
        statuses = sorted((e["status"], e.get("rejected", ""), e["reason"]) for e in entries[-2:])
        assert statuses == [(408, "", "request_timeout"), (408, "timeout", "request_timeout")]
    finally:
        server.stop()
