"""Usage metering from the verified audit log: per client, dataset, purpose and UTC day, the
calls, the rows released, the refusals by reason and the use of the client's daily row quota.

The figures are a pure function of the entries, so anyone holding a bundle re-derives them with
the same code (`gateway usage --bundle DIR --key PUB`). Only the quota *limits* are not in the
log: they come from the live client registry when it is at hand, and are left empty otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from gateway.audit.events import is_http
from gateway.audit.query import day_of, released_rows, to_csv
from gateway.model.decision import Verdict

CSV_COLUMNS = (
    "day",
    "client",
    "dataset",
    "purpose",
    "calls",
    "allowed",
    "rows",
    "refusals",
    "errors",
    "refusals_by_reason",
    "quota_used",
    "quota_limit",
)


@dataclass
class UsageRow:
    day: str  # UTC day, YYYY-MM-DD: the day daily quotas count
    client: str | None
    dataset: str | None
    purpose: str | None
    calls: int = 0
    allowed: int = 0
    rows: int = 0  # dataset rows released by allowed calls (what quotas count)
    refusals: int = 0
    errors: int = 0
    refusals_by_reason: dict[str, int] = field(default_factory=dict)
    quota_used: int = 0  # rows the client was released that day, all datasets together
    quota_limit: int | None = None  # the client's rows_per_day, when known


def usage(
    entries: Iterable[Mapping[str, Any]], quotas: Mapping[str, int | None] | None = None
) -> list[UsageRow]:
    """Usage rows from entries (HTTP calls only; admin entries are not metered), sorted by day,
    client, dataset and purpose. `quotas`: each client's daily row limit, when known."""
    table: dict[tuple[str, str | None, str | None, str | None], UsageRow] = {}
    per_client_day: dict[tuple[str, str | None], int] = {}
    for entry in entries:
        if not is_http(entry) or not isinstance(entry.get("ts"), int):
            continue
        day = day_of(int(entry["ts"]))
        client, dataset, purpose = (_text(entry, k) for k in ("client", "dataset", "purpose"))
        key = (day, client, dataset, purpose)
        row = table.get(key)
        if row is None:
            row = table[key] = UsageRow(day, client, dataset, purpose)
        row.calls += 1
        decision = entry.get("decision")
        if decision == Verdict.ALLOW:
            row.allowed += 1
            count = released_rows(entry)
            row.rows += count
            per_client_day[(day, client)] = per_client_day.get((day, client), 0) + count
        elif decision == Verdict.DENY:
            row.refusals += 1
            reason = _text(entry, "reason") or "unknown"
            row.refusals_by_reason[reason] = row.refusals_by_reason.get(reason, 0) + 1
        elif decision == Verdict.ERROR:
            row.errors += 1
    for (day, client, _, _), row in table.items():
        row.quota_used = per_client_day.get((day, client), 0)
        row.quota_limit = (quotas or {}).get(client) if client is not None else None
    return [table[k] for k in sorted(table, key=lambda k: tuple(v or "" for v in k))]


def _text(entry: Mapping[str, Any], name: str) -> str | None:
    value = entry.get(name)
    return value if isinstance(value, str) else None


def usage_json(rows: Sequence[UsageRow]) -> list[dict[str, object]]:
    return [asdict(row) for row in rows]


def usage_csv(rows: Sequence[UsageRow]) -> str:
    """CSV for billing: one line per client, dataset, purpose and day; refusals by reason as
    `reason=count` pairs separated by `;`."""
    flat = []
    for row in rows:
        item: dict[str, Any] = asdict(row)
        item["refusals_by_reason"] = ";".join(
            f"{k}={v}" for k, v in sorted(row.refusals_by_reason.items())
        )
        flat.append(item)
    return to_csv(flat, CSV_COLUMNS)


def totals(rows: Sequence[UsageRow]) -> dict[str, int]:
    """Calls, rows, refusals and errors over all rows."""
    return {
        "calls": sum(r.calls for r in rows),
        "allowed": sum(r.allowed for r in rows),
        "rows": sum(r.rows for r in rows),
        "refusals": sum(r.refusals for r in rows),
        "errors": sum(r.errors for r in rows),
    }
