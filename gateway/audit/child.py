"""The audit writer process: `python -m gateway.audit.child`, spawned by a serving process
(audit/procwriter.py) with its stdin and stdout as the pipe (audit/wire.py).

It reads the opening message (the database, the signing key as PEM bytes: never on the command
line or in the environment), then group-commits every batch that arrives, exactly as the writer
thread does (audit/writer.py: one transaction under the sequencer lock, each entry signed,
`synchronous=FULL`; the same halt protocol, audit/halt.py), and answers each commit with one
frame. It ignores SIGINT, SIGTERM and SIGHUP (a Ctrl-C or a hang-up reaches the whole process
group; the serving process finishes its calls first, or reloads its policies on SIGHUP) and
exits when its stdin ends: its parent closed the log or died."""

from __future__ import annotations

import os
import queue
import signal
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.audit.connection import WriteConnection
from gateway.audit.entry import Appended
from gateway.audit.halt import Halt
from gateway.audit.schema import read_origin, resume_count
from gateway.audit.signers import Signers
from gateway.audit.signing import Signer, key_id, load_signer
from gateway.audit.wire import Frames, HaltState, Outcome, encode_outcome, frame
from gateway.audit.writer import GroupWriter
from gateway.errors import AuditUnavailable
from gateway.store.db import Database, Shared

_BATCH_MAX = 512
PRAGMAS = ("query_only", "max_page_count")  # what tests may set to make writes fail


def signer_of(pem: bytes) -> Signer:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise AuditUnavailable("the audit writer was given a key that is not Ed25519")
    return Signer(key, key_id(key.public_key()))


class Child:
    """The writer's state: the log's write connection, its halt view and its keys."""

    def __init__(self, opening: Mapping[str, Any]) -> None:
        database = Database(
            opening["url"],
            False,
            opening["busy_timeout_ms"],
            opening["synchronous"],
        )
        key_path = opening["key_path"]

        def rotated(kid: str) -> Signer | None:
            # After `gateway keys rotate audit` the new key is at the usual path.
            if key_path is None:
                return None
            signer = load_signer(Path(key_path))
            return signer if signer.kid == kid else None

        self.write = WriteConnection(database)
        self.reader = Shared(database)
        conn = self.write.current
        self.halt = Halt(self.write, self.reader, resume_count(conn))
        self.signers = Signers(signer_of(opening["key"]), rotated)
        self.signers.in_force(conn)
        self.writer = GroupWriter(self.write, self.halt, self.signers, read_origin(conn))

    def commit(self, batches: list[tuple[int, list[Any], int]]) -> list[tuple[int, list[Outcome]]]:
        """Write every batch (id, events, the time its serving process sent it) in one group
        commit; the outcomes of each, in order."""
        events: list[Any] = []
        stamps: list[int] = []
        for _, some, stamp in batches:
            events += some
            stamps += [stamp] * len(some)
        halted = self.halt.current()  # never write after a failed write without an operator
        if halted is not None:
            error = AuditUnavailable(f"the audit log is halted: {halted}")
            results: list[Appended | BaseException] = [error] * len(events)
        else:
            results = self.writer.write(events, stamps)
        replies: list[tuple[int, list[Outcome]]] = []
        at = 0
        for batch, events, _ in batches:
            replies.append((batch, [encode_outcome(r) for r in results[at : at + len(events)]]))
            at += len(events)
        return replies

    def halt_state(self) -> HaltState:
        return self.halt.snapshot()

    def pragma(self, name: str, value: int) -> None:
        if name not in PRAGMAS:
            return
        with self.write.lock:
            self.write.current.execute(f"PRAGMA {name} = {int(value)}")


def _read(fd: int, inbox: queue.SimpleQueue[Any]) -> None:
    """Move every message from the pipe to `inbox`; None once the parent is gone."""
    frames = Frames()
    try:
        while True:
            data = os.read(fd, 1 << 16)
            if not data:
                break
            for message in frames.feed(data):
                inbox.put(message)
    except (OSError, ValueError, EOFError, TypeError):
        pass  # a corrupt stream ends the child like a closed one
    inbox.put(None)


def _send(fd: int, message: object) -> None:
    data = memoryview(frame(message))
    while data:
        written = os.write(fd, data)
        data = data[written:]


def serve(inbox: queue.SimpleQueue[Any], out: int) -> int:
    opening = inbox.get()
    if opening is None:
        return 0
    try:
        child = Child(opening)
    except Exception as exc:  # every cause of a failed start goes to the parent, which fails calls
        _send(out, ("fatal", f"could not open the audit log: {exc}"))
        return 1
    while True:
        message = inbox.get()
        if message is None:
            return 0
        messages = [message]
        count = len(message[2]) if message[0] == "append" else 0
        while count < _BATCH_MAX:
            try:
                more = inbox.get_nowait()
            except queue.Empty:
                break
            messages.append(more)
            if more is None:
                break
            if more[0] == "append":
                count += len(more[2])
        batches: list[tuple[int, list[Any], int]] = []
        for item in messages:
            if item is not None and item[0] == "append":
                batches.append((item[1], item[2], item[3]))
                continue
            if batches:  # in order: what came before a pragma is written before it applies
                _send(out, ("done", child.commit(batches), child.halt_state()))
                batches = []
            if item is None:
                return 0
            child.pragma(item[1], item[2])
        if batches:
            _send(out, ("done", child.commit(batches), child.halt_state()))


def main() -> int:
    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, signal.SIG_IGN)
    out = os.dup(1)  # the protocol's own descriptor ...
    os.dup2(2, 1)  # ... so that a stray print goes to stderr, never into the pipe
    inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
    threading.Thread(target=_read, args=(0, inbox), name="audit-pipe", daemon=True).start()
    try:
        return serve(inbox, out)
    except BrokenPipeError:
        return 0  # the parent is gone


if __name__ == "__main__":
    sys.exit(main())
