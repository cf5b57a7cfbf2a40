"""The serving process's end of the pipe to one writer process (audit/procwriter.py): the
spawned process, non-blocking writes that wait for the pipe to drain on the event loop, and the
settling of each waiter on its own loop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import threading
from collections.abc import Sequence
from typing import Any

from gateway.audit.entry import Appended
from gateway.audit.wire import Event, Frames, frame, plain
from gateway.audit.writer import LoopWaiter

Settled = list[tuple[LoopWaiter, Appended | BaseException]]


class Child:
    """One spawned writer process, its pipe and the batches it has not answered."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdin is not None  # noqa: S101 - Popen(stdin=PIPE)
        assert proc.stdout is not None  # noqa: S101 - Popen(stdout=PIPE)
        self.proc = proc
        self.rfd = proc.stdout.fileno()
        self.wfd = proc.stdin.fileno()
        os.set_blocking(self.rfd, False)
        os.set_blocking(self.wfd, False)
        self.frames = Frames()
        self.out = bytearray()  # what the pipe did not take yet
        self.pending: dict[int, tuple[float, list[LoopWaiter]]] = {}
        self.reader: asyncio.AbstractEventLoop | None = None
        self.writer: asyncio.AbstractEventLoop | None = None
        self.gone = False
        self.reading = threading.Lock()  # held while the replies are read and split

    def drain(self, loop: asyncio.AbstractEventLoop | None) -> bool:
        """Write what the pipe takes now; False if the child's end is closed."""
        while self.out:
            try:
                written = os.write(self.wfd, self.out)
            except BlockingIOError:
                if loop is not None and self.writer is None:
                    self.writer = loop
                    loop.add_writer(self.wfd, self._writable)
                return True
            except OSError:
                return False
            del self.out[:written]
        return True

    def _writable(self) -> None:
        # Runs on self.writer; the owner's lock is not needed: `out` is only appended to under
        # it, and a concurrent append is written by its own drain or by the next call here.
        if not self.drain(None) or not self.out:
            loop, self.writer = self.writer, None
            if loop is not None:
                loop.remove_writer(self.wfd)

    def stop(self) -> None:
        """Kill the process and release the pipe (on the reader's loop when it has one)."""
        if self.proc.poll() is None:
            self.proc.kill()
        here = running_loop()
        for loop, remove in ((self.reader, "remove_reader"), (self.writer, "remove_writer")):
            if loop is None or loop.is_closed():
                continue
            fd = self.rfd if remove == "remove_reader" else self.wfd
            if loop is here:
                getattr(loop, remove)(fd)
            else:
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(getattr(loop, remove), fd)
        # The descriptors are closed once the process is reaped (Popen owns them).
        threading.Thread(target=self._reap, name="audit-writer-reap", daemon=True).start()

    def _reap(self) -> None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(30)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()


def running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def deliver(settled: Settled) -> None:
    """Settle waiters: those of the running loop at once, others' with one call on theirs."""
    here = running_loop()
    elsewhere: dict[asyncio.AbstractEventLoop, Settled] = {}
    for waiter, outcome in settled:
        if waiter.loop is here:
            _set(waiter, outcome)
        else:
            elsewhere.setdefault(waiter.loop, []).append((waiter, outcome))
    for loop, some in elsewhere.items():
        with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits
            loop.call_soon_threadsafe(_set_all, some)


def _set_all(settled: Settled) -> None:
    for waiter, outcome in settled:
        _set(waiter, outcome)


def _set(waiter: LoopWaiter, outcome: Appended | BaseException) -> None:
    if waiter.future.done():  # the waiting call was cancelled
        return
    if isinstance(outcome, BaseException):
        waiter.future.set_exception(outcome)
    else:
        waiter.future.set_result(outcome)


def encode(
    items: Sequence[tuple[Event, LoopWaiter]], batch: int, stamp: int
) -> tuple[bytes | None, list[LoopWaiter], Settled]:
    """The append message of `items`; an event marshal cannot carry fails alone (TypeError, as
    the writer thread's encoder would)."""
    events = [event for event, _ in items]
    waiters = [waiter for _, waiter in items]
    try:
        return frame(("append", batch, events, stamp)), waiters, []
    except ValueError:
        pass
    kept: list[Any] = []
    waiters = []
    failed: Settled = []
    for event, waiter in items:
        value = plain(event)
        try:
            frame(value)
        except ValueError:
            failed.append((waiter, TypeError("audit event holds a value that is not JSON")))
            continue
        kept.append(value)
        waiters.append(waiter)
    return (frame(("append", batch, kept, stamp)) if kept else None), waiters, failed
