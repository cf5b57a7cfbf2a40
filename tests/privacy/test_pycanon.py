"""Promise 4, cross-checked by a third party: pycanon computes k and l on our released Adult
view and agrees with what the lattice search reports (and with the model asked for).

Skips when ../shared (the Adult benchmark) is absent or pycanon is not importable. pycanon pins
exact, older versions of numpy, pandas and typing-extensions that conflict with anyio, so it is
installed without its dependencies (`make test` and `make bench` do: `pip install --no-deps
pycanon`); the functions used here need only numpy and pandas.
"""

from __future__ import annotations

import importlib
from types import ModuleType

import pytest

from gateway.privacy.lattice import anonymize, load_hierarchy
from tests.privacy.test_lattice import ADULT, QIS, adult_frame


def pycanon_anonymity() -> ModuleType:
    try:
        return importlib.import_module("pycanon.anonymity")
    except ImportError as exc:  # not installed, or a dependency of it is missing
        pytest.skip(f"pycanon not importable ({exc}); install with: pip install --no-deps pycanon")


@pytest.mark.skipif(not ADULT.is_dir(), reason="../shared/benchmarks/adult not present")
@pytest.mark.parametrize(("k", "l"), [(5, None), (5, 2), (10, None)])
def test_pycanon_agrees_on_adult(k: int, l: int | None) -> None:  # noqa: E741
    anonymity = pycanon_anonymity()
    frame = adult_frame()
    hierarchies = {q: load_hierarchy(ADULT / f"adult_hierarchy_{q}.csv") for q in QIS}
    sensitive = "salary-class" if l else None
    released, solution = anonymize(frame, QIS, hierarchies, k, 0.05, l, sensitive)
    table = released.reset_index(drop=True).astype(object)  # pycanon indexes by position
    measured_k = int(anonymity.k_anonymity(table, QIS))
    assert measured_k == solution.k
    assert measured_k >= k
    if l is not None:
        measured_l = int(anonymity.l_diversity(table, QIS, ["salary-class"]))
        assert measured_l == solution.l
        assert measured_l >= l
