"""Small cells never leave: over random tables, no released cell (or margin) counts fewer people
than the threshold, and no withheld entry can be solved from everything released (the table, its
margins and the one-column tables of each grouping column), checked by linear algebra, not by
the graph argument the implementation uses."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from starlette.testclient import TestClient

from gateway.aggregate.suppress import Pattern, line, one_way, two_way

Ints = npt.NDArray[np.int64]


def solvable(
    equations: list[dict[str, int]], known: dict[str, int], unknowns: list[str]
) -> set[str]:
    """The unknowns the linear equations (variable -> coefficient, each summing to 0) pin
    down: e_k lies in the row space of the equations restricted to the unknowns."""
    if not unknowns:
        return set()
    index = {name: i for i, name in enumerate(unknowns)}
    rows = []
    for equation in equations:
        row = np.zeros(len(unknowns))
        for name, coefficient in equation.items():
            if name in index:
                row[index[name]] = coefficient
        rows.append(row)
    matrix = np.array(rows) if rows else np.zeros((0, len(unknowns)))
    rank = np.linalg.matrix_rank(matrix) if len(rows) else 0
    found = set()
    for name, i in index.items():
        unit = np.zeros(len(unknowns))
        unit[i] = 1
        if np.linalg.matrix_rank(np.vstack([matrix, unit])) == rank:
            found.add(name)
    assert set(known).isdisjoint(unknowns)
    return found


def two_way_equations(rows: int, cols: int) -> list[dict[str, int]]:
    equations = []
    for i in range(rows):
        equations.append({**{f"x{i},{j}": 1 for j in range(cols)}, f"r{i}": -1})
    for j in range(cols):
        equations.append({**{f"x{i},{j}": 1 for i in range(rows)}, f"c{j}": -1})
    equations.append({**{f"r{i}": 1 for i in range(rows)}, "g": -1})
    equations.append({**{f"c{j}": 1 for j in range(cols)}, "g": -1})
    return equations


def entries(
    counts: Ints, pattern: Pattern, row_margin: Pattern, col_margin: Pattern
) -> tuple[dict[str, int], list[str]]:
    """(released entry -> people, withheld entries) of a two-way table together with the
    one-column tables of its two grouping columns (a caller may ask for all three)."""
    released: dict[str, int] = {}
    withheld: set[str] = set()
    rows, cols = counts.shape

    def put(name: str, value: int, hidden: bool) -> None:
        if hidden:
            withheld.add(name)
        else:
            released[name] = value

    for i in range(rows):
        for j in range(cols):
            put(f"x{i},{j}", int(counts[i, j]), bool(pattern.cells[i, j]))
    row_totals, col_totals = counts.sum(axis=1), counts.sum(axis=0)
    for i in range(rows):  # the row margin, in this table and in the one-column table
        put(f"r{i}", int(row_totals[i]), bool(pattern.rows[i]) and bool(row_margin.cells[i, 0]))
    for j in range(cols):
        put(f"c{j}", int(col_totals[j]), bool(pattern.columns[j]) and bool(col_margin.cells[j, 0]))
    total = int(counts.sum())
    put("g", total, pattern.total and row_margin.total and col_margin.total)
    return released, sorted(withheld - set(released))


tables = st.integers(1, 6).flatmap(
    lambda rows: st.integers(1, 6).flatmap(
        lambda cols: arrays(np.int64, (rows, cols), elements=st.integers(0, 25))
    )
)


@settings(max_examples=300, deadline=None)
@given(counts=tables, threshold=st.integers(2, 12))
def test_two_way_tables_release_no_small_cell_and_no_derivable_one(
    counts: Ints, threshold: int
) -> None:
    """Promise: small cells never leave, not even by subtraction from released margins."""
    pattern = two_way(counts, threshold)
    row_margin, col_margin = (
        one_way(counts.sum(axis=1), threshold),
        one_way(counts.sum(axis=0), threshold),
    )
    released, withheld = entries(counts, pattern, row_margin, col_margin)
    assert all(value >= threshold for value in released.values()), released
    derivable = solvable(two_way_equations(*counts.shape), released, withheld)
    assert not derivable, (counts.tolist(), threshold, sorted(derivable))
    # The margins shown with the table are exactly the one-column tables' (linked tables).
    assert (pattern.rows == row_margin.cells[:, 0]).all()
    assert (pattern.columns == col_margin.cells[:, 0]).all()


@settings(max_examples=300, deadline=None)
@given(
    counts=arrays(np.int64, st.integers(1, 12), elements=st.integers(0, 30)),
    threshold=st.integers(2, 12),
)
def test_one_way_tables_release_no_small_cell_and_no_derivable_one(
    counts: Ints, threshold: int
) -> None:
    """Promise: small cells never leave; the withheld ones cannot be had from the total, and
    together they hold at least `threshold` people (no two tiny cells that pin each other)."""
    pattern = one_way(counts, threshold)
    cells = pattern.cells[:, 0]
    released = {f"x{i}": int(v) for i, v in enumerate(counts) if not cells[i]}
    if not pattern.total:
        released["g"] = int(counts.sum())
    assert all(v >= threshold for v in released.values())
    withheld = [f"x{i}" for i in range(len(counts)) if cells[i]] + (["g"] if pattern.total else [])
    equation = {**{f"x{i}": 1 for i in range(len(counts))}, "g": -1}
    assert not solvable([equation], released, withheld)
    if cells.any() and not pattern.total:
        assert counts[cells].sum() >= threshold


def test_line_withholds_the_smallest_complement() -> None:
    """One small cell: the next smallest is withheld with it; the total stays released."""
    assert line(np.array([3, 40, 12, 50]), 10, 105).tolist() == [True, False, True, False]
    assert line(np.array([3, 4, 50]), 10, 57).tolist() == [True, True, True]
    assert line(np.array([3]), 10, 3).tolist() == [True]


def _get(client: TestClient, token: str, url: str) -> Any:
    return client.get(url, headers={"Authorization": f"Bearer {token}"})


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    group_by=st.sampled_from(
        ["district", "city", "gender", "district,gender", "city,district", "province,city"]
    )
)
def test_api_never_releases_a_small_cell(client: TestClient, token: str, group_by: str) -> None:
    """Promise: no count under min_cell leaves the endpoint, cells or margins or total; the
    withheld cells say so and carry no value."""
    url = f"/v1/datasets/residents/aggregate?purpose=statistics&group_by={group_by}"
    body = _get(client, token, url).json()
    threshold = body["min_cell"]
    shown = [*body["cells"], body["total"]]
    for margin in body.get("margins", {}).values():
        shown.extend(margin)
    for entry in shown:
        if entry.get("withheld"):
            assert entry["value"] is None
        else:
            assert entry["value"] >= threshold


def test_grouping_keys_are_public_values(client: TestClient, token: str) -> None:
    """Promise 2: group keys are a public column's values or a personal column's declared
    categories; rows outside the declared ones form one unnamed group (key null), so tables
    still add up and no raw value becomes a key."""
    body = _get(
        client, token, "/v1/datasets/residents/aggregate?purpose=statistics&group_by=gender"
    ).json()
    keys = {cell["key"]["gender"] for cell in body["cells"]}
    assert keys <= {"男", "女", None}
    released = [c["value"] for c in body["cells"] if not c.get("withheld")]
    if not any(c.get("withheld") for c in body["cells"]):
        assert sum(released) == body["total"]["value"]
