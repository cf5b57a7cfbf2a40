"""Reading a log read-only, as a verifier does: its origin, entries (streamed in index order),
checkpoint notes, key windows and halt note. SQLite files are opened read-only by path."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from gateway.audit.entry import StoredEntry
from gateway.audit.schema import KeyWindow, read_origin
from gateway.errors import ConfigError
from gateway.store.db import Database, StoreError


def as_bytes(value: object) -> bytes:
    """A stored line as bytes (PostgreSQL gives str; SQLite, asked for BLOBs, bytes)."""
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)  # type: ignore[call-overload]


@dataclass(frozen=True)
class LogContents:
    """Everything a verifier reads from a log database."""

    origin: str
    entries: Iterator[StoredEntry]
    checkpoints: list[str]
    keys: list[KeyWindow]
    halted: str | None


def read_log(source: Path | Database) -> LogContents:
    """Open a log read-only (entries are streamed in index order)."""
    if isinstance(source, Database) and source.postgres:
        return _read_pg_log(source)
    path = Path(source.url) if isinstance(source, Database) else source
    if not path.exists():
        raise ConfigError(f"no audit log at {path}; has the gateway run in this workspace?")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    # Bytes, not str: a tampered line may not even be valid UTF-8, and must still be reported.
    conn.text_factory = bytes
    try:
        origin = read_origin(conn)
        notes = [
            bytes(n).decode("utf-8", "replace")
            for (n,) in conn.execute("SELECT note FROM checkpoints ORDER BY size")
        ]
        keys = [
            KeyWindow(bytes(k).decode(), bytes(p), int(f))
            for k, p, f in conn.execute(
                "SELECT kid, public_key, from_idx FROM keys ORDER BY from_idx"
            )
        ]
        halted_row = conn.execute("SELECT value FROM meta WHERE key = 'halted'").fetchone()
    except sqlite3.Error as exc:
        conn.close()
        raise ConfigError(f"cannot read the audit log {path}: {exc}") from exc
    halted = bytes(halted_row[0]).decode() if halted_row else None

    def rows() -> Iterator[StoredEntry]:
        try:
            for idx, line, kid, sig in conn.execute(
                "SELECT idx, line, kid, sig FROM entries ORDER BY idx"
            ):
                yield StoredEntry(
                    int(idx), bytes(line), bytes(kid).decode("ascii", "replace"), bytes(sig)
                )
        finally:
            conn.close()

    return LogContents(origin, rows(), notes, keys, halted)


def _read_pg_log(database: Database) -> LogContents:
    try:
        conn = database.connect()
        origin = read_origin(conn)
        notes = [
            str(n) for (n,) in conn.execute("SELECT note FROM checkpoints ORDER BY size").fetchall()
        ]
        keys = [
            KeyWindow(str(k), bytes(p), int(f))
            for k, p, f in conn.execute(
                "SELECT kid, public_key, from_idx FROM keys ORDER BY from_idx"
            ).fetchall()
        ]
        halted_row = conn.execute("SELECT value FROM meta WHERE key = 'halted'").fetchone()
    except StoreError as exc:
        raise ConfigError(f"cannot read the audit log {database.display}: {exc}") from exc

    def rows() -> Iterator[StoredEntry]:
        start = 0
        try:
            while True:  # in pages: a log of millions of entries is never held at once
                page = conn.execute(
                    "SELECT idx, line, kid, sig FROM entries WHERE idx >= ?"
                    " ORDER BY idx LIMIT 10000",
                    (start,),
                ).fetchall()
                for idx, line, kid, sig in page:
                    yield StoredEntry(int(idx), as_bytes(line), str(kid), bytes(sig))
                if len(page) < 10000:
                    return
                start = int(page[-1][0]) + 1
        finally:
            conn.close()

    return LogContents(
        origin, rows(), notes, keys, None if halted_row is None else str(halted_row[0])
    )


def read_entries(source: Path | Database) -> tuple[str, Iterator[StoredEntry]]:
    """Origin and entries of a log (read-only)."""
    contents = read_log(source)
    return contents.origin, contents.entries
