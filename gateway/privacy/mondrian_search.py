"""Mondrian's search: all open partitions cut together, breadth-first, each along its widest
quasi-identifier at the feasible boundary whose halves' labels cost least (mondrian.py has
the model and the labels; mondrian_axes.py the rank axes)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.privacy.mondrian_axes import (
    SET_LIMIT,
    Bools,
    Floats,
    Ints,
    _Axis,
    _costs,
    _lowest,
    _Tree,
)

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

CUTS = ("least-cost", "median")  # where a partition is cut along its chosen quasi-identifier
BALANCE = 8  # a least-cost cut leaves each half 1/BALANCE of the rows, or is the median cut


def _distinct_per_segment(segment: Ints, values: Ints, segments: int, width: int) -> Ints:
    """Per segment (0..segments-1): how many distinct values its members hold."""
    import numpy as np
    import pandas as pd

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
    import numpy as np

    offset = np.minimum(ranks - lo[segment], 62)
    masks = np.bitwise_or.reduceat(np.left_shift(np.int64(1), offset), starts)
    counted = np.bitwise_count(masks).astype(np.int64)
    return np.where(hi - lo <= 61, counted, SET_LIMIT + 1)


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
    import numpy as np

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
        import numpy as np

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
    import numpy as np

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
    import numpy as np

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
    import numpy as np

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
