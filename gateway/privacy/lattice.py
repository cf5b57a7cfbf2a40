"""k-anonymity (and distinct l-diversity) by full-domain generalization plus record suppression:
a search of the generalization lattice for the least-loss node, in the spirit of ARX Flash/OLA.

Each quasi-identifier has a hierarchy (ARX CSV: `value;level1;...;*`); a lattice node chooses one
level per quasi-identifier. A node is acceptable when the rows in classes smaller than k (or with
fewer than l distinct sensitive values) are at most the allowed share, which are then
suppressed. Acceptability is monotone (generalizing more only merges classes), so the search
walks the lattice by height and never evaluates a node above an acceptable one: only minimal
acceptable nodes compete, and the winner has the least generalization loss (mean of level/height
over the quasi-identifiers; suppressed share and then discernibility break ties).
"""

from __future__ import annotations

import csv
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

MAX_NODES = 100_000


class Unreachable(Exception):
    """No lattice node meets the model within the suppression limit."""


def load_hierarchy(path: Path) -> list[dict[str, str]]:
    """Per level (1..H), a mapping value -> generalized label, from an ARX hierarchy file."""
    with path.open(newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.reader(handle, delimiter=";") if row]
    if not rows:
        raise ValueError(f"{path} is an empty hierarchy")
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


def _codes(values: pd.Series) -> npt.NDArray[np.int64]:
    codes, _ = pd.factorize(values.astype("string"), use_na_sentinel=False)
    return codes.astype(np.int64)


def anonymize(
    frame: pd.DataFrame,
    qis: Sequence[str],
    hierarchies: Mapping[str, list[dict[str, str]]],
    k: int,
    max_suppression: float,
    l: int | None = None,  # noqa: E741
    sensitive: str | None = None,
) -> tuple[pd.DataFrame, Solution]:
    n = len(frame)
    if n == 0:
        return frame, Solution(tuple(0 for _ in qis), 0, 0, None, 0.0, 0, 0)
    # Per QI and level: the generalized column and its integer codes (level 0: as released).
    columns: list[list[pd.Series]] = []
    codes: list[list[npt.NDArray[np.int64]]] = []
    for qi in qis:
        base = frame[qi].astype("string")
        per_level = [frame[qi]]  # level 0: the column as released, with its own type
        for mapping in hierarchies.get(qi, []):
            # A value the hierarchy does not list is generalized to "*" (never kept as is).
            per_level.append(base.map(mapping).fillna("*").astype("string"))
        if not hierarchies.get(qi):
            per_level.append(pd.Series("*", index=frame.index, dtype="string"))
        columns.append(per_level)
        codes.append([_codes(c) for c in per_level])
    heights = [len(c) - 1 for c in codes]
    sens = _codes(frame[sensitive]) if l is not None and sensitive is not None else None
    allowed = int(np.floor(max_suppression * n + 1e-9))

    # Evaluate on distinct tuples (QI codes at level 0, plus the sensitive value for l), each
    # weighted by how many rows share it: identical rows always fall in the same class.
    parts = [codes[i][0] for i in range(len(qis))] + ([sens] if sens is not None else [])
    row_key = np.zeros(n, dtype=np.int64)
    for part in parts:
        row_key = row_key * (int(part.max()) + 1) + part
    row_tuple, _ = pd.factorize(row_key)
    first = np.zeros(int(row_tuple.max()) + 1, dtype=np.int64)
    first[row_tuple[::-1]] = np.arange(n - 1, -1, -1)  # one representative row per tuple
    weights = np.bincount(row_tuple).astype(np.int64)
    tuple_codes = [[c[first] for c in per_qi] for per_qi in codes]
    tuple_sens = sens[first] if sens is not None else None
    radix = [[int(c.max()) + 1 for c in per_qi] for per_qi in codes]

    def evaluate(node: tuple[int, ...]) -> tuple[npt.NDArray[np.bool_], int]:
        """Per distinct tuple: whether its class misses k (or l); and the rows suppressed."""
        key = tuple_codes[0][node[0]].copy()
        space = radix[0][node[0]]
        for i in range(1, len(node)):
            key *= radix[i][node[i]]
            key += tuple_codes[i][node[i]]
            space *= radix[i][node[i]]
        if space <= 4 * len(key) + 1024:
            inverse = key  # the key space is small: count directly
        else:
            inverse, _ = pd.factorize(key)  # hashing: cheaper than sorting
        counts = np.bincount(inverse, weights=weights)
        small = counts[inverse] < k
        if tuple_sens is not None and l is not None:
            width = int(tuple_sens.max()) + 1
            pairs = np.unique(inverse.astype(np.int64) * width + tuple_sens)
            distinct = np.bincount(pairs // width, minlength=len(counts))
            small |= distinct[inverse] < l
        return small, int(weights[small].sum())

    minimal_nodes = np.zeros((0, len(qis)), dtype=np.int64)
    minimal: list[tuple[tuple[int, ...], int, npt.NDArray[np.bool_]]] = []
    evaluated = 0
    nodes = sorted(itertools.product(*(range(h + 1) for h in heights)), key=sum)
    if len(nodes) > MAX_NODES:
        raise Unreachable(
            f"the generalization lattice has {len(nodes)} nodes; use shorter hierarchies"
        )
    for node in nodes:
        if len(minimal) and bool(np.any(np.all(minimal_nodes <= np.asarray(node), axis=1))):
            continue  # above an acceptable node: acceptable, but never minimal
        evaluated += 1
        small, suppressed = evaluate(node)
        if suppressed <= allowed:
            minimal.append((node, suppressed, small))
            minimal_nodes = np.vstack([minimal_nodes, np.asarray(node)])
    if not minimal:
        target = f"k={k}" + (f", l={l}" if l else "")
        raise Unreachable(
            f"{target} on {', '.join(qis)} cannot be reached within {max_suppression:.1%} "
            "suppression even with every quasi-identifier at the top of its hierarchy"
        )

    def loss(node: tuple[int, ...]) -> float:
        return float(np.mean([lv / h if h else 0.0 for lv, h in zip(node, heights, strict=True)]))

    node, suppressed, small_tuples = min(minimal, key=lambda m: (loss(m[0]), m[1]))
    small = small_tuples[row_tuple]  # back from distinct tuples to rows
    out = frame.copy()
    for i, qi in enumerate(qis):
        out[qi] = columns[i][node[i]]
    out = out[~small]
    keys = out[list(qis)].astype("string").fillna("\x00")
    sizes = (
        keys.groupby(list(qis), sort=False, dropna=False).size()
        if len(out)
        else pd.Series(dtype="int64")
    )
    k_achieved = int(sizes.min()) if len(sizes) else 0
    l_achieved = None
    if sens is not None and sensitive is not None and len(out):
        grouped = out.groupby(list(qis), sort=False, dropna=False)[sensitive]
        l_achieved = int(grouped.nunique(dropna=False).min())
    return out, Solution(
        node,
        suppressed,
        k_achieved,
        l_achieved,
        loss(node),
        int((sizes**2).sum()) + suppressed * n,
        evaluated,
    )
