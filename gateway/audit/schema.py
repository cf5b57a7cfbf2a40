"""The audit log's tables, its sequencer lock and the small records read from them."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

from gateway.audit.entry import GENESIS_PREV
from gateway.errors import ConfigError
from gateway.store.db import Connection
from gateway.store.schema import StoreSchema

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entries (
    idx  {int}  PRIMARY KEY,
    line TEXT   NOT NULL,
    leaf {blob} NOT NULL,
    ts   {int}  NOT NULL,
    kid  TEXT   NOT NULL,
    sig  {blob} NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoints (
    size {int}  PRIMARY KEY,
    root {blob} NOT NULL,
    note TEXT   NOT NULL,
    ts   {int}  NOT NULL
);
CREATE TABLE IF NOT EXISTS keys (
    kid        TEXT   PRIMARY KEY,
    public_key {blob} NOT NULL,
    from_idx   {int}  NOT NULL
);
"""
SEQUENCER = "public-data-gateway/audit-sequencer"  # serializes appends across hosts

# What `gateway store migrate` copies: a fresh log holds an origin from opening it (meta); the
# source's replaces it.
AUDIT_STORE = StoreSchema(
    what="an audit log",
    ddl=SCHEMA,
    tables=(("meta", "1"), ("keys", "from_idx"), ("entries", "idx"), ("checkpoints", "size")),
    lock=SEQUENCER,
    replaced=("meta",),
)


@dataclass(frozen=True)
class KeyWindow:
    kid: str
    public_key: bytes  # raw 32-byte Ed25519 key
    from_idx: int


@dataclass(frozen=True)
class CheckpointRow:
    size: int
    root: bytes
    note: str
    ts: int


@dataclass(frozen=True)
class Head:
    """Where the next entry goes: its index, the hex leaf hash and the ts of the entry before."""

    idx: int
    prev: str
    ts: int


def next_position(conn: Connection) -> Head:
    """The head of the chain, inside a write transaction."""
    head = conn.execute("SELECT idx, leaf, ts FROM entries ORDER BY idx DESC LIMIT 1").fetchone()
    if head is None:
        return Head(0, GENESIS_PREV, 0)
    return Head(int(head[0]) + 1, bytes(head[1]).hex(), int(head[2]))


def now_ms() -> int:
    return int(time.time() * 1000)


def read_origin(conn: Connection | sqlite3.Connection) -> str:
    row = conn.execute("SELECT value FROM meta WHERE key = 'origin'").fetchone()
    if row is None:
        raise ConfigError("the audit log has no origin; is this an audit log file?")
    value = row[0]
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def resume_count(conn: Connection) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = 'resumed'").fetchone()
    return None if row is None else str(row[0])
