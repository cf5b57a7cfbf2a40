"""`gateway store migrate` for a workspace: its audit log, client registry and privacy budgets,
each copied by its own `StoreSchema`, and the copied log verified."""

from __future__ import annotations

from collections.abc import Callable

from gateway.aggregate.budget import BUDGET_STORE, Budgets
from gateway.audit.schema import AUDIT_STORE
from gateway.auth.registry import REGISTRY_STORE
from gateway.errors import ConfigError
from gateway.store.db import Database
from gateway.store.migrate import Copied, Move, copy_stores


def migrate(
    audit_source: Database,
    registry_source: Database,
    audit_target: Database,
    registry_target: Database,
    verify: Callable[[Database], str | None],
) -> list[Copied]:
    """Copy the audit log and the registry, then verify the copied log (`verify` returns None
    when it verifies, else the problem). Raises ConfigError with what to do on any failure."""
    if audit_source.url == audit_target.url and audit_source.postgres == audit_target.postgres:
        raise ConfigError("the target store is the current store; nothing to migrate")
    Budgets(registry_source).close()  # a registry that never served has no budget table yet
    moves = (
        Move(AUDIT_STORE, audit_source, audit_target),
        Move(REGISTRY_STORE, registry_source, registry_target),
        Move(BUDGET_STORE, registry_source, registry_target),
    )
    return copy_stores(moves, lambda: verify(audit_target))
