"""Keyed pseudonyms on distinct values (issue 15): values per second of the `pseudonymize`
transform (token format) on a column of 1M distinct 身份证号, against per-row `hmac.new`, the
second pass (dictionary-encode, then one HMAC per distinct value from copied inner/outer states,
each value encoded and hex-formatted in Python) and the third pass (per row when nearly all
values are distinct, bytes straight from Arrow, digests joined from a list, hex by nibbles).
Interleaved runs; medians of wall and of process CPU time (CPU time is steadier on a shared
machine); the load average is printed with them. The outputs are checked equal first.

    python benchmarks/keyed.py [--values 1000000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import statistics
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from gateway.model.tokens import token_scope
from gateway.privacy import keyed
from gateway.privacy.transforms import CATALOGUE, TransformContext, scope_key

CTX = TransformContext(b"k" * 32, "client-a", "grant-a")
LENGTH = 20
PARAMS = {"length": LENGTH}  # the default key scope, as a policy without `scope` gets


def per_row(series: pd.Series) -> list[str]:
    key = scope_key(CTX.secret, token_scope(PARAMS), CTX)
    return [hmac.new(key, v.encode(), hashlib.sha256).hexdigest()[:LENGTH] for v in series]


def previous(series: pd.Series) -> pa.Array:
    key = scope_key(CTX.secret, token_scope(PARAMS), CTX)
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


_HEX = np.frombuffer(b"0123456789abcdef", np.uint8)


def third_pass(series: pd.Series) -> pd.Series:
    """The third pass as it was (main at dd5a93e), on its per-row path (the column is distinct)."""
    key = scope_key(CTX.secret, token_scope(PARAMS), CTX)
    text = keyed.arrow_text(series)
    assert keyed._mostly_distinct(text)
    block = key.ljust(64, b"\x00")
    inner_copy = hashlib.sha256(bytes(b ^ 0x36 for b in block)).copy
    outer_copy = hashlib.sha256(bytes(b ^ 0x5C for b in block)).copy
    digests: list[bytes] = []
    append = digests.append
    for value in text.cast(pa.large_binary()).to_pylist():
        i = inner_copy()
        i.update(value)
        o = outer_copy()
        o.update(i.digest())
        append(o.digest())
    table = np.frombuffer(b"".join(digests), np.uint8).reshape(len(digests), 32)
    nibbles = np.empty((len(table), 64), np.uint8)
    nibbles[:, 0::2] = table >> 4
    nibbles[:, 1::2] = table & 0x0F
    hexes = np.ascontiguousarray(_HEX[nibbles[:, :LENGTH]]).tobytes()
    offsets = np.arange(0, (len(table) + 1) * LENGTH, LENGTH, dtype=np.int64)
    tokens = pa.LargeStringArray.from_buffers(
        len(table), pa.py_buffer(offsets), pa.py_buffer(hexes)
    )
    return pd.Series(pd.array(tokens, dtype=pd.StringDtype("pyarrow")), index=series.index)


def ours(series: pd.Series) -> pd.Series:
    return CATALOGUE["pseudonymize"].apply(series, PARAMS, CTX)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--values", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    order = np.random.default_rng(0).permutation(args.values)
    series = pd.Series([f"1101051990{i:08d}" for i in order], dtype="string[pyarrow]")
    expected = per_row(series.head(20_000))
    assert previous(series.head(20_000)).to_pylist() == expected
    assert third_pass(series.head(20_000)).tolist() == expected
    assert ours(series.head(20_000)).tolist() == expected
    runs: dict[str, Callable[[pd.Series], object]] = {
        "per-row hmac.new": per_row,
        "second pass (dictionary)": previous,
        "third pass (per row)": third_pass,
        "ours": ours,
    }
    wall: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    loads = [os.getloadavg()[0]]
    for _ in range(args.repeat):
        for name, run in runs.items():
            started, started_cpu = time.perf_counter(), time.process_time()
            run(series)
            wall[name].append(time.perf_counter() - started)
            cpu[name].append(time.process_time() - started_cpu)
        loads.append(os.getloadavg()[0])
    base = statistics.median(cpu["per-row hmac.new"])
    third = statistics.median(cpu["third pass (per row)"])
    third_wall = statistics.median(wall["third pass (per row)"])
    print(
        f"pseudonymize (token) on {args.values:,} distinct values, median of {args.repeat}; "
        f"1-min load average {min(loads):.2f}-{max(loads):.2f} on {os.cpu_count()} CPUs"
    )
    for name in runs:
        w, c = statistics.median(wall[name]), statistics.median(cpu[name])
        print(
            f"{name:<26} {args.values / w / 1e6:5.2f}M values/s wall  "
            f"{args.values / c / 1e6:5.2f}M values/s CPU  {base / c:4.2f}x per-row (CPU)  "
            f"{third / c:4.2f}x third pass (CPU)  {third_wall / w:4.2f}x (wall)"
        )


if __name__ == "__main__":
    main()
