"""A thin, typed layer over the two database drivers the gateway supports.

SQL is written once, in the subset both SQLite and PostgreSQL accept (`?` placeholders,
`INSERT ... ON CONFLICT`, `RETURNING`); the schema names its types through `{blob}` and
`{int}`. Transactions that must serialize across processes or hosts take a named write lock:
SQLite's database write lock (`BEGIN IMMEDIATE`), or a PostgreSQL transaction-level advisory
lock. Driver errors become `StoreError` (with `busy` for transient lock contention) or
`DuplicateKey`, so callers never import a driver.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from gateway.errors import GatewayError
from gateway.fsutil import private_file

_SQLITE_BUSY = (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED


class StoreError(GatewayError):
    """A database operation failed. `busy` marks transient lock contention; `lost` a connection
    that went away (server restart, failover, idle timeout): transient too, not a failed write."""

    def __init__(self, message: str, *, busy: bool = False, lost: bool = False) -> None:
        super().__init__(message)
        self.busy = busy
        self.lost = lost


class DuplicateKey(StoreError):
    """An insert hit an existing primary key."""


class Cursor(Protocol):
    rowcount: int

    @property
    def description(self) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def fetchmany(self, size: int = ...) -> list[Any]: ...


def lock_id(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for a lock name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class Connection:
    """One connection; not shared between threads without the owner's lock."""

    def __init__(self, database: Database, raw: Any) -> None:
        self.database = database
        self._raw = raw
        self._in_tx = False

    @property
    def postgres(self) -> bool:
        return self.database.postgres

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        try:
            if self.postgres:
                return self._raw.execute(sql.replace("?", "%s"), tuple(params))  # type: ignore[no-any-return]
            return self._raw.execute(sql, tuple(params))  # type: ignore[no-any-return]
        except Exception as exc:
            raise self.database.translate(exc) from exc

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        try:
            if self.postgres:
                with self._raw.cursor() as cursor:
                    cursor.executemany(sql.replace("?", "%s"), rows)
            else:
                self._raw.executemany(sql, rows)
        except Exception as exc:
            raise self.database.translate(exc) from exc

    def executescript(self, script: str) -> None:
        """Run a schema script. On PostgreSQL it holds an advisory lock: several workers or hosts
        starting at once on an empty database would otherwise race in CREATE TABLE."""
        script = self.database.dialect(script)
        try:
            if self.postgres:
                with self._raw.transaction():
                    self._raw.execute(f"SELECT pg_advisory_xact_lock({lock_id('schema')})")
                    for statement in (s.strip() for s in script.split(";")):
                        if statement:
                            self._raw.execute(statement)
            else:
                self._raw.executescript(script)
        except Exception as exc:
            raise self.database.translate(exc) from exc

    def begin(self, lock: str | None = None) -> None:
        """Start a write transaction; with `lock`, one that serializes with every other holder
        of that lock in any process or host."""
        if self.postgres:
            # One round trip: the lock key is our own integer, never caller text. Marked open
            # first: if the lock wait fails, BEGIN has run and rollback() must end it.
            self._in_tx = True
            locking = f"; SELECT pg_advisory_xact_lock({lock_id(lock)})" if lock else ""
            self.execute(f"BEGIN{locking}")
        else:
            self.execute("BEGIN IMMEDIATE")
            self._in_tx = True

    def commit(self) -> None:
        self.execute("COMMIT")
        self._in_tx = False

    def rollback(self) -> None:
        """Roll back if a transaction is open; never raises."""
        with contextlib.suppress(Exception):
            if self.in_transaction:
                self._raw.execute("ROLLBACK")
        self._in_tx = False

    @property
    def in_transaction(self) -> bool:
        if self.postgres:
            # The server's view (idle, in a transaction, or in a failed one), not only ours.
            status = getattr(getattr(self._raw, "info", None), "transaction_status", 0)
            return self._in_tx or int(status) != 0
        return bool(self._raw.in_transaction)

    @contextlib.contextmanager
    def transaction(self, lock: str | None = None) -> Iterator[Connection]:
        self.begin(lock)
        try:
            yield self
        except BaseException:
            self.rollback()
            raise
        self.commit()

    def notifications(self, timeout: float) -> Iterator[str]:
        """PostgreSQL: the channels of notifications received (after LISTEN), waiting at most
        `timeout` seconds for the first."""
        try:
            for notify in self._raw.notifies(timeout=timeout):
                yield str(notify.channel)
        except Exception as exc:
            raise self.database.translate(exc) from exc

    @property
    def broken(self) -> bool:
        """True when the connection can no longer be used (PostgreSQL: closed or lost)."""
        return bool(self.postgres and (self._raw.closed or self._raw.broken))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._raw.close()


@dataclass(frozen=True)
class Database:
    """How to reach one database: a SQLite file, or a PostgreSQL DSN."""

    url: str = field(repr=False)  # postgresql://... or the SQLite file path (may hold a password)
    postgres: bool
    busy_timeout_ms: int = 10_000
    synchronous: str = "FULL"  # SQLite only: FULL for the audit log, NORMAL for the registry
    # PostgreSQL: False sets synchronous_commit=off for this connection's commits (they survive
    # a crash of the gateway, not of the database server: like SQLite's NORMAL). For counters.
    durable: bool = True

    @classmethod
    def sqlite(
        cls, path: Path, busy_timeout_ms: int = 10_000, synchronous: str = "FULL"
    ) -> Database:
        return cls(str(path), False, busy_timeout_ms, synchronous)

    @property
    def display(self) -> str:
        """The location with any password hidden (for messages and logs)."""
        parts = urlsplit(self.url)
        if not self.postgres or not parts.netloc:
            return self.url
        netloc = parts.netloc
        if parts.password is not None:
            netloc = netloc.replace(f":{parts.password}@", ":***@", 1)
        query = urlencode(
            [
                (k, "***" if k.lower() in ("password", "sslpassword") else v)
                for k, v in parse_qsl(parts.query, keep_blank_values=True)
            ],
            safe="*",
        )
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))

    def dialect(self, sql: str) -> str:
        if self.postgres:
            return sql.replace("{blob}", "BYTEA").replace("{int}", "BIGINT")
        return sql.replace("{blob}", "BLOB").replace("{int}", "INTEGER")

    def connect(self) -> Connection:
        if self.postgres:
            return Connection(self, self._pg_connect())
        path = Path(self.url)
        private_file(path)  # 0600 before SQLite opens it; its -wal and -shm take that mode
        try:
            raw = sqlite3.connect(
                path,
                timeout=self.busy_timeout_ms / 1000,
                isolation_level=None,  # BEGIN/COMMIT are ours
                check_same_thread=False,  # each connection is guarded by its owner's lock
            )
            raw.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
            raw.execute("PRAGMA journal_mode = WAL")
            raw.execute(f"PRAGMA synchronous = {self.synchronous}")
        except sqlite3.Error as exc:
            raise self.translate(exc) from exc
        return Connection(self, raw)

    def _pg_connect(self) -> Any:
        try:
            import psycopg  # only a PostgreSQL store needs the driver
        except ImportError as exc:
            raise StoreError(
                "a postgresql:// store needs the psycopg driver: pip install 'psycopg[binary]'"
            ) from exc
        try:
            raw = psycopg.connect(self.url, autocommit=True, connect_timeout=5)
            # Durable connections: every commit is on disk before it returns (made explicit).
            raw.execute(f"SET synchronous_commit = {'on' if self.durable else 'off'}")
            raw.execute(f"SET lock_timeout = {int(self.busy_timeout_ms)}")
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to {self.display}: {exc}".strip()) from exc
        return raw

    def translate(self, exc: Exception) -> Exception:
        """A driver error as a StoreError (other exceptions pass through unchanged)."""
        if isinstance(exc, sqlite3.IntegrityError):
            return DuplicateKey(str(exc))
        if isinstance(exc, sqlite3.Error):
            busy = getattr(exc, "sqlite_errorcode", None) in _SQLITE_BUSY
            return StoreError(str(exc), busy=busy)
        module = type(exc).__module__
        if module.startswith("psycopg"):
            state = getattr(exc, "sqlstate", None) or ""
            if state == "23505":  # unique_violation
                return DuplicateKey(str(exc))
            # lock_not_available, serialization_failure, deadlock_detected, query_canceled
            busy = state in ("55P03", "40001", "40P01", "57014")
            # connection exceptions (08xxx), admin/crash shutdown, or a driver-side closed link
            lost = (
                state.startswith("08")
                or state in ("57P01", "57P02", "57P03")
                or (not state and type(exc).__name__ in ("OperationalError", "InterfaceError"))
            )
            return StoreError(str(exc).strip() or type(exc).__name__, busy=busy, lost=lost)
        return exc


class Shared:
    """One connection used by several threads in turn (behind a lock)."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._lock = threading.RLock()
        self._conn: Connection | None = None

    @contextlib.contextmanager
    def use(self) -> Iterator[Connection]:
        with self._lock:
            if self._conn is None:
                self._conn = self._database.connect()
            try:
                yield self._conn
            except StoreError:
                if self._conn.broken:  # e.g. the server restarted: reconnect next time
                    self._conn.close()
                    self._conn = None
                raise

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
