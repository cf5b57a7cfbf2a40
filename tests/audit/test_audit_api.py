"""The transparency endpoints: a developer checks a receipt's inclusion against a signed
checkpoint, and consistency between checkpoints, as docs/audit.md shows."""

from __future__ import annotations

import base64

from starlette.testclient import TestClient

from gateway.audit.canonical import canonical_json
from gateway.audit.checkpoint import parse_checkpoint
from gateway.audit.merkle import verify_consistency, verify_inclusion
from gateway.audit.reader import read_entries
from gateway.audit.receipt import verify_receipt
from gateway.auth.registry import ClientRegistry
from tests.conftest import Demo, audit_keys, services_of, token_for

BOTH_STORES = True  # tests using `demo` run on both stores: SQLite and PostgreSQL
AUDIT_WRITER = "process"  # the one `gateway serve` ships (tests/conftest.py `demo`)


def b64(value: str) -> bytes:
    return base64.b64decode(value)


def sign_checkpoint_now(client: TestClient) -> None:
    services_of(client).audit_log.checkpoint()


def test_receipt_to_inclusion_proof(client: TestClient, demo: Demo, token: str) -> None:
    """Receipt -> checkpoint -> inclusion proof: the call is provably in the signed log."""
    keys = audit_keys(demo.home)
    response = client.get("/v1/datasets", headers={"Authorization": f"Bearer {token}"})
    receipt = verify_receipt(response.headers["audit-receipt"], keys)
    idx, leaf = receipt["idx"], receipt["leaf"]
    assert isinstance(idx, int)
    assert isinstance(leaf, bytes)
    sign_checkpoint_now(client)
    note = client.get("/v1/audit/checkpoint")
    assert note.status_code == 200
    assert note.headers["content-type"].startswith("text/plain")
    checkpoint = parse_checkpoint(note.text, keys)
    assert checkpoint.size > idx
    proof = client.get(f"/v1/audit/proof?idx={idx}&size={checkpoint.size}").json()
    assert b64(proof["leaf_hash"]) == leaf
    path = [b64(p) for p in proof["proof"]]
    assert verify_inclusion(idx, checkpoint.size, leaf, path, checkpoint.root)


def test_consistency_between_checkpoints(client: TestClient, demo: Demo) -> None:
    """Two checkpoints of a growing log are provably consistent."""
    keys = audit_keys(demo.home)
    client.get("/healthz")
    sign_checkpoint_now(client)
    first = parse_checkpoint(client.get("/v1/audit/checkpoint").text, keys)
    for _ in range(5):
        client.get("/healthz")
    sign_checkpoint_now(client)
    second = parse_checkpoint(client.get("/v1/audit/checkpoint").text, keys)
    assert second.size > first.size
    body = client.get(f"/v1/audit/consistency?from={first.size}&to={second.size}").json()
    assert verify_consistency(
        first.size, second.size, first.root, second.root, [b64(p) for p in body["proof"]]
    )


def test_no_checkpoint_yet_is_404(client: TestClient) -> None:
    """Before the first checkpoint, the endpoint says so instead of inventing one."""
    response = client.get("/v1/audit/checkpoint")
    assert response.status_code == 404


def test_entries_need_audit_scope(client: TestClient, demo: Demo, token: str) -> None:
    """Raw entries need audit:read: the data client gets 403, an auditor client gets them."""
    assert (
        client.get(
            "/v1/audit/entries?from=0&to=2", headers={"Authorization": f"Bearer {token}"}
        ).status_code
        == 403
    )
    registry = ClientRegistry(demo.settings.registry_database)
    _, secret = registry.add("auditor", scopes=("audit:read",))
    assert secret is not None
    registry.close()
    auditor = token_for(client, "auditor", secret)
    body = client.get(
        "/v1/audit/entries?from=0&to=3", headers={"Authorization": f"Bearer {auditor}"}
    ).json()
    assert [e["idx"] for e in body["entries"]] == [0, 1, 2]
    assert body["entries"][0]["entry"]["kind"] == "admin"
    # An object, not a string: its canonical form is exactly the signed line.
    _, stored = read_entries(demo.settings.audit_database)
    lines = [e.line for e in stored][:3]
    assert [canonical_json(e["entry"]) for e in body["entries"]] == lines


def test_bad_proof_parameters_are_400(client: TestClient) -> None:
    """Promise 10: out-of-range or malformed proof parameters are 400s naming the parameter."""
    client.get("/healthz")
    for query, parameter in [
        ("idx=0&size=999999", "size"),
        ("idx=5&size=2", "idx"),
        ("idx=-1&size=2", "idx"),
        ("idx=a&size=1", "idx"),
        ("size=1", "idx"),
        ("idx=%C2%B2&size=3", "idx"),  # "²": str.isdigit() is true, int() refuses it
        ("idx=0&size=%E2%91%A0", "size"),  # "①"
        ("idx=%EF%BC%91&size=3", "idx"),  # fullwidth "１": int() would accept it
    ]:
        response = client.get(f"/v1/audit/proof?{query}")
        assert response.status_code == 400, query
        assert response.json()["parameter"] == parameter, query
    assert client.get("/v1/audit/consistency?from=3&to=2").status_code == 400
    assert client.get("/v1/audit/consistency?from=%C2%B2&to=3").status_code == 400
