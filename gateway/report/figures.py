"""The figures of the report and the console, from verified, decoded entries.

Metering (calls, rows released, refusals per client, dataset and purpose) is gateway.audit.usage's
and counting by field gateway.audit.query's; what is here is what they do not do: time buckets
for the charts and the frame the anomaly rules read (both vectorized with pandas).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway.audit.query import Filters, count_by, select
from gateway.audit.usage import UsageRow

if TYPE_CHECKING:
    import pandas as pd

CALL_FIELDS = ("idx", "ts", "client", "dataset", "decision", "reason", "rows", "route", "status")
DECISIONS = ("allow", "deny", "error", "none")
REFUSED = frozenset({"deny", "error"})
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


@dataclass(frozen=True)
class Period:
    """[since, until) in milliseconds since the epoch; None: open on that side."""

    since: int | None = None
    until: int | None = None

    def holds(self, ts: pd.Series) -> pd.Series:
        import pandas as pd

        keep = pd.Series(True, index=ts.index)
        if self.since is not None:
            keep &= ts >= self.since
        if self.until is not None:
            keep &= ts < self.until
        return keep

    def filters(self, **values: frozenset[str]) -> Filters:
        """The period (and these field values) as the query module's filters."""
        return Filters(self.since, self.until, values=values)


def calls_frame(entries: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """One row per call (`kind: http`), with the fields the figures use; absent fields become
    "" (text) or 0 (rows)."""
    import pandas as pd

    calls = [e for e in entries if e.get("kind") == "http"]
    frame = pd.DataFrame.from_records(
        [{name: e.get(name) for name in CALL_FIELDS} for e in calls], columns=list(CALL_FIELDS)
    )
    for name in ("client", "dataset", "decision", "reason", "route"):
        frame[name] = frame[name].fillna("").astype(str)
    for name in ("idx", "ts", "rows", "status"):
        frame[name] = pd.to_numeric(frame[name], errors="coerce").fillna(0).astype("int64")
    return frame


@dataclass(frozen=True)
class Buckets:
    """Contiguous time buckets of one size (an hour, a day or a week of `tz`'s wall clock)."""

    unit: str  # "hour", "day" or "week"
    first: int  # start of the first bucket (ms)
    size: int  # ms
    labels: list[str]

    def position(self, ts: pd.Series) -> pd.Series:
        return ((ts - self.first) // self.size).clip(0, len(self.labels) - 1)


def buckets(start: int, end: int, tz: dt.tzinfo) -> Buckets:
    """Hours up to two days, days up to 92 days, weeks (from Monday) beyond: a readable chart."""
    span = max(end - start, 1)
    unit, size = (
        ("hour", HOUR_MS)
        if span <= 2 * DAY_MS
        else ("day", DAY_MS)
        if span <= 92 * DAY_MS
        else ("week", 7 * DAY_MS)
    )
    offset = _offset_ms(tz, start)
    shift = 4 * DAY_MS if unit == "week" else 0  # 1970-01-01 was a Thursday
    first = (start + offset - shift) // size * size + shift - offset
    count = max(1, -(-(end - first) // size))
    fmt = "%m-%d %H:00" if unit == "hour" else "%Y-%m-%d"
    labels = [
        dt.datetime.fromtimestamp((first + i * size) / 1000, tz).strftime(fmt) for i in range(count)
    ]
    return Buckets(unit, first, size, labels)


@dataclass(frozen=True)
class Timeline:
    unit: str
    labels: list[str]
    series: dict[str, list[int]]  # decision -> calls per bucket


def timeline(calls: pd.DataFrame, slots: Buckets) -> Timeline:
    """Calls per bucket, empty buckets included, split by decision."""
    import pandas as pd

    table = pd.crosstab(slots.position(calls["ts"]), calls["decision"]).reindex(
        index=range(len(slots.labels)), columns=list(DECISIONS), fill_value=0
    )
    return Timeline(slots.unit, slots.labels, {d: [int(v) for v in table[d]] for d in DECISIONS})


def rows_per_bucket(calls: pd.DataFrame, slots: Buckets) -> list[int]:
    """Rows released (allowed calls) per bucket."""
    allowed = calls[calls["decision"] == "allow"]
    sums = allowed["rows"].groupby(slots.position(allowed["ts"])).sum()
    return [int(v) for v in sums.reindex(range(len(slots.labels)), fill_value=0)]


def _offset_ms(tz: dt.tzinfo, at: int) -> int:
    offset = dt.datetime.fromtimestamp(at / 1000, tz).utcoffset() or dt.timedelta(0)
    return int(offset.total_seconds() * 1000)


@dataclass(frozen=True)
class PairRow:
    client: str
    dataset: str
    purpose: str
    calls: int
    allowed: int
    refused: int  # denied
    errors: int
    rows: int


def by_client_dataset(rows: Sequence[UsageRow]) -> list[PairRow]:
    """The metered usage rows (gateway.audit.usage) summed over days, per client, dataset and
    purpose; most rows first. Calls that named no dataset or no client are left out."""
    sums: dict[tuple[str, str, str], list[int]] = {}
    for row in rows:
        if row.client is None or row.dataset is None:
            continue
        key = (row.client, row.dataset, row.purpose or "-")
        total = sums.setdefault(key, [0, 0, 0, 0, 0])
        for i, value in enumerate((row.calls, row.allowed, row.refusals, row.errors, row.rows)):
            total[i] += value
    ordered = sorted(sums.items(), key=lambda kv: (-kv[1][4], -kv[1][0], kv[0]))
    return [PairRow(*key, *values) for key, values in ordered]


def refused_calls(entries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return select(entries, Filters(values={"kind": frozenset({"http"}), "decision": REFUSED}))


def refusals_by_reason(entries: Sequence[dict[str, Any]]) -> list[tuple[str, int]]:
    """Refused (denied or failed) calls per reason, most first."""
    groups = count_by(refused_calls(entries), ["reason"])
    counted = [(str(g["reason"] or "(none given)"), int(g["calls"])) for g in groups]
    return sorted(counted, key=lambda kv: (-kv[1], kv[0]))
