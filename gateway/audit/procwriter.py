"""The audit writer in its own process (SQLite): the serving process's event loop hands its
entries to a spawned child (audit/child.py) that encodes, signs and group-commits them, so the
loop's GIL time per call no longer includes the writer's work.

Each loop iteration's entries go out as one pipe message (`put` queues, one `call_soon` sends);
the child answers each group commit with one message, read with `loop.add_reader`, and every
waiter of that reply is settled in that one callback (one wake-up per batch, not per entry).

Fail closed: a child that exits, is killed, sends something unreadable or does not answer
within `5 s + 2 x busy timeout` fails every call waiting on it with AuditUnavailable (503, no
data), as the writer thread does when its write fails. Its entries are never re-sent (the child
may have committed them before it died: re-sending could write them twice); the chain stays
consistent either way, since the next child reads the real head. A crashed child is not a failed
write, so it does not halt the log: calls are refused for a second (`_HOLD_OFF_S`, so a child
that cannot start does not make every call spawn one), then the next append starts a new child.
A write that *failed* in the child halts the log by the halt protocol (audit/halt.py): the
child records the note and reports its halt with each reply; this process adopts it
(`Halt.adopt`), so `AuditLog.halted`, `/readyz` and `gateway audit resume` see it."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives import serialization

from gateway.audit.childpipe import Child, Settled, deliver, encode
from gateway.audit.entry import Appended
from gateway.audit.signers import Signers
from gateway.audit.wire import Event, HaltState, decode_outcome, frame
from gateway.audit.writer import LoopWaiter, entry_time
from gateway.errors import AuditUnavailable
from gateway.store.db import Database

log = logging.getLogger(__name__)

_HOLD_OFF_S = 1.0  # a dead child is restarted by the first append this long after it died
OnReply = Callable[[HaltState, str | None], None]


class ProcessWriter:
    """A serving process's writer child: started on the first append, restarted after it dies."""

    def __init__(
        self,
        database: Database,
        signers: Signers,
        key_path: str | None,
        origin: str,
        on_reply: OnReply,
    ) -> None:
        self._database = database
        self._signers = signers
        self._key_path = key_path
        self._origin = origin
        self._on_reply = on_reply
        self._hung_after = 5.0 + 2 * database.busy_timeout_ms / 1000
        self._lock = threading.Lock()
        self._child: Child | None = None
        self._queued: dict[asyncio.AbstractEventLoop, list[tuple[Event, LoopWaiter]]] = {}
        self._ids = itertools.count()
        self._down: tuple[float, str] | None = None  # when and why the last child died
        self._closed = False

    @property
    def pid(self) -> int | None:
        """The running child's process id (tests stop and kill it)."""
        child = self._child
        return None if child is None else child.proc.pid

    def problem(self) -> str | None:
        """Why appends fail now, if the child is down (for /readyz)."""
        with self._lock:
            if self._child is None and self._down is not None:
                return f"the audit writer process {self._down[1]}"
        return None

    def put(self, event: Event, waiter: LoopWaiter) -> None:
        """Queue one entry; this loop iteration's entries leave in one message."""
        loop = waiter.loop
        with self._lock:
            if self._closed:
                raise AuditUnavailable("the audit log is closed")
            queued = self._queued.get(loop)
            if queued is None:
                queued = self._queued[loop] = []
                loop.call_soon(self._flush, loop)
            queued.append((event, waiter))

    def pragma(self, name: str, value: int) -> None:
        """Set a pragma on the child's write connection (tests make its writes fail)."""
        with self._lock:
            child = self._live()
            child.out += frame(("pragma", name, value))
            child.drain(None)

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        failed: Settled = []
        broken: Child | None = None
        with self._lock:
            items = self._queued.pop(loop, [])
            if not items:
                return
            try:
                child = self._live()
            except AuditUnavailable as exc:  # one error each: every call raises its own
                failed = [(waiter, AuditUnavailable(str(exc))) for _, waiter in items]
            else:
                batch = next(self._ids)
                # Looked up here, so that a clock a test puts there stamps the child's entries.
                stamp = entry_time()
                message, waiters, failed = encode(items, batch, stamp)
                if message is not None:
                    child.pending[batch] = (time.monotonic(), waiters)
                    self._attach(child, loop)
                    child.out += message
                    if not child.drain(loop):
                        broken = child
        deliver(failed)
        if broken is not None:
            self._lost(broken, self._exit_reason(broken))

    def _live(self) -> Child:
        """The running child, started if there is none (hold the lock)."""
        if self._child is not None:
            return self._child
        if self._closed:
            raise AuditUnavailable("the audit log is closed")
        if self._down is not None and time.monotonic() - self._down[0] < _HOLD_OFF_S:
            raise AuditUnavailable(
                f"the audit writer process {self._down[1]}; it is restarted within a second"
            )
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "gateway.audit.child"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                close_fds=True,
            )
        except OSError as exc:
            self._down = (time.monotonic(), f"could not be started: {exc}")
            raise AuditUnavailable(f"the audit writer process could not be started: {exc}") from exc
        child = Child(proc)
        key = self._signers.active.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        child.out += frame(
            {
                "url": self._database.url,
                "busy_timeout_ms": self._database.busy_timeout_ms,
                "synchronous": self._database.synchronous,
                "key": key,  # over the pipe: never on the command line or in the environment
                "key_path": self._key_path,
            }
        )
        child.drain(None)
        self._child = child
        return child

    def _attach(self, child: Child, loop: asyncio.AbstractEventLoop) -> None:
        """Read the child's replies on `loop` unless a live loop does already (hold the lock)."""
        if child.reader is not None and not child.reader.is_closed():
            return
        child.reader = loop
        loop.add_reader(child.rfd, self._readable, child)
        loop.call_later(1.0, self._watch, child)

    def _readable(self, child: Child) -> None:
        # One reader at a time: `close` may read on another thread than the reader's loop.
        with child.reading:
            if child.gone:
                return
            try:
                data = os.read(child.rfd, 1 << 18)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._lost(child, self._exit_reason(child))
                return
            try:
                messages = child.frames.feed(data)
            except (ValueError, EOFError, TypeError) as exc:
                self._lost(child, f"sent an unreadable reply ({exc})")
                return
        for message in messages:
            if message[0] == "fatal":
                self._lost(child, f"stopped: {message[1]}")
                return
            self._settle(child, message[1], message[2])

    def _settle(self, child: Child, replies: list[Any], halt: HaltState) -> None:
        settled: Settled = []
        kid: str | None = None
        with self._lock:
            for batch, outcomes in replies:
                sent = child.pending.pop(batch, None)
                if sent is None or len(sent[1]) != len(outcomes):  # never: one reply per batch
                    continue
                for waiter, outcome in zip(sent[1], outcomes, strict=True):
                    result = decode_outcome(self._origin, outcome)
                    if isinstance(result, Appended):
                        kid = result.kid
                    settled.append((waiter, result))
        self._on_reply(halt, kid)  # before the calls learn their fate: `halted` is set by then
        deliver(settled)

    def _watch(self, child: Child) -> None:
        """Every second on the reader's loop: a child that leaves a batch unanswered for too
        long is taken as hung (stopped, or stuck in a write) and killed."""
        if child.gone:
            return
        with self._lock:
            oldest = min((sent for sent, _ in child.pending.values()), default=None)
        if oldest is not None and time.monotonic() - oldest > self._hung_after:
            self._lost(child, f"did not answer within {self._hung_after:.0f} s and was killed")
            return
        if child.reader is not None and not child.reader.is_closed():
            child.reader.call_later(1.0, self._watch, child)

    def _exit_reason(self, child: Child) -> str:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.proc.wait(1)
        code = child.proc.returncode
        if code is None:
            return "closed its pipe"
        return f"exited with status {code}" if code >= 0 else f"was killed by signal {-code}"

    def _lost(self, child: Child, reason: str) -> None:
        """Fail every call waiting on `child` and let the next append start a new one."""
        with self._lock:
            if child.gone:
                return
            child.gone = True
            waiters = [w for _, batch in child.pending.values() for w in batch]
            child.pending.clear()
            if self._child is child:
                self._child = None
                self._down = (time.monotonic(), reason)
        child.stop()
        if waiters or not self._closed:
            log.error("the audit writer process %s; %d waiting calls fail", reason, len(waiters))
        error = f"the audit writer process {reason}; no entry was confirmed"
        deliver([(waiter, AuditUnavailable(error)) for waiter in waiters])

    def close(self) -> None:
        """Let the child write what it has, deliver its last answers, and wait for it."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            child, self._child = self._child, None
            queued = [w for items in self._queued.values() for _, w in items]
            self._queued.clear()
        deliver([(waiter, AuditUnavailable("the audit log is closed")) for waiter in queued])
        if child is None:
            return
        deadline = time.monotonic() + self._hung_after
        while child.out and child.drain(None):  # what the pipe has not taken yet, then EOF
            remaining = deadline - time.monotonic()
            if child.out and not select.select([], [child.wfd], [], max(remaining, 0))[1]:
                break  # a hung child: killed below when it does not answer either
        if child.proc.stdin is not None:
            with contextlib.suppress(OSError):
                child.proc.stdin.close()  # the child finishes its queue and exits
        while not child.gone:
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([child.rfd], [], [], max(remaining, 0))
            if not ready:
                self._lost(child, "did not finish at close and was killed")
                break
            self._readable(child)
