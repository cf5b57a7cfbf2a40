"""Where the gateway reads the time. Parts that count time (rate windows, the token keyring's
once-a-second look at its state file, the registry's read cache) take a `Clock`, defaulting to
the system's; tests pass a clock they move by hand (tests/doubles.py) instead of sleeping."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def time(self) -> float:
        """Seconds since the epoch (timestamps, calendar windows, expiry)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (intervals, cache lifetimes)."""
        ...


class SystemClock:
    """The real clocks: `time.time` and `time.monotonic`."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


SYSTEM_CLOCK = SystemClock()  # stateless: one is enough
