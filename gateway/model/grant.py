"""Grants: who gets which view of a dataset (columns and their transforms, row filter, limits,
privacy model, fingerprint)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from gateway.model.aggregate import AggregateRules
from gateway.model.filterlang import SPELLINGS

# Transforms whose released values carry no real attribute of the row: per-person tokens and
# suppressed cells. Every other transform releases something derived from the real value.
NOT_DERIVED = frozenset({"pseudonymize", "synthesize", "suppress", "drop"})


@dataclass(frozen=True)
class TransformSpec:
    """One column's transform in a grant: its name and validated parameters."""

    name: str
    params: tuple[tuple[str, Any], ...] = ()

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.params)


FILTER_OPS = SPELLINGS  # every accepted spelling (gateway/model/filterlang.py)


@dataclass(frozen=True)
class Condition:
    """One structured row-filter condition on a source column (never a query string)."""

    column: str
    op: str
    value: Any = None


@dataclass(frozen=True)
class RowFilter:
    """Conditions combined with `all` (and) or `any` (or); nests."""

    mode: str  # "all" | "any"
    items: tuple[Condition | RowFilter, ...]


@dataclass(frozen=True)
class Limits:
    rows_per_request: int = 1000  # the page limit (largest `_size`); one name everywhere
    requests_per_minute: int | None = None
    rows_per_day: int | None = None
    # Deprecated spellings the file used (`max_rows`): `policy check` warns about each.
    deprecated: tuple[str, ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class PrivacyModel:
    """k-anonymity (and optionally l-diversity) over the whole released view."""

    k: int
    quasi_identifiers: tuple[str, ...]
    l: int | None = None  # noqa: E741 - the model's standard name
    sensitive: str | None = None
    max_suppression: float = 0.0  # share of rows that may be suppressed to reach k (and l)
    hierarchies: tuple[tuple[str, Path], ...] = ()  # QI -> ARX hierarchy file: generalize first
    # The hierarchies as read when the policy set was loaded (and hashed): a later edit of a file
    # never changes an active set; it becomes a new candidate set like any policy edit.
    tables: Mapping[str, list[dict[str, str]]] = field(
        default_factory=dict, compare=False, hash=False
    )
    # "full-domain": one generalization level per column for the whole view (global recoding,
    # lattice search); "local": multidimensional local recoding (Mondrian), more utility.
    recoding: str = "full-domain"
    # Local recoding only: "hierarchy" releases the hierarchy label covering a class; "sets" may
    # release the set of a class's values when narrower (at most 10; less loss, more detail).
    labels: str = "hierarchy"


@dataclass(frozen=True)
class Fingerprint:
    """How a grant's views carry a per-client fingerprint (docs/transforms.md#fingerprints)."""

    enabled: bool = True  # the default carriers: perturb, date_shift, address and email masks
    keep: tuple[str, ...] = ()  # kept integer columns that may also change by 1 in the last unit


@dataclass(frozen=True)
class Grant:
    id: str
    dataset: str
    clients: frozenset[str]
    purposes: frozenset[str]
    columns: tuple[tuple[str, TransformSpec], ...]  # released columns, in release order
    limits: Limits
    file: str
    line: int
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    scopes: frozenset[str] = frozenset({"datasets:read"})
    row_filter: RowFilter | None = None
    privacy: PrivacyModel | None = None
    fingerprint: Fingerprint = field(default_factory=Fingerprint)
    # Released columns the admin declared not identifying, with the written justification: they
    # are left out of the quasi-identifiers (and `policy check` lists them).
    not_identifying: tuple[tuple[str, str], ...] = ()
    aggregate: AggregateRules | None = None  # statistics on source values (gateway/aggregate/)

    def quasi_identifiers(self) -> tuple[str, ...]:
        """The released columns that count as quasi-identifiers: the model's (derived, plus any
        the file adds) when there is one, else those `derived_qis` finds."""
        if self.privacy is not None:
            return self.privacy.quasi_identifiers
        return derived_qis(self.columns, self.not_identifying, None)

    @property
    def rows_per_request(self) -> int:
        """The page limit: the largest `_size` a caller may ask for."""
        return self.limits.rows_per_request

    def valid_at(self, at: datetime) -> bool:
        if self.valid_from is not None and at < self.valid_from:
            return False
        return self.valid_until is None or at <= self.valid_until


def derived_qis(
    columns: tuple[tuple[str, TransformSpec], ...],
    not_identifying: tuple[tuple[str, str], ...],
    sensitive: str | None,
) -> tuple[str, ...]:
    """Every released column whose values derive from a real value, in release order: all but
    per-person tokens (pseudonymize, synthesize), suppressed columns, the declared sensitive
    attribute of an l-diversity model and columns declared not identifying (promise 4)."""
    excluded = {name for name, _ in not_identifying} | ({sensitive} if sensitive else set())
    return tuple(
        name for name, spec in columns if spec.name not in NOT_DERIVED and name not in excluded
    )
