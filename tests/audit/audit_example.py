"""The worked example of docs/audit-format.md, rebuilt from fixed inputs (Ed25519 signatures are
deterministic, so every value is reproducible). `python -m tests.audit.audit_example` prints
them."""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.audit.canonical import JsonValue
from gateway.audit.checkpoint import raw_public, sign_checkpoint
from gateway.audit.entry import GENESIS_PREV, encode_entry, leaf_hash, statement
from gateway.audit.merkle import MerkleTree, node_hash
from gateway.audit.signing import ENTRY_CONTEXT, Signer, key_id

ORIGIN = "example.org/audit-demo"
SEED = bytes(range(32))  # the example's private key: never use a key like this


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def build_example() -> dict[str, str]:
    key = Ed25519PrivateKey.from_private_bytes(SEED)
    signer = Signer(key, key_id(key.public_key()))
    events: list[dict[str, JsonValue]] = [
        {"kind": "admin", "action": "client.add", "subject": "demo", "actor": "root"},
        {
            "kind": "http",
            "rid": "00112233aabbccdd",
            "method": "GET",
            "route": "/healthz",
            "status": 200,
            "client": None,
            "decision": "none",
            "rows": 0,
        },
        {
            "kind": "http",
            "rid": "8899aabbccddeeff",
            "method": "GET",
            "route": "/v1/datasets",
            "status": 401,
            "client": None,
            "decision": "deny",
            "reason": "unauthenticated",
            "rows": 0,
        },
    ]
    values = {"public_key": b64(raw_public(key.public_key())), "kid": signer.kid}
    prev = GENESIS_PREV
    tree = MerkleTree()
    for idx, event in enumerate(events):
        line = encode_entry(event, origin=ORIGIN, idx=idx, ts=1767225600000 + 500 * idx, prev=prev)
        leaf = leaf_hash(line)
        values[f"line{idx}"] = line.decode()
        values[f"leaf{idx}"] = leaf.hex()
        ts = 1767225600000 + 500 * idx
        values[f"statement{idx}"] = statement(ORIGIN, idx, ts, leaf).decode()
        values[f"sig{idx}"] = b64(signer.sign(ENTRY_CONTEXT, statement(ORIGIN, idx, ts, leaf)))
        tree.append(leaf)
        prev = leaf.hex()
    values["node01"] = node_hash(tree.leaf(0), tree.leaf(1)).hex()
    values["root3"] = tree.root(3).hex()
    values["root3_b64"] = b64(tree.root(3))
    values["checkpoint"] = sign_checkpoint(ORIGIN, 3, tree.root(3), [signer])
    values["proof_1_3"] = ", ".join(p.hex() for p in tree.inclusion_proof(1, 3))
    values["consistency_2_3"] = ", ".join(p.hex() for p in tree.consistency_proof(2, 3))
    return values


if __name__ == "__main__":
    for name, value in build_example().items():
        print(f"{name}: {value}")
