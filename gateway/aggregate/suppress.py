"""Small-cell protection for frequency and magnitude tables, as statistical offices practise it:
primary suppression of every cell counting fewer than `threshold` people, then complementary
suppression until no withheld cell can be worked out from what is released.

A table with its margins is a set of additive lines (each row: its cells sum to the row total;
each column; the row of column totals and the column of row totals, both summing to the grand
total). Writing the table augmented with its margins as a matrix whose every row and column
sums to zero (margins negated), the withheld entries are the edges of a bipartite graph (row
nodes, column nodes). A withheld entry can be solved from the released ones exactly when its
edge is a bridge of that graph (it lies on no cycle, along which the unknowns could be shifted
by +t, -t, ... without changing any line). So the rule enforced is:

- every line with a withheld entry has at least two, whose sum is at least `threshold` people
  (no pair of tiny cells whose sum, known from the margin, pins both down);
- no withheld entry is a bridge (one-dimensional tables: one line, where two suffice).

Margins are shared between tables: the margin of `district` in a district x gender table is the
one-column table of `district`. So a table's margins are always suppressed exactly as that
one-column table is, and the grand total (the same in every table) is never a complementary
choice; complementary cells of a two-column table are always inner cells. A pattern depends only
on the counts, never on the measure, so count, sum and mean tables of one grouping share it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:  # networkx is imported where a two-way table needs it (start-up cost)
    import networkx as nx
    import numpy as np
    import numpy.typing as npt

Counts: TypeAlias = "npt.NDArray[np.int64]"
Mask: TypeAlias = "npt.NDArray[np.bool_]"
Node = tuple[str, int | str]  # ("r" or "c", index or "T" for the margin)


MAX_ROUNDS = 400


class CannotProtect(Exception):
    """No suppression pattern was found that protects the table (nothing is released)."""


@dataclass(frozen=True)
class Pattern:
    """Which entries of a table and its margins are withheld."""

    cells: Mask  # shape (rows, columns); one-column tables have columns == 1
    rows: Mask  # the row margins (row totals)
    columns: Mask  # the column margins (column totals); empty for one-column tables
    total: bool


def line(counts: Counts, threshold: int, total: int) -> Mask:
    """The pattern of one additive line whose total is released (unless below threshold):
    primary cells, then the smallest further cells until two or more are withheld and together
    they hold at least `threshold` people."""
    import numpy as np

    counts = np.asarray(counts, dtype=np.int64)
    if total < threshold:
        return np.ones(len(counts), dtype=bool)
    withheld = counts < threshold
    order = np.lexsort((np.arange(len(counts)), counts))  # smallest first, stable
    for index in order:
        held = int(withheld.sum())
        if held == 0 or (held >= 2 and int(counts[withheld].sum()) >= threshold):
            break
        withheld[index] = True
    return withheld


def one_way(counts: Counts, threshold: int) -> Pattern:
    """The pattern of a one-column table (cells and the grand total)."""
    import numpy as np

    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    cells = line(counts, threshold, total)
    return Pattern(cells.reshape(-1, 1), cells.copy(), np.zeros(0, bool), total < threshold)


def _graph(cells: Mask, rows: Mask, columns: Mask, total: bool) -> nx.Graph[Node]:
    """Withheld entries as edges: inner cell (i, j) joins r{i} and c{j}; row total i joins r{i}
    and cT; column total j joins rT and c{j}; the grand total joins rT and cT."""
    import networkx as nx
    import numpy as np

    graph: nx.Graph[Node] = nx.Graph()
    for i, j in zip(*np.nonzero(cells), strict=True):
        graph.add_edge(("r", int(i)), ("c", int(j)))
    for i in np.flatnonzero(rows):
        graph.add_edge(("r", int(i)), ("c", "T"))
    for j in np.flatnonzero(columns):
        graph.add_edge(("r", "T"), ("c", int(j)))
    if total:
        graph.add_edge(("r", "T"), ("c", "T"))
    return graph


def exposed(pattern: Pattern) -> list[tuple[Node, Node]]:
    """The withheld entries that the released ones determine (bridges), as graph edges."""
    import networkx as nx

    graph = _graph(pattern.cells, pattern.rows, pattern.columns, pattern.total)
    return list(nx.bridges(graph))  # type: ignore[arg-type]  # (the stubs mistype bridges)


def _fix_lines(counts: Counts, cells: Mask, rows: Mask, columns: Mask, threshold: int) -> bool:
    """Inner lines with exactly one withheld entry, or withheld entries holding fewer than
    `threshold` people together: withhold their smallest further inner cell. True if changed."""
    import numpy as np

    changed = False
    for axis, margin in ((1, rows), (0, columns)):
        for index in range(counts.shape[1 - axis]):
            values = counts[index, :] if axis == 1 else counts[:, index]
            held = cells[index, :] if axis == 1 else cells[:, index]
            number = int(held.sum()) + int(margin[index])
            if number == 0:
                continue
            people = int(values[held].sum()) + (int(values.sum()) if margin[index] else 0)
            if number >= 2 and people >= threshold:
                continue
            free = np.flatnonzero(~held)
            if len(free) == 0:
                continue
            pick = free[np.lexsort((free, values[free]))[0]]
            if axis == 1:
                cells[index, pick] = True
            else:
                cells[pick, index] = True
            changed = True
    return changed


def _close_cycle(
    counts: Counts, cells: Mask, rows: Mask, columns: Mask, bridge: tuple[Node, Node]
) -> bool:
    """Withhold the cheapest inner cells that put `bridge` on a cycle. False if none can."""
    import networkx as nx
    import numpy as np

    graph: nx.Graph[Node] = nx.Graph()
    for i in range(counts.shape[0]):
        for j in range(counts.shape[1]):
            weight = 0 if cells[i, j] else 1 + int(counts[i, j])
            graph.add_edge(("r", i), ("c", j), weight=weight)
    for r in np.flatnonzero(rows):
        graph.add_edge(("r", int(r)), ("c", "T"), weight=0)
    for c in np.flatnonzero(columns):
        graph.add_edge(("r", "T"), ("c", int(c)), weight=0)
    u, v = bridge
    if graph.has_edge(u, v):
        graph.remove_edge(u, v)
    try:
        path = nx.dijkstra_path(graph, u, v, weight="weight")
    except (nx.NetworkXNoPath, nx.NodeNotFound):
        return False
    for a, b in itertools.pairwise(path):
        row, col = (a, b) if a[0] == "r" else (b, a)
        if row[1] != "T" and col[1] != "T":
            cells[int(row[1]), int(col[1])] = True
    return True


def two_way(counts: Counts, threshold: int) -> Pattern:
    """The pattern of a two-column table with its margins, consistent with the one-column
    tables of each grouping column (its margins)."""
    import numpy as np

    counts = np.asarray(counts, dtype=np.int64)
    rows_of, cols_of = (
        one_way(counts.sum(axis=1), threshold),
        one_way(counts.sum(axis=0), threshold),
    )
    rows, columns = rows_of.rows, cols_of.rows
    total = int(counts.sum()) < threshold
    if total:
        return Pattern(np.ones(counts.shape, bool), rows, columns, True)
    cells = counts < threshold
    # Each round withholds at least one more cell; past MAX_ROUNDS (a large, fragmented table)
    # every inner cell is withheld instead, which is safe and bounds the work per query.
    for _ in range(min(4 * counts.size + 8, MAX_ROUNDS)):
        if _fix_lines(counts, cells, rows, columns, threshold):
            continue
        bridges = exposed(Pattern(cells, rows, columns, False))
        if not bridges:
            return Pattern(cells, rows, columns, False)
        if not _close_cycle(counts, cells, rows, columns, bridges[0]):
            break
    cells = np.ones(counts.shape, bool)
    if counts.shape[0] == 1 or counts.shape[1] == 1:
        # One category on a side: the inner cells are the other side's margin; mirror it.
        cells = (rows[:, None] if counts.shape[1] == 1 else columns[None, :]).copy()
        cells = np.broadcast_to(cells, counts.shape).copy()
    pattern = Pattern(cells, rows, columns, False)
    if exposed(pattern):
        raise CannotProtect("no suppression pattern protects this table; group by less")
    return pattern
