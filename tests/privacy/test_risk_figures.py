"""The per-column figures next to the risk (docs/privacy.md): the share of released values equal
to the source value, and for masks the share of the real value's characters left visible, equal
a plain per-row reading, whatever the mask character (regular-expression metacharacters, more
than one character) and with nulls on either side."""

from __future__ import annotations

import re

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.privacy.risk import measure

CELLS = st.one_of(st.none(), st.text(alphabet="ab*.+朝区", max_size=8))


def plain_visible(released: list[str | None], raw: list[str | None], char: str) -> float:
    shown = total = 0
    for value, real in zip(released, raw, strict=True):
        if value is None or real is None:
            continue
        shown += max(len(value) - value.count(char), 0)
        total += len(real)
    return shown / total if total else 0.0


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(CELLS, CELLS), max_size=20),
    st.sampled_from(["*", ".", "+", "**", "区"]),
)
def test_visible_and_equal_shares_are_a_plain_count(
    rows: list[tuple[str | None, str | None]], char: str
) -> None:
    """Promise 2's measured floor reads what a person would count, row by row."""
    released = [r[0] for r in rows]
    raw = [r[1] for r in rows]
    index = pd.Index(range(100, 100 + len(rows)))
    frame = pd.DataFrame({"m": pd.Series(released, index=index, dtype="string")})
    source = pd.DataFrame(
        {
            "m": pd.Series(raw, index=index, dtype="string"),
            "long": pd.Series(["x" * 50] * len(rows), index=index, dtype="string"),
        }
    )
    risk = measure(frame, source, ["m"], {"m": char})
    assert risk.visible_share == (("m", plain_visible(released, raw, char)),)
    same = sum(1 for a, b in rows if a is not None and b is not None and a == b)
    assert risk.equal_share == (("m", same / len(rows) if rows else 0.0),)


def _pandas_shares(
    frame: pd.DataFrame, source: pd.DataFrame, masks: dict[str, str]
) -> tuple[tuple[tuple[str, float], ...], tuple[tuple[str, float], ...]]:
    """The equal and visible shares as `measure` read them in pandas before they moved to Arrow
    compute (the reference the Arrow reading must equal, to the last bit)."""
    rows = len(frame)
    raw = source.loc[frame.index, [c for c in frame.columns if c in source.columns]]
    equal: list[tuple[str, float]] = []
    visible: list[tuple[str, float]] = []
    for name in frame.columns:
        released = frame[name].astype("string")
        present = released.notna() & raw[name].notna()
        same = (released == raw[name].astype("string")).fillna(False) & present
        equal.append((str(name), float(same.sum() / rows) if rows else 0.0))
    for name, char in masks.items():
        text = frame[name].astype("string")
        present = text.notna() & raw[name].notna()
        occurrences = text.str.count(re.escape(char)).astype("Int64")
        shown = (text.str.len() - occurrences)[present].clip(lower=0)
        total = int(raw[name].astype("string").str.len()[present].sum())
        visible.append((name, int(shown.sum()) / total if total else 0.0))
    return tuple(equal), tuple(visible)


_KINDS = {
    "Int64": st.one_of(st.none(), st.integers(-3, 3)),
    "float64": st.one_of(st.none(), st.sampled_from([0.0, -0.0, 1.0, 1.5, 2.0, 1e-7])),
    "object": st.one_of(st.none(), st.integers(-3, 3), st.text(alphabet="1ab*.朝", max_size=4)),
    "string": CELLS,
}


@st.composite
def _column_pairs(draw: st.DrawFn, n: int) -> tuple[pd.Series, pd.Series]:
    """A released column and its source column, each of its own dtype, `n` rows."""
    pair = []
    for _ in range(2):
        kind = draw(st.sampled_from(sorted(_KINDS)))
        values = draw(st.lists(_KINDS[kind], min_size=n, max_size=n))
        if kind == "float64":
            pair.append(pd.Series([float("nan") if v is None else v for v in values], dtype=kind))
        else:
            pair.append(pd.Series(values, dtype=kind))
    return pair[0], pair[1]


@settings(max_examples=100, deadline=None)
@given(
    st.integers(0, 12).flatmap(lambda n: st.lists(_column_pairs(n), min_size=1, max_size=3)),
    st.sampled_from(["*", ".", "+", "**", "区", "1", ""]),
    st.data(),
)
def test_arrow_shares_equal_the_pandas_reading(
    columns: list[tuple[pd.Series, pd.Series]], char: str, data: st.DataObject
) -> None:
    """The equal and visible shares `measure` counts in Arrow are the ones its pandas reading
    gave, on every column type on either side (numbers, floats, mixed objects, text, nulls),
    for any mask character, with the view's rows a subset of the source's in another order."""
    n = len(columns[0][0])
    source_index = pd.Index(range(100, 100 + n))
    order = data.draw(st.permutations(list(source_index)))
    kept = order[: data.draw(st.integers(0, n))]
    names = [f"c{i}" for i in range(len(columns))]
    source = pd.DataFrame(
        {name: raw.set_axis(source_index) for name, (_, raw) in zip(names, columns, strict=True)}
    )
    frame = pd.DataFrame(
        {
            name: released.set_axis(source_index).loc[kept]
            for name, (released, _) in zip(names, columns, strict=True)
        },
        index=pd.Index(kept, dtype=source_index.dtype),
    )
    masks = {name: char for name in names if data.draw(st.booleans())}
    risk = measure(frame, source, [], masks)
    assert (risk.equal_share, risk.visible_share) == _pandas_shares(frame, source, masks)


def test_arrow_shares_equal_the_pandas_reading_for_an_empty_mask_character() -> None:
    """The corner the property may miss: with an empty mask character every value counts
    length + 1 occurrences, so each row's visible characters are clipped at 0 (not -1)."""
    index = pd.Index([7, 3, 5])
    frame = pd.DataFrame({"m": pd.Series(["ab", None, ""], index=index, dtype="string")})
    source = pd.DataFrame({"m": pd.Series(["abc", "x", "yz"], index=index, dtype="string")})
    risk = measure(frame, source, [], {"m": ""})
    assert (risk.equal_share, risk.visible_share) == _pandas_shares(frame, source, {"m": ""})
    assert risk.visible_share == (("m", 0.0),)
