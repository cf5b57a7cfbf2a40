"""k-anonymity (and distinct l-diversity) by multidimensional local recoding: strict Mondrian
(LeFevre, DeWitt and Ramakrishnan, ICDE 2006), the model ARX and anonypyx offer next to
full-domain generalization.

The table is cut into partitions, top-down: a partition is cut in two along one
quasi-identifier, and only if both halves keep at least k rows (and l distinct sensitive
values). Among the quasi-identifiers that allow a cut, the one whose label is widest in the
partition (highest normalized certainty penalty) is chosen, LeFevre's "widest dimension" rule
(ties: the order of the quasi-identifiers). Along it, the cut is made at the boundary whose two
halves' labels cost least (NCP of each half's label times its rows, for the labels this module
releases: interval, hierarchy node or set), as Top-Down Specialization chooses by information
gain; ties go to the boundary nearest the median row. The candidates are the feasible
boundaries that leave each half at least 1/`BALANCE` of the rows, and always the feasible one
nearest the median row (so a cut never costs more than LeFevre's, and cutting k rows off at a
time cannot stretch the search to n/k rounds). `cuts="median"` keeps LeFevre's cut, nearest
the median row, for comparison. Each final partition releases, per quasi-identifier, the label
that covers its values:

- `numeric`: the interval `lo-hi` of its values (`[lo, hi]` in a column with negative values),
  or the single value;
- `date` (ISO dates, day resolution): the ISO 8601 interval `YYYY-MM-DD/YYYY-MM-DD`, or the
  single date;
- `ordered` / `categorical` with a hierarchy (ARX tables: level 1..H label per value): the
  lowest hierarchy label covering all its values. Cuts follow the hierarchy: values are ordered
  depth-first (the file's row order within a node) and a partition is cut only between children
  of its lowest covering label, so each half moves down the tree. A value the hierarchy does not
  list sits directly under the top `*`. With `set_labels`, a class whose values are fewer than
  its covering label's (and at most `SET_LIMIT`) releases the set of its values instead;
- `ordered` / `categorical` without a hierarchy: the set `{a,b,c}` of its values
  (lexicographic), the single value, or `*` above `SET_LIMIT` values or when the set is the whole
  column. Cuts follow the lexicographic order (`ordered`) or decreasing frequency
  (`categorical`, so rare values end up together).

A null is a value of its own: a partition holding only nulls releases null; one holding nulls
and other values releases `*`.

The cuts themselves suppress nothing. Rows are suppressed only when the whole table cannot meet
the model (fewer than k rows or l distinct sensitive values), and, by a last check over the
released labels (grouped by every quasi-identifier, as an outsider would count), any class below
k or l. That check never fires on a correct search: partitions that release identical labels
merge into one class, which only adds rows and sensitive values. If the suppressed share exceeds
`max_suppression`, nothing is released.

The search runs breadth-first on all open partitions at once, so a round is a fixed number of
vectorized passes over the open rows (no Python loop over rows or partitions): per
quasi-identifier two segment reductions (lowest and highest rank per partition) to score it,
then one stable sort of the open rows by (partition, rank on the chosen quasi-identifier), after
which each cut leaves its two halves contiguous, and one `take` that carries every row's ranks
into that order. There are about log2(rows / k) rounds. Labels are built and encoded in Arrow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from gateway.errors import GatewayError

KINDS = ("numeric", "date", "ordered", "categorical")
CUTS = ("least-cost", "median")  # where a partition is cut along its chosen quasi-identifier
BALANCE = 8  # a least-cost cut leaves each half 1/BALANCE of the rows, or is the median cut
SET_LIMIT = 10  # a class of more distinct values than this never releases them as a set
TOP = "*"

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]
Texts = npt.NDArray[np.object_]


class MondrianUnreachable(GatewayError):
    """The model cannot be met within the suppression limit; nothing is released."""


@dataclass(frozen=True)
class MondrianReport:
    k: int  # the smallest class in the released frame (0 when nothing is released)
    l: int | None  # noqa: E741 - fewest distinct sensitive values in a class (None without l)
    suppressed: int  # rows suppressed
    classes: int  # equivalence classes of the released frame (same labels on every QI)
    ncp: float  # normalized certainty penalty over all source rows and QIs, 0..1
    discernibility: int  # sum of class sizes squared, plus rows suppressed x source rows
    partitions: int  # partitions the search ended with (several may form one class)


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
    codes, uniques = pd.factorize(column, use_na_sentinel=True)
    return codes, pd.Index(uniques)


def _refactorize(
    codes: npt.NDArray[np.intp], converted: pd.Index | npt.NDArray[np.generic]
) -> tuple[npt.NDArray[np.intp], pd.Index]:
    """Codes into the sorted distinct converted values (two values may convert to one)."""
    inner, uniques = pd.factorize(converted, sort=True, use_na_sentinel=True)
    inner = np.append(inner, -1)  # code -1 (null) stays null
    return inner[codes], pd.Index(uniques)


def _numeric_axis(qi: str, column: pd.Series) -> _Scalar:
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


def _distinct_per_segment(segment: Ints, values: Ints, segments: int, width: int) -> Ints:
    """Per segment (0..segments-1): how many distinct values its members hold."""
    pairs = segment * width + values
    if segments * width <= 4 * len(pairs) + 1024:
        present = np.bincount(pairs, minlength=segments * width) > 0
        result: Ints = present.reshape(segments, width).sum(axis=1, dtype=np.int64)
        return result
    return np.bincount(pd.unique(pairs) // width, minlength=segments).astype(np.int64)


def _few_distinct(
    ranks: npt.NDArray[np.integer], segment: Ints, starts: Ints, lo: Ints, hi: Ints
) -> Ints:
    """Per segment: how many distinct ranks it holds, counted exactly where they span at most
    62 ranks (one bit each in a 64-bit mask, OR-ed over the segment); elsewhere SET_LIMIT + 1,
    which scores the segment as if it had too many values for a set."""
    offset = np.minimum(ranks - lo[segment], 62)
    masks = np.bitwise_or.reduceat(np.left_shift(np.int64(1), offset), starts)
    counted = np.bitwise_count(masks).astype(np.int64)
    return np.where(hi - lo <= 61, counted, SET_LIMIT + 1)


def _lowest(axis: _Tree, lo: Ints, hi: Ints) -> Ints:
    """The level of the lowest node covering ranks lo..hi."""
    lowest: Ints = (axis.codes[:, lo] == axis.codes[:, hi]).argmax(axis=0).astype(np.int64)
    return lowest


def _costs(axis: _Axis, lo: Ints, hi: Ints, distinct: Ints | None) -> tuple[Floats, Bools]:
    """Per partition: the NCP of the label its values get on this axis, and (string axes)
    whether that label is the set of its values."""
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


def _search(
    axes: list[_Axis],
    n: int,
    k: int,
    l: int | None,  # noqa: E741
    sens: Ints | None,
    least_cost: bool = True,
) -> tuple[Ints, int]:
    """Strict Mondrian over all rows; returns the final partition of each row and how many.

    `rows` holds the rows of the open partitions, grouped by partition, and `data` their ranks
    on every axis (one row of int32 per row, the sensitive code last), kept in the same order so
    that no round gathers an axis by row number. Each round scores every axis per partition
    from its lowest and highest rank, sorts the rows of each partition by its widest axis (one
    sort for all), and cuts at the feasible boundary whose halves cost least (`least_cost`) or
    at the one nearest the median row, where both halves meet k (and l); a partition whose
    widest axis cannot be cut tries the next widest. After the sort the
    two halves of every cut are contiguous: the next round's grouping."""
    part = np.full(n, -1, dtype=np.int64)
    finished = 0
    m = len(axes)
    columns = [axis.ranks for axis in axes] + ([sens] if sens is not None else [])
    data = np.ascontiguousarray(np.stack(columns, axis=1).astype(np.int32))  # (n, m [+1])
    rows = np.arange(n, dtype=np.int64)
    sizes = np.asarray([n], dtype=np.int64)
    least = max(k, l or 1)
    while len(sizes):
        # Partitions too small to cut in two are final at once.
        small = sizes < 2 * least
        if small.any():
            segment = np.repeat(np.arange(len(sizes), dtype=np.int64), sizes)
            at = small[segment]
            part[rows[at]] = (np.cumsum(small) - 1 + finished)[segment[at]]
            finished += int(small.sum())
            rows, data, sizes = rows[~at], np.compress(~at, data, axis=0), sizes[~small]
            if not len(sizes):
                break
        count = len(sizes)
        starts = np.cumsum(sizes) - sizes
        segment = np.repeat(np.arange(count, dtype=np.int64), sizes)
        lows = np.empty((m, count), dtype=np.int64)
        highs = np.empty((m, count), dtype=np.int64)
        scores = np.empty((m, count), dtype=np.float64)
        for j, axis in enumerate(axes):
            ranks = data[:, j]
            lows[j] = np.minimum.reduceat(ranks, starts)
            highs[j] = np.maximum.reduceat(ranks, starts)
            distinct = None
            if isinstance(axis, _Tree) and axis.sets and axis.size > 2:
                distinct = _few_distinct(ranks, segment, starts, lows[j], highs[j])
            scores[j] = _costs(axis, lows[j], highs[j], distinct)[0]
        # Widest first (ties: the order of the quasi-identifiers); one value cannot be cut.
        scores[lows == highs] = -1.0
        preference = np.argsort(-scores, axis=0, kind="stable")
        chosen = np.full(count, -1, dtype=np.int64)
        cut = np.zeros(count, dtype=np.int64)
        everyone = np.arange(count)
        for attempt in range(m):
            axis_of = preference[attempt]
            trying = (chosen < 0) & (scores[axis_of, everyone] >= 0)
            if not trying.any():
                break
            cuts = _Cuts(axes, data, segment, sizes, trying, axis_of, lows, highs, k, l, least_cost)
            if not cuts.ok.any():
                continue
            settled = np.flatnonzero(trying)[cuts.ok]
            chosen[settled] = axis_of[settled]
            cut[settled] = cuts.at[cuts.ok]
            # The rows of the partitions cut now take their sorted order (halves contiguous).
            source = cuts.positions[cuts.ok[cuts.local]]
            if len(source) < len(rows):
                moved = np.zeros(count, dtype=bool)
                moved[settled] = True
                permutation = np.arange(len(rows))
                permutation[moved[segment]] = source
                source = permutation
            rows = rows[source]
            data = np.take(data, source, axis=0)  # much faster than fancy indexing of rows
        split = chosen >= 0
        if not split.all():
            stuck = ~split
            at = stuck[segment]
            part[rows[at]] = (np.cumsum(stuck) - 1 + finished)[segment[at]]
            finished += int(stuck.sum())
            rows, data = rows[~at], np.compress(~at, data, axis=0)
        sizes = np.stack([cut[split], sizes[split] - cut[split]], axis=1).ravel()
    return part, finished


class _Cuts:
    """For the partitions `trying`, each along its axis `axis_of`: whether a cut meets the
    model (`ok`) and where (`at`, rows into the partition), with the positions of their rows
    sorted by (partition, rank on that axis) and each sorted row's partition among them."""

    def __init__(
        self,
        axes: list[_Axis],
        data: npt.NDArray[np.int32],
        segment: Ints,
        sizes: Ints,
        trying: Bools,
        axis_of: Ints,
        lows: Ints,
        highs: Ints,
        k: int,
        l: int | None,  # noqa: E741
        least_cost: bool,
    ) -> None:
        widest = max(axis.size for axis in axes)
        inside = np.flatnonzero(trying[segment])
        member_segment = segment[inside]
        member_axis = axis_of[member_segment]
        ranks = data[inside, member_axis].astype(np.int64)
        # Stable: timsort runs on the partitions, which are already in order.
        order = np.argsort(member_segment * widest + ranks, kind="stable")
        self.positions = inside[order]
        ranks = ranks[order]
        member_segment = member_segment[order]
        member_axis = member_axis[order]
        # Boundaries: where the value changes within a partition; with a hierarchy, where the
        # child of the lowest common node changes.
        key = ranks
        for j, axis in enumerate(axes):
            if not isinstance(axis, _Tree) or not axis.deep:
                continue
            at = member_axis == j
            if not at.any():
                continue
            lowest = _lowest(axis, lows[j], highs[j])  # per partition
            if key is ranks:
                key = ranks.copy()
            key[at] = axis.codes[np.maximum(lowest - 1, 0)[member_segment[at]], ranks[at]]
        tried_sizes = sizes[trying]
        self.local = np.repeat(np.arange(len(tried_sizes), dtype=np.int64), tried_sizes)
        starts = np.cumsum(tried_sizes) - tried_sizes
        ends = starts + tried_sizes
        middle = starts + tried_sizes // 2
        change = np.empty(len(key), dtype=bool)
        change[0] = False
        np.not_equal(key[1:], key[:-1], out=change[1:])
        change[starts] = False
        boundaries = np.flatnonzero(change)
        # A boundary is feasible when both halves keep k rows (and l sensitive values).
        owner = self.local[boundaries]
        feasible = (boundaries - starts[owner] >= k) & (ends[owner] - boundaries >= k)
        if l is not None:
            before, after = _diversity(data[self.positions, len(axes)], self.local, starts, ends)
            feasible &= (before[boundaries] >= l) & (after[boundaries] >= l)
        chosen = boundaries[feasible]
        # The feasible boundary nearest the median row (ties: the left one).
        index = np.searchsorted(chosen, middle, side="right")
        left = chosen[np.maximum(index - 1, 0)] if len(chosen) else starts
        right = chosen[np.minimum(index, len(chosen) - 1)] if len(chosen) else ends
        left_ok = (index > 0) & (left > starts) & (left < ends)
        right_ok = (index < len(chosen)) & (right > starts) & (right < ends)
        use_right = right_ok & (~left_ok | (right - middle < middle - left))
        self.ok = left_ok | right_ok
        self.at = np.where(use_right, right, left) - starts
        if least_cost and self.ok.any():
            # Least cost among that boundary and the feasible ones that leave each half at
            # least 1/BALANCE of the rows (peeling k rows at a time would take n/k rounds).
            owner = self.local[chosen]
            margin = -(-tried_sizes[owner] // BALANCE)
            median = chosen == (self.at + starts)[owner]
            chosen = chosen[
                median | ((chosen - starts[owner] >= margin) & (ends[owner] - chosen >= margin))
            ]
            owner = self.local[chosen]
            cost = _halves_cost(axes, ranks, member_axis, starts, ends, owner, chosen)
            self.at = np.where(self.ok, _cheapest(chosen, cost, owner, starts, middle) - starts, 0)


def _halves_cost(
    axes: list[_Axis],
    ranks: Ints,
    member_axis: Ints,
    starts: Ints,
    ends: Ints,
    owner: Ints,
    at: Ints,
) -> Floats:
    """What cutting each sorted partition `owner` at position `at` costs on its axis: the
    rows before `at` release the label covering their lowest and highest rank (or the set of
    their values), the rows from `at` on theirs; NCP times rows, summed over both halves."""
    total = np.zeros(len(at), dtype=np.float64)
    start, end = starts[owner], ends[owner]
    heads: Ints | None = None  # distinct ranks before each sorted position
    for j, axis in enumerate(axes):
        which = np.flatnonzero(member_axis[at] == j)
        if not len(which):
            continue
        s, e, b = start[which], end[which], at[which]
        before = after = None
        if isinstance(axis, _Tree) and axis.sets:
            if heads is None:
                change = np.empty(len(ranks), dtype=bool)
                change[0] = True
                np.not_equal(ranks[1:], ranks[:-1], out=change[1:])
                change[starts] = True
                heads = np.concatenate(([0], np.cumsum(change)))
            before, after = heads[b] - heads[s], heads[e] - heads[b]
        left = _costs(axis, ranks[s], ranks[b - 1], before)[0]
        right = _costs(axis, ranks[b], ranks[e - 1], after)[0]
        total[which] = (b - s) * left + (e - b) * right
    return total


def _cheapest(chosen: Ints, cost: Floats, owner: Ints, starts: Ints, middle: Ints) -> Ints:
    """Per partition: the position of its cheapest boundary among `chosen` (sorted, with their
    partition `owner`), ties going to the one nearest the median row, then the left one; -1
    where it has none. Costs equal to 1e-6 row-NCP count as ties (sums in another order)."""
    best = np.full(len(starts), -1, dtype=np.int64)
    if not len(chosen):
        return best
    new = np.empty(len(owner), dtype=bool)
    new[0] = True
    np.not_equal(owner[1:], owner[:-1], out=new[1:])
    heads = np.flatnonzero(new)
    group = np.cumsum(new) - 1
    rounded = np.round(cost, 6)
    candidate = rounded == np.minimum.reduceat(rounded, heads)[group]
    mid = middle[owner]
    distance = np.where(
        candidate, 2 * np.abs(chosen - mid) + (chosen > mid), np.iinfo(np.int64).max
    )
    pick = candidate & (distance == np.minimum.reduceat(distance, heads)[group])
    best[owner[pick]] = chosen[pick]
    return best


def _diversity(
    values: npt.NDArray[np.int32], local: Ints, starts: Ints, ends: Ints
) -> tuple[Ints, Ints]:
    """Per position p of sorted partitions: how many distinct values its partition holds
    before p, and from p on (first and last occurrences counted by one stable sort)."""
    count = len(values)
    width = int(values.max()) + 1 if count else 1
    order = np.argsort(local * width + values, kind="stable")  # by (partition, value, position)
    group = local[order] * width + values[order]
    heads = np.r_[True, group[1:] != group[:-1]]
    tails = np.r_[group[1:] != group[:-1], True]
    first = np.zeros(count + 1, dtype=np.int64)
    last = np.zeros(count + 1, dtype=np.int64)
    first[1:][order[heads]] = 1
    last[1:][order[tails]] = 1
    firsts = np.cumsum(first)  # firsts[p]: first occurrences at positions < p
    lasts = np.cumsum(last)
    positions = np.arange(count + 1)
    partition = np.r_[local, local[-1] if count else 0]
    before = firsts - firsts[starts[partition]]
    after = lasts[ends[partition]] - lasts[positions]
    return before, after


def _joined_sets(pieces: Any, heads: Ints) -> Any:
    """`{a,b,c}` per group of pieces (groups start at `heads`), as Arrow strings."""
    offsets = pa.array(np.append(heads, len(pieces)), type=pa.int64())
    lists = pa.LargeListArray.from_arrays(offsets, pieces)
    return pc.binary_join_element_wise("{", pc.binary_join(lists, ","), "}", "")


def _mask(values: Bools) -> Any:
    return pa.array(values, type=pa.bool_())


@dataclass(frozen=True)
class _Partitions:
    """The final partitions: rows sorted by partition, with each partition's size and start."""

    part: Ints  # per row
    order: Ints  # rows sorted by partition
    sizes: Ints
    starts: Ints
    owner: Ints  # per sorted row: its partition

    @classmethod
    def of(cls, part: Ints, count: int) -> _Partitions:
        sizes = np.bincount(part, minlength=count).astype(np.int64)
        owner = np.repeat(np.arange(count, dtype=np.int64), sizes)
        return cls(part, np.argsort(part, kind="stable"), sizes, np.cumsum(sizes) - sizes, owner)


def _labels(axis: _Axis, final: _Partitions) -> tuple[Any, Floats]:
    """Per final partition: the released label (an Arrow string array) and its NCP cost."""
    count = len(final.sizes)
    ranks = axis.ranks[final.order]
    lo = np.minimum.reduceat(ranks, final.starts)
    hi = np.maximum.reduceat(ranks, final.starts)
    only_null = lo == axis.null
    mixed = (hi == axis.null) & ~only_null
    if isinstance(axis, _Scalar):
        cost, _ = _costs(axis, lo, hi, None)
        last = len(axis.shown) - 1
        if last < 0:  # only nulls
            return pa.nulls(count, pa.string()), np.zeros(count)
        low = axis.arrow.take(pa.array(np.clip(lo, 0, last)))
        high = axis.arrow.take(pa.array(np.clip(hi, 0, last)))
        if axis.negative:
            interval = pc.binary_join_element_wise("[", low, ", ", high, "]", "")
        else:
            interval = pc.binary_join_element_wise(low, high, "/" if axis.kind == "date" else "-")
        label = pc.if_else(_mask(lo == hi), low, interval)
        label = pc.if_else(_mask(mixed), pa.scalar(TOP), label)
        label = pc.if_else(_mask(only_null), pa.scalar(None, pa.string()), label)
        return label, np.where(only_null, 0.0, cost)
    lowest = _lowest(axis, lo, hi)
    label = axis.arrow.take(pa.array(axis.offsets[lowest] + axis.codes[lowest, lo]))
    if not axis.sets:
        return label, _costs(axis, lo, hi, None)[0]
    # Sets: the distinct (partition, value) pairs, each partition's lexicographic.
    pairs = np.sort(pd.unique(final.owner * axis.size + axis.lexical[ranks]))
    owner = pairs // axis.size
    distinct = np.bincount(owner, minlength=count).astype(np.int64)
    cost, as_set = _costs(axis, lo, hi, distinct)
    if as_set.any():
        chosen = as_set[owner]
        by_lexical = np.empty(axis.size, dtype=np.int64)
        by_lexical[axis.lexical] = np.arange(axis.size)
        pieces = axis.arrow.take(pa.array(by_lexical[pairs[chosen] % axis.size]))
        owners = owner[chosen]
        heads = np.flatnonzero(np.r_[True, owners[1:] != owners[:-1]])
        label = pc.replace_with_mask(label, _mask(as_set), _joined_sets(pieces, heads))
    return label, cost


def _combine(parts: Sequence[Ints]) -> Ints:
    """One integer per distinct combination of the parts (refactorized before overflow)."""
    key = np.zeros(len(parts[0]), dtype=np.int64)
    space = 1
    for part in parts:
        width = int(part.max()) + 1 if len(part) else 1
        if space * width >= 2**62:
            key = pd.factorize(key)[0].astype(np.int64)
            space = int(key.max()) + 1 if len(key) else 1
        key = key * width + part
        space *= width
    combined: Ints = pd.factorize(key)[0].astype(np.int64)
    return combined


def _check_arguments(
    frame: pd.DataFrame,
    qis: Sequence[str],
    k: int,
    kinds: Mapping[str, str],
    l: int | None,  # noqa: E741
    sensitive: str | None,
    max_suppression: float,
) -> None:
    if not qis:
        raise ValueError("name at least one quasi-identifier")
    if len(set(qis)) != len(qis):
        raise ValueError("each quasi-identifier may be named only once")
    missing = [qi for qi in qis if qi not in frame.columns]
    if missing:
        raise ValueError(f"quasi-identifiers not in the data: {', '.join(map(repr, missing))}")
    for qi in qis:
        if kinds.get(qi) not in KINDS:
            raise ValueError(f"quasi-identifier {qi!r} needs a kind, one of {', '.join(KINDS)}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError("k must be an integer of at least 1")
    if l is not None:
        if isinstance(l, bool) or not isinstance(l, int) or l < 1:
            raise ValueError("l must be an integer of at least 1")
        if sensitive is None:
            raise ValueError("l-diversity needs the sensitive column")
    if sensitive is not None:
        if sensitive not in frame.columns:
            raise ValueError(f"the sensitive column {sensitive!r} is not in the data")
        if sensitive in qis:
            raise ValueError(f"the sensitive column {sensitive!r} cannot be a quasi-identifier")
    if not 0.0 <= max_suppression <= 1.0:
        raise ValueError("max_suppression is a share of rows, between 0 and 1")


def mondrian(
    frame: pd.DataFrame,
    qis: Sequence[str],
    k: int,
    *,
    kinds: Mapping[str, str],
    hierarchies: Mapping[str, Sequence[Mapping[str, str]]] | None = None,
    l: int | None = None,  # noqa: E741 - the model's standard name
    sensitive: str | None = None,
    max_suppression: float = 0.0,
    set_labels: bool = False,
    cuts: str = "least-cost",
) -> tuple[pd.DataFrame, MondrianReport]:
    """Release `frame` k-anonymous (and distinct l-diverse on `sensitive`) over `qis` by strict
    Mondrian local recoding.

    Returns the released frame (the input's index and columns; suppressed rows left out; every
    QI column replaced by its labels, dtype string) and a report. `kinds` gives each QI's kind
    (`KINDS`); `hierarchies` (ARX tables, as `lattice.load_hierarchy` reads them) guide the
    cuts and labels of `ordered` and `categorical` QIs and are ignored for the others;
    `set_labels` lets a class of a hierarchical QI release the set of its values when that is
    narrower than the covering hierarchy label; `cuts` is where a partition is cut along its
    chosen quasi-identifier (`CUTS`: the feasible boundary whose halves' labels cost least, or
    LeFevre's nearest the median row; both release the same model). Raises
    `MondrianUnreachable` when more than `max_suppression` of the rows would be suppressed and
    `ValueError` for arguments that do not fit the data (messages name columns, never values).
    Never mutates `frame`."""
    _check_arguments(frame, qis, k, kinds, l, sensitive, max_suppression)
    if cuts not in CUTS:
        raise ValueError(f"cuts must be one of {', '.join(CUTS)}")
    tables = hierarchies or {}
    n = len(frame)
    m = len(qis)
    if n == 0:
        return frame.copy(), MondrianReport(0, None if l is None else 0, 0, 0, 0.0, 0, 0)
    axes = [_axis(qi, frame[qi], kinds[qi], tables.get(qi), set_labels) for qi in qis]
    sens: Ints | None = None
    sens_width = 1
    if l is not None and sensitive is not None:
        sens = pd.factorize(frame[sensitive].astype("string"), use_na_sentinel=False)[0]
        sens = sens.astype(np.int64)
        sens_width = int(sens.max()) + 1

    released = 0
    keep = np.zeros(n, dtype=bool)
    part = np.zeros(n, dtype=np.int64)
    partitions = 0
    codes: list[Ints] = []
    uniques: list[Any] = []  # per QI: its distinct labels (pa.StringArray)
    costs: list[Floats] = []
    class_of = np.zeros(0, dtype=np.int64)
    if n >= k and (l is None or sens_width >= l):
        part, partitions = _search(axes, n, k, l, sens, cuts == "least-cost")
        final = _Partitions.of(part, partitions)
        for axis in axes:
            label, cost = _labels(axis, final)
            encoded = pc.dictionary_encode(label, null_encoding="encode")
            codes.append(encoded.indices.to_numpy().astype(np.int64))
            uniques.append(encoded.dictionary)
            costs.append(cost)
        # The outsider's check: classes are the rows with the same released label on every
        # quasi-identifier (whichever partitions they came from).
        class_of = _combine(codes)
        row_class = class_of[part]
        classes = int(class_of.max()) + 1
        failing = np.bincount(row_class, minlength=classes) < k
        if sens is not None and l is not None:
            failing |= _distinct_per_segment(row_class, sens, classes, sens_width) < l
        keep = ~failing[row_class]
        released = int(keep.sum())
    suppressed = n - released
    if suppressed > max_suppression * n + 1e-9:
        target = f"k={k}" + (f", l={l}" if l is not None else "")
        raise MondrianUnreachable(
            f"{target} on {', '.join(qis)} would suppress {suppressed} of {n} rows "
            f"({suppressed / n:.1%}), more than the allowed {max_suppression:.1%}; lower k "
            "(or l), choose fewer quasi-identifiers, or allow more suppression"
        )
    out = frame[keep].copy()
    if not released:
        return out, MondrianReport(0, None if l is None else 0, n, 0, 1.0, n * n, partitions)
    kept_part = part[keep]
    per_partition = np.bincount(kept_part, minlength=partitions)
    loss = float(suppressed * m)
    for j, qi in enumerate(qis):
        out[qi] = pd.array(uniques[j].take(pa.array(codes[j][kept_part])), dtype="string")
        loss += float(per_partition @ costs[j])
    row_class = class_of[kept_part]
    class_sizes = np.bincount(row_class)
    present = class_sizes > 0
    l_achieved = None
    if sens is not None and l is not None:
        per_class = _distinct_per_segment(row_class, sens[keep], len(class_sizes), sens_width)
        l_achieved = int(per_class[present].min())
    class_sizes = class_sizes[present].astype(np.int64)
    report = MondrianReport(
        k=int(class_sizes.min()),
        l=l_achieved,
        suppressed=suppressed,
        classes=len(class_sizes),
        ncp=loss / (n * m),
        discernibility=int((class_sizes**2).sum()) + suppressed * n,
        partitions=partitions,
    )
    return out, report
