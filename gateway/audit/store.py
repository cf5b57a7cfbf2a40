"""The embedded audit log: SQLite in WAL mode, one total order across worker processes.

Every append runs in a `BEGIN IMMEDIATE` transaction: it takes SQLite's single write lock, reads
the head, signs the next entry and commits with `synchronous=FULL` (the WAL is fsynced before
COMMIT returns). Several processes appending at once therefore still produce one chain.
"""

from __future__ import annotations

import contextlib
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from gateway.audit.canonical import JsonValue
from gateway.audit.entry import GENESIS_PREV, Appended, StoredEntry, encode_entry, leaf_hash
from gateway.audit.signing import ENTRY_CONTEXT, Signer
from gateway.errors import AuditUnavailable, ConfigError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entries (
    idx  INTEGER PRIMARY KEY,
    line TEXT    NOT NULL,
    leaf BLOB    NOT NULL,
    ts   INTEGER NOT NULL,
    kid  TEXT    NOT NULL,
    sig  BLOB    NOT NULL
);
"""


def _connect(path: Path, busy_timeout_ms: int) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(
        path,
        timeout=busy_timeout_ms / 1000,
        isolation_level=None,  # we issue BEGIN/COMMIT ourselves
        check_same_thread=False,  # guarded by SQLiteAuditLog._lock
    )
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    return conn


class SQLiteAuditLog:
    """Append-only audit log in one SQLite file."""

    def __init__(self, path: Path, signer: Signer, *, busy_timeout_ms: int = 10_000) -> None:
        self.path = path
        self._signer = signer
        self._lock = threading.Lock()
        try:
            self._conn = _connect(path, busy_timeout_ms)
            self._conn.executescript(_SCHEMA)
            self._conn.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('origin', ?)",
                (f"public-data-gateway/{secrets.token_hex(6)}",),
            )
            self.origin = read_origin(self._conn)
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot open the audit log {path}: {exc}") from exc

    def append(self, event: Mapping[str, JsonValue]) -> Appended:
        """Append one entry and commit it durably; raise AuditUnavailable if that fails."""
        with self._lock:
            try:
                return self._append_locked(event)
            except sqlite3.Error as exc:
                if self._conn.in_transaction:
                    # If even ROLLBACK fails the connection is broken; the next append says so.
                    with contextlib.suppress(sqlite3.Error):
                        self._conn.execute("ROLLBACK")
                raise AuditUnavailable(f"audit log write failed: {exc}") from exc

    def _append_locked(self, event: Mapping[str, JsonValue]) -> Appended:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        head = conn.execute(
            "SELECT idx, leaf, ts FROM entries ORDER BY idx DESC LIMIT 1"
        ).fetchone()
        if head is None:
            idx, prev, ts = 0, GENESIS_PREV, int(time.time() * 1000)
        else:
            # Timestamps never go backwards along the chain, even across processes.
            idx, prev, ts = head[0] + 1, bytes(head[1]).hex(), max(int(time.time() * 1000), head[2])
        line = encode_entry(event, origin=self.origin, idx=idx, ts=ts, prev=prev)
        leaf = leaf_hash(line)
        sig = self._signer.sign(ENTRY_CONTEXT, line)
        conn.execute(
            "INSERT INTO entries (idx, line, leaf, ts, kid, sig) VALUES (?, ?, ?, ?, ?, ?)",
            (idx, line.decode("utf-8"), leaf, ts, self._signer.kid, sig),
        )
        conn.execute("COMMIT")
        return Appended(self.origin, idx, ts, leaf, self._signer.kid)

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def read_origin(conn: sqlite3.Connection) -> str:
    row = conn.execute("SELECT value FROM meta WHERE key = 'origin'").fetchone()
    if row is None:
        raise ConfigError("the audit log has no origin; is this an audit log file?")
    value = row[0]
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def read_entries(path: Path) -> tuple[str, Iterator[StoredEntry]]:
    """Open a log read-only and return (origin, entries in index order)."""
    if not path.exists():
        raise ConfigError(f"no audit log at {path}; has the gateway run in this workspace?")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    # Bytes, not str: a tampered line may not even be valid UTF-8, and must still be reported.
    conn.text_factory = bytes
    origin = read_origin(conn)

    def rows() -> Iterator[StoredEntry]:
        try:
            cursor = conn.execute("SELECT idx, line, kid, sig FROM entries ORDER BY idx")
            for idx, line, kid, sig in cursor:
                yield StoredEntry(int(idx), bytes(line), bytes(kid).decode("ascii", "replace"), sig)
        finally:
            conn.close()

    return origin, rows()
