"""Benchmarks: our code and a naive baseline, run side by side in one process, reported as ratios.

Machines are shared and noisy, so each pair is interleaved (baseline, ours, baseline, ours, ...)
and the medians are compared; only the ratio is meaningful, not the absolute times.

    python benchmarks/run.py [--rows 100000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.audit.canonical import JsonValue
from gateway.audit.signing import Signer, key_id
from gateway.audit.store import SQLiteAuditLog
from gateway.data import demo
from gateway.privacy.transforms import CATALOGUE, TransformContext, scope_key

CTX = TransformContext(b"k" * 32, "client-a", "grant-a")


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def compare(
    name: str, baseline: Callable[[], object], ours: Callable[[], object], repeat: int
) -> None:
    base_t: list[float] = []
    ours_t: list[float] = []
    for _ in range(repeat):
        base_t.append(timed(baseline))
        ours_t.append(timed(ours))
    b, o = statistics.median(base_t), statistics.median(ours_t)
    times = f"baseline {b * 1000:9.2f} ms   ours {o * 1000:9.2f} ms"
    print(f"{name:<52} {times}   ours/baseline {o / b:6.2f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--appends", type=int, default=300)
    args = parser.parse_args()

    people = demo.residents(args.rows)
    ids = people["id_card"].astype("string")
    names = people["name"].astype("string")
    mask = CATALOGUE["mask"].apply
    pseudo = CATALOGUE["pseudonymize"].apply

    print(f"rows={args.rows} repeat={args.repeat} (median of interleaved runs)")
    compare(
        "mask id_card: per-row Python vs vectorized",
        lambda: [v[:6] + "*" * 11 + v[-1] for v in ids.tolist()],
        lambda: mask(ids, {"preset": "id_card"}, CTX),
        args.repeat,
    )
    compare(
        "mask chinese_name: per-row Python vs vectorized",
        lambda: [v[:1] + "*" * (len(v) - 1) for v in names.tolist()],
        lambda: mask(names, {"preset": "chinese_name"}, CTX),
        args.repeat,
    )
    key = scope_key(CTX.secret, "client", CTX)
    employers = people["employer_credit_code"].astype("string")  # many repeated values
    compare(
        "pseudonymize (repeats): per-row HMAC vs per-distinct",
        lambda: [
            hmac.new(key, v.encode(), hashlib.sha256).hexdigest()[:20] for v in employers.tolist()
        ],
        lambda: pseudo(employers, {}, CTX),
        args.repeat,
    )
    compare(
        "pseudonymize (unique): per-row HMAC vs per-distinct",
        lambda: [hmac.new(key, v.encode(), hashlib.sha256).hexdigest()[:20] for v in ids.tolist()],
        lambda: pseudo(ids, {}, CTX),
        args.repeat,
    )

    private = Ed25519PrivateKey.generate()
    signer = Signer(private, key_id(private.public_key()))
    event: dict[str, JsonValue] = {
        "kind": "http",
        "rid": "0123456789abcdef",
        "status": 200,
        "rows": 100,
        "route": "/v1/x",
    }
    with tempfile.TemporaryDirectory() as tmp:
        plain = sqlite3.connect(Path(tmp) / "plain.sqlite3", isolation_level=None)
        plain.execute("PRAGMA journal_mode = WAL")
        plain.execute("PRAGMA synchronous = FULL")
        plain.execute("CREATE TABLE t (idx INTEGER PRIMARY KEY, line TEXT)")
        log = SQLiteAuditLog(Path(tmp) / "log.sqlite3", signer)

        def plain_appends() -> None:
            for i in range(args.appends):
                plain.execute("BEGIN IMMEDIATE")
                plain.execute("INSERT INTO t (line) VALUES (?)", (f"event {i}",))
                plain.execute("COMMIT")

        def signed_appends() -> None:
            for _ in range(args.appends):
                log.append(event)

        compare(
            f"audit: {args.appends} durable inserts vs signed+chained",
            plain_appends,
            signed_appends,
            max(3, args.repeat // 2),
        )
        log.close()
        plain.close()


if __name__ == "__main__":
    main()
