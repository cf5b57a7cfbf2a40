"""Build the auditor report: verify, count, draw, render one self-contained HTML page.

The page carries its stylesheet inline and its charts as inline SVG; it links nothing, loads
nothing, runs nothing, and says so in its own Content-Security-Policy (a `<meta>` element), so a
browser opening it offline makes no network request of any kind.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.report import anomalies, figures
from gateway.report.figures import Period
from gateway.report.verified import VerifiedLog, load_verified
from gateway.store.db import Database
from gateway.web.charts import bars, columns
from gateway.web.templating import content_security_policy, environment, load_style

DECISION_NAMES = {"allow": "allowed", "deny": "denied", "error": "errors", "none": "no decision"}
FINDING_TITLES = {
    "spike": "Spikes",
    "night": "Calls at night",
    "first_access": "First access of a client to a dataset",
    "quota": "Quota exhaustion",
    "halt": "Halts",
}
KEY_ACTIONS = ("key.rotate",)


@dataclass(frozen=True)
class ReportInput:
    target: Path | Database
    key_files: list[Path]
    period: Period
    tz: dt.tzinfo
    generated_ms: int


def build_report(spec: ReportInput) -> tuple[str, VerifiedLog]:
    """The report's HTML and the verified log it was built from; raises NotVerified when the
    log does not verify (no report is built from an unverified log)."""
    log = load_verified(spec.target, spec.key_files)
    return render(log, spec), log


def render(log: VerifiedLog, spec: ReportInput) -> str:
    period, tz = spec.period, spec.tz
    all_calls = figures.calls_frame(log.entries)
    calls = all_calls[period.holds(all_calls["ts"])]
    admin = figures.admin_events(log.entries, period)
    stamps = [int(e["ts"]) for e in log.entries]
    start = period.since if period.since is not None else min(stamps, default=spec.generated_ms)
    last = max(stamps, default=start) + 1
    # An open end or one in the future stops at the last entry (or now): no empty years drawn.
    end = last if period.until is None else min(period.until, max(last, spec.generated_ms))
    line = figures.timeline(calls, figures.buckets(start, max(end, start + 1), tz))
    pairs = figures.by_client_dataset(calls)
    refusals = figures.refusals_by_reason(calls)
    findings = [
        *anomalies.spikes(calls),
        *anomalies.night_calls(calls, tz),
        *anomalies.first_access(all_calls, period.since, period.until),
        *anomalies.quota(calls),
        *anomalies.halts(admin, log.halted),
    ]
    style = load_style()
    context: dict[str, Any] = {
        "title": f"Audit report: {log.origin}",
        "css": style.css,
        "csp": content_security_policy(style, forms=False, meta=True),
        "log": log,
        "first_idx": log.report.first,
        "last_idx": log.report.first + log.report.entries - 1,
        "checkpoint_times": _checkpoint_times(log),
        "period": _period_text(period, tz),
        "tz": _tz_name(tz, start),
        "generated": _local(spec.generated_ms, tz),
        "totals": figures.totals(calls),
        "calls_chart": columns(
            f"Calls per {line.unit} ({_tz_name(tz, start)})",
            line.labels,
            line.series,
            DECISION_NAMES,
        ),
        "pairs": pairs,
        "rows_chart": bars(
            "Rows released by client and dataset",
            [(f"{p.client} · {p.dataset}", p.rows) for p in pairs[:15]],
        ),
        "refusals": refusals,
        "refusals_chart": bars("Refusals by reason", refusals[:15], css="deny"),
        "policy_events": [e for e in admin if str(e.get("action", "")).startswith("policy.")],
        "key_events": [e for e in admin if _is_key_event(e)],
        "other_admin": [
            e
            for e in admin
            if not str(e.get("action", "")).startswith("policy.") and not _is_key_event(e)
        ],
        "findings": _grouped(findings),
        "finding_titles": FINDING_TITLES,
        "local": lambda ms: _local(ms, tz),
    }
    return environment().get_template("report.html.j2").render(context)


def _is_key_event(entry: dict[str, Any]) -> bool:
    action = str(entry.get("action", ""))
    return action in KEY_ACTIONS or action.startswith("token_key.")


def _grouped(findings: Sequence[anomalies.Finding]) -> dict[str, list[anomalies.Finding]]:
    grouped: dict[str, list[anomalies.Finding]] = {kind: [] for kind in FINDING_TITLES}
    for finding in findings:
        grouped[finding.kind].append(finding)
    return grouped


def _checkpoint_times(log: VerifiedLog) -> dict[int, int]:
    """For each checkpoint size: the time of the last entry it covers."""
    first = log.report.first
    return {
        c.size: int(log.entries[c.size - 1 - first]["ts"])
        for c in log.checkpoints
        if first < c.size <= first + len(log.entries)
    }


def _local(ms: int | None, tz: dt.tzinfo) -> str:
    if ms is None:
        return "now"
    return dt.datetime.fromtimestamp(ms / 1000, tz).strftime("%Y-%m-%d %H:%M:%S")


def _tz_name(tz: dt.tzinfo, at: int) -> str:
    moment = dt.datetime.fromtimestamp(at / 1000, tz)
    offset = moment.strftime("%z")
    return f"UTC{offset[:3]}:{offset[3:]}" if offset else str(tz)


def _period_text(period: Period, tz: dt.tzinfo) -> str:
    if period.since is None and period.until is None:
        return "the whole log"
    since = _local(period.since, tz) if period.since is not None else "the first entry"
    until = _local(period.until, tz) if period.until is not None else "the last entry"
    return f"from {since} until {until}"
