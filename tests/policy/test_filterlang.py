"""One filter language (gateway/filterlang.py) for policy row filters and API query filters:
the same operators under the same names, one evaluator, and an unknown operator is an error on
both sides, never a guess (promise 3: filters run on what they are given, exactly)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.errors import BadRequest
from gateway.model.filterlang import NAMES, OPERATORS, SPELLINGS, UnknownOperator, mask, operator
from gateway.model.grant import Condition, RowFilter
from gateway.privacy.filters import row_mask
from gateway.query import apply, parse_query
from tests.policy.test_policy_files import GRANT, HEADER, problems, write

TYPES = {"n": "integer", "s": "string"}
TEXT = st.text(alphabet="ab北*-", max_size=3)  # no comma: `__in` splits on it
INTS = st.integers(-3, 3)


def _api_mask(frame: pd.DataFrame, parameter: str, raw: str) -> list[bool]:
    query = parse_query({parameter: [raw]}, TYPES, max_size=1000, default_size=1000)
    kept = set(apply(frame, query)["_rid"].tolist())
    return [i in kept for i in range(len(frame))]


@st.composite
def _filters(draw: st.DrawFn) -> tuple[str, str, Any, str]:
    """(column, spelling, typed value, the same value as an API parameter value)."""
    column = draw(st.sampled_from(["n", "s"]))
    usable = [op for op in OPERATORS if not (op.text_only and column == "n")]
    op = draw(st.sampled_from(usable))
    spelling = draw(st.sampled_from(op.spellings))
    scalar = INTS if column == "n" else TEXT
    if op.takes == "flag":
        flag = draw(st.booleans())
        return column, spelling, flag, "1" if flag else "0"
    if op.takes == "list":
        items = draw(st.lists(scalar, min_size=1, max_size=3))
        if column == "s" and "" in items:
            items = [i for i in items if i] or ["a"]  # an empty item is not expressible in a,b
        return column, spelling, tuple(items), ",".join(str(i) for i in items)
    value = draw(scalar)
    return column, spelling, value, str(value)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(st.none() | INTS, st.none() | TEXT), min_size=1, max_size=12),
    _filters(),
)
def test_policy_and_api_filters_give_identical_masks(
    rows: list[tuple[int | None, str | None]], drawn: tuple[str, str, Any, str]
) -> None:
    """Promise 3: one filter, written as a policy condition or as an API parameter (in any
    accepted spelling), keeps exactly the same rows; nulls pass only a null test."""
    column, spelling, value, raw = drawn
    frame = pd.DataFrame(
        {
            "n": pd.array([r[0] for r in rows], dtype="Int64"),
            "s": pd.Series([r[1] for r in rows], dtype=object),
        }
    )
    policy = row_mask(frame, RowFilter("all", (Condition(column, spelling, value),))).tolist()
    assert policy == _api_mask(frame, f"{column}__{spelling}", raw)
    if operator(spelling).takes != "flag":
        assert not (frame[column].isna() & pd.Series(policy)).any()  # nulls never pass


def test_every_spelling_names_one_operator() -> None:
    """Each operator has one canonical name; the older spellings of either side map to it."""
    assert len(SPELLINGS) == len(set(SPELLINGS))
    assert {operator(s).name for s in SPELLINGS} == set(NAMES)
    for old, new in [("eq", "exact"), ("ne", "not"), ("not_in", "notin"), ("is_null", "isnull")]:
        assert operator(old).name == new


@pytest.mark.parametrize("bogus", ["like", "LTE", "le", "", "lte ", "regex", "__class__"])
def test_an_unknown_operator_is_a_clear_error_everywhere(bogus: str) -> None:
    """An unknown operator is refused, naming the known ones (the old API evaluator treated any
    unknown operator as `<=`)."""
    frame = pd.DataFrame({"n": pd.array([1, 2], dtype="Int64")})
    with pytest.raises(UnknownOperator, match="use one of: exact"):
        mask(frame["n"], bogus, 1)
    if bogus:
        with pytest.raises(BadRequest) as info:
            parse_query({f"n__{bogus}": ["1"]}, TYPES, max_size=10, default_size=10)
        assert "use one of: exact" in info.value.detail


def test_policy_files_accept_every_spelling_and_refuse_unknown_ones(tmp_path: Path) -> None:
    """A policy file may use any spelling of the shared language (`exact` as well as `eq`, the
    new `contains`); an unknown one is a problem at file:line naming the known operators."""
    from gateway.policy.files import load_policies

    conditions = "\n".join(
        f"      - {{column: {'income' if not op.text_only else 'city'}, op: {spelling}"
        + (
            ""
            if op.takes == "flag"
            else ", value: [1, 2]"
            if op.takes == "list"
            else (", value: 北" if op.text_only else ", value: 1")
        )
        + "}"
        for op in OPERATORS
        for spelling in op.spellings
    )
    text = HEADER + GRANT.replace(
        "    columns:\n", f"    row_filter:\n{conditions}\n    columns:\n"
    )
    policies = write(tmp_path, text + "      city: keep\n")
    loaded = load_policies(policies, tmp_path)
    assert loaded.grants[0].row_filter is not None
    assert len(loaded.grants[0].row_filter.items) == len(SPELLINGS)
    bad = HEADER + GRANT.replace(
        "    columns:\n", "    row_filter: {column: city, op: like, value: x}\n    columns:\n"
    )
    found = problems(tmp_path, bad + "      city: keep\n")
    assert any("unknown operator 'like'" in p and "exact" in p for p in found), found


def test_text_operators_refuse_integer_columns() -> None:
    """`startswith` and `contains` apply to text, on both sides."""
    for op in ("startswith", "contains"):
        with pytest.raises(BadRequest, match="applies to text columns"):
            parse_query({f"n__{op}": ["1"]}, TYPES, max_size=10, default_size=10)
