"""Promise 4: privacy models hold over the whole released view. Property tests against an
independent, plain-Python count of equivalence classes; and row filters against a reference."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.model.grant import Condition, PrivacyModel, RowFilter
from gateway.privacy.filters import row_mask
from gateway.privacy.kanon import PrivacyUnreachable, enforce

rows = st.lists(
    st.tuples(
        st.sampled_from(["男", "女"]),
        st.sampled_from(["东城区", "西城区", "朝阳区", None]),
        st.integers(0, 4),
    ),
    min_size=1,
    max_size=120,
)


def frame_of(items: list[tuple[Any, ...]]) -> pd.DataFrame:
    return pd.DataFrame(items, columns=["gender", "district", "diagnosis"]).astype(
        {"gender": "string", "district": "string", "diagnosis": "Int64"}
    )


def classes(frame: pd.DataFrame, keys: list[str]) -> Counter[tuple[Any, ...]]:
    """Independent of pandas groupby: count key tuples in plain Python (None for nulls)."""
    return Counter(
        tuple(None if pd.isna(v) else v for v in row) for row in frame[keys].itertuples(index=False)
    )


@settings(max_examples=150)
@given(rows, st.integers(2, 6), st.sampled_from([0.0, 0.1, 0.3, 0.5]))
def test_k_anonymity_holds_over_the_whole_view(
    items: list[tuple[Any, ...]], k: int, limit: float
) -> None:
    """Either every class in the released view has at least k rows and at most the allowed
    share was suppressed, or nothing is released at all."""
    frame = frame_of(items)
    model = PrivacyModel(k, ("gender", "district"), max_suppression=limit)
    try:
        released, report = enforce(frame, model)
    except PrivacyUnreachable:
        counts = classes(frame, ["gender", "district"])
        small = sum(n for n in counts.values() if n < k)
        assert small / len(frame) > limit  # refused only when it truly could not be met
        return
    counts = classes(released, ["gender", "district"])
    assert all(n >= k for n in counts.values())
    assert report.suppressed == len(frame) - len(released) <= limit * len(frame)
    if len(released):
        assert report.k == min(counts.values())


@settings(max_examples=150)
@given(rows, st.integers(2, 3))
def test_l_diversity_holds(items: list[tuple[Any, ...]], l_value: int) -> None:
    """With l, every released class also holds at least l distinct sensitive values."""
    frame = frame_of(items)
    model = PrivacyModel(
        2, ("gender", "district"), l=l_value, sensitive="diagnosis", max_suppression=0.5
    )
    try:
        released, report = enforce(frame, model)
    except PrivacyUnreachable:
        return
    values: defaultdict[tuple[Any, ...], set[Any]] = defaultdict(set)
    for row in released[["gender", "district", "diagnosis"]].itertuples(index=False):
        key = tuple(None if pd.isna(v) else v for v in row[:2])
        values[key].add(None if pd.isna(row[2]) else row[2])
    assert all(len(v) >= l_value for v in values.values())
    if len(released):
        assert report.l is not None
        assert report.l >= l_value


def test_unreachable_model_releases_nothing_and_says_why() -> None:
    """When k cannot be met within the limit, even with every quasi-identifier generalized to
    the top of its hierarchy, the error names k, the QIs and the limit."""
    frame = frame_of([("男", "东城区", 1), ("女", "西城区", 2), ("男", "东城区", 3)])
    with pytest.raises(
        PrivacyUnreachable,
        match=r"k=4 on gender, district cannot be reached within 10.0% suppression",
    ):
        enforce(frame, PrivacyModel(4, ("gender", "district"), max_suppression=0.1))


# --- row filters -----------------------------------------------------------------------------

values = st.lists(st.one_of(st.none(), st.integers(0, 100)), min_size=1, max_size=50)


def reference(value: int | None, op: str, arg: Any) -> bool:
    if op == "is_null":
        return value is None
    if op == "not_null":
        return value is not None
    if value is None:
        return False  # SQL semantics: null satisfies no comparison and no membership
    if op in ("in", "not_in"):
        return (value in arg) == (op == "in")
    result: bool = {
        "eq": value == arg,
        "ne": value != arg,
        "lt": value < arg,
        "lte": value <= arg,
        "gt": value > arg,
        "gte": value >= arg,
    }[op]
    return result


@given(
    values,
    st.sampled_from(["eq", "ne", "lt", "lte", "gt", "gte", "in", "not_in", "is_null", "not_null"]),
    st.integers(0, 100),
)
def test_row_filter_matches_reference_semantics(items: list[int | None], op: str, arg: int) -> None:
    """Every operator keeps exactly the rows a plain-Python reference keeps; nulls never pass a
    comparison (a filter cannot leak rows with unknown values)."""
    frame = pd.DataFrame({"age": pd.array(items, dtype="Int64")})
    value: Any = (
        (arg, arg + 1)
        if op in ("in", "not_in")
        else (None if op in ("is_null", "not_null") else arg)
    )
    mask = row_mask(frame, RowFilter("all", (Condition("age", op, value),)))
    assert mask.tolist() == [reference(v, op, value) for v in items]


def test_nested_filters() -> None:
    """`all` and `any` nest: age >= 18 and (city = 北京市 or city starts with 上)."""
    frame = pd.DataFrame(
        {
            "age": pd.array([17, 30, 40, 50], dtype="Int64"),
            "city": pd.array(["北京市", "北京市", "上海市", "广州市"], dtype="string"),
        }
    )
    rule = RowFilter(
        "all",
        (
            Condition("age", "gte", 18),
            RowFilter(
                "any", (Condition("city", "eq", "北京市"), Condition("city", "startswith", "上"))
            ),
        ),
    )
    assert row_mask(frame, rule).tolist() == [False, True, True, False]
