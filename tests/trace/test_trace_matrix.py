"""The leak-tracing robustness matrix (issue 9), on a small fleet: 20 clients share one grant
whose keyed transforms are all `scope: grant`, so only the fingerprint tells them apart.
`benchmarks/trace_matrix.py` runs the same matrix for every client and prints the table."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from tests.paths import REPO


def _matrix() -> ModuleType:
    path = REPO / "benchmarks" / "trace_matrix.py"
    spec = importlib.util.spec_from_file_location("trace_matrix", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["trace_matrix"] = module
    spec.loader.exec_module(module)
    return module


def test_matrix_names_the_leaker_and_never_a_wrong_client(tmp_path: Path) -> None:
    """No false attribution in any case; from 5 % of the rows (100) every 3-column leak holding a
    carrier is attributed, even when a masked address is its only carrier; all columns suffice
    from 1 %; a leak without a carrier is never attributed."""
    tm = _matrix()
    fleet, views = tm.fleet_views(tmp_path / "ws", 2000, 20)
    results = tm.run_matrix(fleet, views, tmp_path, seed=11, leakers=3)
    assert sum(cell.wrong for cell in results.values()) == 0
    for (fraction, kind, _variant), cell in results.items():
        if kind in (tm.ALL, tm.CONTROL) or fraction in ("5%", "20%"):
            assert cell.correct == cell.cases, (fraction, kind, _variant)
