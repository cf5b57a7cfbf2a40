"""Moving a gateway's state from one store to another (typically from the embedded SQLite
default up to PostgreSQL): each store's tables are copied byte for byte (an audit log's chain,
signatures and checkpoints stay valid), and the copy is verified before the command reports
success. What to copy comes from each module's `StoreSchema`; this module knows none of them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gateway.errors import ConfigError
from gateway.store.db import Connection, Database, StoreError
from gateway.store.schema import StoreSchema

_BATCH = 5000


@dataclass(frozen=True)
class Copied:
    table: str
    rows: int


@dataclass(frozen=True)
class Move:
    """One store's tables, from `source` to `target`."""

    schema: StoreSchema
    source: Database
    target: Database


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


def _require_empty(conn: Connection, schema: StoreSchema, display: str) -> None:
    for table in schema.table_names:
        if table in schema.replaced:
            continue
        if conn.execute(f"SELECT 1 FROM {table} LIMIT 1").fetchone() is not None:  # noqa: S608
            raise ConfigError(
                f"the target store {display} already holds {schema.what} ({table} is not empty); "
                "migrate into an empty database"
            )


def copy_stores(moves: Sequence[Move], verify: Callable[[], str | None]) -> list[Copied]:
    """Copy each store's tables, then `verify` the copy (None when it verifies, else the
    problem; then every target is emptied again). Raises ConfigError with what to do."""
    copied: list[Copied] = []
    for move in moves:
        schema = move.schema
        source, target = move.source.connect(), move.target.connect()
        try:
            target.executescript(schema.ddl)
            with target.transaction(schema.lock):
                _require_empty(target, schema, move.target.display)
                for table in schema.replaced:
                    target.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names
                for table, order in schema.tables:
                    copied.append(Copied(table, _copy(source, target, table, order)))
        except StoreError as exc:
            raise ConfigError(
                f"migration to {move.target.display} failed, nothing was committed there: {exc}"
            ) from exc
        finally:
            source.close()
            target.close()
    problem = verify()
    if problem is not None:
        for move in moves:  # leave the targets as they were: empty, ready to retry
            _empty(move.target, move.schema)
        raise ConfigError(f"the copied log does not verify, the copy was removed: {problem}")
    return copied


def _empty(database: Database, schema: StoreSchema) -> None:
    conn = database.connect()
    try:
        with conn.transaction(schema.lock):
            for table in schema.table_names:
                conn.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed table names
    finally:
        conn.close()
