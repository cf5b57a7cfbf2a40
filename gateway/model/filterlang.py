"""The filter language, one for policy row filters (on source values) and API query filters (on
released values): one operator table, one vectorized evaluator.

Each operator has one canonical name (Datasette's: `col__exact=`, `col__notin=`, ...) and keeps
the other spelling either side used before (`eq`, `not_in`, `is_null`, ...): every spelling is
accepted everywhere. An unknown operator is an error naming the known ones, never a guess.
Nulls never satisfy a comparison (SQL semantics), so a filter cannot select unknown rows by
accident. Part of the leaf model package: it imports nothing else from the gateway.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

if TYPE_CHECKING:
    import pandas as pd

Test: TypeAlias = "Callable[[pd.Series, Any], pd.Series]"


class UnknownOperator(ValueError):
    """A filter names an operator the language does not have."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown filter operator {name!r}; use one of: {', '.join(NAMES)}")
        self.name = name


@dataclass(frozen=True)
class Operator:
    name: str  # the canonical spelling
    aliases: tuple[str, ...]  # older spellings, accepted everywhere
    takes: Literal["value", "list", "flag"]  # a scalar, a list, or a boolean (default true)
    text_only: bool  # applies to text columns only
    words: str  # how `policy explain` reads it: "age >= 18"
    test: Test

    @property
    def spellings(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


def _text(column: pd.Series) -> Any:
    return column.astype("string").str


OPERATORS = (
    Operator("exact", ("eq",), "value", False, "=", lambda c, v: c == v),
    Operator("not", ("ne",), "value", False, "!=", lambda c, v: c != v),
    Operator("in", (), "list", False, "in", lambda c, v: c.isin(list(v))),
    Operator("notin", ("not_in",), "list", False, "not in", lambda c, v: ~c.isin(list(v))),
    Operator("gt", (), "value", False, ">", lambda c, v: c > v),
    Operator("gte", (), "value", False, ">=", lambda c, v: c >= v),
    Operator("lt", (), "value", False, "<", lambda c, v: c < v),
    Operator("lte", (), "value", False, "<=", lambda c, v: c <= v),
    Operator("startswith", (), "value", True, "starts with", lambda c, v: _text(c).startswith(v)),
    Operator(
        "contains", (), "value", True, "contains", lambda c, v: _text(c).contains(v, regex=False)
    ),
    Operator("isnull", ("is_null",), "flag", False, "is null", lambda c, v: c.isna() == v),
    Operator("notnull", ("not_null",), "flag", False, "is not null", lambda c, v: c.notna() == v),
)
NAMES = tuple(op.name for op in OPERATORS)
SPELLINGS = tuple(spelling for op in OPERATORS for spelling in op.spellings)
_BY_SPELLING = {spelling: op for op in OPERATORS for spelling in op.spellings}


def operator(spelling: str) -> Operator:
    """The operator of this spelling; UnknownOperator if there is none."""
    found = _BY_SPELLING.get(spelling)
    if found is None:
        raise UnknownOperator(spelling)
    return found


def mask(column: pd.Series, op: str, value: Any) -> pd.Series:
    """True where the column's value satisfies `op value` (a typed value: an int for integer
    columns, a tuple for list operators, a bool or None (true) for flags). Vectorized; a null
    satisfies only a null test. UnknownOperator for an operator the language does not have."""
    definition = operator(op)
    if definition.takes == "flag":
        # A policy file writes `{op: is_null}` with no value: the test holds (true).
        return definition.test(column, True if value is None else bool(value)).astype(bool)
    hits = definition.test(column, value)
    result: pd.Series = hits.fillna(False).astype(bool) & column.notna()
    return result
