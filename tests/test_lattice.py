"""Promise 4 with generalization: the lattice search finds a k-anonymous (l-diverse) view over
the whole table, checked by an independent count; the Adult benchmark when ../shared is here."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

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
