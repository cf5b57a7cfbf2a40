"""Mondrian's quasi-identifiers as rank axes: numeric and date values in order, texts in a
hierarchy's depth-first order (or sorted), and what a label over a range of ranks costs (NCP).
Used by the search (mondrian_search.py) and the labels (mondrian.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pandas as pd

KINDS = ("numeric", "date", "ordered", "categorical")
SET_LIMIT = 10  # a class of more distinct values than this never releases them as a set
TOP = "*"

Ints: TypeAlias = "npt.NDArray[np.int64]"
Floats: TypeAlias = "npt.NDArray[np.float64]"
Bools: TypeAlias = "npt.NDArray[np.bool_]"
Texts: TypeAlias = "npt.NDArray[np.object_]"


@dataclass(frozen=True)
class _Scalar:
    """A numeric or date quasi-identifier: ranks 0..R-1 in value order (null last, if any),
    with the value and its text per non-null rank."""

    kind: str
    ranks: Ints
    size: int  # R: distinct values, null included
    null: int  # the rank of null, or -1
    values: Floats  # per non-null rank
    shown: Texts  # per non-null rank
    negative: bool  # numeric with negative values: intervals as [lo, hi]
    arrow: Any  # pa.StringArray: `shown` for Arrow kernels

    @property
    def spread(self) -> float:
        return float(self.values[-1] - self.values[0]) if len(self.values) else 0.0


@dataclass(frozen=True)
class _Tree:
    """An ordered or categorical quasi-identifier: ranks 0..R-1 in the order cuts follow (null
    last, if any) and a tree over them. `codes[L]` gives the node of each rank at level L (0:
    the value itself; the last level: the top, one node), numbered so that nodes rise along the
    rank order; `cost[L, node]` is the NCP of releasing that node, and its label is
    `arrow[offsets[L] + node]`."""

    kind: str
    ranks: Ints
    size: int
    null: int
    codes: Ints  # (levels, R)
    cost: Floats  # (levels, R)
    lexical: Ints  # lexicographic position per rank (null last)
    sets: bool  # a class may release the set of its values
    arrow: Any  # pa.StringArray: every level's node labels, one level after the other
    offsets: Ints  # where each level starts in `arrow`

    @property
    def deep(self) -> bool:
        """Whether there are levels between the values and the top."""
        return bool(self.codes.shape[0] > 2)


_Axis = _Scalar | _Tree


def _distinct_values(column: pd.Series) -> tuple[npt.NDArray[np.intp], pd.Index]:
    """Codes of the distinct non-null values (null: -1). Conversions then run once per
    distinct value, not once per row."""
    import pandas as pd

    codes, uniques = pd.factorize(column, use_na_sentinel=True)
    return codes, pd.Index(uniques)


def _refactorize(
    codes: npt.NDArray[np.intp], converted: pd.Index | npt.NDArray[np.generic]
) -> tuple[npt.NDArray[np.intp], pd.Index]:
    """Codes into the sorted distinct converted values (two values may convert to one)."""
    import numpy as np
    import pandas as pd

    inner, uniques = pd.factorize(converted, sort=True, use_na_sentinel=True)
    inner = np.append(inner, -1)  # code -1 (null) stays null
    return inner[codes], pd.Index(uniques)


def _numeric_axis(qi: str, column: pd.Series) -> _Scalar:
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    if pd.api.types.is_bool_dtype(column.dtype):
        column = column.astype("Int64")
    codes, uniques = _distinct_values(column)
    if not pd.api.types.is_numeric_dtype(uniques.dtype):
        try:
            uniques = pd.Index(pd.to_numeric(pd.Series(uniques.astype("string"))))
        except (ValueError, TypeError):
            raise ValueError(
                f"quasi-identifier {qi!r} is declared numeric but holds values that are not "
                "numbers; declare it categorical or clean the column"
            ) from None
    codes, uniques = _refactorize(codes, uniques)
    values = np.asarray(uniques, dtype=np.float64)
    if not np.isfinite(values).all():
        raise ValueError(
            f"quasi-identifier {qi!r} holds infinite values; replace them before releasing"
        )
    integral = pd.api.types.is_integer_dtype(uniques.dtype)
    if not integral and len(values) and (values == np.floor(values)).all():
        integral = bool(np.abs(values).max() < 2**53)
    if integral:
        numbers = pa.array(np.asarray(uniques).astype(np.int64)).cast(pa.string())
        shown = np.asarray(numbers.to_numpy(zero_copy_only=False), dtype=object)
    else:
        shown = np.asarray([np.format_float_positional(v, trim="-") for v in values], object)
    return _scalar_axis("numeric", codes, values, shown, bool((values < 0).any()))


def _date_axis(qi: str, column: pd.Series) -> _Scalar:
    import numpy as np
    import pandas as pd

    codes, uniques = _distinct_values(column)
    try:
        if not pd.api.types.is_datetime64_any_dtype(uniques.dtype):
            uniques = pd.Index(pd.to_datetime(uniques.astype("string"), format="ISO8601"))
        if isinstance(uniques, pd.DatetimeIndex) and uniques.tz is not None:
            uniques = uniques.tz_localize(None)  # the calendar day where it was recorded
        days = np.asarray(uniques.to_numpy()).astype("datetime64[D]")
    except (ValueError, TypeError, OverflowError):
        raise ValueError(
            f"quasi-identifier {qi!r} is declared a date but holds values that are not ISO "
            "dates (YYYY-MM-DD); declare it categorical or clean the column"
        ) from None
    codes, uniques = _refactorize(codes, days)
    unique_days = np.asarray(uniques, dtype="datetime64[D]")
    values = unique_days.astype(np.int64).astype(np.float64)
    shown = np.asarray(np.datetime_as_string(unique_days, unit="D"), dtype=object)
    return _scalar_axis("date", codes, values, shown, False)


def _scalar_axis(
    kind: str, codes: npt.NDArray[np.intp], values: Floats, shown: Texts, negative: bool
) -> _Scalar:
    import numpy as np
    import pyarrow as pa

    ranks = codes.astype(np.int64)
    size = len(values)
    null = -1
    if (ranks < 0).any():
        null = size
        ranks[ranks < 0] = size
        size += 1
    arrow = pa.array(shown, type=pa.string())
    return _Scalar(kind, ranks, size, null, values, shown, negative, arrow)


def _lookup(words: Texts, mapping: Mapping[str, str]) -> tuple[Texts, Bools]:
    """Each word's label in `mapping`, and whether it has one."""
    import numpy as np
    import pandas as pd

    keys = pd.Index(list(mapping.keys()), dtype=object)
    at = keys.get_indexer(pd.Index(words, dtype=object))
    found = at >= 0
    labels = np.asarray(list(mapping.values()), dtype=object)
    result = np.full(len(words), "", dtype=object)
    result[found] = labels[at[found]]
    return result, found


def _string_axis(
    kind: str, column: pd.Series, hierarchy: Sequence[Mapping[str, str]], sets: bool
) -> _Tree:
    """Ranks in depth-first order of the hierarchy tree (the file's row order within a node;
    without a hierarchy, lexicographic or by decreasing frequency). A node is identified by its
    path to the top, so even a hierarchy file that is not a tree yields one."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    codes, uniques = _distinct_values(column)
    if not pd.api.types.is_string_dtype(uniques.dtype) or uniques.dtype == object:
        # Numbers, or mixed objects: compared as text (as hierarchy files list them).
        codes, uniques = _refactorize(codes, uniques.astype("string"))
    codes = codes.astype(np.int64)
    count = len(uniques)
    words = np.asarray(uniques.to_numpy(dtype=object), dtype=object)
    lexical = np.empty(count, dtype=np.int64)
    # Sorted in Arrow (UTF-8 byte order is code point order): a NumPy string array would be
    # as wide as the longest value for every value.
    by_text = pc.array_sort_indices(pa.array(words, type=pa.string())).to_numpy()
    lexical[by_text] = np.arange(count)
    height = len(hierarchy)
    labels: list[Texts] = []
    listed = np.ones(count, dtype=bool)
    for mapping in hierarchy:
        label, found = _lookup(words, mapping)
        labels.append(label)
        listed &= found
    if height:
        file_rows = pd.Index(list(hierarchy[0].keys()), dtype=object)
        position = file_rows.get_indexer(pd.Index(words, dtype=object))
        base = position.astype(np.float64)
    elif kind == "ordered":
        base = lexical.astype(np.float64)
    else:  # categorical: most frequent first
        frequency = np.bincount(codes[codes >= 0], minlength=count)
        base = np.lexsort((lexical, -frequency)).argsort().astype(np.float64)
    base = np.where(listed, base, 0.0)
    # Path ids per level, top first, numbered in base order (first appearance).
    first = np.argsort(base, kind="stable")
    paths = np.zeros((height + 1, count), dtype=np.int64)
    prefix = np.zeros(count, dtype=np.int64)
    for level in range(height, 0, -1):
        label_code = pd.factorize(labels[level - 1])[0].astype(np.int64)
        numbered = np.empty(count, dtype=np.int64)
        pair = prefix * (int(label_code.max()) + 1 if count else 1) + label_code
        numbered[first] = pd.factorize(pair[first])[0]
        prefix = numbered
        paths[level] = numbered
    # Listed values depth-first, then unlisted ones (lexicographic, each its own branch under
    # the top); null last.
    keys = [base, np.where(listed, 0, lexical).astype(np.float64)]
    keys += [np.where(listed, paths[level], 0).astype(np.float64) for level in range(1, height + 1)]
    keys.append(np.where(listed, 0.0, 1.0))
    order = np.lexsort(keys)  # the last key is the most significant
    rank_of = np.empty(count, dtype=np.int64)
    rank_of[order] = np.arange(count)
    ranks = np.full(len(codes), count, dtype=np.int64)
    ranks[codes >= 0] = rank_of[codes[codes >= 0]]
    null = count if (codes < 0).any() else -1
    size = count + (1 if null >= 0 else 0)

    def padded(array: npt.NDArray[np.generic], fill: object) -> npt.NDArray[np.generic]:
        return np.append(array, np.asarray([fill], dtype=array.dtype)) if null >= 0 else array

    shown = words[order]
    ranked_listed = np.asarray(padded(listed[order], False), dtype=bool)
    levels = height + 2
    node = np.zeros((levels, size), dtype=np.int64)
    node[0] = np.arange(size)
    cost = np.zeros((levels, size), dtype=np.float64)
    text_levels: list[Texts] = [np.asarray(padded(shown, pd.NA), dtype=object)]
    denominator = max(size - 1, 1)
    for level in range(1, height + 1):
        path = padded(paths[level][order], -1)
        heads = np.ones(size, dtype=bool)
        heads[1:] = (path[1:] != path[:-1]) | ~ranked_listed[1:] | ~ranked_listed[:-1]
        node[level] = np.cumsum(heads) - 1
        label = np.where(listed[order], labels[level - 1][order], shown)
        # A label covers every present value mapped to it at this level (as the full-domain
        # NCP counts); an unlisted value or null is a node of its own.
        label_code, label_unique = pd.factorize(label)
        covered = np.bincount(label_code[listed[order]], minlength=len(label_unique))
        first_of = np.flatnonzero(heads)
        covering = np.ones(len(first_of), dtype=np.float64)
        real = first_of < count
        covering[real] = np.where(
            listed[order][first_of[real]], covered[label_code[first_of[real]]], 1
        )
        cost[level, : len(first_of)] = (covering - 1) / denominator
        text_levels.append(np.asarray(padded(label, pd.NA)[first_of], dtype=object))
    cost[levels - 1, 0] = 1.0 if size > 1 else 0.0
    text_levels.append(np.asarray([TOP], dtype=object))
    return _Tree(
        kind,
        ranks,
        size,
        null,
        codes=node,
        cost=cost,
        lexical=padded(lexical[order], count).astype(np.int64),
        sets=sets or not height,
        arrow=pa.array(np.concatenate(text_levels), type=pa.string(), from_pandas=True),
        offsets=np.cumsum([0] + [len(t) for t in text_levels[:-1]]).astype(np.int64),
    )


def _axis(
    qi: str,
    column: pd.Series,
    kind: str,
    hierarchy: Sequence[Mapping[str, str]] | None,
    sets: bool,
) -> _Axis:
    if kind == "numeric":
        return _numeric_axis(qi, column)
    if kind == "date":
        return _date_axis(qi, column)
    return _string_axis(kind, column, hierarchy or [], sets)


def _lowest(axis: _Tree, lo: Ints, hi: Ints) -> Ints:
    """The level of the lowest node covering ranks lo..hi."""
    import numpy as np

    lowest: Ints = (axis.codes[:, lo] == axis.codes[:, hi]).argmax(axis=0).astype(np.int64)
    return lowest


def _costs(axis: _Axis, lo: Ints, hi: Ints, distinct: Ints | None) -> tuple[Floats, Bools]:
    """Per partition: the NCP of the label its values get on this axis, and (string axes)
    whether that label is the set of its values."""
    import numpy as np

    mixed = (hi == axis.null) & (lo != axis.null)
    if isinstance(axis, _Scalar):
        spread = axis.spread
        last = len(axis.values) - 1
        if spread > 0:
            top = axis.values[np.clip(hi, 0, last)]
            cost = (top - axis.values[np.clip(lo, 0, last)]) / spread
        else:
            cost = np.zeros(len(lo))
        return np.where(mixed, 1.0, cost), np.zeros(len(lo), dtype=bool)
    lowest = _lowest(axis, lo, hi)
    cost = axis.cost[lowest, axis.codes[lowest, lo]]
    as_set = np.zeros(len(lo), dtype=bool)
    if axis.sets and distinct is not None:
        set_cost = (distinct - 1) / max(axis.size - 1, 1)
        as_set = (distinct > 1) & (distinct <= SET_LIMIT) & ~mixed & (set_cost < cost)
        cost = np.where(as_set, set_cost, cost)
    return cost, as_set
