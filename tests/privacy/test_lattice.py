"""Promise 4 with generalization: the lattice search finds a k-anonymous (l-diverse) view over
the whole table, checked by an independent count; the Adult benchmark when ../shared is here."""

from __future__ import annotations

import functools
import itertools
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.privacy import lattice
from gateway.privacy.lattice import Unreachable, anonymize, load_hierarchy
from tests.paths import SHARED

ADULT = SHARED / "benchmarks" / "adult"
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


@functools.cache
def _adult_as_read() -> pd.DataFrame:
    return pd.read_csv(ADULT / "adult.csv", sep=";", dtype=str)


def adult_frame() -> pd.DataFrame:
    """Adult as text, read once per process (13 tests in three modules read it) and copied for
    each caller, so no test sees what another did to its frame."""
    return _adult_as_read().copy(deep=True)


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
    frame = adult_frame()
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


def _both_ways(
    monkeypatch: pytest.MonkeyPatch, *args: object, **kwargs: object
) -> tuple[tuple[pd.DataFrame, object], tuple[pd.DataFrame, object]]:
    """`anonymize` with class roll-up, and with every node counted from the tuples (the
    previous search, which the roll-up must reproduce exactly)."""
    rolled = anonymize(*args, **kwargs)  # type: ignore[arg-type]
    with monkeypatch.context() as patch:
        patch.setattr(lattice._Rollup, "applies", staticmethod(lambda *_: False))
        counted = anonymize(*args, **kwargs)  # type: ignore[arg-type]
    return rolled, counted


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 2**32 - 1),
    k=st.integers(1, 12),
    share=st.sampled_from([0.0, 0.02, 0.1]),
)
def test_rolled_up_classes_give_the_same_release_as_counting_tuples(
    monkeypatch: pytest.MonkeyPatch, seed: int, k: int, share: float
) -> None:
    """Promise 4 unchanged by the speed-up: on random tables and random tree hierarchies the
    roll-up search releases exactly what counting every node from the tuples releases (same
    node, suppression, loss, nodes evaluated and released frame), or both refuse."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 400))
    widths = [int(w) for w in rng.integers(2, 30, 3)]
    frame = pd.DataFrame(
        {q: rng.integers(0, w, n).astype(str) for q, w in zip("abc", widths, strict=True)}
    )
    hierarchies: dict[str, list[dict[str, str]]] = {}
    for q, width in zip("ab", widths, strict=False):  # c has no hierarchy: kept or "*"
        fan = [int(f) for f in rng.integers(2, 5, int(rng.integers(1, 4)))]
        levels, divisor = [], 1
        for f in fan:
            divisor *= f
            levels.append({str(v): f"{q}{v // divisor}" for v in range(width)})
        hierarchies[q] = levels
    try:
        rolled, counted = _both_ways(monkeypatch, frame, list("abc"), hierarchies, k, share)
    except Unreachable:
        with pytest.raises(Unreachable):
            _both_ways(monkeypatch, frame, list("abc"), hierarchies, k, share)
        return
    assert rolled[1] == counted[1]
    pd.testing.assert_frame_equal(rolled[0], counted[0])


def test_a_hierarchy_that_is_not_a_tree_is_counted_from_the_tuples(tmp_path: Path) -> None:
    """A label whose values part ways one level up cannot be rolled up; the search counts from
    the tuples and still finds the least-loss node."""
    (tmp_path / "a.csv").write_text("1;x;p;*\n2;x;q;*\n3;y;p;*\n4;y;q;*\n")
    frame = pd.DataFrame({"a": ["1", "2", "3", "4"] * 3, "b": ["u", "v", "w"] * 4})
    columns = [lattice._column(frame["a"], load_hierarchy(tmp_path / "a.csv"))]
    radix = [[int(lv.max()) + 1 for lv in c.codes] for c in columns]
    assert not lattice._Rollup.applies(columns, radix, 6)
    out, solution = anonymize(frame, ["a"], {"a": load_hierarchy(tmp_path / "a.csv")}, 6, 0.0)
    assert solution.levels == (1,)
    assert min(class_sizes(out, ["a"]).values()) >= 6


@pytest.mark.skipif(not ADULT.is_dir(), reason="../shared/benchmarks/adult not present")
@pytest.mark.parametrize("k", [2, 5, 10])
def test_adult_release_is_the_same_rolled_up_or_counted(
    monkeypatch: pytest.MonkeyPatch, k: int
) -> None:
    """On Adult (ARX hierarchies, 8 QIs, 5 % suppression) the roll-up search releases the same
    node and frame as counting every node from the tuples."""
    frame = adult_frame()
    hierarchies = {q: load_hierarchy(ADULT / f"adult_hierarchy_{q}.csv") for q in QIS}
    rolled, counted = _both_ways(monkeypatch, frame, QIS, hierarchies, k, 0.05)
    assert rolled[1] == counted[1]
    pd.testing.assert_frame_equal(rolled[0], counted[0])


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 2**32 - 1), share=st.sampled_from([0.0, 0.05, 0.3]))
def test_capped_counts_give_the_same_release_for_any_k_and_missing_values(
    monkeypatch: pytest.MonkeyPatch, seed: int, share: float
) -> None:
    """Promise 4 unchanged by the speed-up: the roll-up keeps class counts capped at k (k from
    1 to beyond the table's size) and reads missing values and values a hierarchy does not
    list as `*` one level up; its release is the one counting every node from the tuples
    gives, or both refuse."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 300))
    k = int(rng.integers(1, n + 10))
    a_values = np.array(["0", "1", "2", "3", "4", "5", "9", None], dtype=object)
    b_values = np.array(["x", "y", "z", None], dtype=object)
    frame = pd.DataFrame({"a": rng.choice(a_values, n), "b": rng.choice(b_values, n)})
    hierarchies = {
        "a": [{str(v): f"a{v // 2}" for v in range(6)}, {str(v): f"a{v // 4}" for v in range(6)}],
        "b": [{"x": "xy", "y": "xy", "z": "z"}],
    }
    try:
        rolled, counted = _both_ways(monkeypatch, frame, ["a", "b"], hierarchies, k, share)
    except Unreachable:
        with pytest.raises(Unreachable):
            _both_ways(monkeypatch, frame, ["a", "b"], hierarchies, k, share)
        return
    assert rolled[1] == counted[1]
    pd.testing.assert_frame_equal(rolled[0], counted[0])
    levels = rolled[1].levels  # type: ignore[attr-defined]
    for qi, level in zip(("a", "b"), levels, strict=True):
        if level:  # a missing value, or 9 (not in a's hierarchy), is never released as is
            source = frame.loc[rolled[0].index, qi]
            unlisted = source.isna() | ~source.isin(list(hierarchies[qi][0]))
            assert (rolled[0].loc[unlisted, qi] == "*").all()


def test_rollup_needs_the_codes_and_a_count_up_to_k_in_63_bits() -> None:
    """The roll-up packs every code and a count capped at k into one 63-bit integer; where
    they do not fit (or k < 1) the search counts from the tuples instead."""
    wide = [[2**31], [2**30]]  # 31 + 30 bits of codes
    assert lattice._Rollup.applies([], wide, 3)  # + 2 bits
    assert not lattice._Rollup.applies([], wide, 4)  # + 3 bits
    assert not lattice._Rollup.applies([], [[2]], 0)
