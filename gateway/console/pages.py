"""What each console page shows, from the services and a verified snapshot of the log.
Plain functions returning template contexts; nothing here knows about HTTP. Counting is
gateway.audit.usage's and gateway.audit.query's; this module arranges their answers."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from typing import Any

from gateway.audit.query import VerifiedLog, day_of, select
from gateway.audit.usage import UsageRow, totals, usage
from gateway.model.grant import Grant
from gateway.privacy.assess import assess
from gateway.report import changes, figures
from gateway.report.build import DECISION_NAMES
from gateway.report.figures import DAY_MS, Period
from gateway.runtime.reloader import PolicyStatus
from gateway.runtime.services import Services, figures_maker, view_maker
from gateway.web.charts import bars, columns

RECENT_REFUSALS = 100
USAGE_DAYS = 30


def status_page(svc: Services, status: PolicyStatus, log: VerifiedLog) -> dict[str, Any]:
    return {
        "policy": status,
        "warnings": list(svc.policy.warnings),
        "v": log.verification,
        "size": svc.audit_log.size(),
        "checkpoint": svc.audit_log.latest_checkpoint(),
        "halted": svc.audit_log.halted,
        "worker": os.getpid(),
        "base_url": svc.settings.base_url,
    }


def clients_page(svc: Services, log: VerifiedLog, now_ms: int) -> dict[str, Any]:
    """Every registered client with its limits, and from the metered log: calls, rows,
    refusals, last use, and today's rows against its daily quota (quotas count by UTC day)."""
    clients = svc.registry.all()
    metered = usage(log.entries, {c.client_id: c.rows_per_day for c in clients})
    today = day_of(now_ms)
    last_use: dict[str, int] = {}
    for entry in log.entries:  # in index order: the last one seen is the latest
        if entry.get("kind") == "http" and isinstance(entry.get("client"), str):
            last_use[entry["client"]] = int(entry["ts"])
    rows = []
    for client in clients:
        mine = [r for r in metered if r.client == client.client_id]
        used = max((r.quota_used for r in mine if r.day == today), default=0)
        rows.append(
            {
                "client": client,
                **totals(mine),
                "today": used,
                "last": last_use.get(client.client_id),
                "quota_share": _share(used, client.rows_per_day),
            }
        )
    return {"clients": rows}


def _share(used: int, limit: int | None) -> str:
    return f"{100 * used / limit:.0f} %" if limit else "-"


def grants_page(svc: Services) -> dict[str, Any]:
    """The grants of each dataset with their privacy figures (as GET /v1/admin/status 'views')."""
    policy = svc.policy
    assessed = {
        a.grant: a
        for a in assess(
            policy,
            figures_maker(svc.settings, svc.sources, svc.views, policy),
            view_maker(svc.settings, svc.sources, svc.views, policy),
        )
    }
    datasets = [
        {
            "dataset": dataset,
            "grants": [
                {"grant": g, "columns": _columns(g), "assessment": assessed.get(g.id)}
                for g in policy.grants
                if g.dataset == dataset.id
            ],
        }
        for dataset in sorted(policy.datasets.values(), key=lambda d: d.id)
    ]
    return {"datasets": datasets, "policy_hash": policy.hash}


def _columns(grant: Grant) -> list[tuple[str, str]]:
    return [
        (name, spec.name + "".join(f" {k}={v}" for k, v in spec.params if not k.startswith("_")))
        for name, spec in grant.columns
    ]


def usage_page(log: VerifiedLog, now_ms: int) -> dict[str, Any]:
    """The last USAGE_DAYS UTC days (the days quotas count): calls and rows per day, and the
    metered usage per client, dataset and purpose."""
    start = (now_ms // DAY_MS - USAGE_DAYS + 1) * DAY_MS
    recent = select(log.entries, Period(start).filters())
    metered = usage(recent)
    slots = figures.buckets(start, now_ms + 1, dt.UTC)
    calls = figures.calls_frame(recent)
    line = figures.timeline(calls, slots)
    pairs = figures.by_client_dataset(metered)
    return {
        "days": USAGE_DAYS,
        "calls_chart": columns(
            f"Calls per {line.unit} (UTC)", line.labels, line.series, DECISION_NAMES
        ),
        "rows_chart": columns(
            f"Rows released per {line.unit} (UTC)",
            line.labels,
            {"s0": _rows_per_day(metered, line.labels)},
            {"s0": "rows"},
        ),
        "pairs": pairs,
        "pairs_chart": bars(
            "Rows released by client, dataset and purpose",
            [(f"{p.client} · {p.dataset} · {p.purpose}", p.rows) for p in pairs[:15]],
        ),
        "totals": totals(metered),
    }


def _rows_per_day(metered: Sequence[UsageRow], days: Sequence[str]) -> list[int]:
    per_day: dict[str, int] = {}
    for row in metered:
        per_day[row.day] = per_day.get(row.day, 0) + row.rows
    return [per_day.get(day, 0) for day in days]


def refusals_page(log: VerifiedLog) -> dict[str, Any]:
    refused = figures.refused_calls(log.entries)
    reasons = figures.refusals_by_reason(log.entries)
    return {
        "recent": list(reversed(refused[-RECENT_REFUSALS:])),
        "limit": RECENT_REFUSALS,
        "total": len(refused),
        "reasons": reasons,
        "reasons_chart": bars("Refusals by reason", reasons[:15], css="deny"),
    }


def policy_page(svc: Services, status: PolicyStatus, log: VerifiedLog) -> dict[str, Any]:
    timeline = changes.timeline(log.entries, svc.settings.workspace.policy_sets)
    return {
        "status": status,
        "files": sorted(svc.policy.file_hashes.items()),
        "changes": list(reversed(timeline)),
    }
