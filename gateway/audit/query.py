"""Answers from the audit log: verify first, then select and count.

Every answer comes from a log (the live store or an exported bundle) that was verified end to
end with `gateway.audit.verify` against the keys the caller trusts; if anything in it is invalid
there is no answer, only `LogNotVerified` naming the first problem. The answer says how far
verification reached: how many entries, and how many of them the newest checkpoint covers.

Knows nothing of HTTP or argparse: the CLI (`gateway audit query`), the admin API and the
auditor's report call these functions.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.audit.bundle import read_bundle
from gateway.audit.entry import StoredEntry, decode_entry
from gateway.audit.events import Kind
from gateway.audit.reader import read_log
from gateway.audit.verify import VerifyReport, load_keys, verify_log
from gateway.errors import ConfigError
from gateway.model.csvsafe import FORMULA_STARTS
from gateway.model.decision import Verdict
from gateway.store.db import Database

# The columns of a table or CSV answer, in order (fields an entry lacks are left empty).
COLUMNS = (
    "idx",
    "time",
    "kind",
    "client",
    "route",
    "action",
    "subject",
    "dataset",
    "purpose",
    "grant",
    "decision",
    "reason",
    "status",
    "rows",
    "actor",
)
# Filter name -> the entry field it matches.
FILTER_FIELDS = {
    "client": "client",
    "dataset": "dataset",
    "purpose": "purpose",
    "decision": "decision",
    "reason": "reason",
    "route": "route",
    "kind": "kind",
    "action": "action",
}
COUNT_FIELDS = ("client", "dataset", "purpose", "decision", "reason", "route", "kind", "day")
_RELATIVE = re.compile(r"([0-9]{1,9})([smhdw])")
_UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
MAX_VALUES = 64  # values per filter
MAX_VALUE_CHARS = 256


class LogNotVerified(ConfigError):
    """The log or bundle does not verify: no answer is given from it."""

    def __init__(self, verification: Verification, problem: str) -> None:
        self.verification = verification
        self.problem = problem
        super().__init__(
            f"{verification.source} does not verify ({problem}); no answer is given from an "
            "unverified log. Run `gateway audit verify` to see every problem."
        )


@dataclass(frozen=True)
class Verification:
    """How far verification reached."""

    origin: str
    source: str
    first: int
    entries: int
    head: str | None
    checkpoints: int
    checkpoint_size: int | None  # entries covered by the newest verified checkpoint

    def describe(self) -> str:
        if not self.entries:
            return f"verified {self.source}: no entries"
        last = self.first + self.entries - 1
        covered = (
            f"the newest checkpoint covers entries 0..{self.checkpoint_size - 1}"
            if self.checkpoint_size
            else "no checkpoint covers them yet"
        )
        uncovered = self.first + self.entries - (self.checkpoint_size or 0)
        tail = (
            f" ({uncovered} newer entries are signed and chained, not yet checkpointed)"
            if self.checkpoint_size and uncovered > 0
            else ""
        )
        return (
            f"verified {self.entries} entries ({self.first}..{last}) of {self.source}, origin "
            f"{self.origin}; {self.checkpoints} checkpoint(s); {covered}{tail}"
        )

    def as_json(self) -> dict[str, object]:
        return {
            "origin": self.origin,
            "source": self.source,
            "first": self.first,
            "entries": self.entries,
            "head": self.head,
            "checkpoints": self.checkpoints,
            "checkpoint_size": self.checkpoint_size,
        }


@dataclass(frozen=True)
class VerifiedLog:
    verification: Verification
    entries: list[dict[str, Any]]  # the kept entries, decoded, in index order
    policy_sets: Path | None = None  # where the policy sets of these entries are kept


@dataclass(frozen=True)
class Filters:
    """Which entries to select: every given filter must match (values of one filter: any)."""

    since_ms: int | None = None  # ts >= since
    until_ms: int | None = None  # ts < until
    first: int | None = None  # idx >= first
    end: int | None = None  # idx < end
    values: Mapping[str, frozenset[str]] = field(default_factory=dict)  # FILTER_FIELDS keys

    def matches(self, entry: Mapping[str, Any]) -> bool:
        ts, idx = entry.get("ts"), entry.get("idx")
        if not isinstance(ts, int) or not isinstance(idx, int):
            return False
        if self.since_ms is not None and ts < self.since_ms:
            return False
        if self.until_ms is not None and ts >= self.until_ms:
            return False
        if self.first is not None and idx < self.first:
            return False
        if self.end is not None and idx >= self.end:
            return False
        for name, wanted in self.values.items():
            if wanted and entry.get(FILTER_FIELDS[name]) not in wanted:
                return False
        return True


def parse_time(text: str, now_ms: int) -> int:
    """Milliseconds since the epoch for an ISO 8601 date or date-time (UTC when it has no
    offset) or a time relative to now: `90s`, `15m`, `1h`, `2d`, `1w` (that long ago)."""
    relative = _RELATIVE.fullmatch(text)
    if relative is not None:
        return now_ms - int(relative.group(1)) * _UNIT_MS[relative.group(2)]
    # fromisoformat accepts non-ASCII digits; a time is ASCII or it is no time.
    if text.isascii() and len(text) <= 40:
        try:
            moment = dt.datetime.fromisoformat(text)
        except ValueError:
            pass
        else:
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=dt.UTC)
            return int(moment.timestamp() * 1000)
    raise ValueError(
        f"{text[:40]!r} is not a time: give an ISO 8601 date or date-time (UTC unless it has an "
        "offset), e.g. 2026-12-01 or 2026-12-01T09:00+08:00, or a time ago: 90s, 15m, 1h, 2d, 1w"
    )


def make_filters(
    values: Mapping[str, Sequence[str]],
    *,
    since: str | None = None,
    until: str | None = None,
    first: int | None = None,
    end: int | None = None,
    now_ms: int | None = None,
) -> Filters:
    """Filters from user input (CLI options or query parameters); ValueError names the bad one."""
    now = int(dt.datetime.now(dt.UTC).timestamp() * 1000) if now_ms is None else now_ms
    chosen: dict[str, frozenset[str]] = {}
    for name, given in values.items():
        if name not in FILTER_FIELDS:
            raise ValueError(f"unknown filter {name[:40]!r}; filters: {', '.join(FILTER_FIELDS)}")
        if len(given) > MAX_VALUES or any(len(v) > MAX_VALUE_CHARS for v in given):
            raise ValueError(f"{name}: at most {MAX_VALUES} values of {MAX_VALUE_CHARS} chars")
        if given:
            chosen[name] = frozenset(given)
    since_ms = parse_time(since, now) if since else None
    until_ms = parse_time(until, now) if until else None
    if since_ms is not None and until_ms is not None and until_ms <= since_ms:
        raise ValueError("--until must be later than --since")
    return Filters(since_ms, until_ms, first, end, chosen)


# --- verification ----------------------------------------------------------------------------


def load_verified(
    source: Path | Database,
    key_files: Sequence[Path],
    keep: Callable[[Mapping[str, Any]], bool] | None = None,
    *,
    policy_sets: Path | None = None,
) -> VerifiedLog:
    """Verify a bundle directory or a log (SQLite file or PostgreSQL store) against the trusted
    keys, keeping the decoded entries for which `keep` is true (all without it). Raises
    LogNotVerified when any entry or checkpoint is invalid; ConfigError/ValueError for usage
    problems (no keys, not a bundle)."""
    keys = load_keys(key_files)
    kept: list[dict[str, Any]] = []

    def collect(entries: Iterator[StoredEntry]) -> Iterator[StoredEntry]:
        for stored in entries:
            yield stored
            try:
                entry = decode_entry(stored.line)
            except (ValueError, UnicodeDecodeError, RecursionError):
                continue  # verify_log reports it; nothing is answered then
            if keep is None or keep(entry):
                kept.append(entry)

    if isinstance(source, Path) and source.is_dir():
        bundle = read_bundle(source)
        label = f"bundle {source}"
        notes = bundle.checkpoints
        report = verify_log(
            bundle.origin,
            collect(bundle.entries),
            keys,
            checkpoints=notes,
            first=bundle.first,
            prefix_leaves=bundle.prefix_leaves,
            torn=bundle.torn,
        )
        origin = bundle.origin
        sets: Path | None = policy_sets or source / "policy-sets"
    else:
        contents = read_log(source)
        label = f"audit log {source.display if isinstance(source, Database) else source}"
        notes = contents.checkpoints
        report = verify_log(contents.origin, collect(contents.entries), keys, checkpoints=notes)
        origin = contents.origin
        sets = policy_sets
    verification = verification_of(origin, label, report, notes)
    if not report.ok:
        raise LogNotVerified(verification, report.problem or "invalid")
    return VerifiedLog(verification, kept, sets)


def verification_of(
    origin: str, source: str, report: VerifyReport, notes: Sequence[str]
) -> Verification:
    sizes = [_note_size(n) for n in notes]
    covered = max((s for s in sizes if s > 0), default=None) if report.ok else None
    return Verification(
        origin, source, report.first, report.entries, report.head, report.checkpoints, covered
    )


def _note_size(note: str) -> int:
    lines = note.split("\n")
    size = lines[1] if len(lines) > 1 else ""
    return int(size) if size.isascii() and size.isdigit() and len(size) < 19 else -1


# --- selecting and counting ------------------------------------------------------------------


def select(entries: Iterable[Mapping[str, Any]], filters: Filters) -> list[dict[str, Any]]:
    return [dict(e) for e in entries if filters.matches(e)]


def day_of(ts_ms: int) -> str:
    """The UTC day of a time (the day quotas count)."""
    return dt.datetime.fromtimestamp(ts_ms / 1000, dt.UTC).strftime("%Y-%m-%d")


def iso_time(ts_ms: int) -> str:
    moment = dt.datetime.fromtimestamp(ts_ms / 1000, dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def count_by(entries: Iterable[Mapping[str, Any]], fields: Sequence[str]) -> list[dict[str, Any]]:
    """Entries grouped by `fields` (COUNT_FIELDS; `day` is the UTC day): per group the calls,
    the dataset rows released by allowed calls, and the refused and failed calls. Sorted by the
    group."""
    unknown = [f for f in fields if f not in COUNT_FIELDS]
    if unknown or not fields:
        raise ValueError(f"count by one or more of: {', '.join(COUNT_FIELDS)}")
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    for entry in entries:
        key = tuple(
            day_of(int(entry["ts"])) if name == "day" else entry.get(name) for name in fields
        )
        group = groups.get(key)
        if group is None:
            group = {**dict(zip(fields, key, strict=True)), "calls": 0, "rows": 0}
            group.update(refused=0, errors=0)
            groups[key] = group
        group["calls"] += 1
        decision = entry.get("decision")
        if decision == Verdict.ALLOW:
            group["rows"] += released_rows(entry)
        elif decision == Verdict.DENY:
            group["refused"] += 1
        elif decision == Verdict.ERROR:
            group["errors"] += 1
    return [groups[k] for k in sorted(groups, key=lambda k: tuple(str(v) for v in k))]


def released_rows(entry: Mapping[str, Any]) -> int:
    """Dataset rows an entry's call released: its `rows` when it names a dataset (other calls,
    such as a page of audit entries, count what they returned but release no dataset rows)."""
    rows = entry.get("rows")
    if entry.get("dataset") is None or not isinstance(rows, int) or isinstance(rows, bool):
        return 0
    return rows


def row_of(entry: Mapping[str, Any]) -> dict[str, Any]:
    """An entry as one table/CSV row (COLUMNS)."""
    row = {name: entry.get(name) for name in COLUMNS}
    row["time"] = iso_time(int(entry["ts"])) if isinstance(entry.get("ts"), int) else None
    if entry.get("kind") == Kind.ADMIN and row["subject"] is None:
        row["subject"] = entry.get("trigger")  # a policy.reload's (no client is its subject)
    return row


def to_csv(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else _safe_cell(row.get(c)) for c in columns])
    return out.getvalue()


def _safe_cell(value: object) -> str:
    """A CSV cell that a spreadsheet will not run as a formula (CWE-1236)."""
    text = str(value)
    return "'" + text if text[:1] in FORMULA_STARTS and not _number(text) else text


def _number(text: str) -> bool:
    return re.fullmatch(r"-?[0-9]+", text) is not None


def to_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """Rows as aligned text columns (control characters shown escaped)."""
    cells = [[_shown(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines) + "\n"


def _shown(value: object) -> str:
    if value is None:
        return "-"
    text = str(value)
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")
