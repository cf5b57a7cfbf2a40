"""The worker of the two-process budget race (tests/privacy/test_aggregate_dp.py), in a module
of its own: a spawned process imports the module its target lives in, and this one needs only
the budget store (the test module would load OpenDP, numpy, Starlette and the whole app)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from gateway.aggregate.budget import Budgets
from gateway.model.aggregate import Privacy
from gateway.store.db import Database


def spend_many(path: str, tries: int, queue: Any) -> None:
    """Try `tries` times to spend 0.1 of a 1.5 epsilon budget; put how many succeeded."""
    budgets = Budgets(Database.sqlite(Path(path), synchronous="FULL"))
    rules = Privacy("laplace", Decimal("0.1"), Decimal(0), Decimal("1.5"), Decimal(0), "day")
    won = sum(
        budgets.spend("c", "g", rules, (rules.epsilon, rules.delta), now=1_800_000_000).allowed
        for _ in range(tries)
    )
    budgets.close()
    queue.put(won)
