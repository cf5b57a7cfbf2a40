"""Parsing and validating a grant's `aggregate` rules (gateway/model/aggregate.py) with the policy
files: every problem names its key and what to write instead. And the budget periods."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from gateway.model.aggregate import (
    DEFAULT_MIN_CELL,
    MAX_CATEGORIES,
    MAX_CELLS,
    MECHANISMS,
    PERIODS,
    AggregateRules,
    Bounds,
    Privacy,
)

_KEYS = {"group_by", "measures", "min_cell", "dp"}
_DP_KEYS = {"mechanism", "epsilon", "delta", "budget"}
_BUDGET_KEYS = {"epsilon", "delta", "period"}

Problem = Callable[[tuple[str | int, ...], str, str], None]


def _number(
    problem: Problem, raw: Any, path: tuple[str | int, ...], *, upper: Decimal | None = None
) -> Decimal | None:
    """A positive finite number (YAML may give 1e-6 as a string)."""
    try:
        value = Decimal(str(raw)) if not isinstance(raw, bool) else None
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite() or value <= 0 or (upper and value >= upper):
        limit = f" and below {upper}" if upper else ""
        problem(path, f"must be a number above 0{limit}, got {raw!r}", "e.g. 0.5 or 1e-6")
        return None
    return value


def _group_by(
    problem: Problem,
    raw: Any,
    path: tuple[str | int, ...],
    columns: Sequence[str],
    protected: Sequence[str],
) -> list[tuple[str, tuple[str, ...] | None]]:
    if isinstance(raw, list):
        raw = dict.fromkeys(raw)
    if not isinstance(raw, dict) or not raw:
        problem(path, "must map grouping columns to their categories (or null)", "")
        return []
    found: list[tuple[str, tuple[str, ...] | None]] = []
    for name, categories in raw.items():
        cpath = (*path, str(name))
        if name not in columns:
            problem(cpath, f"no column {name!r} in this dataset", f"columns: {', '.join(columns)}")
            continue
        if categories is None:
            if name in protected:
                # Promise 2: the groups' keys would be the column's raw values.
                problem(
                    cpath,
                    f"{name!r} is classified personal or sensitive: list its public categories",
                    "categories from the data would release its raw values as group keys",
                )
                continue
            found.append((name, None))
            continue
        if (
            not isinstance(categories, list)
            or not categories
            or not all(isinstance(c, str | int) and not isinstance(c, bool) for c in categories)
            or len(categories) > MAX_CATEGORIES
            or len({str(c) for c in categories}) != len(categories)
        ):
            problem(
                cpath,
                f"categories must be a list of 1 to {MAX_CATEGORIES} distinct values, or null",
                "null takes them from the data (allowed without dp only)",
            )
            continue
        found.append((name, tuple(str(c) for c in categories)))
    return found


def _measures(
    problem: Problem, raw: Any, path: tuple[str | int, ...], integers: Sequence[str]
) -> list[tuple[str, Bounds]]:
    if raw is None:
        return []
    if not isinstance(raw, dict):
        problem(path, "must map integer columns to {lower, upper} bounds", "")
        return []
    found: list[tuple[str, Bounds]] = []
    for name, spec in raw.items():
        cpath = (*path, str(name))
        if name not in integers:
            problem(cpath, f"{name!r} is not an integer column of this dataset", "")
            continue
        if not isinstance(spec, dict) or set(spec) != {"lower", "upper"}:
            problem(cpath, "must be {lower: N, upper: M}", "values are clamped to these bounds")
            continue
        lower, upper = spec["lower"], spec["upper"]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (lower, upper)) or not (
            -(10**12) <= lower < upper <= 10**12
        ):
            problem(cpath, "lower and upper must be integers, lower < upper, within ±10^12", "")
            continue
        found.append((name, Bounds(lower, upper)))
    return found


def _dp(problem: Problem, raw: Any, path: tuple[str | int, ...]) -> Privacy | None:
    if not isinstance(raw, dict):
        problem(path, "must be a mapping (mechanism, epsilon, delta, budget)", "")
        return None
    for key in raw:
        if key not in _DP_KEYS:
            problem(
                (*path, str(key)), "unknown key", f"allowed keys: {', '.join(sorted(_DP_KEYS))}"
            )
    mechanism = raw.get("mechanism", "laplace")
    if mechanism not in MECHANISMS:
        problem((*path, "mechanism"), f"unknown mechanism {mechanism!r}", "laplace or gaussian")
        return None
    epsilon = _number(problem, raw.get("epsilon"), (*path, "epsilon"))
    delta = Decimal(0)
    if mechanism == "gaussian":
        # (below 0.01: OpenDP's scale search relies on it; sensible deltas are far smaller)
        delta = _number(
            problem, raw.get("delta"), (*path, "delta"), upper=Decimal("0.01")
        ) or Decimal(0)
    elif raw.get("delta") not in (None, 0):
        problem((*path, "delta"), "laplace is pure epsilon-DP: give no delta", "")
    budget = raw.get("budget")
    if not isinstance(budget, dict):
        problem((*path, "budget"), "is required: {epsilon, delta, period}", "")
        return None
    for key in budget:
        if key not in _BUDGET_KEYS:
            problem(
                (*path, "budget", str(key)), "unknown key", "allowed keys: delta, epsilon, period"
            )
    budget_epsilon = _number(problem, budget.get("epsilon"), (*path, "budget", "epsilon"))
    budget_delta = Decimal(0)
    if mechanism == "gaussian":
        budget_delta = _number(
            problem, budget.get("delta"), (*path, "budget", "delta"), upper=Decimal(1)
        ) or Decimal(0)
    period = budget.get("period", "day")
    if period not in PERIODS:
        problem((*path, "budget", "period"), f"unknown period {period!r}", "day, week or month")
        return None
    if epsilon is None or budget_epsilon is None or (mechanism == "gaussian" and not delta):
        return None
    if epsilon > budget_epsilon or delta > budget_delta:
        problem(path, "one query costs more than the whole budget", "raise budget or lower epsilon")
        return None
    return Privacy(mechanism, epsilon, delta, budget_epsilon, budget_delta, period)


def parse_rules(
    problem: Problem,
    raw: Any,
    path: tuple[str | int, ...],
    columns: Sequence[str],
    integers: Sequence[str],
    protected: Sequence[str] = (),
) -> AggregateRules | None:
    """The `aggregate` mapping of a grant, or None (with problems reported) if invalid."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        problem(path, "must be a mapping (group_by, measures, min_cell, dp)", "")
        return None
    for key in raw:
        if key not in _KEYS:
            problem((*path, str(key)), "unknown key", f"allowed keys: {', '.join(sorted(_KEYS))}")
    group_by = _group_by(problem, raw.get("group_by"), (*path, "group_by"), columns, protected)
    measures = _measures(problem, raw.get("measures"), (*path, "measures"), integers)
    min_cell = raw.get("min_cell", DEFAULT_MIN_CELL)
    if not isinstance(min_cell, int) or isinstance(min_cell, bool) or not 2 <= min_cell <= 10**6:
        problem((*path, "min_cell"), "must be an integer from 2 to 1000000", "")
        return None
    dp = _dp(problem, raw["dp"], (*path, "dp")) if "dp" in raw else None
    if "dp" in raw and dp is None:
        return None
    if dp is not None:
        open_ = [name for name, categories in group_by if categories is None]
        if open_:
            problem(
                (*path, "group_by", open_[0]),
                "with dp every grouping column needs its public categories",
                "the set of groups would otherwise disclose who is in the data",
            )
            return None
        widest = max((len(c or ()) for _, c in group_by), default=0)
        if widest and widest**2 > MAX_CELLS and len(group_by) > 1:
            problem(
                (*path, "group_by"), f"two of these columns make more than {MAX_CELLS} cells", ""
            )
    if not group_by:
        return None
    return AggregateRules(tuple(group_by), tuple(measures), min_cell, dp)


def period_of(period: str, now: float) -> tuple[int, int]:
    """(index of the UTC period holding `now`, seconds until it ends)."""
    day = int(now // 86_400)
    if period == "day":
        return day, 86_400 - int(now % 86_400)
    if period == "week":  # ISO weeks begin on Monday; 1970-01-01 was a Thursday
        week = (day + 3) // 7
        return week, (week * 7 - 3 + 7) * 86_400 - int(now)
    moment = dt.datetime.fromtimestamp(now, dt.UTC)
    index = moment.year * 12 + moment.month - 1
    year, month = divmod(index + 1, 12)
    end = dt.datetime(year, month + 1, 1, tzinfo=dt.UTC).timestamp()
    return index, max(1, math.ceil(end - now))
