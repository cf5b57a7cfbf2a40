"""The report's figures, counted from verified, decoded entries (vectorized with pandas).

Calls are `kind: http` entries; rows are the `rows` field of allowed calls; a refusal is a call
whose decision is `deny` or `error`, counted by its `reason`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

CALL_FIELDS = ("idx", "ts", "client", "dataset", "decision", "reason", "rows", "route", "status")
DECISIONS = ("allow", "deny", "error", "none")
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


@dataclass(frozen=True)
class Period:
    """[since, until) in milliseconds since the epoch; None: open on that side."""

    since: int | None = None
    until: int | None = None

    def holds(self, ts: pd.Series) -> pd.Series:
        keep = pd.Series(True, index=ts.index)
        if self.since is not None:
            keep &= ts >= self.since
        if self.until is not None:
            keep &= ts < self.until
        return keep


def calls_frame(entries: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """One row per call (`kind: http`), with the fields the figures use; absent fields become
    "" (text) or 0 (rows)."""
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
class Totals:
    calls: int
    allowed: int
    refused: int  # deny or error
    rows: int
    clients: int
    datasets: int


def totals(calls: pd.DataFrame) -> Totals:
    refused = calls["decision"].isin(["deny", "error"])
    allowed = calls["decision"] == "allow"
    return Totals(
        len(calls),
        int(allowed.sum()),
        int(refused.sum()),
        int(calls.loc[allowed, "rows"].sum()),
        int(calls.loc[calls["client"] != "", "client"].nunique()),
        int(calls.loc[calls["dataset"] != "", "dataset"].nunique()),
    )


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
    calls: int
    allowed: int
    refused: int
    rows: int


def by_client_dataset(calls: pd.DataFrame) -> list[PairRow]:
    """Calls, refusals and rows released per (client, dataset), most rows first. Calls that
    named no dataset (token requests, listings) are left out."""
    named = calls[(calls["dataset"] != "") & (calls["client"] != "")]
    if named.empty:
        return []
    frame = named.assign(
        allowed=named["decision"] == "allow",
        refused=named["decision"].isin(["deny", "error"]),
        released=named["rows"].where(named["decision"] == "allow", 0),
    )
    grouped = frame.groupby(["client", "dataset"], sort=True).agg(
        calls=("idx", "size"),
        allowed=("allowed", "sum"),
        refused=("refused", "sum"),
        rows=("released", "sum"),
    )
    grouped = grouped.sort_values(["rows", "calls"], ascending=False, kind="stable")
    return [
        PairRow(
            str(r["client"]),
            str(r["dataset"]),
            int(r["calls"]),
            int(r["allowed"]),
            int(r["refused"]),
            int(r["rows"]),
        )
        for r in grouped.reset_index().to_dict("records")
    ]


def refusals_by_reason(calls: pd.DataFrame) -> list[tuple[str, int]]:
    refused = calls[calls["decision"].isin(["deny", "error"])]
    counts = refused["reason"].replace("", "(none given)").value_counts(sort=False)
    ordered = sorted(counts.items(), key=lambda kv: (-int(kv[1]), str(kv[0])))
    return [(str(reason), int(n)) for reason, n in ordered]


def admin_events(entries: Sequence[dict[str, Any]], period: Period) -> list[dict[str, Any]]:
    """The `kind: admin` entries of the period, oldest first."""
    return [
        e
        for e in entries
        if e.get("kind") == "admin"
        and (period.since is None or e["ts"] >= period.since)
        and (period.until is None or e["ts"] < period.until)
    ]
