"""Regressions from an independent review: each case once produced a 500, a crash, a stuck
worker or a reversible hash, and must not again."""

from __future__ import annotations

import base64
import hashlib
import sqlite3
import time
from typing import Any

import pandas as pd
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey
from starlette.testclient import TestClient

from gateway.audit.entry import decode_entry
from gateway.audit.reader import read_entries, read_log
from gateway.audit.verify import verify_log
from gateway.privacy.lattice import anonymize
from tests.conftest import BASE, Demo, audit_keys, services_of, token_for


def test_deeply_nested_token_is_401(client: TestClient) -> None:
    """A bearer token whose header is 5,000 nested arrays is refused, not a 500."""
    header = base64.urlsafe_b64encode(b"[" * 5000).decode().rstrip("=")
    response = client.get("/v1/datasets", headers={"Authorization": f"Bearer {header}.e30.x"})
    assert response.status_code == 401


def test_assertion_for_a_secret_client_is_invalid_client(client: TestClient) -> None:
    """A client assertion naming a secret-based client is refused as invalid_client, not 500."""
    key = ECKey.generate_key("P-256")
    now = int(time.time())
    claims = {
        "iss": "demo",
        "sub": "demo",
        "aud": f"{BASE}/oauth/token",
        "exp": now + 60,
        "jti": "r1",
    }
    assertion = jwt.encode({"alg": "ES256"}, claims, key, algorithms=["ES256"])
    response = client.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "demo",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
        },
    )
    assert response.status_code in (400, 401)
    assert response.json()["error"] == "invalid_client"


def test_chunked_body_is_411_with_one_clean_problem(client: TestClient, demo: Demo) -> None:
    """A body without Content-Length is refused before any handler runs: one problem body."""

    def chunks() -> Any:
        yield b"grant_type=client_credentials&x="
        yield b"y" * 70_000

    response = client.post(
        "/oauth/token",
        content=chunks(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 411
    assert response.json()["status"] == 411  # exactly one JSON document


def test_unreadable_policy_test_file_is_rejected_not_fatal(client: TestClient, demo: Demo) -> None:
    """A policy-test file that is not UTF-8 rejects the reload (status names it) and a later good
    edit still goes live: the watcher survives."""
    app: Any = client.app
    while not hasattr(app, "state"):
        app = app.app
    reloader = app.state.reloader
    before = reloader.status.active
    (demo.home / "policies" / "tests" / "bad.yaml").write_bytes(b"\xff\xfe not utf-8")
    status = reloader.reload("test")
    assert status.active == before
    assert status.last_error
    (demo.home / "policies" / "tests" / "bad.yaml").unlink()
    policy = demo.home / "policies" / "residents.yaml"
    policy.write_text(policy.read_text().replace("rows_per_request: 500", "rows_per_request: 450"))
    assert reloader.reload("test").active != before


def test_path_and_query_are_keyed_hmacs(client: TestClient, demo: Demo, token: str) -> None:
    """A raw mobile number in a filter cannot be found again by hashing candidates."""
    query = "purpose=statistics&mobile=13712345678"
    client.get(f"/v1/datasets/residents/rows?{query}", headers={"Authorization": f"Bearer {token}"})
    _, stored = read_entries(demo.home / "audit" / "log.sqlite3")
    entry = decode_entry(list(stored)[-1].line)
    assert "query_sha256" not in entry
    assert entry["query_hmac"] != hashlib.sha256(query.encode()).hexdigest()
    assert len(entry["query_hmac"]) == 64


def test_verifier_reports_malformed_entries_instead_of_crashing(
    client: TestClient, demo: Demo
) -> None:
    """A stored entry with a float, or deep nesting, is INVALID at its index; no crash."""
    first = client.get("/healthz").headers["audit-receipt"]
    client.get("/healthz")
    idx = int(first.split("idx=")[1].split(",")[0])  # the two healthz entries: idx, idx + 1
    db = demo.home / "audit" / "log.sqlite3"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "UPDATE entries SET line = replace(line, '\"rows\":0', '\"rows\":1.5') WHERE idx = ?",
            (idx,),
        )
        conn.execute(
            "UPDATE entries SET line = ? WHERE idx = ?", ("[" * 5000 + "]" * 5000, idx + 1)
        )
    contents = read_log(db)
    report = verify_log(contents.origin, contents.entries, audit_keys(demo.home))
    assert [p.where for p in report.problems if p.kind == "entry"][:2] == [idx, idx + 1]


def test_generalization_keeps_level_zero_types() -> None:
    """A quasi-identifier left at level 0 keeps its type (an integer column stays integer)."""
    frame = pd.DataFrame({"age": pd.array([30, 30, 40, 40], dtype="Int64"), "sex": ["m"] * 4})
    out, solution = anonymize(frame, ["age", "sex"], {}, 2, 0.0)
    assert solution.levels == (0, 0)
    assert str(out["age"].dtype) == "Int64"


def test_an_unavailable_store_fails_closed_with_503(
    client: TestClient, demo: Demo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Promise 7 (fail closed): when the registry's database cannot answer (PostgreSQL down,
    SQLite locked), a call gets a retryable 503 with no data, still audited; not a 500."""
    from gateway.store.db import StoreError

    token = token_for(client, demo.client_id, demo.client_secret)
    registry = services_of(client).registry

    def down(*args: object, **kwargs: object) -> None:
        raise StoreError("connection refused", lost=True)

    monkeypatch.setattr(registry, "get", down)
    monkeypatch.setattr(registry, "is_revoked", down)
    response = client.get(
        "/v1/datasets/residents/rows?purpose=statistics",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 503
    assert response.json()["type"].endswith("store-unavailable")
    assert "rows" not in response.json()
    assert response.headers["audit-receipt"]
