"""CPU seconds of the `recoverable` measure (gateway/privacy/recover.py) per column kind, and of
`perturb noise:` keyed per record against the old keying per value, at N rows (default 1M).

    python benchmarks/recoverable.py [--rows 1000000] [--repeat 3]

Synthetic columns: incomes (multiples of 10, 5,000 distinct) binned by 2,000, the same incomes
plus noise, birth dates (20,000 distinct days) shifted by up to 30 days. Best of `repeat` runs,
time.process_time (CPU seconds of this process: wall time is inflated on a shared machine).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from gateway.privacy.keyed import keyed_words, uniform
from gateway.privacy.randomize import perturb
from gateway.privacy.recover import EXACT, NEAREST, WINDOW, Recovery, recovered

KEY = b"k" * 32
NOISE = {"noise": "laplace", "scale": 200}


def cpu(work: Callable[[], object], repeat: int) -> float:
    """The fewest CPU seconds `work` took over `repeat` runs."""
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        work()
        best = min(best, time.process_time() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    n, rng = args.rows, np.random.default_rng(1)
    income = pd.Series(rng.integers(0, 5000, n) * 10, name="income").astype("Int64")
    days = pd.to_datetime("1950-01-01") + pd.to_timedelta(rng.integers(0, 20000, n), unit="D")
    birth = pd.Series(days).dt.strftime("%Y-%m-%d").astype("string")
    shift = pd.to_timedelta(rng.integers(-30, 31, n), unit="D")
    shifted = (pd.to_datetime(birth) + shift).dt.strftime("%Y-%m-%d").astype("string")
    lows = (income // 2000) * 2000
    bins = (lows.astype("string") + "-" + (lows + 1999).astype("string")).astype("string")
    ids = pd.Series(rng.permutation(n).astype(str), dtype="string")
    records = pd.DataFrame({"id": ids, "income": income, "birth": birth})

    def per_value() -> object:  # the keying before this change: one HMAC per distinct value
        words, _ = keyed_words(income, KEY, 1)
        return uniform(words[:, 0])

    rows = [
        ("recoverable, bins (exact)", lambda: recovered(bins, income, Recovery(EXACT))),
        ("recoverable, noise (nearest)", lambda: recovered(income + 37, income, Recovery(NEAREST))),
        ("recoverable, shifted dates", lambda: recovered(shifted, birth, Recovery(WINDOW, 30))),
        ("noise keyed per value (before)", per_value),
        ("perturb, noise per record (3-column rows)", lambda: perturb(income, NOISE, KEY, records)),
    ]
    print(f"rows={n:,} repeat={args.repeat} (best CPU seconds)")
    for label, work in rows:
        print(f"{label:45s} {cpu(work, args.repeat):7.3f}")


if __name__ == "__main__":
    main()
