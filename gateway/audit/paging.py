"""Paging the live log for `/v1/audit/entries` (keyset cursors) and finding the index range of
a time range for exports. These read the stored entries without verifying the whole log (the
reader verifies what it fetches, or a bundle): a tampered entry only changes where a scan
starts or stops, never what an entry says.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.audit.entry import StoredEntry, decode_entry
from gateway.audit.query import Filters
from gateway.audit.reader import read_log
from gateway.store.db import Database

ReadEntries = Callable[[int, int], list[StoredEntry]]  # entries first..end-1, as stored


@dataclass(frozen=True)
class Page:
    items: list[tuple[StoredEntry, dict[str, Any] | None]]  # (stored, decoded or None)
    next_after: int | None  # keyset cursor: continue after this index (None: the end)


def first_at(read: ReadEntries, size: int, since_ms: int) -> int:
    """The first index whose `ts` is at least `since_ms` (binary search: `ts` never decreases
    along a valid log; on a tampered one this only changes where a scan starts)."""
    low, high = 0, size
    while low < high:
        middle = (low + high) // 2
        found = read(middle, middle + 1)
        ts = _ts(found[0]) if found else None
        if ts is not None and ts < since_ms:
            low = middle + 1
        else:
            high = middle
    return low


def _ts(stored: StoredEntry) -> int | None:
    try:
        ts = decode_entry(stored.line).get("ts")
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return ts if isinstance(ts, int) else None


def scan(
    read: ReadEntries,
    size: int,
    filters: Filters,
    *,
    after: int | None,
    limit: int,
    max_scan: int = 10_000,
    chunk: int = 500,
) -> Page:
    """Up to `limit` entries matching `filters`, in index order, after index `after`, looking
    at no more than `max_scan` entries per call (a page may then hold fewer, with a cursor)."""
    start = 0 if after is None else after + 1
    start = max(start, filters.first or 0)
    if filters.since_ms is not None:
        start = max(start, first_at(read, size, filters.since_ms))
    end = size if filters.end is None else min(size, filters.end)
    items: list[tuple[StoredEntry, dict[str, Any] | None]] = []
    position, scanned = start, 0
    plain = not filters.values and filters.since_ms is None and filters.until_ms is None
    while position < end and len(items) < limit and scanned < max_scan:
        batch = read(position, min(end, position + chunk, position + max_scan - scanned))
        if not batch:
            break
        for stored in batch:
            position, scanned = stored.idx + 1, scanned + 1
            try:
                entry: dict[str, Any] | None = decode_entry(stored.line)
            except (ValueError, UnicodeDecodeError, RecursionError):
                entry = None  # shown as is to an unfiltered reader; the verifier names it
            if (entry is None and plain) or (entry is not None and filters.matches(entry)):
                items.append((stored, entry))
            if filters.until_ms is not None and entry is not None:
                ts = entry.get("ts")
                if isinstance(ts, int) and ts >= filters.until_ms:
                    return Page(items, None)  # ts never decreases: nothing later matches
            if len(items) >= limit:
                break
    return Page(items, position - 1 if position < end else None)


def index_range(
    source: Path | Database, since_ms: int | None, until_ms: int | None
) -> tuple[int, int]:
    """The indices [first, end) of the entries logged in [since, until) (for exports)."""
    first: int | None = None
    end = 0
    for stored in read_log(source).entries:
        ts = _ts(stored)
        end = stored.idx + 1
        if ts is None:
            continue
        if until_ms is not None and ts >= until_ms:
            end = stored.idx
            break
        if first is None and (since_ms is None or ts >= since_ms):
            first = stored.idx
    return (end, end) if first is None else (first, end)
