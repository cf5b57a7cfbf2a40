"""Who signs checkpoints. On SQLite any worker may sign one (a size is stored once); on
PostgreSQL exactly one host at a time signs, the holder of a session advisory lock (its lease;
it passes to another host when the holder's connection ends), and the others serve the latest."""

from __future__ import annotations

import threading
import time

from gateway.store.db import Connection, Database, StoreError, lock_id

LEASE_RETRY_SECONDS = 1.0
_CHECKPOINT_LEASE = lock_id("public-data-gateway/checkpoint-signer")


class CheckpointLease:
    def __init__(self, database: Database) -> None:
        self._database = database
        self._lease: Connection | None = None  # PostgreSQL: holds the signer's lease
        self._tried = -LEASE_RETRY_SECONDS  # monotonic time of the last try for the lease
        self._lock = threading.Lock()

    def held(self) -> bool:
        """Whether this process signs checkpoints now. SQLite: always (a size is stored once).
        PostgreSQL: while it holds the lease, a session advisory lock on a connection of its own
        that passes to another host when this one's connection ends. Checked with a round trip
        each time (a server restart ends every lease); a host without it tries again at most
        once a second. Never holds the append path's lock."""
        if not self._database.postgres:
            return True
        with self._lock:
            if self._lease is not None:
                try:
                    self._lease.execute("SELECT 1")
                    return True
                except StoreError:
                    self._lease.close()
                    self._lease = None
            now = time.monotonic()
            if now - self._tried < LEASE_RETRY_SECONDS:
                return False
            self._tried = now
            lease: Connection | None = None
            try:
                lease = self._database.connect()
                held = bool(
                    lease.execute(
                        "SELECT pg_try_advisory_lock(?)", (_CHECKPOINT_LEASE,)
                    ).fetchone()[0]
                )
            except StoreError:
                if lease is not None:
                    lease.close()
                return False
            if held:
                self._lease = lease
                return True
            lease.close()
            return False

    def close(self) -> None:
        with self._lock:
            if self._lease is not None:
                self._lease.close()
