"""k-anonymity (and distinct l-diversity) by full-domain generalization plus record suppression:
a search of the generalization lattice for the least-loss node, in the spirit of ARX Flash/OLA.

Each quasi-identifier has a hierarchy (ARX CSV: `value;level1;...;*`); a lattice node chooses one
level per quasi-identifier. A node is acceptable when the rows in classes smaller than k (or with
fewer than l distinct sensitive values) are at most the allowed share, which are then
suppressed. Acceptability is monotone (generalizing more only merges classes), and so is the
generalization loss (mean of level/height over the quasi-identifiers): every node above another
has a strictly higher loss. So the search evaluates nodes in order of increasing loss and stops
after the first acceptable one and the nodes of equal loss (suppressed share breaks ties, then
the lattice order by height); it never evaluates a node that costs more than the answer. The top
node is evaluated first: when even it is not acceptable, nothing is, and the search ends at once.

Hierarchy levels are computed once per distinct value (not per row), and the evaluation runs on
the distinct combinations of quasi-identifier values (plus the sensitive value for l), each
weighted by how many rows share it.
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

from gateway.errors import GatewayError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pandas as pd

MAX_NODES = 100_000

Codes: TypeAlias = "npt.NDArray[np.int64]"


class Unreachable(GatewayError):
    """No lattice node meets the model within the suppression limit."""


def load_hierarchy(path: Path) -> list[dict[str, str]]:
    """Per level (1..H), a mapping value -> generalized label, from an ARX hierarchy file."""
    return parse_hierarchy(path.read_text(encoding="utf-8"), str(path))


def parse_hierarchy(text: str, name: str) -> list[dict[str, str]]:
    """`load_hierarchy` on a file's text (`name` is used in the error only)."""
    rows = [row for row in csv.reader(io.StringIO(text, newline=""), delimiter=";") if row]
    if not rows:
        raise ValueError(f"{name} is an empty hierarchy")
    height = min(len(row) for row in rows) - 1
    return [{row[0]: row[level] for row in rows} for level in range(1, height + 1)]


@dataclass(frozen=True)
class Solution:
    levels: tuple[int, ...]  # chosen level per quasi-identifier
    suppressed: int
    k: int
    l: int | None  # noqa: E741 - the model's standard name
    loss: float  # generalization loss, 0 (none) .. 1 (everything at the top)
    discernibility: int
    evaluated: int  # lattice nodes evaluated


@dataclass(frozen=True)
class _Column:
    """One quasi-identifier: the level-0 code of each row, and per level 1..H the generalized
    label of each distinct level-0 value with its integer code (codes in order of appearance)."""

    rows: Codes
    labels: Sequence[pd.api.extensions.ExtensionArray]  # per level 1..H: per distinct value
    codes: list[Codes]  # per level 0..H: code per distinct level-0 value


def _column(values: pd.Series, hierarchy: list[dict[str, str]]) -> _Column:
    import numpy as np
    import pandas as pd

    rows, uniques = pd.factorize(values.astype("string"), use_na_sentinel=False)
    distinct = uniques.to_numpy(dtype=object)
    distinct[uniques.isna()] = None  # a dict look-up of pd.NA raises on a hash collision
    # One dictionary look-up per distinct value and level (a missing value, or one the
    # hierarchy does not list, is generalized to "*": never kept as is).
    labels = [
        pd.array(list(map(mapping.get, distinct)), dtype="string").fillna("*")
        for mapping in hierarchy or [{}]
    ]
    codes = [np.arange(len(distinct), dtype=np.int64)]
    codes += [lab.factorize(use_na_sentinel=False)[0].astype(np.int64) for lab in labels]
    return _Column(rows.astype(np.int64), labels, codes)


def _combine(parts: Sequence[Codes]) -> Codes:
    """One integer per distinct combination of the parts (radix packing, refactorized before
    the packed key could overflow)."""
    import numpy as np
    import pandas as pd

    key = np.zeros(len(parts[0]), dtype=np.int64)
    space = 1
    for part in parts:
        width = int(part.max()) + 1 if len(part) else 1
        if space * width >= 2**62:
            key, uniques = pd.factorize(key)
            space = max(len(uniques), 1)
        key = key * width + part
        space *= width
    return key


def _distinct(classes: Codes, values: Codes, count: int) -> Codes:
    """Per class (0..count-1): how many distinct values its members hold."""
    import numpy as np
    import pandas as pd

    width = int(values.max()) + 1 if len(values) else 1
    pairs = classes * width + values
    if count * width <= 4 * len(pairs) + 1024:
        present = np.bincount(pairs, minlength=count * width) > 0  # small space: mark directly
        per_class: Codes = present.reshape(count, width).sum(axis=1, dtype=np.int64)
        return per_class
    return np.bincount(pd.unique(pairs) // width, minlength=count).astype(np.int64)


def _node_key(
    parts: Sequence[Codes], node: Sequence[int], radix: Sequence[Sequence[int]]
) -> tuple[Codes, int]:
    """The mixed-radix key of each element over its codes at `node`, and the key space."""
    key = parts[0].copy()
    space = radix[0][node[0]]
    for i in range(1, len(node)):
        key *= radix[i][node[i]]
        key += parts[i]
        space *= radix[i][node[i]]
    return key, space


class _Rollup:
    """k-anonymity by rolling classes up the lattice (as ARX does): each evaluated node keeps
    its classes as one sorted integer each, holding every quasi-identifier's code at a fixed
    bit position and, in the low bits, the class's row count capped at k (a class of k rows or
    more stays one at every node above, and only smaller ones are suppressed). A node's classes
    are those of the node one level below it with the fewest classes, merged at the node: one
    level up on quasi-identifier i changes a class's code bits for i alone (a shift, a mask, a
    gather and an add), then one sort brings equal codes together with their counts, and a
    segment sum merges them (no hashing). Exact when every hierarchy is a tree (a label's
    parent is one label), which `applies` checks. Nodes are evaluated by increasing loss, so a
    node's classes are dropped once no node left to evaluate can roll up from them."""

    def __init__(
        self, tuple_codes: list[list[Codes]], radix: list[list[int]], weights: Codes, k: int
    ) -> None:
        import numpy as np

        self._k = k
        self._low = k.bit_length()  # the count bits
        self._widths = _widths(radix)
        self._shifts = [int(s) for s in np.cumsum([self._low, *self._widths[:0:-1]])[::-1]]
        # Per QI and level L >= 1: per code at level L-1, how a class changes from L-1 to L.
        self._steps = [
            [_changes(below, level) << shift for below, level in itertools.pairwise(levels)]
            for levels, shift in zip(tuple_codes, self._shifts, strict=True)
        ]
        bottom = np.minimum(weights, k)
        for levels, shift in zip(tuple_codes, self._shifts, strict=True):
            bottom |= levels[0] << shift
        # A node one level above another costs at most this much more.
        self._reach = 1.0 / (len(radix) * min(len(r) - 1 for r in radix))
        self._bottom = np.sort(bottom)  # the distinct tuples themselves
        self._kept: dict[tuple[int, ...], tuple[Codes, float]] = {}

    @staticmethod
    def applies(columns: Sequence[_Column], radix: Sequence[Sequence[int]], k: int) -> bool:
        """Whether every hierarchy is a tree (values sharing a label at one level share it at
        every level above) and the codes and a count up to k fit in 63 bits."""
        import pandas as pd

        if k < 1 or sum(_widths(radix)) + k.bit_length() > 63:
            return False
        for column in columns:
            for lower, upper in itertools.pairwise(column.codes):
                pairs = pd.unique(lower * (int(upper.max()) + 1) + upper)
                if len(pairs) != len(pd.unique(lower)):
                    return False
        return True

    def _up(self, classes: Codes, i: int, level: int) -> Codes:
        """The classes one level up (to `level`) on quasi-identifier i, not yet merged."""
        codes = (classes >> self._shifts[i]) & ((1 << self._widths[i]) - 1)
        up: Codes = classes + self._steps[i][level - 1][codes]
        return up

    def _merge(self, classes: Codes) -> tuple[Codes, Codes]:
        """Classes with equal codes merged (counts summed, capped at k), in sorted order, and
        their counts."""
        import numpy as np

        classes = np.sort(classes)
        codes = classes >> self._low
        counts = classes & ((1 << self._low) - 1)
        first = np.empty(len(classes), dtype=np.bool_)
        first[:1] = True
        np.not_equal(codes[1:], codes[:-1], out=first[1:])
        starts = np.flatnonzero(first)
        if len(starts) == len(classes):
            return classes, counts
        counts = np.minimum(np.add.reduceat(counts, starts), self._k)
        merged: Codes = (codes[starts] << self._low) | counts
        return merged, counts

    def evaluate(self, node: tuple[int, ...], loss: float) -> int:
        """The rows in classes smaller than k at `node` (whose loss is `loss`)."""
        import numpy as np

        kept = self._kept
        while kept:  # insertion order is loss order: drop what nothing can use now
            oldest = next(iter(kept))
            if kept[oldest][1] >= loss - self._reach - 1e-9:
                break
            del kept[oldest]
        source: Codes | None = None
        step = -1
        for i, level in enumerate(node):
            if level:
                lower = kept.get((*node[:i], level - 1, *node[i + 1 :]))
                if lower is not None and (source is None or len(lower[0]) < len(source)):
                    source, step = lower[0], i
        if source is not None:
            classes, counts = self._merge(self._up(source, step, node[step]))
        else:  # the bottom, or (never with trees) nothing below is kept: climb from it
            classes = self._bottom
            for i, level in enumerate(node):
                for lv in range(1, level + 1):
                    classes = self._up(classes, i, lv)
            classes, counts = self._merge(classes)
        kept[node] = (classes, loss)
        # Counts are capped at k: the rows in smaller classes are all rows but k per full one.
        return int(counts.sum()) - self._k * int(np.count_nonzero(counts == self._k))


def _widths(radix: Sequence[Sequence[int]]) -> list[int]:
    """Bits each quasi-identifier's level-0 code takes in a class's integer."""
    return [(r[0] - 1).bit_length() for r in radix]


def _changes(below: Codes, level: Codes) -> Codes:
    """Per code at one level (`below`, per distinct value), its code one level up minus it."""
    import numpy as np

    change = np.zeros(int(below.max()) + 1 if len(below) else 0, dtype=np.int64)
    change[below] = level - below
    return change


def anonymize(
    frame: pd.DataFrame,
    qis: Sequence[str],
    hierarchies: Mapping[str, list[dict[str, str]]],
    k: int,
    max_suppression: float,
    l: int | None = None,  # noqa: E741
    sensitive: str | None = None,
) -> tuple[pd.DataFrame, Solution]:
    import numpy as np
    import pandas as pd

    n = len(frame)
    if n == 0:
        return frame, Solution(tuple(0 for _ in qis), 0, 0, None, 0.0, 0, 0)
    columns = [_column(frame[qi], hierarchies.get(qi, [])) for qi in qis]
    heights = [len(c.codes) - 1 for c in columns]
    sens: Codes | None = None
    if l is not None and sensitive is not None:
        sens = pd.factorize(frame[sensitive].astype("string"), use_na_sentinel=False)[0]
        sens = sens.astype(np.int64)
    allowed = int(np.floor(max_suppression * n + 1e-9))

    # Evaluate on distinct tuples (QI codes at level 0, plus the sensitive value for l), each
    # weighted by how many rows share it: identical rows always fall in the same class.
    parts = [c.rows for c in columns] + ([sens] if sens is not None else [])
    row_tuple, _ = pd.factorize(_combine(parts))
    row_tuple = row_tuple.astype(np.int64)
    first = np.zeros(int(row_tuple.max()) + 1, dtype=np.int64)
    first[row_tuple[::-1]] = np.arange(n - 1, -1, -1)  # one representative row per tuple
    weights = np.bincount(row_tuple).astype(np.int64)
    tuple_codes = [[lv[c.rows[first]] for lv in c.codes] for c in columns]
    tuple_sens = sens[first] if sens is not None else None
    radix = [[int(lv.max()) + 1 for lv in c.codes] for c in columns]

    def evaluate(node: tuple[int, ...]) -> tuple[npt.NDArray[np.bool_], int, Codes]:
        """Per distinct tuple: whether its class misses k (or l), and its class; the rows
        suppressed."""
        key, space = _node_key([tuple_codes[i][lv] for i, lv in enumerate(node)], node, radix)
        # A small key space is counted directly; otherwise hashing (cheaper than sorting).
        inverse = key if space <= 4 * len(key) + 1024 else pd.factorize(key)[0].astype(np.int64)
        counts = np.bincount(inverse, weights=weights)
        small = counts[inverse] < k
        if tuple_sens is not None and l is not None:
            small |= _distinct(inverse, tuple_sens, len(counts))[inverse] < l
        return small, int(weights[small].sum()), inverse

    nodes = sorted(itertools.product(*(range(h + 1) for h in heights)), key=sum)
    if len(nodes) > MAX_NODES:
        raise Unreachable(
            f"the generalization lattice has {len(nodes)} nodes; use shorter hierarchies"
        )
    # Loss per node, vectorized (the same floats as `loss` below computes one node at a time).
    losses = np.mean(
        np.asarray(nodes, dtype=np.float64) / np.asarray(heights, dtype=np.float64), axis=1
    )
    top = evaluate(nodes[-1])
    evaluated = 1
    if top[1] > allowed:
        target = f"k={k}" + (f", l={l}" if l else "")
        raise Unreachable(
            f"{target} on {', '.join(qis)} cannot be reached within {max_suppression:.1%} "
            "suppression even with every quasi-identifier at the top of its hierarchy"
        )

    # By increasing loss, then by position in the height order (the tie-break of the lattice
    # walk by height): the first acceptable node fixes the least loss; nodes of equal loss
    # compete on suppression. Every node below a node has a lower loss, so it was evaluated
    # before: for k alone, a node's classes are rolled up from those of the node just below it
    # with the fewest classes (ARX's roll-up), never recounted from the tuples.
    rollup = None
    if tuple_sens is None and _Rollup.applies(columns, radix, k):
        rollup = _Rollup(tuple_codes, radix, weights, k)
    best: tuple[int, int] | None = None  # position, rows suppressed
    least: float | None = None  # the least loss of an acceptable node, once one is found
    for position in np.lexsort((np.arange(len(nodes)), losses)).tolist():
        if least is not None and losses[position] > least:
            break
        if position == len(nodes) - 1:
            suppressed = top[1]
        elif rollup is not None:
            suppressed = rollup.evaluate(nodes[position], float(losses[position]))
            evaluated += 1
        else:
            suppressed = evaluate(nodes[position])[1]
            evaluated += 1
        if suppressed <= allowed and (best is None or suppressed < best[1]):
            least = float(losses[position])
            best = (position, suppressed)
    assert best is not None  # noqa: S101 - the top node is acceptable (checked above)
    position = best[0]
    node = nodes[position]
    small_tuples, suppressed, inverse = top if position == len(nodes) - 1 else evaluate(node)

    def loss(node: tuple[int, ...]) -> float:
        return float(np.mean([lv / h if h else 0.0 for lv, h in zip(node, heights, strict=True)]))

    keep_rows = ~small_tuples[row_tuple]  # back from distinct tuples to rows
    out = frame[keep_rows]
    for i, qi in enumerate(qis):
        if node[i]:
            out[qi] = columns[i].labels[node[i] - 1].take(columns[i].rows[keep_rows])
    kept = ~small_tuples
    sizes_all = np.bincount(inverse[kept], weights=weights[kept]).astype(np.int64)
    sizes = sizes_all[sizes_all > 0]
    k_achieved = int(sizes.min()) if len(sizes) else 0
    l_achieved = None
    if tuple_sens is not None and len(out):
        distinct = _distinct(inverse[kept], tuple_sens[kept], len(sizes_all))
        l_achieved = int(distinct[sizes_all > 0].min())
    return out, Solution(
        node,
        suppressed,
        k_achieved,
        l_achieved,
        loss(node),
        int((sizes**2).sum()) + suppressed * n,
        evaluated,
    )
