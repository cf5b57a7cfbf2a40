"""Shared test doubles, in the spirit of structlog's `testing` module: small stand-ins that
record or are moved by hand, so tests say what happens instead of sleeping until it does.

- `FakeClock`: a `gateway.clock.Clock` that moves only when told (`advance`); rate windows,
  the token keyring's once-a-second look and the registry's read cache all read it.
- `AuditCapture`: the audit entries appended since it was made, decoded, read from the real
  signed log (so what a test checks is what an auditor would read), with `wait_for` for the
  entries a background thread writes (a condition with a generous deadline, not a timing
  assertion)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateway.audit.entry import decode_entry
from gateway.audit.reader import read_entries
from gateway.store.db import Database


def this_minute() -> float:
    """The start of the current calendar minute: close to the real time tokens are stamped
    with, and at the start of a rate window, so a test knows where in the window it is."""
    return time.time() // 60 * 60


class FakeClock:
    """Wall-clock and monotonic seconds that advance together, only through `advance`."""

    def __init__(self, start: float | None = None) -> None:
        self._wall = this_minute() if start is None else start
        self._mono = 1_000.0

    def time(self) -> float:
        return self._wall

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock does not go back")
        self._wall += seconds
        self._mono += seconds


Event = dict[str, Any]


class AuditCapture:
    """The entries appended to an audit log after this capture was made."""

    def __init__(self, database: Path | Database) -> None:
        self._database = database
        self._start = len(self._all())

    def _all(self) -> list[Event]:
        _, stored = read_entries(self._database)
        return [decode_entry(e.line) for e in stored]

    @property
    def entries(self) -> list[Event]:
        return self._all()[self._start :]

    def last(self) -> Event:
        entries = self.entries
        assert entries, "no audit entry was appended"
        return entries[-1]

    def wait_for(self, found: Callable[[list[Event]], bool], deadline: float = 30.0) -> list[Event]:
        """The captured entries once `found` holds for them (written by another thread or
        process); fails after `deadline` seconds, which only a hung test ever reaches."""
        end = time.monotonic() + deadline
        while True:
            entries = self.entries
            if found(entries) or time.monotonic() > end:
                return entries
            time.sleep(0.02)
