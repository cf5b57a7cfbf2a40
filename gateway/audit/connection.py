"""The log's one write connection in a process: the writer thread, checkpoints, key rotations
and halt notes take turns on it (hold `lock`), and it is reopened after a lost link."""

from __future__ import annotations

import threading

from gateway.store.db import Connection, Database


class WriteConnection:
    def __init__(self, database: Database) -> None:
        self.database = database
        self.lock = threading.RLock()
        self._conn = database.connect()
        self._dropped = False  # closed after a lost link

    @property
    def current(self) -> Connection:
        """The connection as it is (for a rollback after `get` failed)."""
        return self._conn

    def get(self) -> Connection:
        """The write connection, reconnected if the server dropped it; hold `lock`."""
        if self._dropped or self._conn.broken:
            self._conn.close()
            self._conn = self.database.connect()
            self._dropped = False
        return self._conn

    def drop(self) -> None:
        """Close the connection so that the next `get` opens a new one; hold `lock`."""
        self._conn.close()
        self._dropped = True

    def close(self) -> None:
        with self.lock:
            self._conn.close()
