"""The audit log: one total order across worker processes and hosts, on SQLite (the embedded
default, WAL mode) or PostgreSQL (several gateway hosts sharing one log).

`AuditLog` puts the parts together: appends are group-committed by the writer thread
(audit/writer.py) or, for a serving process on SQLite, by a writer process of its own
(audit/procwriter.py, audit/child.py); a failed write halts the log everywhere until an
operator resumes it (audit/halt.py); checkpoints are signed by every process on SQLite and by
the lease holder on PostgreSQL (audit/lease.py); a key rotation is an entry signed by the old
key (`rotate`).
Readers that need no running log are in audit/reader.py."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path

from gateway.audit.canonical import JsonValue
from gateway.audit.checkpoint import raw_public, sign_checkpoint
from gateway.audit.connection import WriteConnection
from gateway.audit.entry import Appended, StoredEntry
from gateway.audit.events import key_rotated
from gateway.audit.halt import Halt
from gateway.audit.lease import CheckpointLease
from gateway.audit.merkle import MerkleTree, verify_consistency
from gateway.audit.procwriter import ProcessWriter
from gateway.audit.reader import as_bytes
from gateway.audit.schema import (
    SCHEMA,
    SEQUENCER,
    CheckpointRow,
    KeyWindow,
    next_position,
    now_ms,
    read_origin,
    resume_count,
)
from gateway.audit.signers import Signers, SignerSource
from gateway.audit.signing import Signer
from gateway.audit.wire import HaltState
from gateway.audit.writer import GroupWriter, LoopWaiter, write_entries
from gateway.clock import SYSTEM_CLOCK, Clock
from gateway.errors import AuditUnavailable, ConfigError
from gateway.store.db import Connection, Database, Shared, StoreError


class AuditLog:
    """Append-only, signed, Merkle-checkpointed audit log in one database."""

    def __init__(
        self,
        database: Database | Path,
        signer: Signer,
        *,
        busy_timeout_ms: int = 10_000,
        signer_for: SignerSource | None = None,
        clock: Clock = SYSTEM_CLOCK,
        writer_process: bool = False,
        key_path: Path | None = None,
    ) -> None:
        """`writer_process`: on SQLite, the event loop's appends (`append_async`) are written by
        a spawned writer process (audit/procwriter.py); `key_path` is where that process finds
        a rotated key. Appends from threads (`append`, `submit`) and PostgreSQL keep the writer
        thread."""
        if isinstance(database, Path):
            database = Database.sqlite(database, busy_timeout_ms)
        self.database = database
        self._signers = Signers(signer, signer_for)
        self._read_lock = threading.Lock()
        self._tree = MerkleTree()
        self._reader = Shared(database)
        self._lease = CheckpointLease(database, clock)
        try:
            self._write = WriteConnection(database)
            conn = self._write.current
            conn.executescript(SCHEMA)
            with conn.transaction(SEQUENCER):
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('origin', ?) ON CONFLICT DO NOTHING",
                    (f"public-data-gateway/{secrets.token_hex(6)}",),
                )
                if conn.execute("SELECT 1 FROM keys").fetchone() is None:
                    conn.execute(
                        "INSERT INTO keys (kid, public_key, from_idx) VALUES (?, ?, 0)",
                        (signer.kid, raw_public(signer.private_key.public_key())),
                    )
            self.origin = read_origin(conn)
            self._halt_state = Halt(self._write, self._reader, resume_count(conn))
            self._signers.in_force(conn)
        except StoreError as exc:
            raise ConfigError(f"cannot open the audit log {database.display}: {exc}") from exc
        except AuditUnavailable as exc:
            raise ConfigError(
                f"{exc}. Every gateway sharing a store needs the same audit keys: copy "
                "keys/audit-ed25519.* from the workspace that created the log"
            ) from exc
        self._writer = GroupWriter(self._write, self._halt_state, self._signers, self.origin)
        self._process: ProcessWriter | None = None
        if writer_process and not database.postgres:
            self._process = ProcessWriter(
                database,
                self._signers,
                None if key_path is None else str(key_path),
                self.origin,
                self._from_writer,
            )

    @property
    def _conn(self) -> Connection:
        """The write connection as it is now (tests use it to make writes fail)."""
        return self._write.current

    def _halt(self, reason: str) -> None:
        self._halt_state.halt(reason)

    def _pragma(self, name: str, value: int) -> None:
        """Set a pragma on every write connection of this log, the writer process's included
        (tests: `query_only` or `max_page_count` make writes fail as a full disk does)."""
        with self._write.lock:
            self._conn.execute(f"PRAGMA {name} = {int(value)}")
        if self._process is not None:
            self._process.pragma(name, value)

    @property
    def writer_pid(self) -> int | None:
        """The writer process's id while one runs (tests stop and kill it)."""
        return None if self._process is None else self._process.pid

    def _from_writer(self, halt: HaltState, kid: str | None) -> None:
        """What the writer process reported with a commit: its halt, the key it signed with."""
        self._halt_state.adopt(halt)
        if kid is not None and kid != self._signers.active.kid:
            with contextlib.suppress(AuditUnavailable):  # receipts and /readyz name the new key
                self._signers.of(kid)

    # --- appends ---------------------------------------------------------------------------

    def append(self, event: Mapping[str, JsonValue]) -> Appended:
        """Append one entry and wait until it is durably committed; raise AuditUnavailable if
        it cannot be."""
        return self.submit(event).result()

    async def append_async(self, event: Mapping[str, JsonValue]) -> Appended:
        """`append` for the event loop: waits for the commit without holding a thread (the
        writer wakes the loop once per batch, not once per entry)."""
        self._refuse_if_halted()
        waiter = LoopWaiter(asyncio.get_running_loop())
        if self._process is not None:
            self._process.put(event, waiter)
        else:
            self._writer.put(event, waiter)
        return await waiter.future

    def submit(self, event: Mapping[str, JsonValue]) -> Future[Appended]:
        """Queue one entry for the next group commit; the future resolves once it is durable."""
        self._refuse_if_halted()
        return self._writer.submit(event)

    def _refuse_if_halted(self) -> None:
        halted = self._halt_state.current()
        if halted is not None:
            raise AuditUnavailable(f"the audit log is halted: {halted}")

    @property
    def active_kid(self) -> str:
        return self._signers.active.kid

    def writable(self) -> str | None:
        """None if the log can take its write lock now; otherwise why not (for /readyz)."""
        if self._process is not None:
            problem = self._process.problem()
            if problem is not None:
                return problem
        with self._write.lock:
            conn = self._write.current
            try:
                conn = self._write.get()
                conn.begin(SEQUENCER)
                conn.rollback()
            except StoreError as exc:
                conn.rollback()
                return str(exc)
        return None

    def signer(self, kid: str) -> Signer:
        """The signer that signed entries with this key id (for their receipts)."""
        return self._signers.used(kid)

    @property
    def halted(self) -> str | None:
        """Why this process refuses appends, or None (an operator's resume is seen at once)."""
        return self._halt_state.current()

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
            StoredEntry(int(i), as_bytes(line), str(kid), bytes(sig)) for i, line, kid, sig in rows
        ]

    def key_windows(self) -> list[KeyWindow]:
        """Every audit key with the first index it signs, oldest first (public information)."""
        with self._reader.use() as read:
            rows = read.execute(
                "SELECT kid, public_key, from_idx FROM keys ORDER BY from_idx"
            ).fetchall()
        return [
            KeyWindow(as_bytes(kid).decode(), as_bytes(key), int(first)) for kid, key, first in rows
        ]

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
        with self._write.lock:
            signers = [self._signers.active, *extra_signers]
            note = sign_checkpoint(self.origin, size, root, signers)
            conn = self._write.current
            try:
                conn = self._write.get()
                conn.begin(SEQUENCER)
                newest = conn.execute("SELECT MAX(size) FROM checkpoints").fetchone()[0]
                if newest is None or newest < size:
                    conn.execute(
                        "INSERT INTO checkpoints (size, root, note, ts) VALUES (?, ?, ?, ?)",
                        (size, root, note, now_ms()),
                    )
                conn.commit()
            except StoreError as exc:
                conn.rollback()
                raise AuditUnavailable(f"cannot store a checkpoint: {exc}") from exc
        return self.latest_checkpoint()

    def signs_checkpoints(self) -> bool:
        """Whether this process signs checkpoints now (see audit/lease.py)."""
        return self._lease.held()

    # --- key rotation ----------------------------------------------------------------------

    def rotate(self, new: Signer, actor: str, install: Callable[[], None]) -> int:
        """Record `new` as the signing key from the next index on, in an entry signed by the
        current key; `install` puts the key files in place inside the same write transaction.
        Returns the index of the rotation entry; then signs a checkpoint with both keys."""
        with self._write.lock:
            conn = self._write.current
            old = self._signers.active
            try:
                conn = self._write.get()
                conn.begin(SEQUENCER)
                old = self._signers.in_force(conn)
                event = key_rotated(
                    actor, old.kid, new.kid, raw_public(new.private_key.public_key())
                )
                (written,) = write_entries(conn, self.origin, old, next_position(conn), [event])
                if isinstance(written, Exception):
                    raise written
                conn.execute(
                    "INSERT INTO keys (kid, public_key, from_idx) VALUES (?, ?, ?)",
                    (new.kid, raw_public(new.private_key.public_key()), written.idx + 1),
                )
                install()
                conn.commit()
            except StoreError as exc:
                conn.rollback()
                raise ConfigError(f"key rotation failed, nothing changed: {exc}") from exc
            self._signers.install(new)
        self.checkpoint(extra_signers=[old])
        return written.idx

    def close(self) -> None:
        if self._process is not None:
            self._process.close()
        if not self._writer.close():
            return
        self._reader.close()
        self._write.close()
        self._lease.close()
