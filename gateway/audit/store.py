"""The audit log: one total order across worker processes and hosts, on SQLite (the embedded
default, WAL mode) or PostgreSQL (several gateway hosts sharing one log).

Appends are group-committed: callers hand their event to this process's writer thread, which
writes everything waiting in one transaction holding the log's sequencer lock (SQLite's single
write lock, `BEGIN IMMEDIATE`; on PostgreSQL a transaction-level advisory lock, so every host
appends after the head it reads), signs each entry, and commits durably (SQLite
`synchronous=FULL`; PostgreSQL `synchronous_commit=on`). Only then do the callers get receipts.

Checkpoints: on SQLite any worker may sign one (a size is stored once); on PostgreSQL exactly one
host at a time signs, the holder of a session advisory lock (its lease; it passes to another host
when the holder's connection ends), and the others serve the latest.

A failed write halts the log: this process refuses appends at once, and the halt is recorded in
the database so every other worker refuses too, until an operator runs `gateway audit resume`.
The halt note may itself fail to be written (a full disk fails every write): the halted process
then remembers the halt alone. So `resume` also advances a resume counter (meta key `resumed`)
that every process reads with each batch; a process halted at counter N resumes once it reads a
larger one, whether or not its note ever reached the database, and retries writing its note
meanwhile so that `gateway audit status` and `resume` can see the halt.
A busy lock (another writer holding it past the timeout) fails only the calls concerned.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import queue
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from gateway.audit.canonical import JsonValue
from gateway.audit.checkpoint import raw_public, sign_checkpoint
from gateway.audit.entry import (
    GENESIS_PREV,
    Appended,
    StoredEntry,
    encode_entry,
    leaf_hash,
    statement,
)
from gateway.audit.merkle import MerkleTree, verify_consistency
from gateway.audit.signing import ENTRY_CONTEXT, Signer
from gateway.errors import AuditUnavailable, ConfigError
from gateway.store.db import Connection, Database, Shared, StoreError, lock_id

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
_BATCH_MAX = 512
SEQUENCER = "public-data-gateway/audit-sequencer"  # serializes appends across hosts
LEASE_RETRY_SECONDS = 1.0
_CHECKPOINT_LEASE = lock_id("public-data-gateway/checkpoint-signer")


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


def _next_position(conn: Connection) -> tuple[int, str, int]:
    """(next index, hex leaf hash of the head entry, its ts), inside a write transaction."""
    head = conn.execute("SELECT idx, leaf, ts FROM entries ORDER BY idx DESC LIMIT 1").fetchone()
    if head is None:
        return 0, GENESIS_PREV, 0
    return int(head[0]) + 1, bytes(head[1]).hex(), int(head[2])


def _now_ms() -> int:
    return int(time.time() * 1000)


SignerSource = Callable[[str], Signer | None]


class AuditLog:
    """Append-only, signed, Merkle-checkpointed audit log in one database."""

    def __init__(
        self,
        database: Database | Path,
        signer: Signer,
        *,
        busy_timeout_ms: int = 10_000,
        signer_for: SignerSource | None = None,
    ) -> None:
        if isinstance(database, Path):
            database = Database.sqlite(database, busy_timeout_ms)
        self.database = database
        self._signer = signer
        self._signers: dict[str, Signer] = {signer.kid: signer}  # every key this process used
        self._signer_for = signer_for  # finds the private key of a kid after a rotation
        self._write_lock = threading.Lock()  # the queue and the writer thread's lifecycle
        # The write connection: the writer thread, checkpoints and rotations take turns on it.
        self._conn_lock = threading.RLock()
        self._read_lock = threading.Lock()
        self._queue: queue.SimpleQueue[tuple[Mapping[str, JsonValue], Future[Appended]] | None] = (
            queue.SimpleQueue()
        )
        self._writer: threading.Thread | None = None
        self._closed = False
        self._halted: str | None = None
        self._halt_saved = True
        self._resumes: str | None = None  # the resume counter as last read (meta `resumed`)
        self._halt_resumes: str | None = None  # ... as it was when this process halted
        self._saving = threading.Lock()  # held while a halt note is being written
        self._tree = MerkleTree()
        self._reader = Shared(database)
        self._lease: Connection | None = None  # PostgreSQL: holds the checkpoint signer's lease
        self._lease_tried = -LEASE_RETRY_SECONDS  # monotonic time of the last try for the lease
        self._lease_lock = threading.Lock()
        self._dropped = False  # the write connection was closed after a lost link
        try:
            self._conn = database.connect()
            self._conn.executescript(SCHEMA)
            with self._conn.transaction(SEQUENCER):
                self._conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('origin', ?) ON CONFLICT DO NOTHING",
                    (f"public-data-gateway/{secrets.token_hex(6)}",),
                )
                if self._conn.execute("SELECT 1 FROM keys").fetchone() is None:
                    self._conn.execute(
                        "INSERT INTO keys (kid, public_key, from_idx) VALUES (?, ?, 0)",
                        (signer.kid, raw_public(signer.private_key.public_key())),
                    )
            self.origin = read_origin(self._conn)
            self._resumes = _resume_count(self._conn)
            self._active_signer(self._conn)
        except StoreError as exc:
            raise ConfigError(f"cannot open the audit log {database.display}: {exc}") from exc
        except AuditUnavailable as exc:
            raise ConfigError(
                f"{exc}. Every gateway sharing a store needs the same audit keys: copy "
                "keys/audit-ed25519.* from the workspace that created the log"
            ) from exc

    # --- appends ---------------------------------------------------------------------------

    def append(self, event: Mapping[str, JsonValue]) -> Appended:
        """Append one entry and wait until it is durably committed; raise AuditUnavailable if
        it cannot be."""
        return self.submit(event).result()

    async def append_async(self, event: Mapping[str, JsonValue]) -> Appended:
        """`append` for the event loop: waits for the commit without holding a thread."""
        return await asyncio.wrap_future(self.submit(event))

    def submit(self, event: Mapping[str, JsonValue]) -> Future[Appended]:
        """Queue one entry for the next group commit; the future resolves once it is durable."""
        if self._halted is not None and not self._resumed():
            raise AuditUnavailable(f"the audit log is halted: {self._halted}")
        future: Future[Appended] = Future()
        with self._write_lock:
            if self._closed:
                raise AuditUnavailable("the audit log is closed")
            if self._writer is None:
                self._writer = threading.Thread(
                    target=self._write_loop, name="audit-writer", daemon=True
                )
                self._writer.start()
            self._queue.put((event, future))
        return future

    def _write_loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            while len(batch) < _BATCH_MAX:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)  # stop after this batch
                    break
                batch.append(more)
            with self._conn_lock:
                self._commit(batch)

    def _commit(self, batch: list[tuple[Mapping[str, JsonValue], Future[Appended]]]) -> None:
        # A connection lost before COMMIT was sent wrote nothing: try once more on a new one.
        if self._commit_once(batch, retry=True):
            self._commit_once(batch, retry=False)

    def _commit_once(
        self, batch: list[tuple[Mapping[str, JsonValue], Future[Appended]]], *, retry: bool
    ) -> bool:
        """Write the batch in one transaction and resolve its futures. True (futures still
        pending) when the connection was lost before COMMIT and `retry` allows another try."""
        conn: Connection | None = None
        committing = False
        try:
            conn = self._connection()
            conn.begin(SEQUENCER)
            # One round trip for the halt flag, the resume counter, the active key and the head
            # of the chain.
            halted, resumes, active_kid, head_idx, head_leaf, head_ts = conn.execute(
                "SELECT (SELECT value FROM meta WHERE key = 'halted'),"
                " (SELECT value FROM meta WHERE key = 'resumed'),"
                " (SELECT kid FROM keys ORDER BY from_idx DESC LIMIT 1),"
                " h.idx, h.leaf, h.ts FROM (SELECT 1 AS one) AS o LEFT JOIN"
                " (SELECT idx, leaf, ts FROM entries ORDER BY idx DESC LIMIT 1) AS h ON TRUE"
            ).fetchone()
            self._resumes = None if resumes is None else str(resumes)
            if halted is not None:
                conn.rollback()
                self._halted, self._halt_saved = str(halted), True
                self._halt_resumes = self._resumes
                error = AuditUnavailable(f"the audit log is halted: {self._halted}")
                for _, future in batch:
                    future.set_exception(error)
                return False
            signer = self._signer_of(active_kid)
            if head_idx is None:
                idx, prev, last_ts = 0, GENESIS_PREV, 0
            else:
                idx, prev, last_ts = int(head_idx) + 1, bytes(head_leaf).hex(), int(head_ts)
            results: list[tuple[Future[Appended], Appended | Exception]] = []
            rows: list[tuple[int, str, bytes, int, str, bytes]] = []
            for event, future in batch:
                try:
                    ts = max(_now_ms(), last_ts)  # never backwards along the chain
                    line = encode_entry(event, origin=self.origin, idx=idx, ts=ts, prev=prev)
                except (TypeError, ValueError) as exc:
                    results.append((future, exc))  # a malformed event fails alone
                    continue
                leaf = leaf_hash(line)
                sig = signer.sign(ENTRY_CONTEXT, statement(self.origin, idx, ts, leaf))
                rows.append((idx, line.decode("utf-8"), leaf, ts, signer.kid, sig))
                results.append((future, Appended(self.origin, idx, ts, leaf, signer.kid, sig)))
                idx, prev, last_ts = idx + 1, leaf.hex(), ts
            if rows:  # one statement for the batch (one round trip on PostgreSQL)
                conn.executemany(
                    "INSERT INTO entries (idx, line, leaf, ts, kid, sig) VALUES (?, ?, ?, ?, ?, ?)",
                    rows,
                )
            committing = True
            conn.commit()
        except StoreError as exc:
            if conn is not None:
                conn.rollback()
            if exc.lost:
                # Not a failed write: the store went away (restart, failover, idle timeout).
                # Reconnect; never halt for it. Lost during COMMIT, the entries may be stored:
                # the chain stays consistent either way (the next batch reads the real head).
                self._drop_connection()
                if retry and not committing:
                    return True
                state = "while committing" if committing else "before writing"
                error = AuditUnavailable(f"the audit store connection was lost {state}: {exc}")
            elif exc.busy:
                error = AuditUnavailable(f"the audit log is busy: {exc}")
            else:
                self._halt(f"write failed: {exc}")
                error = AuditUnavailable(f"the audit log write failed and the log is halted: {exc}")
            for _, future in batch:
                future.set_exception(error)
            return False
        except (
            Exception
        ) as exc:  # any failure (e.g. the rotated key cannot be loaded) fails the batch
            if conn is not None:
                conn.rollback()
            error = (
                exc
                if isinstance(exc, AuditUnavailable)
                else AuditUnavailable(f"audit append failed: {exc}")
            )
            for _, future in batch:
                future.set_exception(error)
            return False
        for future, outcome in results:
            if isinstance(outcome, Exception):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
        return False

    def _drop_connection(self) -> None:
        """Close the write connection so that the next use opens a new one; hold _conn_lock."""
        self._conn.close()
        self._dropped = True

    def _connection(self) -> Connection:
        """The write connection (reconnected if the server dropped it); hold _conn_lock."""
        if self._dropped or self._conn.broken:
            self._conn.close()
            self._conn = self.database.connect()
            self._dropped = False
        return self._conn

    def _active_signer(self, conn: Connection) -> Signer:
        """The signer of the newest key window (it changes when a key is rotated)."""
        row = conn.execute("SELECT kid FROM keys ORDER BY from_idx DESC LIMIT 1").fetchone()
        return self._signer_of(None if row is None else str(row[0]))

    def _signer_of(self, kid: str | None) -> Signer:
        if kid is None or kid == self._signer.kid:
            return self._signer
        found = self._signer_for(kid) if self._signer_for else None
        if found is None or found.kid != kid:
            raise AuditUnavailable(f"the active audit key {kid} is not available to this process")
        self._signer = found
        self._signers[found.kid] = found
        return found

    def _halt(self, reason: str) -> None:
        """Stop appending, here and (if the database still accepts the note) everywhere."""
        self._halted = reason
        self._halt_saved = False
        self._halt_resumes = self._resumes  # read in the failed batch's transaction
        self._save_halt()

    def _save_halt(self) -> None:
        """Record this process's halt in the database (if it accepts the note now)."""
        note = f"{self._halted} (at {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())})"
        with self._saving, self._conn_lock, contextlib.suppress(StoreError):
            conn = self._connection()
            with conn.transaction(SEQUENCER):
                if _resume_count(conn) != self._halt_resumes:
                    return  # resumed meanwhile (`_resumed` sees it)
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('halted', ?)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (note,),
                )
            self._halt_saved = True

    def _resumed(self) -> bool:
        """True once an operator has cleared the halt (`gateway audit resume`): the resume
        counter moved past the value it had when this process halted, or (an older `resume`)
        the recorded note is gone. Never write entries after a failed write without an
        operator: until then only the halt note itself is retried."""
        try:
            with self._reader.use() as read:
                halted, resumes = read.execute(
                    "SELECT (SELECT value FROM meta WHERE key = 'halted'),"
                    " (SELECT value FROM meta WHERE key = 'resumed')"
                ).fetchone()
        except StoreError:
            return False
        resumes = None if resumes is None else str(resumes)
        if resumes != self._halt_resumes or (halted is None and self._halt_saved):
            self._halted, self._halt_saved, self._resumes = None, True, resumes
            return True
        if not self._halt_saved and not self._saving.locked():
            # Off the caller's thread (often the event loop): the write may wait for a lock.
            threading.Thread(target=self._save_halt, name="audit-halt-note", daemon=True).start()
        return False

    @property
    def active_kid(self) -> str:
        return self._signer.kid

    def writable(self) -> str | None:
        """None if the log can take its write lock now; otherwise why not (for /readyz)."""
        with self._conn_lock:
            conn = self._conn
            try:
                conn = self._connection()
                conn.begin(SEQUENCER)
                conn.rollback()
            except StoreError as exc:
                conn.rollback()
                return str(exc)
        return None

    def signer(self, kid: str) -> Signer:
        """The signer that signed entries with this key id (for their receipts)."""
        return self._signers[kid]

    @property
    def halted(self) -> str | None:
        """Why this process refuses appends, or None (an operator's resume is seen at once)."""
        if self._halted is not None and self._resumed():
            return None
        return self._halted

    # --- reading ---------------------------------------------------------------------------

    def tree(self) -> MerkleTree:
        """This process's Merkle tree, caught up with every committed entry."""
        with self._read_lock, self._reader.use() as read:
            rows = read.execute(
                "SELECT leaf FROM entries WHERE idx >= ? ORDER BY idx", (self._tree.size,)
            ).fetchall()
            self._tree.extend(bytes(leaf) for (leaf,) in rows)
            return self._tree

    def entries(self, first: int, last: int) -> list[StoredEntry]:
        """Entries first..last-1 (bytes exactly as stored)."""
        with self._reader.use() as read:
            line = "line" if self.database.postgres else "CAST(line AS BLOB)"  # tampered: not UTF-8
            rows = read.execute(
                f"SELECT idx, {line}, kid, sig FROM entries WHERE idx >= ? AND idx < ?"  # noqa: S608 - constant
                " ORDER BY idx",
                (first, last),
            ).fetchall()
        return [
            StoredEntry(int(i), _bytes(line), str(kid), bytes(sig)) for i, line, kid, sig in rows
        ]

    def key_windows(self) -> list[KeyWindow]:
        """Every audit key with the first index it signs, oldest first (public information)."""
        with self._reader.use() as read:
            rows = read.execute(
                "SELECT kid, public_key, from_idx FROM keys ORDER BY from_idx"
            ).fetchall()
        return [KeyWindow(_text(kid), bytes(key), int(first)) for kid, key, first in rows]

    def size(self) -> int:
        with self._reader.use() as read:
            row = read.execute("SELECT MAX(idx) FROM entries").fetchone()
        return 0 if row[0] is None else int(row[0]) + 1

    def latest_checkpoint(self) -> CheckpointRow | None:
        with self._reader.use() as read:
            row = read.execute(
                "SELECT size, root, note, ts FROM checkpoints ORDER BY size DESC LIMIT 1"
            ).fetchone()
        return (
            None
            if row is None
            else CheckpointRow(int(row[0]), bytes(row[1]), str(row[2]), int(row[3]))
        )

    # --- checkpoints -----------------------------------------------------------------------

    def checkpoint(self, extra_signers: Sequence[Signer] = ()) -> CheckpointRow | None:
        """Sign a checkpoint of the current tree unless one of this size exists. The new tree is
        checked consistent with the previous checkpoint first; if it is not, the log halts.
        On PostgreSQL only the holder of the signer's lease signs; other hosts serve the latest."""
        if not self.signs_checkpoints():
            return self.latest_checkpoint()
        tree = self.tree()
        size = tree.size
        latest = self.latest_checkpoint()
        if size == 0 or (latest is not None and latest.size >= size):
            return latest
        root = tree.root(size)
        if latest is not None:
            proof = tree.consistency_proof(latest.size, size)
            if not verify_consistency(latest.size, size, latest.root, root, proof):
                self._halt(f"entries before checkpoint {latest.size} changed")
                raise AuditUnavailable(
                    f"the log is not consistent with its checkpoint of size {latest.size}; halted"
                )
        with self._conn_lock:
            signers = [self._signer, *extra_signers]
            note = sign_checkpoint(self.origin, size, root, signers)
            conn = self._conn
            try:
                conn = self._connection()
                conn.begin(SEQUENCER)
                newest = conn.execute("SELECT MAX(size) FROM checkpoints").fetchone()[0]
                if newest is None or newest < size:
                    conn.execute(
                        "INSERT INTO checkpoints (size, root, note, ts) VALUES (?, ?, ?, ?)",
                        (size, root, note, _now_ms()),
                    )
                conn.commit()
            except StoreError as exc:
                conn.rollback()
                raise AuditUnavailable(f"cannot store a checkpoint: {exc}") from exc
        return self.latest_checkpoint()

    def signs_checkpoints(self) -> bool:
        """Whether this process signs checkpoints now. SQLite: always (a size is stored once).
        PostgreSQL: while it holds the lease, a session advisory lock on a connection of its own
        that passes to another host when this one's connection ends. Checked with a round trip
        each time (a server restart ends every lease); a host without it tries again at most
        once a second. Never holds the append path's lock."""
        if not self.database.postgres:
            return True
        with self._lease_lock:
            if self._lease is not None:
                try:
                    self._lease.execute("SELECT 1")
                    return True
                except StoreError:
                    self._lease.close()
                    self._lease = None
            now = time.monotonic()
            if now - self._lease_tried < LEASE_RETRY_SECONDS:
                return False
            self._lease_tried = now
            lease: Connection | None = None
            try:
                lease = self.database.connect()
                held = bool(
                    lease.execute(
                        "SELECT pg_try_advisory_lock(?)", (_CHECKPOINT_LEASE,)
                    ).fetchone()[0]
                )
            except StoreError:
                if lease is not None:
                    lease.close()
                return False
            if held:
                self._lease = lease
                return True
            lease.close()
            return False

    # --- key rotation ----------------------------------------------------------------------

    def rotate(self, new: Signer, actor: str, install: Callable[[], None]) -> int:
        """Record `new` as the signing key from the next index on, in an entry signed by the
        current key; `install` puts the key files in place inside the same write transaction.
        Returns the index of the rotation entry; then signs a checkpoint with both keys."""
        with self._conn_lock:
            conn = self._conn
            old = self._signer
            try:
                conn = self._connection()
                conn.begin(SEQUENCER)
                old = self._active_signer(conn)
                idx, prev, last_ts = _next_position(conn)
                ts = max(_now_ms(), last_ts)
                event: dict[str, JsonValue] = {
                    "kind": "admin",
                    "action": "key.rotate",
                    "actor": actor,
                    "old_kid": old.kid,
                    "new_kid": new.kid,
                    "new_key": base64.b64encode(raw_public(new.private_key.public_key())).decode(),
                }
                line = encode_entry(event, origin=self.origin, idx=idx, ts=ts, prev=prev)
                conn.execute(
                    "INSERT INTO entries (idx, line, leaf, ts, kid, sig) VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        idx,
                        line.decode(),
                        leaf_hash(line),
                        ts,
                        old.kid,
                        old.sign(ENTRY_CONTEXT, statement(self.origin, idx, ts, leaf_hash(line))),
                    ),
                )
                conn.execute(
                    "INSERT INTO keys (kid, public_key, from_idx) VALUES (?, ?, ?)",
                    (new.kid, raw_public(new.private_key.public_key()), idx + 1),
                )
                install()
                conn.commit()
            except StoreError as exc:
                conn.rollback()
                raise ConfigError(f"key rotation failed, nothing changed: {exc}") from exc
            self._signer = new
            self._signers[new.kid] = new
        self.checkpoint(extra_signers=[old])
        return idx

    def close(self) -> None:
        with self._write_lock:
            if self._closed:
                return
            self._closed = True
            writer = self._writer
            self._queue.put(None)
        if writer is not None:
            writer.join()
        self._reader.close()
        with self._conn_lock:
            self._conn.close()
        with self._lease_lock:
            if self._lease is not None:
                self._lease.close()


def _text(value: object) -> str:
    return bytes(value).decode() if isinstance(value, bytes | memoryview) else str(value)


def _bytes(value: object) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)  # type: ignore[call-overload]


def read_origin(conn: Connection | sqlite3.Connection) -> str:
    row = conn.execute("SELECT value FROM meta WHERE key = 'origin'").fetchone()
    if row is None:
        raise ConfigError("the audit log has no origin; is this an audit log file?")
    value = row[0]
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


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
                    yield StoredEntry(int(idx), _bytes(line), str(kid), bytes(sig))
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


def _resume_count(conn: Connection) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = 'resumed'").fetchone()
    return None if row is None else str(row[0])


def resume(source: Path | Database) -> str | None:
    """Clear a halt (after the operator fixed its cause) and advance the resume counter, which
    also resumes processes whose halt note never reached the database (a full disk). Returns
    the recorded reason, if one was recorded."""
    database = Database.sqlite(source) if isinstance(source, Path) else source
    conn = database.connect()
    try:
        with conn.transaction(SEQUENCER):
            row = conn.execute("SELECT value FROM meta WHERE key = 'halted'").fetchone()
            count = _resume_count(conn)
            conn.execute("DELETE FROM meta WHERE key = 'halted'")
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('resumed', ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(int(count or 0) + 1),),
            )
    except StoreError as exc:
        raise ConfigError(f"cannot resume the audit log {database.display}: {exc}") from exc
    finally:
        conn.close()
    return None if row is None else str(row[0])
