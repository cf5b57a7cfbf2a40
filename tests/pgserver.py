"""PostgreSQL for tests: each test gets its own new database, dropped afterwards. Without a
reachable server (GATEWAY_TEST_PG_ADMIN, default the local trust-auth server) tests skip."""

from __future__ import annotations

import os
import secrets

import pytest

ADMIN = os.environ.get("GATEWAY_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")


def _admin() -> object:
    try:
        import psycopg
    except ImportError:
        pytest.skip("PostgreSQL tests need psycopg: pip install -e '.[dev]'")
    try:
        return psycopg.connect(ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.Error as exc:
        pytest.skip(
            f"no PostgreSQL server reachable at {ADMIN} ({str(exc).strip()}); set "
            "GATEWAY_TEST_PG_ADMIN to an account that may create databases to run these tests"
        )


def _with_database(admin_url: str, name: str) -> str:
    base, _, _ = admin_url.rpartition("/")
    return f"{base}/{name}"


def create_database() -> tuple[str, str]:
    """(url of a new, empty database, its name)."""
    conn = _admin()
    name = f"gw_test_{secrets.token_hex(6)}"
    conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[attr-defined]
    conn.close()  # type: ignore[attr-defined]
    return _with_database(ADMIN, name), name


def drop_database(name: str) -> None:
    conn = _admin()
    conn.execute(  # type: ignore[attr-defined]
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
    )
    conn.execute(f'DROP DATABASE IF EXISTS "{name}"')  # type: ignore[attr-defined]
    conn.close()  # type: ignore[attr-defined]
