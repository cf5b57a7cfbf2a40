"""Expired rate and quota counters do not pile up: every PURGE_EVERY-th count of a process
deletes them, and never a live one (limits stay exact)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from gateway.auth.registry import PURGE_EVERY, ClientRegistry
from gateway.store.db import Database


def _names(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {name for (name,) in conn.execute("SELECT name FROM counters")}


def test_expired_counters_are_deleted_within_purge_every_counts(tmp_path: Path) -> None:
    """A counter whose window has passed is gone after PURGE_EVERY counts; the live counter
    keeps its exact value."""
    path = tmp_path / "registry.sqlite3"
    registry = ClientRegistry(Database.sqlite(path))
    try:
        now = int(time.time())
        registry.take("old", 1, 10, now - 5)  # already expired
        for _ in range(PURGE_EVERY):
            allowed, _ = registry.take("live", 1, 10 * PURGE_EVERY, now + 600)
            assert allowed
        assert "old" not in _names(path)
        assert registry.counter("live") == PURGE_EVERY
    finally:
        registry.close()
