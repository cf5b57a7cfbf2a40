"""docs/audit-format.md is enough to verify a log: an independent verifier written from that page
alone (stdlib sqlite3/json/hashlib/base64 and raw Ed25519; nothing from gateway.audit)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import sqlite3
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from starlette.testclient import TestClient

from tests.conftest import Demo
from tests.paths import REPO

PREFIX = b"public-data-gateway/audit-entry/v1\n"


def canonical(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def independent_verify(db: Path, public_pem: bytes) -> tuple[int, int | None]:
    """Returns (entries verified, first bad index or None) following section 5 step by step."""
    key = serialization.load_pem_public_key(public_pem)
    assert isinstance(key, Ed25519PublicKey)
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    trusted = {hashlib.sha256(raw).hexdigest()[:16]: key}
    conn = sqlite3.connect(db)
    conn.text_factory = bytes
    origin = conn.execute("SELECT value FROM meta WHERE key = 'origin'").fetchone()[0].decode()
    prev, last_ts, count = "0" * 64, 0, 0
    for i, (idx, line, kid, sig) in enumerate(
        conn.execute("SELECT idx, line, kid, sig FROM entries ORDER BY idx")
    ):
        entry = json.loads(line)  # step 2
        ok = (
            idx == i  # step 1
            and canonical(entry) == line  # step 2
            and entry["v"] == 1
            and entry["origin"] == origin  # step 3
            and entry["idx"] == i  # step 4
            and entry["prev"] == prev  # step 5
            and isinstance(entry["ts"], int)
            and entry["ts"] >= last_ts  # step 6
            and kid.decode() in trusted  # step 7
        )
        if ok:
            leaf = hashlib.sha256(b"\x00" + line).hexdigest()
            signed = canonical(
                {"idx": i, "leaf": leaf, "origin": origin, "ts": entry["ts"], "v": 1}
            )
            try:
                trusted[kid.decode()].verify(sig, PREFIX + signed)
            except InvalidSignature:
                ok = False
        if not ok:
            return count, i
        prev = hashlib.sha256(b"\x00" + line).hexdigest()
        last_ts = entry["ts"]
        count += 1
    return count, None


def test_independent_verifier_agrees_with_the_gateway(
    client: TestClient, demo: Demo, token: str
) -> None:
    """A log written by real API calls verifies under the documented rules, and a receipt checks
    against the documented statement and the entry at its index."""
    response = client.get(
        "/v1/datasets/residents/rows?purpose=statistics&_size=3",
        headers={"Authorization": f"Bearer {token}"},
    )
    client.get("/v1/datasets")  # a 401, logged too
    db = demo.home / "audit" / "log.sqlite3"
    pem = (demo.home / "keys" / "audit-ed25519.pub").read_bytes()
    count, bad = independent_verify(db, pem)
    assert bad is None
    assert count >= 4

    fields = dict(re.findall(r'(\w+)=("[^"]*"|:[^:]*:|\d+)', response.headers["audit-receipt"]))
    idx, ts = int(fields["idx"]), int(fields["ts"])
    origin, kid = fields["origin"].strip('"'), fields["kid"].strip('"')
    leaf = base64.b64decode(fields["leaf"].strip(":"))
    sig = base64.b64decode(fields["sig"].strip(":"))
    statement = canonical({"idx": idx, "leaf": leaf.hex(), "origin": origin, "ts": ts, "v": 1})
    key = serialization.load_pem_public_key(pem)
    assert isinstance(key, Ed25519PublicKey)
    key.verify(sig, PREFIX + statement)
    assert (
        kid
        == hashlib.sha256(
            key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        ).hexdigest()[:16]
    )
    conn = sqlite3.connect(db)
    conn.text_factory = bytes
    (line,) = conn.execute("SELECT line FROM entries WHERE idx = ?", (idx,)).fetchone()
    assert hashlib.sha256(b"\x00" + line).digest() == leaf
    assert json.loads(line)["resp_sha256"] == hashlib.sha256(response.content).hexdigest()


def test_independent_verifier_catches_tampering(client: TestClient, demo: Demo, token: str) -> None:
    """The documented rules find a changed entry at its index."""
    client.get("/healthz")
    client.get("/healthz")
    db = demo.home / "audit" / "log.sqlite3"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "UPDATE entries SET line = replace(line, ?, ?) WHERE idx = 2",
            ('"status":200', '"status":201'),
        )
    _, bad = independent_verify(db, (demo.home / "keys" / "audit-ed25519.pub").read_bytes())
    assert bad == 2


DOC = REPO / "docs" / "audit-format.md"


def test_worked_example_in_the_doc_is_current() -> None:
    """Every value of the worked example (section 11) is what the code produces today."""
    from tests.audit.audit_example import build_example

    doc = DOC.read_text()
    for name, value in build_example().items():
        assert value.rstrip("\n") in doc, f"docs/audit-format.md is missing the current {name}"


def test_worked_example_checks_out_independently() -> None:
    """From the doc's numbers alone: leaf hashes, the RFC 9162 root, and the checkpoint note's
    signed-note signature, computed with hashlib and raw Ed25519."""
    doc = DOC.read_text()
    public_b64 = re.search(r"Its raw public key \(base64\) is\n`([^`]+)`", doc)
    assert public_b64 is not None
    raw = base64.b64decode(public_b64.group(1))
    key = Ed25519PublicKey.from_public_bytes(raw)
    lines = re.findall(r"```\n(\{.*?\})\n```", doc)
    assert len(lines) == 3
    leaves = [hashlib.sha256(b"\x00" + line.encode()).digest() for line in lines]
    for leaf in leaves:
        assert leaf.hex() in doc

    def node(left: bytes, right: bytes) -> bytes:
        return hashlib.sha256(b"\x01" + left + right).digest()

    root = node(node(leaves[0], leaves[1]), leaves[2])
    note = re.search(r"The signed checkpoint of size 3:\n\n```\n(.*?)\n```", doc, flags=re.S)
    assert note is not None
    text, sig_line = note.group(1).split("\n\n")
    origin, size, root_b64 = text.split("\n")
    assert origin == "example.org/audit-demo"
    assert size == "3"
    assert base64.b64decode(root_b64) == root
    name, blob = sig_line.removeprefix("\u2014 ").split(" ")
    raw_sig = base64.b64decode(blob)
    assert raw_sig[:4] == hashlib.sha256(name.encode() + b"\n\x01" + raw).digest()[:4]
    key.verify(raw_sig[4:], (text + "\n").encode())
