"""Full against incremental verification of a live log (the console's and usage endpoint's).

    python benchmarks/incremental_verify.py [--sizes 20000,100000] [--new 100,1000]

For each log size: build a signed log of that many entries (group-committed appends), verify it
in full once with an IncrementalVerifier (filling its cache), then for each count of new entries
append them and time (a) the incremental call and (b) a fresh full verification
(`load_verified`) of the same log. Also: the memory the cache holds per entry (decoded entries,
measured with tracemalloc over a sample; the Merkle tree and chain state on top), extrapolated
to 1M entries. Only ratios are meaningful on a shared machine; no test asserts on timing.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.audit.canonical import JsonValue
from gateway.audit.entry import decode_entry
from gateway.audit.incremental import IncrementalVerifier, _compact
from gateway.audit.merkle import MerkleTree, leaf_hash
from gateway.audit.query import load_verified
from gateway.audit.reader import read_entries
from gateway.audit.signing import Signer, key_id
from gateway.audit.store import AuditLog


def event(i: int) -> dict[str, JsonValue]:
    """An entry shaped like an HTTP call's (the console's commonest)."""
    return {
        "kind": "http",
        "rid": f"{i:016x}",
        "method": "GET",
        "route": "/v1/datasets/{dataset}/rows",
        "status": 200,
        "client": f"client-{i % 7}",
        "dataset": "enterprise-registry",
        "purpose": "credit-research",
        "grant": "g1",
        "decision": "allow",
        "rows": 50 + i % 13,
        "token_sha256": f"{i:064x}",
    }


def append(log: AuditLog, start: int, count: int) -> None:
    for first in range(start, start + count, 2000):
        futures = [log.submit(event(i)) for i in range(first, min(first + 2000, start + count))]
        for future in futures:
            future.result()


def memory_per_entry(path: Path, sample: int = 10_000) -> tuple[float, float]:
    """Bytes per cached decoded entry (with its shared strings) and per Merkle tree leaf
    (tracemalloc over a sample)."""
    _, stored = read_entries(path)
    lines = [s.line for _, s in zip(range(sample), stored, strict=False)]
    strings: dict[str, str] = {}
    tracemalloc.start()
    decoded = [_compact(decode_entry(line), strings) for line in lines]  # as the cache keeps them
    entries_bytes = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    tracemalloc.start()
    tree = MerkleTree(leaf_hash(line) for line in lines)
    tree_bytes = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del decoded, tree
    return entries_bytes / len(lines), tree_bytes / len(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="20000,100000")
    parser.add_argument("--new", default="100,1000")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    news = [int(n) for n in args.new.split(",")]
    with tempfile.TemporaryDirectory() as directory:
        for size in sizes:
            home = Path(directory) / str(size)
            home.mkdir()
            key = Ed25519PrivateKey.generate()
            pub = home / "audit.pub"
            pub.write_bytes(
                key.public_key().public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                )
            )
            path = home / "log.sqlite3"
            log = AuditLog(path, Signer(key, key_id(key.public_key())))
            append(log, 0, size)
            log.checkpoint()
            verifier = IncrementalVerifier(full_every_s=1e9)
            began = time.perf_counter()
            verifier.load(path, [pub])
            first = time.perf_counter() - began
            print(f"log {size:>7} entries: first (full) verification {first:8.2f} s")
            total = size
            for new in news:
                append(log, total, new)
                log.checkpoint()
                total += new
                began = time.perf_counter()
                incremental = verifier.load(path, [pub])
                inc = time.perf_counter() - began
                began = time.perf_counter()
                full = load_verified(path, [pub])
                whole = time.perf_counter() - began
                assert incremental.entries == full.entries
                assert incremental.verification == full.verification
                print(
                    f"  +{new:>5} new: incremental {inc * 1000:9.1f} ms   "
                    f"full {whole * 1000:9.1f} ms   incremental/full {inc / whole:7.4f}"
                )
            per_entry, per_leaf = memory_per_entry(path)
            print(
                f"  cache memory: {per_entry:.0f} B per decoded entry + {per_leaf:.0f} B per tree "
                f"leaf -> about {(per_entry + per_leaf) * 1e6 / 2**20:.0f} MiB per 1M entries"
            )
            log.close()


if __name__ == "__main__":
    main()
