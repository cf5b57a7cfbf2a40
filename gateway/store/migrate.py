"""Moving a gateway's state from one store to another (typically from the embedded SQLite
default up to PostgreSQL): the audit log is copied byte for byte, so its chain, signatures and
checkpoints stay valid, and the copy is verified before the command reports success."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from gateway.audit.store import SCHEMA as AUDIT_SCHEMA
from gateway.audit.store import SEQUENCER
from gateway.auth.registry import SCHEMA as REGISTRY_SCHEMA
from gateway.auth.registry import TABLES as REGISTRY_TABLES
from gateway.errors import ConfigError
from gateway.store.db import Connection, Database, StoreError

AUDIT_TABLES = ("meta", "keys", "entries", "checkpoints")
_BATCH = 5000


@dataclass(frozen=True)
class Copied:
    table: str
    rows: int


def _columns(conn: Connection, table: str) -> list[str]:
    cursor = conn.execute(f"SELECT * FROM {table} WHERE 1 = 0")  # noqa: S608 - fixed table names
    return [d[0] for d in cursor.description]


def _copy(source: Connection, target: Connection, table: str, order: str) -> int:
    columns = _columns(source, table)
    names = ", ".join(columns)
    marks = ", ".join("?" for _ in columns)
    cursor = source.execute(f"SELECT {names} FROM {table} ORDER BY {order}")  # noqa: S608
    insert = f"INSERT INTO {table} ({names}) VALUES ({marks})"  # noqa: S608 - fixed names
    copied = 0
    while rows := cursor.fetchmany(_BATCH):  # in batches: a long log is never held at once
        target.executemany(insert, [_portable(r) for r in rows])
        copied += len(rows)
    return copied


def _portable(row: tuple[object, ...]) -> tuple[object, ...]:
    """memoryview (SQLite BLOBs read back) as bytes, for either driver."""
    return tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)


def _require_empty(conn: Connection, tables: tuple[str, ...], what: str, display: str) -> None:
    for table in tables:
        if table == "meta":
            continue
        if conn.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone() is not None:  # noqa: S608
            raise ConfigError(
                f"the target store {display} already holds {what} ({table} is not empty); "
                "migrate into an empty database"
            )


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
    copied: list[Copied] = []
    pairs = (
        (audit_source, audit_target, AUDIT_SCHEMA, AUDIT_TABLES, "an audit log"),
        (registry_source, registry_target, REGISTRY_SCHEMA, REGISTRY_TABLES, "a registry"),
    )
    for source_db, target_db, schema, tables, what in pairs:
        source, target = source_db.connect(), target_db.connect()
        try:
            target.executescript(schema)
            with target.transaction(SEQUENCER if what == "an audit log" else None):
                _require_empty(target, tables, what, target_db.display)
                if what == "an audit log":
                    # A fresh database may hold an origin from opening it; the source's wins.
                    target.execute("DELETE FROM meta")
                for table in tables:
                    order = {
                        "entries": "idx",
                        "checkpoints": "size",
                        "keys": "from_idx",
                        "assertions": "client_id, jti",
                    }.get(table, "1")
                    copied.append(Copied(table, _copy(source, target, table, order)))
        except StoreError as exc:
            raise ConfigError(
                f"migration to {target_db.display} failed, nothing was committed there: {exc}"
            ) from exc
        finally:
            source.close()
            target.close()
    problem = verify(audit_target)
    if problem is not None:
        _empty(audit_target, AUDIT_TABLES)  # leave the target as it was: empty, ready to retry
        _empty(registry_target, REGISTRY_TABLES)
        raise ConfigError(f"the copied log does not verify, the copy was removed: {problem}")
    return copied


def _empty(database: Database, tables: tuple[str, ...]) -> None:
    conn = database.connect()
    try:
        with conn.transaction(SEQUENCER):
            for table in tables:
                conn.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names
    finally:
        conn.close()
