"""Build the auditor report: verify, count, draw, render one self-contained HTML page.

The page carries its stylesheet inline and its charts as inline SVG; it links nothing, loads
nothing, runs nothing, and says so in its own Content-Security-Policy (a `<meta>` element), so a
browser opening it offline makes no network request of any kind.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.audit.query import VerifiedLog, load_verified, select
from gateway.audit.reader import read_log
from gateway.audit.usage import totals, usage
from gateway.errors import ConfigError
from gateway.report import anomalies, changes, figures
from gateway.report.figures import Period
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
ADMIN = frozenset({"admin"})


@dataclass(frozen=True)
class ReportInput:
    target: Path | Database  # a bundle directory or a log database
    key_files: list[Path]  # the trusted audit public keys
    period: Period
    tz: dt.tzinfo
    generated_ms: int
    policy_sets: Path | None = None  # the live workspace's kept sets (a bundle carries its own)


def build_report(spec: ReportInput) -> tuple[str, VerifiedLog]:
    """The report's HTML and the verified log it was built from; raises LogNotVerified when the
    log does not verify (no report is built from an unverified log)."""
    log = load_verified(spec.target, spec.key_files, policy_sets=spec.policy_sets)
    return render(log, spec, halt_note(spec.target)), log


def halt_note(target: Path | Database) -> str | None:
    """The live log's halt note (None for a bundle, or when it is not halted)."""
    if isinstance(target, Path) and target.is_dir():
        return None
    with contextlib.suppress(ConfigError):
        return read_log(target).halted  # (its entries, never read, are dropped with it)
    return None


def render(log: VerifiedLog, spec: ReportInput, halted: str | None) -> str:
    period, tz = spec.period, spec.tz
    in_period = select(log.entries, period.filters())
    all_calls = figures.calls_frame(log.entries)
    calls = all_calls[period.holds(all_calls["ts"])]
    admin = select(log.entries, period.filters(kind=ADMIN))
    stamps = [int(e["ts"]) for e in log.entries]
    start = period.since if period.since is not None else min(stamps, default=spec.generated_ms)
    last = max(stamps, default=start) + 1
    # An open end or one in the future stops at the last entry (or now): no empty years drawn.
    end = last if period.until is None else min(period.until, max(last, spec.generated_ms))
    line = figures.timeline(calls, figures.buckets(start, max(end, start + 1), tz))
    metered = usage(in_period)
    pairs = figures.by_client_dataset(metered)
    refusals = figures.refusals_by_reason(in_period)
    findings = [
        *anomalies.spikes(calls),
        *anomalies.night_calls(calls, tz),
        *anomalies.first_access(all_calls, period.since, period.until),
        *anomalies.quota(calls),
        *anomalies.halts(admin, halted),
    ]
    style = load_style()
    zone = _tz_name(tz, start)
    context: dict[str, Any] = {
        "title": f"Audit report: {log.verification.origin}",
        "css": style.css,
        "csp": content_security_policy(style, forms=False, meta=True),
        "v": log.verification,
        "halted": halted,
        "period": _period_text(period, tz),
        "tz": zone,
        "generated": _local(spec.generated_ms, tz),
        "totals": totals(metered),
        "clients": len({e["client"] for e in in_period if e.get("client")}),
        "calls_chart": columns(
            f"Calls per {line.unit} ({zone})", line.labels, line.series, DECISION_NAMES
        ),
        "pairs": pairs,
        "rows_chart": bars(
            "Rows released by client, dataset and purpose",
            [(f"{p.client} · {p.dataset} · {p.purpose}", p.rows) for p in pairs[:15]],
        ),
        "refusals": refusals,
        "refusals_chart": bars("Refusals by reason", refusals[:15], css="deny"),
        "policy_changes": changes.timeline(log.entries, log.policy_sets, period.filters().matches),
        "key_events": [e for e in admin if _is_key_event(e)],
        "other_admin": [
            e
            for e in admin
            if not str(e.get("action", "")).startswith("policy.") and not _is_key_event(e)
        ],
        "findings": _grouped(findings),
        "finding_titles": FINDING_TITLES,
        "rules": anomalies,
        "local": lambda ms: _local(ms, tz),
    }
    return environment().get_template("report.html.j2").render(context)


def _is_key_event(entry: dict[str, Any]) -> bool:
    action = str(entry.get("action", ""))
    return action == "key.rotate" or action.startswith("token_key.")


def _grouped(findings: Sequence[anomalies.Finding]) -> dict[str, list[anomalies.Finding]]:
    grouped: dict[str, list[anomalies.Finding]] = {kind: [] for kind in FINDING_TITLES}
    for finding in findings:
        grouped[finding.kind].append(finding)
    return grouped


def _local(ms: int | None, tz: dt.tzinfo) -> str:
    if ms is None:
        return "now"
    return dt.datetime.fromtimestamp(ms / 1000, tz).strftime("%Y-%m-%d %H:%M:%S")


def _tz_name(tz: dt.tzinfo, at: int) -> str:
    offset = dt.datetime.fromtimestamp(at / 1000, tz).strftime("%z")
    return f"UTC{offset[:3]}:{offset[3:]}" if offset else str(tz)


def _period_text(period: Period, tz: dt.tzinfo) -> str:
    if period.since is None and period.until is None:
        return "the whole log"
    since = _local(period.since, tz) if period.since is not None else "the first entry"
    until = _local(period.until, tz) if period.until is not None else "the last entry"
    return f"from {since} until {until}"
