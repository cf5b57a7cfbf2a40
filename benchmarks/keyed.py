"""Keyed pseudonyms on distinct values (issue 15): values per second of the `pseudonymize`
transform (token format) on a column of 1M distinct 身份证号, against per-row `hmac.new` and
against the previous method (dictionary-encode, then one HMAC per distinct value from copied
inner/outer states, each value encoded and hex-formatted in Python). Interleaved runs; medians
of wall and of process CPU time (CPU time is steadier on a shared machine). The outputs are
checked equal first.

    python benchmarks/keyed.py [--values 1000000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import statistics
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from gateway.privacy.transforms import CATALOGUE, TransformContext, scope_key

CTX = TransformContext(b"k" * 32, "client-a", "grant-a")
LENGTH = 20


def per_row(series: pd.Series) -> list[str]:
    key = scope_key(CTX.secret, "client", CTX)
    return [hmac.new(key, v.encode(), hashlib.sha256).hexdigest()[:LENGTH] for v in series]


def previous(series: pd.Series) -> pa.Array:
    key = scope_key(CTX.secret, "client", CTX)
    encoded = pa.array(series.array).dictionary_encode()
    block = key.ljust(64, b"\x00")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))
    digests = []
    for value in encoded.dictionary.to_pylist():
        i = inner.copy()
        i.update(value.encode("utf-8"))
        o = outer.copy()
        o.update(i.digest())
        digests.append(o.digest())
    tokens = pa.array([d.hex()[:LENGTH] for d in digests], type=pa.large_string())
    return pc.take(tokens, encoded.indices)


def ours(series: pd.Series) -> pd.Series:
    return CATALOGUE["pseudonymize"].apply(series, {"length": LENGTH}, CTX)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--values", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    order = np.random.default_rng(0).permutation(args.values)
    series = pd.Series([f"1101051990{i:08d}" for i in order], dtype="string[pyarrow]")
    expected = per_row(series.head(20_000))
    assert previous(series.head(20_000)).to_pylist() == expected
    assert ours(series.head(20_000)).tolist() == expected
    runs: dict[str, Callable[[pd.Series], object]] = {
        "per-row hmac.new": per_row,
        "previous (dictionary)": previous,
        "ours": ours,
    }
    wall: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeat):
        for name, run in runs.items():
            started, started_cpu = time.perf_counter(), time.process_time()
            run(series)
            wall[name].append(time.perf_counter() - started)
            cpu[name].append(time.process_time() - started_cpu)
    base = statistics.median(cpu["per-row hmac.new"])
    print(f"pseudonymize (token) on {args.values:,} distinct values, median of {args.repeat}")
    for name in runs:
        w, c = statistics.median(wall[name]), statistics.median(cpu[name])
        print(
            f"{name:<24} {args.values / w / 1e6:5.2f}M values/s wall  "
            f"{args.values / c / 1e6:5.2f}M values/s CPU  {base / c:4.2f}x per-row (CPU)"
        )


if __name__ == "__main__":
    main()
