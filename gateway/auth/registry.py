"""The client registry and the shared authentication state, in the store every worker process
and host uses (a SQLite file by default, or PostgreSQL): clients (secrets only as salted scrypt
hashes, or a public JWKS for private_key_jwt), revoked token ids, the client-assertion replay
cache, rate and quota counters, and small shared status values.

Client records and revocation answers are read on every call, so they are cached in memory,
and a change (a client added, disabled or given a new secret; a token revoked) reaches every
process at once: on SQLite, every change adds one to a counter in a marker file next to the
database (`<database>-changes`), which each process maps into memory and compares, before each
cached read, with the value its cache was filled under (no query, no system call); on
PostgreSQL, a NOTIFY clears every host's cache within milliseconds. Either way no answer is
kept longer than CACHE_SECONDS, the bound if the signal is lost (a change made to the database
by other means than this class, or a lost connection)."""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import hmac
import itertools
import json
import mmap
import os
import re
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from gateway.clock import SYSTEM_CLOCK, Clock
from gateway.errors import ConfigError
from gateway.fsutil import private_file
from gateway.model.scopes import DATASETS_READ, SCOPES
from gateway.store.db import Connection, Database, DuplicateKey, Shared, StoreError
from gateway.store.schema import StoreSchema

CLIENT_ID = re.compile(r"^[a-z][a-z0-9_-]{1,63}$")
DEFAULT_SCOPES = (DATASETS_READ,)
SECRET_METHODS = ("client_secret_basic", "client_secret_post")
JWT_METHOD = "private_key_jwt"
# scrypt cost (RFC 7914): N=2^14, r=8, p=1 is the interactive-login recommendation (~16 MiB).
_N, _R, _P, _DKLEN = 2**14, 8, 1, 32

SCHEMA = """
CREATE TABLE IF NOT EXISTS clients (
    client_id      TEXT PRIMARY KEY,
    secret_hash    TEXT NOT NULL,
    scopes         TEXT NOT NULL,
    disabled       INTEGER NOT NULL DEFAULT 0,
    created_ms     {int} NOT NULL,
    jwks           TEXT,
    rate_per_min   INTEGER,
    rows_per_day   INTEGER,
    tokens_after   {int}
);
CREATE TABLE IF NOT EXISTS revoked (
    jti        TEXT PRIMARY KEY,
    client_id  TEXT NOT NULL,
    expires    {int} NOT NULL
);
CREATE TABLE IF NOT EXISTS assertions (
    client_id  TEXT NOT NULL,
    jti        TEXT NOT NULL,
    expires    {int} NOT NULL,
    PRIMARY KEY (client_id, jti)
);
CREATE TABLE IF NOT EXISTS shared_state (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
    name   TEXT PRIMARY KEY,
    value  {int} NOT NULL,
    expires {int} NOT NULL
);
"""
CACHE_SECONDS = 0.5
CHANNEL = "gateway_registry"  # PostgreSQL NOTIFY channel: a client or revocation changed
PURGE_EVERY = 512  # takes of one process between deletions of expired counters
# What `gateway store migrate` copies.
REGISTRY_STORE = StoreSchema(
    what="a registry",
    ddl=SCHEMA,
    tables=(
        ("clients", "1"),
        ("revoked", "1"),
        ("assertions", "client_id, jti"),
        ("shared_state", "1"),
        ("counters", "1"),
    ),
)
# `disabled`: 0 enabled, 1 disabled (can be enabled again), 2 retired (for good).
ENABLED, DISABLED, RETIRED = 0, 1, 2


def derive(secret: str, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    """scrypt (RFC 7914): the one place a secret is hashed, so that every check costs the same
    and tests can count the calls. Releases the GIL; run it off the event loop."""
    return hashlib.scrypt(
        secret.encode("utf-8", "surrogatepass"), salt=salt, n=n, r=r, p=p, dklen=dklen
    )


def hash_secret(secret: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = derive(secret, salt, _N, _R, _P, _DKLEN)
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
    actual = derive(secret, salt, n, r, p, len(expected))
    return hmac.compare_digest(actual, expected)


# Checked against unknown client ids so that a wrong id costs as long as a wrong secret: the same
# scrypt parameters as every stored secret. (Its salt is fixed; no secret matches it but this
# string, and a client that is not registered is refused even then.) It is
# hash_secret("not-a-client", salt=b"\x00" * 16) written out: computed here it cost a scrypt
# (about 40 ms of CPU) in every process at import (tests/auth/test_hostile_auth.py checks it).
DUMMY_HASH = (
    "scrypt$n=16384,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA==$3q20LrtJ3CLU1KhoEIwXAdttL73g8SSS+Cuq1ECLJfY="
)


@dataclass(frozen=True)
class Client:
    client_id: str
    scopes: tuple[str, ...]
    disabled: bool
    created_ms: int
    secret_hash: str = field(repr=False)
    jwks: dict[str, Any] | None = field(default=None, repr=False)
    rate_per_min: int | None = None
    rows_per_day: int | None = None
    # Tokens issued at or before this second (Unix time) no longer work: set when the secret
    # is rotated or the client retired.
    tokens_after: int | None = None
    retired: bool = False

    @property
    def auth_methods(self) -> tuple[str, ...]:
        """A client with a registered JWKS authenticates with private_key_jwt only."""
        return (JWT_METHOD,) if self.jwks else SECRET_METHODS

    def check_secret(self, secret: str) -> bool:
        if self.jwks or not self.secret_hash:
            check_secret(secret, DUMMY_HASH)  # same cost, always False
            return False
        return check_secret(secret, self.secret_hash)


_COLUMNS = (
    "client_id, scopes, disabled, created_ms, secret_hash, jwks, rate_per_min, rows_per_day,"
    " tokens_after"
)


def _client(row: tuple[Any, ...]) -> Client:
    return Client(
        row[0],
        tuple(row[1].split()),
        bool(row[2]),
        int(row[3]),
        row[4],
        json.loads(row[5]) if row[5] else None,
        row[6],
        row[7],
        None if row[8] is None else int(row[8]),
        int(row[2]) == RETIRED,
    )


def _now() -> int:
    return int(time.time())


class ClientRegistry:
    def __init__(self, database: Database | Path, clock: Clock = SYSTEM_CLOCK) -> None:
        if isinstance(database, Path):
            # Committed state survives a crash of the process (WAL); counters need no fsync each.
            database = Database.sqlite(database, 5000, "NORMAL")
        self.database = database
        self._writer = Shared(database)
        # Counters and shared status change on every call: their commits need not wait for the
        # disk (a gateway crash loses nothing; a database crash, at most the last moments).
        self._counters = Shared(replace(database, durable=False, synchronous="NORMAL"))
        # Expired counters are deleted by every PURGE_EVERY-th `take` of this process (counted,
        # not drawn at random: a CSPRNG draw is a system call on every call).
        self._takes = itertools.count(1)
        self._local = threading.local()  # SQLite: one read connection per thread
        self._shared_reader = Shared(database)  # PostgreSQL: one read connection per process
        self._clock = clock  # the read cache's lifetimes
        self._cache: dict[tuple[str, str], tuple[float, object]] = {}
        self._cache_lock = threading.Lock()
        self._generation = 0  # bumped by every local write and every change seen elsewhere
        # SQLite: the marker file every change appends to, and its state the cache belongs to.
        self._changes = None if database.postgres else Path(f"{database.url}-changes")
        self._marker: bytes | None = None
        self._map: mmap.mmap | None = None
        # PostgreSQL: a thread LISTENing for changes made by any process or host clears the
        # cache within milliseconds; the cache lifetime is only the bound if it cannot.
        self._listener: threading.Thread | None = None
        self._stopping = threading.Event()
        try:
            with self._writer.use() as conn:
                conn.executescript(SCHEMA)
                _add_tokens_after(conn)
        except StoreError as exc:
            raise ConfigError(f"cannot open the client registry {database.display}: {exc}") from exc

    @contextlib.contextmanager
    def _write(self, changes: bool = True) -> Iterator[Connection]:
        """A write transaction; `changes`: it may change a client or a revocation, which every
        process's cache must then forget (signalled after the commit, before returning)."""
        try:
            with self._writer.use() as conn:
                yield conn
                if self.database.postgres and changes:
                    conn.execute(f"NOTIFY {CHANNEL}")  # every other process and host: at once
            if changes and self._changes is not None:
                self._signal_change(self._changes)
        finally:
            self._forget()  # this process sees its own changes at once

    @staticmethod
    def _signal_change(marker: Path) -> None:
        """Add one to the marker's 8-byte counter, under an exclusive lock (writers in any
        process never lose an increment): every reader's mapping of the file sees it."""
        private_file(marker)
        fd = os.open(marker, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                count = int.from_bytes(os.pread(fd, 8, 0).ljust(8, b"\0"), "little")
                os.pwrite(fd, ((count + 1) % 2**64).to_bytes(8, "little"), 0)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def _read(self) -> Iterator[Connection]:
        if self.database.postgres:
            with self._shared_reader.use() as shared:
                yield shared
            return
        local: Connection | None = getattr(self._local, "conn", None)
        if local is None:
            local = self.database.connect()
            self._local.conn = local
        yield local

    # --- clients ---------------------------------------------------------------------------

    def add(
        self,
        client_id: str,
        scopes: tuple[str, ...] = DEFAULT_SCOPES,
        *,
        jwks: dict[str, Any] | None = None,
        rate_per_min: int | None = None,
        rows_per_day: int | None = None,
    ) -> tuple[Client, str | None]:
        """Register a client. Returns it and its secret (None for a private_key_jwt client);
        the secret is never stored or shown again."""
        if not CLIENT_ID.match(client_id):
            raise ConfigError(
                f"client id {client_id!r} is invalid: use 2-64 lower-case letters, digits, _ or -,"
                " starting with a letter"
            )
        unknown = [s for s in scopes if s not in SCOPES]
        if unknown or not scopes:
            raise ConfigError(f"unknown scope(s) {unknown}; known scopes: {', '.join(SCOPES)}")
        if jwks is not None:
            _check_jwks(jwks)
        secret = None if jwks else secrets.token_urlsafe(32)
        client = Client(
            client_id,
            tuple(scopes),
            False,
            int(time.time() * 1000),
            hash_secret(secret) if secret else "",
            jwks,
            rate_per_min,
            rows_per_day,
        )
        with self._write() as conn:
            try:
                conn.execute(
                    f"INSERT INTO clients ({_COLUMNS}) VALUES (?, ?, 0, ?, ?, ?, ?, ?, NULL)",  # noqa: S608 - constant column list
                    (
                        client_id,
                        " ".join(scopes),
                        client.created_ms,
                        client.secret_hash,
                        json.dumps(jwks) if jwks else None,
                        rate_per_min,
                        rows_per_day,
                    ),
                )
            except DuplicateKey:
                raise ConfigError(f"a client named {client_id!r} already exists") from None
        return client, secret

    def rotate_secret(self, client_id: str) -> str:
        """A new secret for a secret-based client. The old secret stops working at once, and so
        does every token issued until now (it may have been obtained with the old secret)."""
        client = self._existing(client_id)
        if client.jwks:
            raise ConfigError(
                f"client {client_id!r} authenticates with private_key_jwt; it has no secret"
            )
        secret = secrets.token_urlsafe(32)
        cut = _now()
        with self._write() as conn:
            cursor = conn.execute(
                "UPDATE clients SET secret_hash = ?, tokens_after = ?"
                " WHERE client_id = ? AND disabled <> ?",
                (hash_secret(secret), cut, client_id, RETIRED),
            )
        if cursor.rowcount == 0:
            raise ConfigError(f"client {client_id!r} is retired; it has no secret to rotate")
        # Token times are whole seconds: hand the new secret out only once the second of the
        # cut-off is over, so no token obtained with it can fall under the cut-off.
        time.sleep(max(0.0, cut + 1 - time.time()))
        return secret

    def retire(self, client_id: str) -> None:
        """Retire a client for good: its credentials are destroyed, its live tokens stop working,
        it can never be enabled again, and its id stays taken, so that every audit entry naming
        it keeps naming only it."""
        self._existing(client_id)
        with self._write() as conn:
            cursor = conn.execute(
                "UPDATE clients SET disabled = ?, secret_hash = '', jwks = NULL, tokens_after = ?"
                " WHERE client_id = ? AND disabled <> ?",
                (RETIRED, _now(), client_id, RETIRED),
            )
        if cursor.rowcount == 0:
            raise ConfigError(f"client {client_id!r} is retired already")

    def _existing(self, client_id: str) -> Client:
        client = self.get(client_id)
        if client is None:
            raise ConfigError(f"no client {client_id!r}; `gateway clients list` shows the clients")
        if client.retired:
            raise ConfigError(
                f"client {client_id!r} is retired: it can never be used again; register a new "
                "client with `gateway clients add`"
            )
        return client

    def get(self, client_id: str) -> Client | None:
        found, cached = self._cached(("client", client_id))
        if found:
            return cached  # type: ignore[return-value]
        stamp = self._stamp()
        with self._read() as conn:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM clients WHERE client_id = ?",  # noqa: S608 - constant columns
                (client_id,),
            ).fetchone()
        client = None if row is None else _client(row)
        self._remember(("client", client_id), client, stamp)
        return client

    def all(self) -> list[Client]:
        with self._write(changes=False) as conn:
            query = f"SELECT {_COLUMNS} FROM clients ORDER BY client_id"  # noqa: S608 - constant
            rows = conn.execute(query).fetchall()
        return [_client(row) for row in rows]

    def set_disabled(self, client_id: str, disabled: bool) -> None:
        self._existing(client_id)
        with self._write() as conn:
            cursor = conn.execute(
                "UPDATE clients SET disabled = ? WHERE client_id = ? AND disabled <> ?",
                (DISABLED if disabled else ENABLED, client_id, RETIRED),
            )
        if cursor.rowcount == 0:
            self._existing(client_id)  # retired meanwhile: say so

    def authenticate(self, client_id: str, secret: str) -> Client | None:
        """The enabled client with this id and secret, or None (in constant-ish time)."""
        client = self.get(client_id)
        if client is None:
            check_secret(secret, DUMMY_HASH)
            return None
        if not client.check_secret(secret) or client.disabled:
            return None
        return client

    # --- revoked access tokens (RFC 7009) --------------------------------------------------

    def revoke(self, jti: str, client_id: str, expires: int) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT INTO revoked (jti, client_id, expires) VALUES (?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                (jti, client_id, expires),
            )
            # Entries are needed only until the token would have expired anyway.
            conn.execute("DELETE FROM revoked WHERE expires < ?", (_now() - 3600,))

    def is_revoked(self, jti: str) -> bool:
        found, cached = self._cached(("revoked", jti))
        if found:
            return bool(cached)
        stamp = self._stamp()
        with self._read() as conn:
            row = conn.execute("SELECT 1 FROM revoked WHERE jti = ?", (jti,)).fetchone()
        self._remember(("revoked", jti), row is not None, stamp)
        return row is not None

    # --- the read cache of clients and revocation answers -----------------------------------
    # A read costs a query (SQLite) or a network round trip (PostgreSQL) on every call. Answers
    # are kept until a change is signalled (the marker file's size, or NOTIFY), and for at most
    # CACHE_SECONDS in any case; changes made here clear it at once.

    def _cached(self, key: tuple[str, str]) -> tuple[bool, object]:
        if self._changes is not None:
            if not self._check_marker(self._changes):
                return False, None
        elif self._listener is None:
            self._start_listener()
        with self._cache_lock:
            hit = self._cache.get(key)
        if hit is None or hit[0] < self._clock.monotonic():
            return False, None
        return True, hit[1]

    def _stamp(self) -> tuple[float, int]:
        """Taken before a read: when the answer expires (counted from before the query, so a
        slow read never lives longer), and the generation it belongs to."""
        with self._cache_lock:
            return self._clock.monotonic() + CACHE_SECONDS, self._generation

    def _check_marker(self, marker: Path) -> bool:
        """Forget every cached answer when the marker's counter changed since the cache was
        filled (a client or revocation changed in some process). Called before each cached
        read, so a read that starts after a change has returned never answers from before it.
        The marker is read through a shared mapping: no system call per read. False when it
        cannot be read: then nothing is answered from the cache."""
        if self._map is None:
            self._map = _map_marker(marker)
        seen = self._map[:8] if self._map is not None else None
        if seen is None or seen != self._marker:
            with self._cache_lock:
                self._cache.clear()
                self._generation += 1
                self._marker = seen
        return seen is not None

    def _remember(self, key: tuple[str, str], value: object, stamp: tuple[float, int]) -> None:
        deadline, generation = stamp
        with self._cache_lock:
            if generation != self._generation:
                return  # a local write happened during the read: the answer may be stale
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key] = (deadline, value)

    def _forget(self) -> None:
        with self._cache_lock:
            self._cache.clear()
            self._generation += 1

    def _start_listener(self) -> None:
        with self._cache_lock:
            if self._listener is not None:
                return
            self._listener = threading.Thread(
                target=self._listen, name="registry-listener", daemon=True
            )
        self._listener.start()

    def _listen(self) -> None:
        conn: Connection | None = None
        while not self._stopping.is_set():
            try:
                if conn is None:
                    conn = self.database.connect()
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._forget()  # anything missed while not listening
                for _channel in conn.notifications(timeout=0.5):
                    self._forget()
            except StoreError:
                if conn is not None:
                    conn.close()
                conn = None
                self._forget()
                self._stopping.wait(1.0)
        if conn is not None:
            conn.close()

    # --- client assertion replay cache (RFC 7523 3, jti) ----------------------------------

    def remember_assertion(self, client_id: str, jti: str, expires: int) -> bool:
        """Record an assertion's jti until it expires; False if it was seen before (a replay)."""
        with self._write(changes=False) as conn:
            conn.execute("DELETE FROM assertions WHERE expires < ?", (_now() - 300,))
            cursor = conn.execute(
                "INSERT INTO assertions (client_id, jti, expires) VALUES (?, ?, ?)"
                " ON CONFLICT DO NOTHING",
                (client_id, jti, expires),
            )
        return cursor.rowcount == 1

    # --- shared counters (rate limits, quotas) ---------------------------------------------

    def take(self, name: str, amount: int, limit: int, expires: int) -> tuple[bool, int]:
        """Atomically add `amount` to counter `name` unless that would pass `limit`.
        Returns (allowed, value after the call). Counters vanish after `expires`.

        One statement does the check and the increment, so it is exact across processes and
        hosts: the row is locked by the upsert, and the WHERE sees the latest committed value."""
        now = _now()
        if amount > limit:
            return False, self._counter(name, now)
        with self._counters.use() as conn:
            row = conn.execute(
                "INSERT INTO counters (name, value, expires) VALUES (?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET"
                "  value = CASE WHEN counters.expires > ? THEN counters.value + excluded.value"
                "          ELSE excluded.value END,"
                "  expires = excluded.expires"
                " WHERE (CASE WHEN counters.expires > ? THEN counters.value ELSE 0 END)"
                "       + excluded.value <= ?"
                " RETURNING value",
                (name, amount, expires, now, now, limit),
            ).fetchone()
            if next(self._takes) % PURGE_EVERY == 0:
                conn.execute("DELETE FROM counters WHERE expires < ?", (now,))
        if row is None:
            return False, self._counter(name, now)
        return True, int(row[0])

    def counter(self, name: str) -> int:
        """The current value of counter `name` (0 when it does not exist or has expired)."""
        return self._counter(name, _now())

    def bump(self, name: str, amount: int, expires: int) -> int:
        """Add `amount` to counter `name` (no limit); returns the new value."""
        return self.take(name, amount, 2**62, expires)[1]

    def _counter(self, name: str, now: int) -> int:
        with self._read() as conn:
            row = conn.execute(
                "SELECT value FROM counters WHERE name = ? AND expires > ?", (name, now)
            ).fetchone()
        return 0 if row is None else int(row[0])

    # --- shared state between workers -------------------------------------------------------

    def shared(self, key: str) -> str | None:
        """The value `claim` last set for `key`, or None."""
        with self._counters.use() as conn:
            row = conn.execute("SELECT value FROM shared_state WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def claim(self, key: str, value: str) -> bool:
        """Set `key` to `value` if `key` does not hold `value` yet; True for the one caller (in
        any worker or host) that made the change. Used so that one process, not all, logs a
        shared event."""
        with self._counters.use() as conn:
            row = conn.execute(
                "INSERT INTO shared_state (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value"
                " WHERE shared_state.value <> excluded.value"
                " RETURNING key",
                (key, value),
            ).fetchone()
        return row is not None

    def close(self) -> None:
        self._stopping.set()
        if self._listener is not None:
            self._listener.join(timeout=2)
        self._writer.close()
        self._counters.close()
        self._shared_reader.close()
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
        if self._map is not None:
            self._map.close()
            self._map = None


def _map_marker(marker: Path) -> mmap.mmap | None:
    """A read-only shared mapping of the marker's counter (created, zero, if missing), or None
    when it cannot be mapped: then every read misses the cache (always correct, only slower)."""
    try:
        private_file(marker)
        fd = os.open(marker, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                if os.fstat(fd).st_size < 8:
                    os.pwrite(fd, bytes(8), 0)
            finally:
                # Unlocked before mapping: the mapping keeps a duplicate of the descriptor,
                # which would otherwise hold the lock (and block every writer) for good.
                fcntl.flock(fd, fcntl.LOCK_UN)
            return mmap.mmap(fd, 8, access=mmap.ACCESS_READ)
        finally:
            os.close(fd)
    except OSError:
        return None


def _add_tokens_after(conn: Connection) -> None:
    """Registries made before `tokens_after` existed get the column (NULL: no cut-off)."""
    if "tokens_after" in _column_names(conn):
        return
    try:
        conn.executescript("ALTER TABLE clients ADD COLUMN tokens_after {int}")
    except StoreError:
        if "tokens_after" not in _column_names(conn):  # not a worker that added it meanwhile
            raise


def _column_names(conn: Connection) -> set[str]:
    cursor = conn.execute("SELECT * FROM clients WHERE 1 = 0")
    return {str(d[0]) for d in cursor.description}


def _check_jwks(jwks: dict[str, Any]) -> None:
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    if not isinstance(keys, list) or not keys:
        raise ConfigError('the JWKS must be an object with a non-empty "keys" list')
    for key in keys:
        if not isinstance(key, dict) or any(k in key for k in ("d", "p", "q", "k")):
            raise ConfigError(
                "the JWKS must hold public keys only (it contains private key material)"
            )
        if key.get("kty") not in ("EC", "OKP", "RSA"):
            raise ConfigError(f"unsupported key type {key.get('kty')!r} (use EC, OKP or RSA)")
