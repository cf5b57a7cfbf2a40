"""The recorded cost of each test module, which `make test` uses to start the longest first
(tests/conftest.py). Refresh it after adding or changing a slow test:

    .venv/bin/pytest -p xdist.plugin -n 3 --junitxml=/tmp/run.xml
    .venv/bin/python -m tests.costs /tmp/run.xml

It writes tests/costs.json: seconds per module (set-up, call and tear-down of its tests). Only
the order matters, and a module it does not list counts as a median one."""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

COSTS = Path(__file__).with_name("costs.json")


def module_costs(junit_xml: Path) -> dict[str, float]:
    """Seconds per test module (its path from the repository's root), from a JUnit report."""
    costs: defaultdict[str, float] = defaultdict(float)
    for case in ET.parse(junit_xml).getroot().iter("testcase"):  # noqa: S314 - see above
        module = case.get("classname", "").replace(".", "/") + ".py"
        costs[module] += float(case.get("time") or 0)
    return {module: round(seconds, 1) for module, seconds in sorted(costs.items())}


def load_costs() -> dict[str, float]:
    if not COSTS.is_file():
        return {}
    costs: dict[str, float] = json.loads(COSTS.read_text())
    return costs


if __name__ == "__main__":
    COSTS.write_text(json.dumps(module_costs(Path(sys.argv[1])), indent=1) + "\n")
