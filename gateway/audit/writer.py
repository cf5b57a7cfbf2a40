"""Appends, group-committed: callers hand their event to this process's writer thread, which
writes everything waiting in one transaction holding the log's sequencer lock (SQLite's single
write lock, `BEGIN IMMEDIATE`; on PostgreSQL a transaction-level advisory lock, so every host
appends after the head it reads), signs each entry, and commits durably (SQLite
`synchronous=FULL`; PostgreSQL `synchronous_commit=on`). Only then do the callers get receipts.
A busy lock (another writer holding it past the timeout) fails only the calls concerned."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future

from gateway.audit.canonical import JsonValue
from gateway.audit.connection import WriteConnection
from gateway.audit.entry import GENESIS_PREV, Appended, encode_entry, leaf_hash, statement
from gateway.audit.halt import Halt
from gateway.audit.schema import SEQUENCER, Head, now_ms
from gateway.audit.signers import Signers
from gateway.audit.signing import ENTRY_CONTEXT, Signer
from gateway.errors import AuditUnavailable
from gateway.store.db import Connection, StoreError

_BATCH_MAX = 512
Event = Mapping[str, JsonValue]


class LoopWaiter:
    """An event loop's future waiting for one entry. The writer settles every waiter of a batch
    that belongs to one loop with a single `call_soon_threadsafe` (one wake-up of the loop per
    batch, instead of one per entry as `asyncio.wrap_future` does)."""

    __slots__ = ("future", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.future: asyncio.Future[Appended] = loop.create_future()


Waiter = Future[Appended] | LoopWaiter
Pending = tuple[Event, Waiter]
Outcome = Appended | BaseException


def settle(outcomes: Sequence[tuple[Waiter, Outcome]]) -> None:
    """Hand each waiter its entry or its error (a loop's waiters in one call on that loop)."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Appended], Outcome]]] = {}
    for waiter, outcome in outcomes:
        if isinstance(waiter, LoopWaiter):
            by_loop.setdefault(waiter.loop, []).append((waiter.future, outcome))
        elif waiter.cancelled():
            continue  # nobody waits; settling it would raise and leave the others waiting
        elif isinstance(outcome, BaseException):
            waiter.set_exception(outcome)
        else:
            waiter.set_result(outcome)
    for loop, settled in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
            loop.call_soon_threadsafe(_deliver, settled)


def _deliver(settled: list[tuple[asyncio.Future[Appended], Outcome]]) -> None:
    for future, outcome in settled:
        if future.done():  # the waiting call was cancelled
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


def entry_time() -> int:
    """The time that stamps an entry now, in ms (read through this module, where tests put a
    clock of their own)."""
    return now_ms()


def write_entries(
    conn: Connection,
    origin: str,
    signer: Signer,
    head: Head,
    events: Sequence[Event],
    stamps: Sequence[int] | None = None,
) -> list[Appended | Exception]:
    """Encode, sign and insert `events` after `head` (inside the caller's write transaction),
    in one statement (one round trip on PostgreSQL). A malformed event fails alone: its place
    in the result holds the error. `stamps`: each event's time as its serving process read it
    (the writer process's entries); otherwise the time now."""
    results: list[Appended | Exception] = []
    rows: list[tuple[int, str, bytes, int, str, bytes]] = []
    idx, prev, last_ts = head.idx, head.prev, head.ts
    for at, event in enumerate(events):
        try:
            ts = max(now_ms() if stamps is None else stamps[at], last_ts)  # never backwards
            line = encode_entry(event, origin=origin, idx=idx, ts=ts, prev=prev)
        except (TypeError, ValueError) as exc:
            results.append(exc)
            continue
        leaf = leaf_hash(line)
        sig = signer.sign(ENTRY_CONTEXT, statement(origin, idx, ts, leaf))
        rows.append((idx, line.decode("utf-8"), leaf, ts, signer.kid, sig))
        results.append(Appended(origin, idx, ts, leaf, signer.kid, sig))
        idx, prev, last_ts = idx + 1, leaf.hex(), ts
    if rows:
        conn.executemany(
            "INSERT INTO entries (idx, line, leaf, ts, kid, sig) VALUES (?, ?, ?, ?, ?, ?)", rows
        )
    return results


class GroupWriter:
    """This process's writer thread (started on the first append) and its queue."""

    def __init__(self, write: WriteConnection, halt: Halt, signers: Signers, origin: str) -> None:
        self._write = write
        self._halt = halt
        self._signers = signers
        self._origin = origin
        self._lock = threading.Lock()  # the queue and the writer thread's lifecycle
        self._queue: queue.SimpleQueue[Pending | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = False

    def submit(self, event: Event) -> Future[Appended]:
        """Queue one entry for the next group commit; the future resolves once it is durable."""
        future: Future[Appended] = Future()
        self.put(event, future)
        return future

    def put(self, event: Event, waiter: Waiter) -> None:
        """Queue one entry; `waiter` is settled once it is durable (or cannot be)."""
        with self._lock:
            if self._closed:
                raise AuditUnavailable("the audit log is closed")
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="audit-writer", daemon=True)
                self._thread.start()
            self._queue.put((event, waiter))

    def close(self) -> bool:
        """Stop after what is queued; False if it was closed already."""
        with self._lock:
            if self._closed:
                return False
            self._closed = True
            thread = self._thread
            self._queue.put(None)
        if thread is not None:
            thread.join()
        return True

    def _loop(self) -> None:
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
            self.commit(batch)

    def commit(self, batch: list[Pending], stamps: Sequence[int] | None = None) -> None:
        """Write `batch` in one group commit and settle its waiters (the writer thread's loop)."""
        outcomes = self.write([event for event, _ in batch], stamps)
        settle([(waiter, outcome) for (_, waiter), outcome in zip(batch, outcomes, strict=True)])

    def write(self, events: Sequence[Event], stamps: Sequence[int] | None = None) -> list[Outcome]:
        """Write `events` in one group commit; each one's entry or error, in order (the writer
        process, audit/child.py, calls this directly with each entry's time: it has no waiters
        to settle, so it makes no futures)."""
        with self._write.lock:
            # A connection lost before COMMIT was sent wrote nothing: try once more on a new one.
            outcomes = self._commit_once(events, stamps, retry=True)
            if outcomes is None:
                outcomes = self._commit_once(events, stamps, retry=False)
        assert outcomes is not None  # noqa: S101 - only a retry returns None
        return outcomes

    def _commit_once(
        self, events: Sequence[Event], stamps: Sequence[int] | None, *, retry: bool
    ) -> list[Outcome] | None:
        """Write the events in one transaction: each one's entry or error. None (nothing
        written) when the connection was lost before COMMIT and `retry` allows another try."""
        conn: Connection | None = None
        committing = False
        try:
            conn = self._write.get()
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
            reason = self._halt.observe(halted, resumes)
            if reason is not None:
                conn.rollback()
                return [AuditUnavailable(f"the audit log is halted: {reason}")] * len(events)
            signer = self._signers.of(active_kid)
            if head_idx is None:
                head = Head(0, GENESIS_PREV, 0)
            else:
                head = Head(int(head_idx) + 1, bytes(head_leaf).hex(), int(head_ts))
            outcomes: list[Outcome] = list(
                write_entries(conn, self._origin, signer, head, events, stamps)
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
                self._write.drop()
                if retry and not committing:
                    return None
                state = "while committing" if committing else "before writing"
                error = AuditUnavailable(f"the audit store connection was lost {state}: {exc}")
            elif exc.busy:
                error = AuditUnavailable(f"the audit log is busy: {exc}")
            else:
                self._halt.halt(f"write failed: {exc}")
                error = AuditUnavailable(f"the audit log write failed and the log is halted: {exc}")
            return [error] * len(events)
        except Exception as exc:  # any failure (e.g. the rotated key cannot be loaded) fails all
            if conn is not None:
                conn.rollback()
            error = (
                exc
                if isinstance(exc, AuditUnavailable)
                else AuditUnavailable(f"audit append failed: {exc}")
            )
            return [error] * len(events)
        return outcomes
