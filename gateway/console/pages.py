"""What each console page shows, computed from the services and a verified snapshot of the log.
Plain functions returning template contexts; nothing here knows about HTTP."""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

from gateway.model.grant import Grant
from gateway.model.policyset import PolicySet
from gateway.privacy.assess import assess
from gateway.report import figures
from gateway.report.build import DECISION_NAMES
from gateway.report.figures import DAY_MS
from gateway.report.verified import VerifiedLog
from gateway.runtime.reloader import PolicyStatus
from gateway.runtime.services import Services, figures_maker
from gateway.web.charts import bars, columns

RECENT_REFUSALS = 100
USAGE_DAYS = 30


def status_page(svc: Services, status: PolicyStatus, log: VerifiedLog) -> dict[str, Any]:
    latest = svc.audit_log.latest_checkpoint()
    return {
        "policy": status,
        "warnings": list(svc.policy.warnings),
        "log": log,
        "size": svc.audit_log.size(),
        "checkpoint": latest,
        "halted": svc.audit_log.halted,
        "worker": os.getpid(),
        "base_url": svc.settings.base_url,
    }


def clients_page(svc: Services, log: VerifiedLog, now_ms: int) -> dict[str, Any]:
    """Every registered client with its limits, and from the log: last use, calls, rows, and
    today's rows against its daily quota (quotas count by UTC day)."""
    calls = figures.calls_frame(log.entries)
    today = now_ms // DAY_MS * DAY_MS
    named = calls[calls["client"] != ""]
    allowed = named["decision"] == "allow"
    per_client = named.assign(
        released=named["rows"].where(allowed, 0),
        refused=named["decision"].isin(["deny", "error"]),
        today=named["rows"].where(allowed & (named["ts"] >= today), 0),
    ).groupby("client")
    usage = per_client.agg(
        calls=("idx", "size"),
        rows=("released", "sum"),
        refused=("refused", "sum"),
        today=("today", "sum"),
        last=("ts", "max"),
    )
    by_client = {str(k): v for k, v in usage.to_dict("index").items()}
    none: dict[str, Any] = {"calls": 0, "rows": 0, "refused": 0, "today": 0, "last": None}
    rows = []
    for client in svc.registry.all():
        used = by_client.get(client.client_id, none)
        today = int(used["today"])
        rows.append(
            {
                "client": client,
                "calls": int(used["calls"]),
                "rows": int(used["rows"]),
                "refused": int(used["refused"]),
                "today": today,
                "last": None if used["last"] is None else int(used["last"]),
                "quota_share": _share(today, client.rows_per_day),
            }
        )
    return {"clients": rows}


def _share(used: int, limit: int | None) -> str:
    if not limit:
        return "-"
    return f"{100 * used / limit:.0f} %"


def grants_page(svc: Services) -> dict[str, Any]:
    """The grants of each dataset with their privacy figures (as GET /v1/admin/status 'views')."""
    policy = svc.policy
    assessed = {
        a.grant: a
        for a in assess(policy, figures_maker(svc.settings, svc.sources, svc.views, policy))
    }
    datasets = []
    for dataset in sorted(policy.datasets.values(), key=lambda d: d.id):
        grants = [g for g in policy.grants if g.dataset == dataset.id]
        datasets.append(
            {
                "dataset": dataset,
                "grants": [
                    {"grant": g, "columns": _columns(g), "assessment": assessed.get(g.id)}
                    for g in grants
                ],
            }
        )
    return {"datasets": datasets, "policy_hash": policy.hash}


def _columns(grant: Grant) -> list[tuple[str, str]]:
    return [
        (name, spec.name + "".join(f" {k}={v}" for k, v in spec.params if not k.startswith("_")))
        for name, spec in grant.columns
    ]


def usage_page(log: VerifiedLog, now_ms: int, tz: dt.tzinfo) -> dict[str, Any]:
    """Calls and rows per day over the last USAGE_DAYS days, and per client and dataset."""
    calls = figures.calls_frame(log.entries)
    start = now_ms - USAGE_DAYS * DAY_MS
    recent = calls[calls["ts"] >= start]
    slots = figures.buckets(start, now_ms + 1, tz)
    line = figures.timeline(recent, slots)
    pairs = figures.by_client_dataset(recent)
    return {
        "days": USAGE_DAYS,
        "calls_chart": columns(f"Calls per {line.unit}", line.labels, line.series, DECISION_NAMES),
        "rows_chart": columns(
            f"Rows released per {line.unit}",
            line.labels,
            {"s0": figures.rows_per_bucket(recent, slots)},
            {"s0": "rows"},
        ),
        "pairs": pairs,
        "pairs_chart": bars(
            "Rows released by client and dataset",
            [(f"{p.client} · {p.dataset}", p.rows) for p in pairs[:15]],
        ),
        "totals": figures.totals(recent),
    }


def refusals_page(log: VerifiedLog) -> dict[str, Any]:
    calls = figures.calls_frame(log.entries)
    refused = calls[calls["decision"].isin(["deny", "error"])]
    recent = refused.sort_values("idx", ascending=False).head(RECENT_REFUSALS)
    reasons = figures.refusals_by_reason(calls)
    return {
        "recent": list(recent.itertuples(index=False)),
        "limit": RECENT_REFUSALS,
        "total": len(refused),
        "reasons": reasons,
        "reasons_chart": bars("Refusals by reason", reasons[:15], css="deny"),
    }


def policy_page(policy: PolicySet, status: PolicyStatus, log: VerifiedLog) -> dict[str, Any]:
    events = [
        e
        for e in log.entries
        if e.get("kind") == "admin" and str(e.get("action", "")).startswith("policy.")
    ]
    return {
        "status": status,
        "files": sorted(policy.file_hashes.items()),
        "events": list(reversed(events)),
    }
