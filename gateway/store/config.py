"""The store setting: which databases hold the audit log and the registry."""

from __future__ import annotations

from pathlib import Path

from gateway.errors import ConfigError
from gateway.store.db import Database

HINT = (
    "use sqlite:///ABSOLUTE/DIRECTORY (the default is the workspace's audit/ and state/ "
    "directories) or postgresql://USER@HOST:PORT/DATABASE"
)


def databases(
    store: str, audit_default: Path, registry_default: Path, busy_timeout_ms: int
) -> tuple[Database, Database]:
    """(audit log database, registry database) for a store URL ("" means the default)."""
    if not store:
        return (
            Database.sqlite(audit_default, busy_timeout_ms, "FULL"),
            Database.sqlite(registry_default, 5000, "NORMAL"),
        )
    if store.startswith(("postgresql://", "postgres://")):
        # (the registry's counters use a non-durable connection of their own: see registry.py)
        return Database(store, True, busy_timeout_ms), Database(store, True, 5000)
    if store.startswith("sqlite:///"):
        directory = Path("/" + store.removeprefix("sqlite://").lstrip("/"))
        return (
            Database.sqlite(directory / audit_default.name, busy_timeout_ms, "FULL"),
            Database.sqlite(directory / registry_default.name, 5000, "NORMAL"),
        )
    raise ConfigError(f"unknown store {store!r}: {HINT}")
