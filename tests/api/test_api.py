"""The HTTP API in process (TestClient over https://testserver): OAuth, catalog, rows, errors,
and the audit entry each call leaves."""

from __future__ import annotations

import time

import pandas as pd
import pytest
from starlette.testclient import TestClient

from gateway.audit.entry import decode_entry
from gateway.audit.reader import read_entries
from gateway.audit.receipt import verify_receipt
from gateway.audit.schema import SEQUENCER
from gateway.audit.verify import verify_log
from gateway.auth.registry import ClientRegistry
from gateway.data.checksums import id_card_valid
from tests.conftest import Demo, audit_keys, token_for

BOTH_STORES = True  # tests using `demo` run on both stores: SQLite and PostgreSQL
AUDIT_WRITER = "process"  # the one `gateway serve` ships (tests/conftest.py `demo`)


def entries(demo: Demo) -> list[dict[str, object]]:
    _, stored = read_entries(demo.settings.audit_database)
    return [decode_entry(e.line) for e in stored]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def raw(demo: Demo, dataset: str) -> pd.DataFrame:
    return pd.read_csv(demo.home / "data" / f"{dataset}.csv", dtype=str)


# --- OAuth -----------------------------------------------------------------------------------


def test_token_basic_and_post(client: TestClient, demo: Demo) -> None:
    """client_secret_basic and client_secret_post both yield a 10-minute bearer token."""
    basic = client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(demo.client_id, demo.client_secret),
    )
    post = client.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": demo.client_id,
            "client_secret": demo.client_secret,
        },
    )
    for response in (basic, post):
        assert response.status_code == 200
        body = response.json()
        assert body["token_type"] == "Bearer"
        assert body["expires_in"] == 600
        assert response.headers["cache-control"] == "no-store"


def test_wrong_secret_is_401_and_audited(client: TestClient, demo: Demo) -> None:
    """Promise 6: a failed token request is refused and still leaves exactly one entry."""
    before = len(entries(demo))
    response = client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(demo.client_id, "not-the-secret"),
    )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    log = entries(demo)
    assert len(log) == before + 1
    last = log[-1]
    assert last["status"] == 401
    assert last["decision"] == "deny"
    assert last["reason"] == "invalid_client"
    assert last["client"] is None
    assert last["route"] == "/oauth/token"


def test_token_endpoint_rejects_non_form_bodies(client: TestClient) -> None:
    """Promise 10: a JSON token request is a clear 400, not a crash."""
    response = client.post("/oauth/token", json={"grant_type": "client_credentials"})
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.store_independent
def test_jwks_has_one_ec_key_with_kid(client: TestClient) -> None:
    """The JWKS publishes the ES256 public key with its kid, and nothing private."""
    jwks = client.get("/.well-known/jwks.json").json()
    (key,) = jwks["keys"]
    assert key["kty"] == "EC"
    assert key["alg"] == "ES256"
    assert key["kid"]
    assert "d" not in key


# --- authentication of data calls ------------------------------------------------------------


def test_missing_token_is_401_with_challenge(client: TestClient) -> None:
    """Data endpoints need a bearer token: 401 with WWW-Authenticate, as problem+json."""
    response = client.get("/v1/datasets")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["type"] == "urn:gateway:problem:unauthorized"


@pytest.mark.store_independent
@pytest.mark.parametrize(
    "value",
    [
        "Bearer",
        "Bearer not-a-jwt",
        "Basic ZGVtbzp4",
        "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
        "Bearer " + "A" * 5000,
    ],
)
def test_garbage_credentials_are_401(client: TestClient, value: str) -> None:
    """Promise 9/10: malformed or unsigned tokens get 401, never 500."""
    response = client.get("/v1/datasets", headers={"Authorization": value})
    assert response.status_code == 401


def test_disabled_client_token_stops_working_at_once(
    client: TestClient, demo: Demo, token: str
) -> None:
    """Promise 9: disabling a client (here from another process, as `gateway clients disable`
    does) invalidates its live tokens: on SQLite at once; on PostgreSQL at once by notification,
    and within one second at the latest (other hosts keep answers at most 0.5 s)."""
    assert client.get("/v1/datasets", headers=bearer(token)).status_code == 200
    registry = ClientRegistry(demo.settings.registry_database)
    registry.set_disabled(demo.client_id, True)
    registry.close()
    refused = client.get("/v1/datasets", headers=bearer(token))
    if demo.settings.store:
        deadline = time.monotonic() + 1.0
        while refused.status_code != 401 and time.monotonic() < deadline:
            time.sleep(0.05)
            refused = client.get("/v1/datasets", headers=bearer(token))
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]
    assert entries(demo)[-1]["reason"] == "client_disabled"


# --- catalog and rows ------------------------------------------------------------------------


@pytest.mark.store_independent
def test_catalog_lists_granted_datasets(client: TestClient, token: str) -> None:
    """The demo client sees both datasets, each once with its grants and their purposes, and
    each column's transform and GB/T 37964 category."""
    body = client.get("/v1/datasets", headers=bearer(token)).json()
    assert sorted(d["id"] for d in body["datasets"]) == ["enterprise_registry", "residents"]
    grants = sorted((d["id"], g["id"]) for d in body["datasets"] for g in d["grants"])
    assert grants == [
        ("enterprise_registry", "demo-enterprise-registry"),
        ("enterprise_registry", "demo-enterprise-research"),
        ("residents", "demo-residents"),
        ("residents", "demo-residents-planning"),
    ]  # the expired 2025 research grant is not listed
    for dataset in body["datasets"]:
        held = {p for g in dataset["grants"] for p in g["purposes"]}
        assert dataset["purposes"] == sorted(held)
    residents = next(d for d in body["datasets"] if d["id"] == "residents")
    grant = next(g for g in residents["grants"] if g["id"] == "demo-residents")
    assert grant["rows_per_request"] == 500
    assert "max_rows" not in grant  # one name for the page limit everywhere
    columns = {c["name"]: c for c in grant["columns"]}
    assert not set(columns) & {"name", "birth_date", "address", "mobile"}  # not named: withheld
    assert columns["id_card"]["transform"] == "synthesize"
    assert columns["id_card"]["category"] == "synthesis"
    assert columns["employer_credit_code"]["transform"] == "mask"
    assert columns["employer_credit_code"]["category"] == "suppression"


@pytest.mark.store_independent
def test_rows_are_masked_and_shaped(client: TestClient, demo: Demo, token: str) -> None:
    """Promise 2: masked and synthetic values differ from the raw ones and keep their shape;
    columns the grant does not name never appear."""
    response = client.get(
        "/v1/datasets/residents/rows?purpose=statistics&_size=50", headers=bearer(token)
    )
    assert response.status_code == 200
    body = response.json()
    released = pd.DataFrame(body["rows"])
    everyone = raw(demo, "residents")
    ages = everyone["age"].astype(int)
    source = everyone[(ages >= 18) & (ages <= 65)]  # the grant's row filter
    assert len(released) == 50
    assert set(released.columns) == set(body["view"]["columns"])
    assert not set(released.columns) & {"name", "birth_date", "address", "mobile"}
    every_id = set(everyone["id_card"])
    for got in released["id_card"]:  # synthetic: a valid-looking number no resident holds
        assert got not in every_id
        assert len(got) == 18
        assert id_card_valid(got)
    codes = set(source["employer_credit_code"])
    for got in released["employer_credit_code"]:  # masked: a prefix of a real code, then *
        shown = got.rstrip("*")
        assert got not in codes
        assert len(got) == 18
        assert 2 <= len(shown) <= 8
        assert any(code.startswith(shown) for code in codes)
    registry = client.get(
        "/v1/datasets/enterprise_registry/rows?purpose=market-analysis&_size=50",
        headers=bearer(token),
    ).json()["rows"]
    mobiles = set(raw(demo, "enterprise_registry")["legal_rep_mobile"])
    for row in registry:
        assert row["legal_rep_mobile"] not in mobiles
        assert row["legal_rep_mobile"][3:] == "*" * 8
        assert any(m.startswith(row["legal_rep_mobile"][:3]) for m in mobiles)
        name = row["legal_rep_name"]
        assert set(name[1:]) <= {"*"}
        assert name[0] != "*"


@pytest.mark.store_independent
def test_pseudonyms_differ_from_raw_and_are_stable(
    client: TestClient, demo: Demo, token: str
) -> None:
    """Promise 5: released 身份证号 (synthetic: the column is 核心) are stable across calls and
    never a raw value."""
    first = client.get(
        "/v1/datasets/enterprise_registry/rows?purpose=market-analysis&_size=20",
        headers=bearer(token),
    ).json()
    second = client.get(
        "/v1/datasets/enterprise_registry/rows?purpose=market-analysis&_size=20",
        headers=bearer(token),
    ).json()
    raw_ids = set(raw(demo, "enterprise_registry")["legal_rep_id_card"])
    got = [row["legal_rep_id_card"] for row in first["rows"]]
    assert got == [row["legal_rep_id_card"] for row in second["rows"]]
    assert not set(got) & raw_ids


def _without_request_id(body: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in body.items() if k != "request_id"}


def test_ungranted_dataset_answers_like_an_unknown_one(client: TestClient, demo: Demo) -> None:
    """Promise 1/10: without a grant, a dataset answers the same 404 as one that does not exist."""
    registry = ClientRegistry(demo.settings.registry_database)
    _, secret = registry.add("outsider")
    assert secret is not None
    registry.close()
    other = token_for(client, "outsider", secret)
    assert client.get("/v1/datasets", headers=bearer(other)).json()["datasets"] == []
    real = client.get("/v1/datasets/residents/rows", headers=bearer(other))
    fake = client.get("/v1/datasets/no_such_dataset/rows", headers=bearer(other))
    assert real.status_code == fake.status_code == 404
    assert _without_request_id(real.json()) == _without_request_id(fake.json())
    last = entries(demo)[-2]
    assert last["decision"] == "deny"
    assert last["client"] == "outsider"
    assert last["rows"] == 0


STATISTICS = ("residents", "statistics")
REGISTER = ("enterprise_registry", "market-analysis")


@pytest.mark.store_independent
@pytest.mark.parametrize(
    ("view", "query", "parameter"),
    [
        (STATISTICS, "_size=0", "_size"),
        (STATISTICS, "_size=501", "_size"),
        (STATISTICS, "_size=abc", "_size"),
        (STATISTICS, "_size=1&_size=2", "_size"),
        (STATISTICS, "mobile=13800138000", "mobile"),  # a column statistics does not release
        (STATISTICS, "birth_date__gt=1990-01-01", "birth_date__gt"),
        (STATISTICS, "age__isnull=old", "age__isnull"),  # isnull takes 1 or 0
        (REGISTER, "registered_capital__gt=old", "registered_capital__gt"),  # not an integer
        (REGISTER, "registered_capital__contains=1", "registered_capital__contains"),
        (STATISTICS, "age__like=3", "age__like"),
        (STATISTICS, "_sort=name", "_sort"),  # not released in statistics
        (STATISTICS, "_sort_desc=mobile", "_sort_desc"),
        (STATISTICS, "_col=birth_date", "_col"),
        (STATISTICS, "_next=not-a-cursor", "_next"),
        (STATISTICS, "_format=xml", "_format"),
        (STATISTICS, "_bogus=1", "_bogus"),
        (STATISTICS, "_size=1e3", "_size"),
        (STATISTICS, "_size=%C2%B2", "_size"),  # "²": str.isdigit() is true, int() refuses it
        (STATISTICS, "_size=%E2%91%A0", "_size"),  # "①"
        (STATISTICS, "_size=%EF%BC%95", "_size"),  # fullwidth "５": int() would accept it
    ],
)
def test_bad_parameters_are_400_naming_the_parameter(
    client: TestClient, token: str, view: tuple[str, str], query: str, parameter: str
) -> None:
    """Promise 10: bad input gets a 400 naming the parameter and releases no rows."""
    dataset, purpose = view
    response = client.get(
        f"/v1/datasets/{dataset}/rows?purpose={purpose}&{query}", headers=bearer(token)
    )
    assert response.status_code == 400
    body = response.json()
    assert body["parameter"] == parameter
    assert "rows" not in body


# --- audit on every call ---------------------------------------------------------------------


def test_every_call_gets_one_entry_and_a_valid_receipt(
    client: TestClient, demo: Demo, token: str
) -> None:
    """Promise 6: each of a mix of calls appends exactly one entry, and its receipt verifies."""
    keys = audit_keys(demo.home)
    calls = [
        ("GET", "/healthz"),
        ("GET", "/v1/datasets"),
        ("GET", "/v1/datasets/residents/rows?purpose=statistics&_size=3"),
        ("GET", "/v1/datasets/nope"),
        ("GET", "/no/such/endpoint"),
        ("DELETE", "/v1/datasets"),
    ]
    for method, path in calls:
        before = len(entries(demo))
        response = client.request(method, path, headers=bearer(token))
        log = entries(demo)
        assert len(log) == before + 1
        fields = verify_receipt(response.headers["audit-receipt"], keys)
        assert fields["idx"] == before
        assert log[-1]["status"] == response.status_code
    origin, stored = read_entries(demo.settings.audit_database)
    assert verify_log(origin, stored, keys).ok


def test_entries_carry_no_token_and_no_raw_values(
    client: TestClient, demo: Demo, token: str
) -> None:
    """Promise 7: the log holds token hashes, never tokens, query strings or released values."""
    raw_id = raw(demo, "residents")["id_card"].iloc[0]
    client.get(
        f"/v1/datasets/residents/rows?purpose=statistics&id_card={raw_id}", headers=bearer(token)
    )
    client.get(f"/v1/datasets/{raw_id}/rows", headers=bearer(token))
    page = client.get(
        "/v1/datasets/residents/rows?purpose=statistics&_size=5", headers=bearer(token)
    ).json()["rows"]
    _, stored = read_entries(demo.settings.audit_database)
    dump = b"\n".join(e.line + e.sig for e in stored)  # what the store holds, on any backend
    if not demo.settings.store:  # and the SQLite files byte for byte, free pages included
        for path in (demo.home / "audit").glob("log.sqlite3*"):
            dump += path.read_bytes()
    assert token.encode() not in dump
    assert token.split(".")[2].encode() not in dump
    assert raw_id.encode() not in dump
    for row in page:  # released values (synthetic 身份证号) stay out of the log too
        assert row["id_card"].encode() not in dump
    last = entries(demo)[-1]
    assert last["rows"] == 5
    assert last["dataset"] == "residents"
    assert last["grant"] == "demo-residents"
    assert isinstance(last["token_sha256"], str)
    assert len(last["token_sha256"]) == 64
    assert "employer_credit_code:mask" in last["transforms"]  # type: ignore[operator]
    assert "id_card:synthesize" in last["transforms"]  # type: ignore[operator]


def test_unwritable_log_fails_closed_with_503(
    demo: Demo, token: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Promise 6: if the entry cannot be committed, the call gets 503 and no data; the
    operator's log says why in one line (no traceback per refused call: during a writer outage
    every call is refused, and tracebacks would bury the cause)."""
    from dataclasses import replace

    from gateway.app import create_app

    settings = replace(demo.settings, audit_busy_timeout_ms=100)
    with TestClient(create_app(settings), base_url="https://testserver") as fresh:
        good = token_for(fresh, demo.client_id, demo.client_secret)
        blocker = settings.audit_database.connect()  # another writer holds the sequencer
        blocker.begin(SEQUENCER)
        try:
            response = fresh.get(
                "/v1/datasets/residents/rows?purpose=statistics&_size=5", headers=bearer(good)
            )
        finally:
            blocker.rollback()
            blocker.close()
    assert response.status_code == 503
    assert "rows" not in response.json()
    assert "audit-receipt" not in response.headers
    refusals = [r for r in caplog.records if r.getMessage().startswith("audit log unavailable")]
    assert len(refusals) == 1
    assert "busy" in refusals[0].getMessage()  # the cause, as AuditUnavailable names it
    assert refusals[0].exc_info is None
