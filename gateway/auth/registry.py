"""The client registry (SQLite). Secrets are stored only as salted scrypt hashes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from gateway.errors import ConfigError

CLIENT_ID = re.compile(r"^[a-z][a-z0-9_-]{1,63}$")
DEFAULT_SCOPES = ("data:read",)
# scrypt cost (RFC 7914): N=2^14, r=8, p=1 is the interactive-login recommendation (~16 MiB).
_N, _R, _P, _DKLEN = 2**14, 8, 1, 32

_SCHEMA = """
CREATE TABLE IF NOT EXISTS clients (
    client_id   TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL,
    scopes      TEXT NOT NULL,
    disabled    INTEGER NOT NULL DEFAULT 0,
    created_ms  INTEGER NOT NULL
);
"""


def hash_secret(secret: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=_DKLEN)
    b64 = base64.b64encode
    return f"scrypt$n={_N},r={_R},p={_P}${b64(salt).decode()}${b64(digest).decode()}"


def check_secret(secret: str, stored: str) -> bool:
    try:
        scheme, params, salt_b64, digest_b64 = stored.split("$")
        cost = dict(item.split("=") for item in params.split(","))
        n, r, p = int(cost["n"]), int(cost["r"]), int(cost["p"])
        salt, expected = base64.b64decode(salt_b64), base64.b64decode(digest_b64)
    except (ValueError, KeyError):
        return False
    if scheme != "scrypt":
        return False
    actual = hashlib.scrypt(secret.encode(), salt=salt, n=n, r=r, p=p, dklen=len(expected))
    return hmac.compare_digest(actual, expected)


# Checked against unknown client ids so that a wrong id costs as long as a wrong secret.
_DUMMY_HASH = hash_secret("not-a-client", salt=b"\x00" * 16)


@dataclass(frozen=True)
class Client:
    client_id: str
    scopes: tuple[str, ...]
    disabled: bool
    created_ms: int
    secret_hash: str = field(repr=False)

    def check_secret(self, secret: str) -> bool:
        return check_secret(secret, self.secret_hash)


class ClientRegistry:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA busy_timeout = 5000")
            self._conn.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot open the client registry {path}: {exc}") from exc

    def add(self, client_id: str, scopes: tuple[str, ...] = DEFAULT_SCOPES) -> tuple[Client, str]:
        """Register a client; returns it and its secret, which is never stored or shown again."""
        if not CLIENT_ID.match(client_id):
            raise ConfigError(
                f"client id {client_id!r} is invalid: use 2-64 lower-case letters, digits, _ or -,"
                " starting with a letter"
            )
        secret = secrets.token_urlsafe(32)
        client = Client(client_id, scopes, False, int(time.time() * 1000), hash_secret(secret))
        with self._lock:
            try:
                self._conn.execute(
                    "INSERT INTO clients (client_id, secret_hash, scopes, created_ms)"
                    " VALUES (?, ?, ?, ?)",
                    (client_id, client.secret_hash, " ".join(scopes), client.created_ms),
                )
            except sqlite3.IntegrityError:
                raise ConfigError(f"a client named {client_id!r} already exists") from None
        return client, secret

    def get(self, client_id: str) -> Client | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT client_id, scopes, disabled, created_ms, secret_hash FROM clients"
                " WHERE client_id = ?",
                (client_id,),
            ).fetchone()
        return None if row is None else _client(row)

    def all(self) -> list[Client]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT client_id, scopes, disabled, created_ms, secret_hash FROM clients"
                " ORDER BY client_id"
            ).fetchall()
        return [_client(row) for row in rows]

    def set_disabled(self, client_id: str, disabled: bool) -> None:
        with self._lock:
            cursor = self._conn.execute(
                "UPDATE clients SET disabled = ? WHERE client_id = ?", (int(disabled), client_id)
            )
        if cursor.rowcount == 0:
            raise ConfigError(f"no client {client_id!r}; `gateway clients list` shows the clients")

    def authenticate(self, client_id: str, secret: str) -> Client | None:
        """The enabled client with this id and secret, or None (in constant-ish time)."""
        client = self.get(client_id)
        if client is None:
            check_secret(secret, _DUMMY_HASH)
            return None
        if not client.check_secret(secret) or client.disabled:
            return None
        return client

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _client(row: tuple[str, str, int, int, str]) -> Client:
    return Client(row[0], tuple(row[1].split()), bool(row[2]), int(row[3]), row[4])
