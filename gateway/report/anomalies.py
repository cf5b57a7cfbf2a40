"""Things worth a look, found in the verified calls of a period. Each rule is stated here and in
docs/report.md, and each finding names the entries an auditor should open.

- spike: an hour with at least SPIKE_MIN calls and more than SPIKE_FACTOR times the median of
  the period's hours that had calls;
- night: calls by a client between NIGHT_START and NIGHT_END o'clock (report time zone);
- first access: the first allowed call of a client to a dataset in the whole verified log, when
  it falls in the period;
- quota: calls refused because a client's quota or rate limit was exhausted;
- halt: the log is halted now, or admin entries record a halt or a resume.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway.report.figures import HOUR_MS

if TYPE_CHECKING:
    import pandas as pd

SPIKE_MIN = 20
SPIKE_FACTOR = 3
NIGHT_START, NIGHT_END = 22, 6
QUOTA_REASONS = ("quota_exceeded",)


@dataclass(frozen=True)
class Finding:
    kind: str  # spike | night | first_access | quota | halt
    ts: int | None  # when (ms), None for the log's current state
    summary: str
    first_idx: int | None = None  # the first entry to open


def spikes(calls: pd.DataFrame) -> list[Finding]:
    if calls.empty:
        return []
    hours = calls["ts"] // HOUR_MS
    per_hour = hours.value_counts().sort_index()
    baseline = float(per_hour.median())
    found = []
    for hour, count in zip(per_hour.index.tolist(), per_hour.tolist(), strict=True):
        if count >= SPIKE_MIN and count > SPIKE_FACTOR * baseline:
            in_hour = calls[hours == hour]
            top = in_hour["client"].replace("", "(unauthenticated)").value_counts()
            found.append(
                Finding(
                    "spike",
                    int(hour) * HOUR_MS,
                    f"{int(count):,} calls in one hour (median hour: {baseline:,.0f}); "
                    f"most from {top.index[0]} ({int(top.iloc[0]):,})",
                    int(in_hour["idx"].min()),
                )
            )
    return found


def night_calls(calls: pd.DataFrame, tz: dt.tzinfo) -> list[Finding]:
    import pandas as pd

    named = calls[calls["client"] != ""]
    if named.empty:
        return []
    local = pd.to_datetime(named["ts"], unit="ms", utc=True).dt.tz_convert(tz)
    hour = local.dt.hour
    night = named[(hour >= NIGHT_START) | (hour < NIGHT_END)]
    found = []
    for client, group in night.groupby("client", sort=True):
        rows = int(group.loc[group["decision"] == "allow", "rows"].sum())
        found.append(
            Finding(
                "night",
                int(group["ts"].min()),
                f"{client}: {len(group):,} call(s) between {NIGHT_START}:00 and {NIGHT_END}:00 "
                f"({rows:,} rows released)",
                int(group["idx"].min()),
            )
        )
    return found


def first_access(all_calls: pd.DataFrame, since: int | None, until: int | None) -> list[Finding]:
    allowed = all_calls[
        (all_calls["decision"] == "allow")
        & (all_calls["dataset"] != "")
        & (all_calls["client"] != "")
    ]
    firsts = allowed.sort_values("idx").drop_duplicates(["client", "dataset"], keep="first")
    if since is not None:
        firsts = firsts[firsts["ts"] >= since]
    if until is not None:
        firsts = firsts[firsts["ts"] < until]
    return [
        Finding(
            "first_access",
            int(row["ts"]),
            f"{row['client']} read {row['dataset']} for the first time",
            int(row["idx"]),
        )
        for row in firsts.to_dict("records")
    ]


def quota(calls: pd.DataFrame) -> list[Finding]:
    hit = calls[calls["reason"].isin(QUOTA_REASONS)]
    found = []
    for client, group in hit.groupby(hit["client"].replace("", "(unknown)"), sort=True):
        datasets = sorted(d for d in group["dataset"].unique() if d)
        on = f" on {', '.join(datasets)}" if datasets else ""
        found.append(
            Finding(
                "quota",
                int(group["ts"].min()),
                f"{client}: {len(group):,} call(s) refused for an exhausted quota or rate "
                f"limit{on}",
                int(group["idx"].min()),
            )
        )
    return found


def halts(admin: Sequence[dict[str, Any]], halted_now: str | None) -> list[Finding]:
    found = [
        Finding(
            "halt",
            int(e["ts"]),
            f"{e.get('action')} by {e.get('actor', 'unknown')}"
            + (f" (it cleared: {e['halt']})" if isinstance(e.get("halt"), str) else ""),
            int(e["idx"]),
        )
        for e in admin
        if isinstance(e.get("action"), str) and ("halt" in e["action"] or "resume" in e["action"])
    ]
    if halted_now:
        found.append(Finding("halt", None, f"the log is halted now: {halted_now}"))
    return found
