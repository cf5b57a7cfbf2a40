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
import threading
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.audit.canonical import JsonValue
from gateway.audit.entry import leaf_hash
from gateway.audit.merkle import root_of
from gateway.audit.reader import read_log
from gateway.audit.signing import Signer, key_id
from gateway.audit.store import AuditLog
from gateway.audit.verify import verify_log
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
    parser.add_argument("--appends", type=int, default=8000)
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

    audit_benchmarks(args.appends)
    decision_benchmarks()
    adult_benchmarks()


def adult_benchmarks() -> None:
    """k-anonymity on the Adult benchmark (8 quasi-identifiers, ARX hierarchies), if present:
    our lattice search against anonypyx's Mondrian, k = 2, 5, 10, 20, time, suppression and the
    same information-loss measures for both (benchmarks/desensitize.py, `--parts adult`)."""
    from desensitize import adult

    adult((2, 5, 10, 20), repeat=3)


def decision_benchmarks() -> None:
    """Per-decision cost with 10, 100 and 1,000 grants: ours (compiled index) vs a linear scan
    over every grant (the naive baseline)."""
    from datetime import UTC, datetime

    from gateway.model.grant import Grant, Limits
    from gateway.model.policyset import PolicySet
    from gateway.policy.engine import Engine, _check

    at = datetime(2026, 6, 1, tzinfo=UTC)
    for count in (10, 100, 1000):
        grants = tuple(
            Grant(
                id=f"g{i}",
                dataset=f"d{i % 50}",
                clients=frozenset({f"c{i % 200}"}),
                purposes=frozenset({"statistics", f"p{i % 7}"}),
                columns=(),
                limits=Limits(),
                file="bench.yaml",
                line=i,
            )
            for i in range(count)
        )
        engine = Engine(PolicySet({}, grants, "0" * 64))
        # Half the probes are allowed, half find no grant (the naive scan then reads every grant).
        probes = [(f"c{i % 200}", f"d{i % 50}") for i in range(count)]
        probes += [(f"c{i % 200}", f"other{i}") for i in range(count)]

        def ours(engine: Engine = engine, probes: list[tuple[str, str]] = probes) -> None:
            for client, dataset in probes:
                engine.decide(client, dataset, "statistics", ("datasets:read",), at)

        def naive(
            grants: tuple[Grant, ...] = grants, probes: list[tuple[str, str]] = probes
        ) -> None:
            scopes = frozenset({"datasets:read"})
            for client, dataset in probes:
                for grant in grants:
                    applies = grant.dataset == dataset and client in grant.clients
                    if applies and _check(grant, "statistics", scopes, at)[0] == "match":
                        break

        base_t = min(timed(naive) for _ in range(3)) / len(probes)
        ours_t = min(timed(ours) for _ in range(3)) / len(probes)
        label = f"policy decision, {count} grants"
        print(
            f"{label:<52} baseline {base_t * 1e6:9.2f} us   ours {ours_t * 1e6:9.2f} us   "
            f"ours/baseline {ours_t / base_t:6.2f}"
        )


def audit_benchmarks(appends: int, writers: int = 16) -> None:
    """Durable appends from 16 concurrent writers (ours: group commit + signatures; baseline:
    plain SQLite inserts of the same bytes, one durable transaction each), then verification."""
    private = Ed25519PrivateKey.generate()
    signer = Signer(private, key_id(private.public_key()))
    event: dict[str, JsonValue] = {
        "kind": "http",
        "rid": "0123456789abcdef",
        "method": "GET",
        "route": "/v1/datasets/{id}/rows",
        "status": 200,
        "client": "demo",
        "decision": "allow",
        "rows": 100,
        "resp_sha256": "0" * 64,
    }
    per_writer = max(1, appends // writers)
    total = per_writer * writers
    with tempfile.TemporaryDirectory() as tmp:
        log = AuditLog(Path(tmp) / "log.sqlite3", signer)
        line = log.append(event)  # warm-up; also gives the byte size of one entry
        sample = log.entries(0, 1)[0].line
        plain_path = Path(tmp) / "plain.sqlite3"
        setup = sqlite3.connect(plain_path, isolation_level=None)
        setup.execute("PRAGMA journal_mode = WAL")
        setup.execute("CREATE TABLE t (idx INTEGER PRIMARY KEY, line TEXT)")
        setup.close()

        def plain_writer() -> None:
            conn = sqlite3.connect(plain_path, isolation_level=None, timeout=30)
            conn.execute("PRAGMA synchronous = FULL")
            for _ in range(per_writer):
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("INSERT INTO t (line) VALUES (?)", (sample.decode(),))
                conn.execute("COMMIT")
            conn.close()

        def our_writer() -> None:
            for _ in range(per_writer):
                log.append(event)

        def run(target: Callable[[], None]) -> float:
            threads = [threading.Thread(target=target) for _ in range(writers)]
            start = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            return time.perf_counter() - start

        base_t, ours_t = run(plain_writer), run(our_writer)
        print(
            f"{'audit append, ' + str(writers) + ' writers, ' + str(total) + ' entries':<52} "
            f"baseline {total / base_t:9.0f} /s   ours {total / ours_t:9.0f} /s   "
            f"ours/baseline time {ours_t / base_t:6.2f}"
        )
        del line
        log.checkpoint()
        log.close()

        contents = read_log(Path(tmp) / "log.sqlite3")
        stored = list(contents.entries)
        keys = {signer.kid: private.public_key()}
        start = time.perf_counter()
        report = verify_log(contents.origin, stored, keys, checkpoints=contents.checkpoints)
        full = time.perf_counter() - start
        if not report.ok:
            raise SystemExit(f"benchmark log does not verify: {report.problems}")
        start = time.perf_counter()
        root_of([leaf_hash(e.line) for e in stored])
        merkle = time.perf_counter() - start
        n = len(stored)
        full_label = "verify: full (canonical, chain, signatures, Merkle)"
        merkle_label = "verify: Merkle-only re-check (leaf hashes + root)"
        print(f"{full_label:<52} {n / full:9.0f} entries/s")
        print(f"{merkle_label:<52} {n / merkle:9.0f} entries/s")


if __name__ == "__main__":
    main()
