"""Privacy-loss budgets: what each (client, grant) has spent of its epsilon and delta in the
current period, in the shared store (the registry's database: a SQLite file, or PostgreSQL),
so every worker process and every host draws on the same budget.

A spend is one statement that checks and adds at once (an upsert whose update only happens if
the result stays within the budget), so two queries racing from different processes can never
together pass it. Amounts are integers: epsilon in millionths, delta in 10^-15; a query's cost
is rounded up and a budget down, never the other way.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from gateway.aggregate.rules import period_of
from gateway.model.aggregate import Privacy
from gateway.store.db import Database, Shared
from gateway.store.schema import StoreSchema

EPSILON_UNIT = Decimal("1e-6")
DELTA_UNIT = Decimal("1e-15")
SCHEMA = """
CREATE TABLE IF NOT EXISTS dp_budget (
    client_id  TEXT NOT NULL,
    grant_id   TEXT NOT NULL,
    period     TEXT NOT NULL,
    epsilon    {int} NOT NULL,
    delta      {int} NOT NULL,
    PRIMARY KEY (client_id, grant_id, period)
)
"""

# What `gateway store migrate` copies (the budgets live in the registry's database).
BUDGET_STORE = StoreSchema(
    what="privacy budgets", ddl=SCHEMA, tables=(("dp_budget", "client_id, grant_id, period"),)
)


def units(value: Decimal, unit: Decimal, *, up: bool) -> int:
    return int((value / unit).to_integral_value(ROUND_CEILING if up else ROUND_FLOOR))


def decimal_text(amount: int, unit: Decimal) -> str:
    """An amount in units as a plain decimal string (audit entries hold no floats)."""
    return format((Decimal(amount) * unit).normalize(), "f")


@dataclass(frozen=True)
class Spend:
    allowed: bool
    epsilon_left: int  # units of EPSILON_UNIT
    delta_left: int  # units of DELTA_UNIT
    reset: int  # seconds until the period ends
    period: str

    @property
    def headers(self) -> dict[str, str]:
        return {
            "DP-Budget-Epsilon-Remaining": decimal_text(self.epsilon_left, EPSILON_UNIT),
            "DP-Budget-Delta-Remaining": decimal_text(self.delta_left, DELTA_UNIT),
            "DP-Budget-Reset": str(self.reset),
        }


class Budgets:
    def __init__(self, database: Database) -> None:
        self._shared = Shared(database)  # durable: a lost spend would hand budget back
        with self._shared.use() as conn:
            conn.executescript(SCHEMA)

    def spend(
        self,
        client_id: str,
        grant_id: str,
        rules: Privacy,
        cost: tuple[Decimal, Decimal],
        now: float | None = None,
    ) -> Spend:
        """Spend `cost` (epsilon, delta) of the budget of (client, grant) for this period if it
        fits; otherwise spend nothing. Either way, say what is left."""
        now = time.time() if now is None else now
        index, reset = period_of(rules.period, now)
        period = f"{rules.period}:{index}"
        eps = units(cost[0], EPSILON_UNIT, up=True)
        delta = units(cost[1], DELTA_UNIT, up=True)
        eps_limit = units(rules.budget_epsilon, EPSILON_UNIT, up=False)
        delta_limit = units(rules.budget_delta, DELTA_UNIT, up=False)
        row = None
        with self._shared.use() as conn:
            if eps <= eps_limit and delta <= delta_limit:
                row = conn.execute(
                    "INSERT INTO dp_budget (client_id, grant_id, period, epsilon, delta)"
                    " VALUES (?, ?, ?, ?, ?)"
                    " ON CONFLICT (client_id, grant_id, period) DO UPDATE SET"
                    "  epsilon = dp_budget.epsilon + excluded.epsilon,"
                    "  delta = dp_budget.delta + excluded.delta"
                    " WHERE dp_budget.epsilon + excluded.epsilon <= ?"
                    "   AND dp_budget.delta + excluded.delta <= ?"
                    " RETURNING epsilon, delta",
                    (client_id, grant_id, period, eps, delta, eps_limit, delta_limit),
                ).fetchone()
            if row is None:
                found = conn.execute(
                    "SELECT epsilon, delta FROM dp_budget"
                    " WHERE client_id = ? AND grant_id = ? AND period = ?",
                    (client_id, grant_id, period),
                ).fetchone()
                used = (int(found[0]), int(found[1])) if found else (0, 0)
                return Spend(
                    False, max(0, eps_limit - used[0]), max(0, delta_limit - used[1]), reset, period
                )
        return Spend(
            True,
            max(0, eps_limit - int(row[0])),
            max(0, delta_limit - int(row[1])),
            max(1, math.ceil(reset)),
            period,
        )

    def close(self) -> None:
        self._shared.close()
