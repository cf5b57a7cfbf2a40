"""Counts, sums and means by one or two grouping columns, on source values, as released tables:
exact with small-cell suppression (gateway/aggregate/suppress.py), or noisy with differential
privacy (gateway/aggregate/noise.py). Vectorized: one pass of integer codes over the rows."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeAlias

from gateway.aggregate import suppress
from gateway.model.aggregate import MAX_CELLS, AggregateRules

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pandas as pd

Ints: TypeAlias = "npt.NDArray[np.int64]"
SEPARATOR = "\x1f"  # joins the keys of two grouping columns (unit separator: not in values)


class TooManyCells(ValueError):
    """The grouping would make a table larger than MAX_CELLS."""


@dataclass(frozen=True)
class Request:
    group_by: tuple[str, ...]  # one or two columns
    measure: str  # count | sum | mean
    column: str | None  # for sum and mean


@dataclass(frozen=True)
class Table:
    """Per grouping column its categories; per cell the values (count, sum, mean inputs)."""

    categories: tuple[tuple[str | None, ...], ...]
    counts: Ints  # rows per cell, shape (len(cat0), len(cat1) or 1)
    sums: Ints  # clamped (dp) or exact sums of the measure column
    present: Ints  # rows with a value of the measure column


def _codes(
    series: pd.Series, declared: tuple[str, ...] | None, *, other: bool
) -> tuple[Ints, tuple[str | None, ...]]:
    """Integer codes of a grouping column, by its declared categories or those of the data.
    Rows outside the declared categories (or null) get the code of a last group `None` when
    `other` (so every table adds up to the same total), else -1 (counted nowhere)."""
    import numpy as np
    import pandas as pd

    text = series.astype("string")
    known = list(declared) if declared is not None else sorted(text.dropna().unique().tolist())
    if len(known) > MAX_CELLS:
        raise TooManyCells(f"{series.name} has more than {MAX_CELLS} values")
    codes = pd.Categorical(text, categories=known).codes.astype(np.int64)
    categories: tuple[str | None, ...] = tuple(known)
    if other and (codes < 0).any():
        codes = np.where(codes < 0, len(known), codes)
        categories = (*categories, None)
    return codes, categories


def table(frame: pd.DataFrame, rules: AggregateRules, request: Request, *, clamp: bool) -> Table:
    import numpy as np
    import pandas as pd

    other = rules.dp is None  # exact tables count every row; dp counts the declared groups
    coded = [_codes(frame[c], rules.categories(c), other=other) for c in request.group_by]
    sizes = [len(categories) for _, categories in coded] + [1] * (2 - len(coded))
    if sizes[0] * sizes[1] > MAX_CELLS:
        raise TooManyCells(f"the table would have {sizes[0] * sizes[1]} cells")
    inside = np.ones(len(frame), dtype=bool)
    flat = np.zeros(len(frame), dtype=np.int64)
    for codes, _ in coded:
        inside &= codes >= 0
    flat = coded[0][0] * sizes[1] + (coded[1][0] if len(coded) > 1 else 0)
    flat = flat[inside]
    cells = sizes[0] * sizes[1]
    counts = np.bincount(flat, minlength=cells).astype(np.int64)
    sums = np.zeros(cells, dtype=np.int64)
    present = counts.copy()
    if request.column is not None:
        values = pd.to_numeric(frame[request.column], errors="coerce")[inside]
        has = values.notna().to_numpy()
        numbers = values.fillna(0).to_numpy()
        bounds = rules.bounds(request.column)
        if clamp and bounds is not None:
            numbers = np.clip(numbers, bounds.lower, bounds.upper)
        np.add.at(sums, flat, numbers.astype(np.int64))
        present = np.bincount(flat[has], minlength=cells).astype(np.int64)
    shape = (sizes[0], sizes[1])
    return Table(
        tuple(c for _, c in coded),
        counts.reshape(shape),
        sums.reshape(shape),
        present.reshape(shape),
    )


def _value(measure: str, count: int, total: int, present: int) -> Any:
    if measure == "count":
        return int(count)
    if measure == "sum":
        return int(total)
    return round(total / present, 2) if present > 0 else None


def _entry(keys: dict[str, str | None], value: Any, withheld: bool) -> dict[str, Any]:
    if withheld:
        return {"key": keys, "value": None, "withheld": True}
    return {"key": keys, "value": value}


def suppressed(t: Table, request: Request, threshold: int) -> dict[str, Any]:
    """The exact table with small cells (and the complementary cells protecting them) withheld.
    The pattern comes from the row counts, whatever the measure."""
    counts = t.counts
    two = len(request.group_by) == 2
    pattern = (
        suppress.two_way(counts, threshold) if two else suppress.one_way(counts[:, 0], threshold)
    )
    m = request.measure
    names = request.group_by
    cells = []
    for i, first in enumerate(t.categories[0]):
        for j in range(counts.shape[1]):
            keys = {names[0]: first}
            if two:
                keys[names[1]] = t.categories[1][j]
            value = _value(m, counts[i, j], t.sums[i, j], t.present[i, j])
            cells.append(_entry(keys, value, bool(pattern.cells[i, j])))
    out: dict[str, Any] = {"cells": cells}
    if two:
        margins = {}
        for axis, name in enumerate(names):
            other = 1 - axis
            c, s, p = (counts.sum(axis=other), t.sums.sum(axis=other), t.present.sum(axis=other))
            mask = pattern.rows if axis == 0 else pattern.columns
            margins[name] = [
                _entry({name: key}, _value(m, c[k], s[k], p[k]), bool(mask[k]))
                for k, key in enumerate(t.categories[axis])
            ]
        out["margins"] = margins
    total = _value(m, counts.sum(), t.sums.sum(), t.present.sum())
    out["total"] = _entry({}, total, pattern.total)
    return out


def private(
    frame: pd.DataFrame, t: Table, rules: AggregateRules, request: Request
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The table with OpenDP noise (counts and sums; a mean is a noisy sum over a noisy count,
    each measured with half the query's budget). Margins and the total are sums of the noisy
    cells (post-processing: free). Returns (body, what the measurements cost)."""
    import numpy as np

    from gateway.aggregate import noise  # OpenDP: imported at the first noisy table, not at start

    assert rules.dp is not None  # noqa: S101 - only called for dp rules
    dp = rules.dp
    shape = t.counts.shape
    keys = t.categories
    share = Decimal(2) if request.measure == "mean" else Decimal(1)
    eps, delta = dp.epsilon / share, dp.delta / share
    counts = sums = None
    scales: dict[str, float] = {}
    spent_eps, spent_delta = 0.0, 0.0
    if request.measure in ("count", "mean"):
        labels = _labels(frame, request, keys, present_only=request.measure == "mean")
        names = [SEPARATOR.join(str(k) for k in combo) for combo in _combos(keys)]
        release = noise.noisy_counts(labels, names, dp.mechanism, eps, delta)
        counts, scales["count"] = release.values.reshape(shape), release.scale
        spent_eps, spent_delta = spent_eps + release.epsilon, spent_delta + release.delta
    if request.measure in ("sum", "mean"):
        assert request.column is not None  # noqa: S101 - checked by the handler
        bounds = rules.bounds(request.column)
        assert bounds is not None  # noqa: S101 - checked by the handler
        release = noise.noisy_sums(t.sums.reshape(-1), bounds, dp.mechanism, eps, delta)
        sums, scales["sum"] = release.values.reshape(shape), release.scale
        spent_eps, spent_delta = spent_eps + release.epsilon, spent_delta + release.delta

    def value(c: Any, s: Any) -> Any:
        if request.measure == "count":
            return int(c)
        if request.measure == "sum":
            return int(s)
        if c <= 0:
            return None
        # A noisy sum over a noisy count can fall outside the bounds: clamp (post-processing).
        return round(min(max(float(s) / float(c), bounds_[0]), bounds_[1]), 2)

    found = rules.bounds(request.column) if request.column else None
    bounds_ = (found.lower, found.upper) if found else (0, 0)
    names_ = request.group_by
    two = len(names_) == 2
    zero = np.zeros(shape, dtype=np.int64)
    c_, s_ = (counts if counts is not None else zero), (sums if sums is not None else zero)
    cells = []
    for i, first in enumerate(keys[0]):
        for j in range(shape[1]):
            key = {names_[0]: first} | ({names_[1]: keys[1][j]} if two else {})
            cells.append({"key": key, "value": value(c_[i, j], s_[i, j])})
    out: dict[str, Any] = {"cells": cells}
    if two:
        out["margins"] = {
            name: [
                {
                    "key": {name: k},
                    "value": value(c_.sum(axis=1 - axis)[n], s_.sum(axis=1 - axis)[n]),
                }
                for n, k in enumerate(keys[axis])
            ]
            for axis, name in enumerate(names_)
        }
    out["total"] = {"key": {}, "value": value(c_.sum(), s_.sum())}
    cost = {"scale": scales, "epsilon": spent_eps, "delta": spent_delta}
    return out, cost


def _combos(keys: tuple[tuple[str | None, ...], ...]) -> list[tuple[str | None, ...]]:
    if len(keys) == 1:
        return [(k,) for k in keys[0]]
    return [(a, b) for a in keys[0] for b in keys[1]]


def _labels(
    frame: pd.DataFrame,
    request: Request,
    keys: tuple[tuple[str | None, ...], ...],
    *,
    present_only: bool,
) -> list[str]:
    """Each row's cell label (the joined keys) for OpenDP's count by categories."""
    text = frame[request.group_by[0]].astype("string").fillna("")
    for name in request.group_by[1:]:
        text = text + SEPARATOR + frame[name].astype("string").fillna("")
    if present_only and request.column is not None:
        text = text[frame[request.column].notna().to_numpy()]
    return text.tolist()
