"""What one store module keeps in a database, declared once: its tables (created on open, copied
in order by `gateway store migrate`) and the lock its writers take. Each module that owns tables
(the audit log, the client registry) exposes one `StoreSchema`; this package never imports them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StoreSchema:
    what: str  # what the tables hold, for messages: "an audit log"
    ddl: str  # CREATE TABLE IF NOT EXISTS ..., with {int} and {blob} for the dialect's types
    tables: tuple[tuple[str, str], ...]  # (table, ORDER BY of a copy), in the order they copy
    lock: str | None = None  # the lock every writer takes (an audit log's sequencer)
    replaced: tuple[str, ...] = ()  # tables a fresh database fills on open: the source's win

    @property
    def table_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.tables)
