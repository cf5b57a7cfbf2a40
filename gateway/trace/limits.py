"""What `gateway trace` accepts from a leaked file, and how long it may take.

A leaked extract is hostile input: it may be built to exhaust memory or time (a spreadsheet that
expands to billions of cells, a CSV with 100,000 columns, an XML entity bomb). Every limit below
is checked while the file is read, before the work it bounds is done, and the whole trace runs
under a wall-clock deadline checked inside its loops. A refused file gets one line saying why.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.errors import GatewayError

MAX_BYTES = 1 << 30  # a leaked extract larger than 1 GiB: trace a sample of it
MAX_JSON_BYTES = 256 << 20  # a JSON or NDJSON file is parsed whole: 256 MiB at most
MAX_CELLS = 50_000_000  # rows x columns of the table read from the file
MAX_COLUMNS = 1_000  # leaked columns (each is matched against every released column)
MAX_ZIP_MEMBERS = 10_000  # members of an .xlsx archive
MAX_UNZIPPED = 1 << 30  # sum of the uncompressed sizes of an .xlsx archive's members
MAX_RATIO = 100  # uncompressed / compressed size of any member larger than RATIO_FLOOR
RATIO_FLOOR = 1 << 20  # small members may compress better (they are bounded anyway)
MAX_PART = 16 << 20  # an .xlsx part other than the sheet and its strings (workbook, styles, rels)
DEFAULT_SECONDS = 300  # wall-clock limit of a whole trace (`--time-limit`, GATEWAY_TRACE_SECONDS)


class ExtractError(GatewayError):
    """The file cannot be read as an extract; the message says why (never a cell value)."""

    exit_code = 2


class TraceTimeout(GatewayError):
    """The trace ran past its time limit."""

    exit_code = 2


@dataclass(frozen=True)
class Deadline:
    """A wall-clock limit, checked inside every loop of a trace. `seconds=None`: no limit."""

    seconds: float | None
    clock: Callable[[], float] = time.monotonic
    start: float = field(default=-1.0)

    def __post_init__(self) -> None:
        if self.start < 0:
            object.__setattr__(self, "start", self.clock())

    def check(self) -> None:
        if self.seconds is not None and self.clock() - self.start > self.seconds:
            raise TraceTimeout(
                f"the trace ran past its time limit of {self.seconds:g} s; trace a sample of "
                "the file's rows, or give more time with --time-limit SECONDS"
            )


UNLIMITED = Deadline(None, clock=lambda: 0.0, start=0.0)
