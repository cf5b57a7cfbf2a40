"""PostgreSQL for tests: each test gets its own new, empty database. Without a reachable server
(GATEWAY_TEST_PG_ADMIN, default the local trust-auth server) tests skip.

`CREATE DATABASE` and `DROP DATABASE` cost about a second each on a loaded machine, and about
150 tests ask for a database, so `Databases` (the `pg_databases` session fixture) recycles them:
a released database has every session ended, gets a new name (whatever still holds the old URL
cannot reach it) and an empty public schema, which is all the gateway ever writes to. What the
next test gets is indistinguishable from a new database to the gateway."""

from __future__ import annotations

import os
import secrets
import time
from typing import Any

import pytest

ADMIN = os.environ.get("GATEWAY_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")


def _connect(url: str) -> Any:
    try:
        import psycopg
    except ImportError:
        pytest.skip("PostgreSQL tests need psycopg: pip install -e '.[dev]'")
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=3)
    except psycopg.Error as exc:
        pytest.skip(
            f"no PostgreSQL server reachable at {ADMIN} ({str(exc).strip()}); set "
            "GATEWAY_TEST_PG_ADMIN to an account that may create databases to run these tests"
        )


def _admin() -> Any:
    return _connect(ADMIN)


def _with_database(admin_url: str, name: str) -> str:
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{name}"


def _new_name() -> str:
    return f"gw_test_{secrets.token_hex(6)}"


def create_database() -> tuple[str, str]:
    """(url of a new, empty database, its name)."""
    conn = _admin()
    name = _new_name()
    conn.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    return _with_database(ADMIN, name), name


def _end_sessions(conn: Any, name: str) -> None:
    """End every session on database `name` and wait until they are gone (termination is
    asynchronous; a session's advisory locks and LISTENs end with it)."""
    others = "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"
    for _ in range(200):
        if not conn.execute(others, (name,)).fetchall():
            return
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )
        time.sleep(0.01)
    raise RuntimeError(f"sessions on test database {name} did not end")


def drop_database(name: str) -> None:
    conn = _admin()
    conn.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
    )
    conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
    conn.close()


class Databases:
    """New, empty databases for the tests of one process; released ones are emptied, renamed
    and handed out again; `close` drops them all."""

    def __init__(self) -> None:
        self._free: list[str] = []
        self._issued: set[str] = set()

    def acquire(self) -> tuple[str, str]:
        """(url of a new, empty database, its name); skips the test without a server."""
        if self._free:
            name = self._free.pop()
        else:
            _, name = create_database()
        self._issued.add(name)
        return _with_database(ADMIN, name), name

    def release(self, name: str) -> None:
        self._issued.discard(name)
        admin = _admin()
        try:
            _end_sessions(admin, name)
            fresh = _new_name()
            admin.execute(f'ALTER DATABASE "{name}" RENAME TO "{fresh}"')
        finally:
            admin.close()
        conn = _connect(_with_database(ADMIN, fresh))
        try:
            conn.execute("DROP SCHEMA public CASCADE")
            conn.execute("CREATE SCHEMA public")
        finally:
            conn.close()
        self._free.append(fresh)

    def close(self) -> None:
        for name in [*self._free, *self._issued]:
            drop_database(name)
        self._free.clear()
        self._issued.clear()
