"""The Python client (gateway.client) against a live gateway over TLS, and every Python example
of docs/developers.md run as written. Parsing of Retry-After and Link headers is checked on
hostile values without a server."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import httpx
import pandas as pd
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from joserfc.jwk import ECKey

from gateway.audit.entry import decode_entry, leaf_hash
from gateway.audit.reader import read_log
from gateway.client import (
    ClientError,
    GatewayClient,
    ProblemError,
    ReceiptError,
    RetryPolicy,
    query_params,
    retry_after,
)
from gateway.client.api import write_pages
from gateway.client.files import format_of
from gateway.client.paging import next_link, resolve_next
from gateway.client.retry import delay
from tests.paths import REPO
from tests.servers import DemoWorkspaces, Server, gateway, start_server

DOCS = REPO / "docs"
BASE = "https://gw.example:8443"


# --- headers, without a server ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("-1", None),
        ("１２", None),  # full-width digits
        ("²", None),  # a digit to str.isdigit, not to int()
        ("①", None),
        ("1.5", None),
        ("12345678901", None),  # beyond any sane wait, and beyond the pattern
        ("soon", None),
        ("", None),
        (None, None),
        ("Tue, 01 Dec 2026 10:00:00", None),  # a date without its GMT zone
    ],
)
def test_retry_after_reads_only_seconds_or_dates(value: str | None, expected: float | None) -> None:
    """Retry-After is seconds (ASCII digits) or an HTTP date; anything else counts as absent."""
    assert retry_after(value) == expected


def test_retry_after_http_date() -> None:
    """An HTTP date in the future is the seconds until then; one in the past is no wait."""
    now = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=90), usegmt=True)
    assert retry_after(later, now) == 90.0
    assert retry_after(format_datetime(now - timedelta(hours=1), usegmt=True), now) == 0.0


def test_retries_are_bounded_and_only_for_429_and_503() -> None:
    """Retries: 429/503 only, the server's wait honoured, never past the tries or the bound; a
    503 that waiting cannot mend is final."""
    policy = RetryPolicy(attempts=3, max_wait=30, backoff=1)
    assert delay(policy, 429, {"retry-after": "12"}, 1) == 12.0
    assert delay(policy, 503, {}, 1) == 1.0
    assert delay(policy, 503, {}, 2) == 2.0
    assert delay(policy, 429, {"retry-after": "12"}, 3) is None  # tries used up
    assert delay(policy, 429, {"retry-after": "31"}, 1) is None  # longer than the bound
    assert delay(policy, 429, {"retry-after": "①"}, 1) == 1.0  # unreadable: backoff
    for status in (400, 401, 403, 404, 500, 502):
        assert delay(policy, status, {"retry-after": "1"}, 1) is None
    unreachable = "urn:gateway:problem:privacy-unreachable"
    assert delay(policy, 503, {"retry-after": "1"}, 1, unreachable) is None
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=0)


def test_next_link_is_read_from_rfc8288_headers() -> None:
    """The next page is the link whose rel includes `next`, wherever it stands in the header."""
    assert next_link('<https://gw/v1/x?_next=abc>; rel="next"') == "https://gw/v1/x?_next=abc"
    assert next_link('</a>; rel="prev", </b>; title="x, y"; rel="last next"') == "/b"
    assert next_link("</a>; rel=next") == "/a"
    assert next_link('</a>; rel="prev"') is None
    for hostile in (None, "", "garbage", "<unclosed; rel=next", '</a> rel="next"', "<" * 20000):
        assert next_link(hostile) is None


def test_next_link_to_another_origin_is_refused() -> None:
    """A next link that leaves the gateway's origin is not followed: the token stays home."""
    page = f"{BASE}/v1/datasets/x/rows?purpose=p"
    assert resolve_next(BASE, page, "/v1/datasets/x/rows?_next=c") == (
        f"{BASE}/v1/datasets/x/rows?_next=c"
    )
    assert resolve_next(BASE, page, "?_next=c") == f"{BASE}/v1/datasets/x/rows?_next=c"
    for elsewhere in (
        "https://evil.example/v1/datasets/x/rows",
        "//evil.example/steal",
        "http://gw.example:8443/v1/datasets/x/rows",  # downgraded to plain HTTP
        "https://gw.example:9443/v1/datasets/x/rows",
        "https://gw.example@evil.example/",
    ):
        with pytest.raises(ClientError, match="another origin"):
            resolve_next(BASE, page, elsewhere)


def test_query_params_keep_reserved_names_out_of_filters() -> None:
    """Filters are `col__op=value`; reserved names must go through the named arguments."""
    params = query_params(
        "statistics", size=50, columns=["a", "b"], sort="a", filters={"c__in": ["x", "y"], "d": 3}
    )
    assert params == [
        ("purpose", "statistics"),
        ("_size", "50"),
        ("_col", "a"),
        ("_col", "b"),
        ("_sort", "a"),
        ("c__in", "x,y"),
        ("d", "3"),
    ]
    for reserved in ("_next", "_format", "purpose"):
        with pytest.raises(ValueError, match="not a filter"):
            query_params("statistics", filters={reserved: "x"})


def test_export_format_from_suffix() -> None:
    assert format_of(Path("a.csv"), None) == "csv"
    assert format_of(Path("a.JSONL"), None) == "ndjson"
    assert format_of(Path("a.bin"), "parquet") == "parquet"
    with pytest.raises(ValueError, match="cannot tell the format"):
        format_of(Path("a.xlsx"), None)
    with pytest.raises(ValueError, match="format must be one of"):
        format_of(Path("a.csv"), "xlsx")


def test_client_refuses_plain_http_and_ambiguous_credentials() -> None:
    with pytest.raises(ClientError, match="https://"):
        GatewayClient("http://gw.example", "c", client_secret="s")
    with pytest.raises(ClientError, match="either client_secret or private_key"):
        GatewayClient(BASE, "c")


# --- against a live gateway -------------------------------------------------------------------


@dataclass(frozen=True)
class Live:
    server: Server
    home: Path
    client_id: str
    secret: str
    key_pem: Path

    @property
    def ca(self) -> Path:
        return self.home / "keys" / "ca.crt"

    @property
    def audit_pub(self) -> Path:
        return self.home / "keys" / "audit-ed25519.pub"

    def client(self, **options: object) -> GatewayClient:
        settings: dict[str, object] = {"client_secret": self.secret, "ca_cert": self.ca}
        settings.update(options)
        return GatewayClient(self.server.base, self.client_id, **settings)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def live(
    tmp_path_factory: pytest.TempPathFactory, demo_workspaces: DemoWorkspaces
) -> Iterator[Live]:
    """One demo workspace served over TLS for this module; a second client uses a private key."""
    root = tmp_path_factory.mktemp("client")
    home = demo_workspaces.copy(root / "ws", rows=2000)
    key = ECKey.generate_key("P-256")
    key.ensure_kid()
    key_pem = root / "client-key.pem"
    key_pem.write_bytes(key.as_pem(private=True))
    (root / "jwks.json").write_text(json.dumps({"keys": [key.as_dict(private=False)]}))
    gateway("clients", "add", "keyed", "--jwks", str(root / "jwks.json"), home=home)
    creds = json.loads((home / "demo-client.json").read_text())
    server = start_server(home)
    try:
        yield Live(server, home, creds["client_id"], creds["client_secret"], key_pem)
    finally:
        server.stop()


def _sorted_rows(frame: pd.DataFrame) -> list[tuple[str, ...]]:
    text = frame.astype("string").fillna("<null>")
    return sorted(tuple(row) for row in text.itertuples(index=False))


@pytest.mark.e2e
def test_client_walks_every_row_once_and_downloads_the_same_view(
    live: Live, tmp_path: Path
) -> None:
    """Promise 4 (one released view): paging, to_pandas and every export format hold exactly
    the rows of the whole released view, each once."""
    with live.client(audit_keys=[live.audit_pub]) as gw:
        pages = list(gw.pages("residents", purpose="statistics", size=300))
        view = pages[0].view
        assert view is not None
        total = int(view["total_rows"])
        rows = [row for page in pages for row in page.records()]
        assert len(rows) == total > 300
        assert len({json.dumps(r, sort_keys=True) for r in rows}) == total  # none twice
        assert all(len(page.records()) == 300 for page in pages[:-1])

        frame = gw.to_pandas("residents", purpose="statistics")
        assert gw.last_receipt is not None
        exported_at = int(gw.last_receipt["idx"])
        assert list(frame.columns) == view["columns"]
        expected = _sorted_rows(pd.DataFrame(rows, columns=view["columns"]))
        assert _sorted_rows(frame) == expected

        csv_path = gw.export("residents", tmp_path / "r.csv", purpose="statistics")
        ndjson_path = gw.export("residents", tmp_path / "r.ndjson", purpose="statistics")
        parquet_path = gw.export("residents", tmp_path / "r.parquet", purpose="statistics")
        assert _sorted_rows(pd.read_csv(csv_path, dtype=str, keep_default_na=False)) == expected
        ndjson = pd.read_json(ndjson_path, lines=True, dtype=False)
        assert _sorted_rows(ndjson) == expected
        assert _sorted_rows(pd.read_parquet(parquet_path)) == expected
        assert sorted(p.name for p in tmp_path.iterdir()) == ["r.csv", "r.ndjson", "r.parquet"]
        assert csv_path.read_bytes().startswith(b"id_card,")

        # Without an export endpoint the client assembles the same files from JSON pages.
        for name in ("p.csv", "p.ndjson", "p.parquet"):
            target = tmp_path / "pages" / name
            fmt = format_of(target, None)
            write_pages(gw.pages("residents", purpose="statistics", size=300), target, fmt)
        paged_csv = pd.read_csv(tmp_path / "pages" / "p.csv", dtype=str, keep_default_na=False)
        assert _sorted_rows(paged_csv) == expected
        paged_ndjson = pd.read_json(tmp_path / "pages" / "p.ndjson", lines=True, dtype=False)
        assert _sorted_rows(paged_ndjson) == expected
        assert _sorted_rows(pd.read_parquet(tmp_path / "pages" / "p.parquet")) == expected

        # The gateway has the export endpoint: the whole DataFrame came in one audited call.
        contents = read_log(live.home / "audit" / "log.sqlite3")
        entry = next(decode_entry(e.line) for e in contents.entries if e.idx == exported_at)
        assert (entry["route"], entry["rows"]) == ("/v1/datasets/{dataset_id}/export", total)

        women = list(gw.rows("residents", purpose="statistics", filters={"gender": "女"}))
        assert women
        assert {r["gender"] for r in women} == {"女"}
        assert len(women) == sum(1 for r in rows if r["gender"] == "女")


@pytest.mark.e2e
def test_csv_and_ndjson_pages_follow_link_headers(live: Live) -> None:
    """Every format pages: a CSV/NDJSON page's `Link: rel="next"` is followed when the gateway
    sends one; the pages hold the same rows as the JSON walk."""
    with live.client() as gw:
        json_rows = list(gw.rows("enterprise_registry", purpose="market-analysis", size=400))
        for fmt in ("csv", "ndjson"):
            pages = list(
                gw.pages("enterprise_registry", purpose="market-analysis", size=400, format=fmt)
            )
            records = [row for page in pages for row in page.records()]
            if len(pages) == 1 and len(records) < len(json_rows):
                pytest.skip("this gateway sends no Link header on CSV/NDJSON pages yet")
            assert len(records) == len(json_rows)


@pytest.mark.e2e
def test_token_is_renewed_before_expiry_and_after_revocation(live: Live) -> None:
    """Promise 9 from the caller's side: a token near expiry is replaced before it is sent; a
    revoked token is replaced once, and the call goes through with the new one."""
    with live.client(leeway=60) as gw:
        gw.datasets()
        token = gw.token
        first = token["access_token"]
        assert isinstance(token, dict)
        token["expires_at"] = int(time.time()) + 30  # within the 60 s leeway
        gw.datasets()
        second = gw.token["access_token"]
        assert second != first

        with httpx.Client(verify=live.server.ca) as http:
            revoked = http.post(
                f"{live.server.base}/oauth/revoke",
                data={"token": second},
                auth=(live.client_id, live.secret),
            )
        assert revoked.status_code == 200
        assert gw.datasets()
        assert gw.token["access_token"] not in (first, second)


@pytest.mark.e2e
def test_private_key_jwt_client(live: Live) -> None:
    """The client authenticates with a private key (RFC 7523) instead of a secret."""
    with GatewayClient(live.server.base, "keyed", private_key=live.key_pem, ca_cert=live.ca) as gw:
        assert gw.datasets() == []  # registered, but no grant names it: deny by default
        assert gw.token["token_type"].lower() == "bearer"


@pytest.mark.e2e
def test_receipts_are_checked_against_the_audit_key(live: Live) -> None:
    """Promise 6 from the caller's side: with the audit key, every answer's receipt is verified
    and names the log entry of the call; with a key that did not sign it, the call fails."""
    with live.client(audit_keys=[live.audit_pub]) as gw:
        gw.datasets()
        receipt = gw.last_receipt
        assert receipt is not None
        with pytest.raises(ProblemError) as refused:
            gw.dataset("residents", purpose="advertising")
        assert refused.value.status == 403
        assert gw.last_receipt is not None
        assert int(gw.last_receipt["idx"]) > int(receipt["idx"])
    contents = read_log(live.home / "audit" / "log.sqlite3")
    line = next(e.line for e in contents.entries if e.idx == receipt["idx"])
    assert leaf_hash(line) == receipt["leaf"]

    stranger = Ed25519PrivateKey.generate().public_key()
    with (
        live.client(audit_keys=[stranger]) as gw,
        pytest.raises(ReceiptError, match="unknown key id"),
    ):
        gw.datasets()


@pytest.mark.e2e
def test_retry_after_is_honoured_and_bounded(live: Live) -> None:
    """429: the client waits what Retry-After says (never more than max_wait), at most
    `attempts` tries, then raises with the server's answer."""
    waits: list[float] = []

    def slow(client_id: str, secret: str, max_wait: float) -> GatewayClient:
        return GatewayClient(
            live.server.base,
            client_id,
            client_secret=secret,
            ca_cert=live.ca,
            attempts=3,
            max_wait=max_wait,
            sleep=waits.append,
        )

    # Rate windows are calendar minutes: the calls must fall in one. Rather than waiting for a
    # fresh minute, a run that straddles two is done again with a new client (a new window).
    for attempt in range(3):
        client_id = f"slow-{attempt}"
        added = gateway("clients", "add", client_id, "--rate-limit", "2", home=live.home)
        secret = next(
            line.split()[-1]
            for line in added.stdout.splitlines()
            if line.startswith("client_secret")
        )
        minute = time.time() // 60
        waits.clear()
        limited: ProblemError | None = None
        impatient: ProblemError | None = None
        with slow(client_id, secret, 120) as gw:
            gw.datasets()
            gw.datasets()
            try:
                gw.datasets()
            except ProblemError as exc:
                limited = exc
        patient_waits = list(waits)
        waits.clear()
        # Below the smallest Retry-After the server sends (1 s, in the minute's last second), so
        # every answer asks for more than the client may wait, whatever second the run is in.
        with slow(client_id, secret, 0.5) as gw:
            try:
                gw.datasets()
            except ProblemError as exc:
                impatient = exc
        if time.time() // 60 == minute:
            break
    else:
        raise AssertionError("three runs in a row each straddled two calendar minutes")

    assert limited is not None
    assert limited.status == 429
    assert len(patient_waits) == 2  # three tries, two waits
    told = retry_after(limited.headers["retry-after"])
    assert told is not None
    assert all(0 < wait <= 60 for wait in patient_waits)
    assert abs(patient_waits[-1] - told) <= 1  # the server's own figure (it may tick between)

    assert impatient is not None
    assert impatient.status == 429
    assert waits == []  # asked to wait longer than max_wait: no sleep, the answer at once


# --- the docs ---------------------------------------------------------------------------------


def python_blocks(doc: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (DOCS / doc).read_text(), flags=re.S)


@pytest.mark.e2e
def test_every_python_example_in_developers_md_runs(live: Live, tmp_path: Path) -> None:
    """Docs that tests keep in sync: each Python block of docs/developers.md runs as written
    against the live gateway and prints what the text says it does."""
    blocks = python_blocks("developers.md")
    assert len(blocks) >= 7
    env = {
        **os.environ,
        "GW": live.server.base,
        "CA": str(live.ca),
        "CLIENT_ID": live.client_id,
        "CLIENT_SECRET": live.secret,
        "KEY_CLIENT_ID": "keyed",
        "CLIENT_KEY": str(live.key_pem),
        "AUDIT_PUB": str(live.audit_pub),
    }
    outputs = []
    for number, code in enumerate(blocks):
        workdir = tmp_path / f"example-{number}"
        workdir.mkdir()
        result = subprocess.run(
            [sys.executable, "-c", code],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, f"example {number}:\n{code}\n{result.stderr}"
        outputs.append(result.stdout)
    text = "\n".join(outputs)
    assert "residents" in outputs[0]
    assert "statistics" in outputs[0]
    assert "token valid for another" in text
    assert "403 urn:gateway:problem:denied" in text
    assert re.search(r"\d+ rows, logged at index \d+ by key", text)
    exported = sorted(p.name for p in tmp_path.glob("example-*/*"))
    assert exported == ["registry.parquet", "residents.csv", "residents.csv"]
    assert re.search(r"downloaded \d+ rows", text)


# --- audit key rotation -----------------------------------------------------------------------


@pytest.mark.e2e
def test_receipts_follow_an_audit_key_rotation(
    tmp_path: Path, demo_workspaces: DemoWorkspaces
) -> None:
    """Promise 6 after `gateway keys rotate audit`: a developer holding only the old audit key
    still verifies receipts (the client, and docs/audit.md's example, follow the rotation entry
    the old key signed); a tampered rotation is refused, a stranger's key is never trusted."""
    import base64

    from gateway.audit.checkpoint import raw_public
    from gateway.audit.rotation import follow_rotations
    from gateway.audit.signing import key_id
    from gateway.audit.verify import load_keys

    home = demo_workspaces.copy(tmp_path / "ws", rows=500)
    old_pub = tmp_path / "old-audit.pub"
    old_pub.write_bytes((home / "keys" / "audit-ed25519.pub").read_bytes())
    creds = json.loads((home / "demo-client.json").read_text())
    example = python_blocks("audit.md")[0]
    server = start_server(home, env={"GATEWAY_CHECKPOINT_SECONDS": "1"})
    try:
        with GatewayClient(
            server.base,
            creds["client_id"],
            client_secret=creds["client_secret"],
            ca_cert=home / "keys" / "ca.crt",
            audit_keys=[old_pub],
        ) as gw:
            gw.datasets()
            assert gw.last_receipt is not None
            old_kid = gw.last_receipt["kid"]
            rotated = gateway("keys", "rotate", "audit", home=home)
            assert "audit key rotated" in rotated.stdout
            gw.datasets()
            assert gw.last_receipt is not None
            assert gw.last_receipt["kid"] != old_kid  # signed by the new key, and verified
        result = subprocess.run(
            [sys.executable, "-c", example],
            cwd=tmp_path,
            env={
                **os.environ,
                "GW": server.base,
                "CA": str(server.home / "keys" / "ca.crt"),
                "AUDIT_PUB": str(old_pub),
            },
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert "is in the signed tree of size" in result.stdout
        with httpx.Client(verify=server.ca) as http:
            answer = http.get(f"{server.base}/v1/audit/keys").json()
    finally:
        server.stop()

    trusted = load_keys([old_pub])
    followed = follow_rotations(trusted, answer)
    assert len(followed) == 2
    assert set(followed) == {w["kid"] for w in answer["keys"]}
    # A key nobody trusted hands nothing over.
    stranger = Ed25519PrivateKey.generate().public_key()
    assert set(follow_rotations({key_id(stranger): stranger}, answer)) == {key_id(stranger)}
    # A rotation entry altered to hand over to an attacker's key does not verify.
    (rotation,) = answer["rotations"]
    entry = json.loads(rotation["entry"])
    entry["new_key"] = base64.b64encode(raw_public(stranger)).decode()
    entry["new_kid"] = key_id(stranger)
    forged = {"rotations": [{**rotation, "entry": json.dumps(entry, sort_keys=True)}]}
    with pytest.raises(ValueError, match="does not verify"):
        follow_rotations(trusted, forged)
    bad_sig = {"rotations": [{**rotation, "sig": base64.b64encode(bytes(64)).decode()}]}
    with pytest.raises(ValueError, match="does not verify"):
        follow_rotations(trusted, bad_sig)
    for hostile in ({}, {"rotations": "x"}, {"rotations": [1]}, {"rotations": [{"idx": True}]}):
        with pytest.raises(ValueError, match="rotation"):
            follow_rotations(trusted, hostile)
