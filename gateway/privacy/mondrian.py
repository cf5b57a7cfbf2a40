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
from typing import TYPE_CHECKING, Any

from gateway.errors import GatewayError
from gateway.privacy.mondrian_axes import (
    KINDS,
    TOP,
    Bools,
    Floats,
    Ints,
    _Axis,
    _axis,
    _costs,
    _lowest,
    _Scalar,
)
from gateway.privacy.mondrian_search import CUTS, _distinct_per_segment, _search

if TYPE_CHECKING:
    import pandas as pd


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


def _joined_sets(pieces: Any, heads: Ints) -> Any:
    """`{a,b,c}` per group of pieces (groups start at `heads`), as Arrow strings."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    offsets = pa.array(np.append(heads, len(pieces)), type=pa.int64())
    lists = pa.LargeListArray.from_arrays(offsets, pieces)
    return pc.binary_join_element_wise("{", pc.binary_join(lists, ","), "}", "")


def _mask(values: Bools) -> Any:
    import pyarrow as pa

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
        import numpy as np

        sizes = np.bincount(part, minlength=count).astype(np.int64)
        owner = np.repeat(np.arange(count, dtype=np.int64), sizes)
        return cls(part, np.argsort(part, kind="stable"), sizes, np.cumsum(sizes) - sizes, owner)


def _labels(axis: _Axis, final: _Partitions) -> tuple[Any, Floats]:
    """Per final partition: the released label (an Arrow string array) and its NCP cost."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

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
    import numpy as np
    import pandas as pd

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
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

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
