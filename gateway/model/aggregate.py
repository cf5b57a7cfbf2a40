"""A grant's `aggregate` rules (docs/policies.md#aggregates): which source columns callers may
group by (with their public categories), which integer columns they may sum or average (with the
bounds each value is clamped to), the small-cell threshold, and optionally differential privacy
with its per-query cost and its budget per client over a period. Parsed by
gateway/aggregate/rules.py."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

MEASURES = ("count", "sum", "mean")
MECHANISMS = ("laplace", "gaussian")
PERIODS = ("day", "week", "month")
MAX_CATEGORIES = 1000  # per grouping column
MAX_CELLS = 10_000  # per table
DEFAULT_MIN_CELL = 10


@dataclass(frozen=True)
class Bounds:
    lower: int
    upper: int


@dataclass(frozen=True)
class Privacy:
    """Differential privacy: every query costs (epsilon, delta) of the budget of its client and
    grant for the current period."""

    mechanism: str  # laplace | gaussian
    epsilon: Decimal  # per query
    delta: Decimal  # per query; 0 for laplace
    budget_epsilon: Decimal
    budget_delta: Decimal
    period: str  # day | week | month (UTC)


@dataclass(frozen=True)
class AggregateRules:
    # grouping column -> its public categories (None: taken from the data; suppression only)
    group_by: tuple[tuple[str, tuple[str, ...] | None], ...]
    measures: tuple[tuple[str, Bounds], ...]  # numeric column -> clamping bounds
    min_cell: int = DEFAULT_MIN_CELL
    dp: Privacy | None = None

    def categories(self, column: str) -> tuple[str, ...] | None:
        return dict(self.group_by)[column]

    def bounds(self, column: str) -> Bounds | None:
        return dict(self.measures).get(column)
