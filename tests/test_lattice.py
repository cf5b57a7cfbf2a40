"""Promise 4 with generalization: the lattice search finds a k-anonymous (l-diverse) view over
the whole table, checked by an independent count; the Adult benchmark when ../shared is here."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gateway.privacy.lattice import Unreachable, anonymize, load_hierarchy

ADULT = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "adult"
QIS = [
    "sex",
    "age",
    "race",
    "marital-status",
    "education",
    "native-country",
    "workclass",
    "occupation",
]


def class_sizes(frame: pd.DataFrame, qis: list[str]) -> Counter[tuple[object, ...]]:
    return Counter(tuple(row) for row in frame[qis].itertuples(index=False))


def test_generalizes_only_as_much_as_needed(tmp_path: Path) -> None:
    """A small table: ages alone cannot reach k=2, their decades can; nothing is suppressed."""
    (tmp_path / "age.csv").write_text("".join(f"{a};{a // 10 * 10}s;*\n" for a in range(100)))
    frame = pd.DataFrame(
        {
            "age": ["31", "35", "38", "52", "57"],
            "sex": ["m", "m", "m", "f", "f"],
            "pay": ["a", "b", "a", "b", "a"],
        }
    )
    out, solution = anonymize(
        frame, ["age", "sex"], {"age": load_hierarchy(tmp_path / "age.csv")}, 2, 0.0
    )
    assert solution.levels == (1, 0)
    assert out["age"].tolist() == ["30s", "30s", "30s", "50s", "50s"]
    assert solution.suppressed == 0
    assert min(class_sizes(out, ["age", "sex"]).values()) >= 2
    with pytest.raises(Unreachable):
        anonymize(frame, ["age", "sex"], {"age": load_hierarchy(tmp_path / "age.csv")}, 6, 0.0)


@pytest.mark.skipif(not ADULT.is_dir(), reason="../shared/benchmarks/adult not present")
@pytest.mark.parametrize("k", [2, 5, 10])
def test_adult_k_anonymity_by_independent_count(k: int) -> None:
    """On Adult with ARX hierarchies: every class has at least k rows (plain-Python count), at
    most 5 % of rows suppressed; with l=2 on salary-class every class holds both salary values."""
    frame = pd.read_csv(ADULT / "adult.csv", sep=";", dtype=str)
    hierarchies = {q: load_hierarchy(ADULT / f"adult_hierarchy_{q}.csv") for q in QIS}
    out, solution = anonymize(
        frame,
        QIS,
        hierarchies,
        k,
        0.05,
        l=2 if k == 5 else None,
        sensitive="salary-class" if k == 5 else None,
    )
    sizes = class_sizes(out, QIS)
    assert min(sizes.values()) >= k
    assert solution.suppressed <= 0.05 * len(frame)
    assert len(out) == len(frame) - solution.suppressed
    if k == 5:
        salaries: defaultdict[tuple[object, ...], set[str]] = defaultdict(set)
        for row in out[[*QIS, "salary-class"]].itertuples(index=False):
            salaries[tuple(row[:-1])].add(row[-1])
        assert min(len(v) for v in salaries.values()) >= 2


@pytest.mark.parametrize("seed", range(6))
def test_least_loss_node_matches_an_exhaustive_search(tmp_path: Path, seed: int) -> None:
    """The search by increasing loss returns what checking every lattice node would: the
    acceptable node of least loss, then least suppression, then first by height."""
    rng = np.random.default_rng(seed)
    n = 300
    frame = pd.DataFrame(
        {
            "a": rng.integers(0, 40, n).astype(str),
            "b": rng.integers(0, 12, n).astype(str),
            "c": rng.choice(["x", "y", "z"], n),
        }
    )
    (tmp_path / "a.csv").write_text("".join(f"{v};{v // 5};{v // 20};*\n" for v in range(40)))
    (tmp_path / "b.csv").write_text("".join(f"{v};{v // 4};*\n" for v in range(12)))
    hierarchies = {q: load_hierarchy(tmp_path / f"{q}.csv") for q in ("a", "b")}
    k, share = int(rng.integers(2, 8)), 0.05
    _, solution = anonymize(frame, ["a", "b", "c"], hierarchies, k, share)

    def generalized(qi: str, level: int) -> pd.Series:
        if level == 0:
            return frame[qi]
        table = hierarchies.get(qi)
        return frame[qi].map(table[level - 1]) if table else pd.Series("*", index=frame.index)

    heights = (3, 2, 1)
    nodes = sorted(itertools.product(*(range(h + 1) for h in heights)), key=sum)
    candidates: list[tuple[float, int, int, tuple[int, ...]]] = []
    for position, node in enumerate(nodes):
        columns = [generalized(q, lv) for q, lv in zip("abc", node, strict=True)]
        keys = list(zip(*columns, strict=True))
        sizes = Counter(keys)
        suppressed = sum(1 for key in keys if sizes[key] < k)
        if suppressed <= share * n:
            loss = float(np.mean([lv / h for lv, h in zip(node, heights, strict=True)]))
            candidates.append((loss, suppressed, position, node))
    assert solution.levels == min(candidates)[3]
    assert solution.suppressed == min(candidates)[1]
