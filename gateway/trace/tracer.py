"""`gateway trace`: recompute every candidate view from the workspace, attribute a leaked
extract, and follow the attributed rows into the audit log."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

import numpy as np

from gateway.audit.entry import StoredEntry
from gateway.audit.events import is_http
from gateway.audit.rowset import decode_rows
from gateway.data.realvalues import RealValues
from gateway.data.sources import SourceCache
from gateway.model.policyset import PolicySet
from gateway.privacy.kanon import PrivacyUnreachable
from gateway.privacy.transforms import TransformContext
from gateway.privacy.views import avoids_real_values, materialize
from gateway.trace.attribute import (
    DECOY,
    Attribution,
    Candidate,
    Evidence,
    Located,
    attribute,
)
from gateway.trace.extract import Extract
from gateway.trace.limits import UNLIMITED, Deadline


@dataclass(frozen=True)
class EntryHit:
    idx: int
    ts: int
    rows: int  # rows the response released
    leaked: int  # of them, attributed leaked rows


@dataclass(frozen=True)
class Trace:
    extract: Extract
    attribution: Attribution
    candidates: int
    skipped: tuple[str, ...]  # views that could not be recomputed, and why
    entries: tuple[EntryHit, ...] = ()
    unchecked: tuple[int, ...] = ()  # entries of the named pair for another view version
    not_found: int = 0  # attributed rows no recorded response contained
    log_note: str = ""


def candidates_of(
    policy: PolicySet,
    sources: SourceCache,
    secret: bytes,
    datasets: set[str] | None = None,
    deadline: Deadline = UNLIMITED,
) -> tuple[list[Candidate], list[str]]:
    """Every (client, grant) view the workspace can release now, expired grants included (the
    leak may be older than the grant's end), plus for each grant the view of a recipient that
    does not exist (DECOY): the chance baseline. A leak that matches a real recipient no better
    than that decoy carries nothing recipient-specific and is never attributed.

    Whether a view can be released depends on the recipient (fingerprints come before the
    privacy model, synthetic values are keyed per client): when the decoy's view cannot be, the
    grant has no baseline and none of its recipients is a candidate (a missed attribution, never
    a false one)."""
    found: list[Candidate] = []
    skipped: list[str] = []
    real = RealValues(sources)
    taken = partial(real.of, policy)
    # As the gateway keys views that avoid real values (so the keys match the log's).
    version = real.version(policy) if any(avoids_real_values(g) for g in policy.grants) else ""
    for grant in policy.grants:
        if datasets is not None and grant.dataset not in datasets:
            continue
        dataset = policy.datasets[grant.dataset]
        source = sources.load(dataset)
        views: list[Candidate] = []
        for client in [DECOY, *sorted(grant.clients)]:
            deadline.check()
            ctx = TransformContext(secret, client, grant.id, taken=taken, real_values=version)
            try:
                view = materialize(source.frame, source.version, dataset, grant, policy.hash, ctx)
            except PrivacyUnreachable as exc:
                if client == DECOY:
                    skipped.append(
                        f"{grant.id}: no baseline (the view of a recipient that does not exist "
                        f"cannot be released: {exc}); its recipients are not candidates"
                    )
                    break
                skipped.append(f"{grant.id}/{client}: {exc}")
                continue
            views.append(Candidate.of(dataset.id, grant.id, client, view.key, view.ordered))
        else:  # the decoy's view and every releasable recipient's view
            found.extend([*views[1:], views[0]])
    return found, skipped


def follow(
    entries: Iterable[StoredEntry],
    named: Evidence,
    view_key: str,
    located: Located,
    deadline: Deadline = UNLIMITED,
) -> tuple[list[EntryHit], list[int], int]:
    """The entries of the named client and grant whose responses held attributed rows; the
    entries of that pair for another view version (not checkable here); rows found in none."""
    hits: list[EntryHit] = []
    unchecked: list[int] = []
    seen = np.zeros(0, dtype=np.int64)
    for stored in entries:
        if stored.idx % 4096 == 0:
            deadline.check()
        try:
            entry = json.loads(stored.line)
        except ValueError:
            continue  # `gateway audit verify` reports malformed entries
        if not is_http(entry):
            continue
        if (entry.get("client"), entry.get("grant"), entry.get("dataset")) != (
            named.client,
            named.grant,
            named.dataset,
        ) or entry.get("status") != 200:
            continue
        record = entry.get("row_ids")
        if entry.get("view") != view_key or not isinstance(record, str):
            if entry.get("rows"):
                unchecked.append(stored.idx)
            continue
        try:
            released = decode_rows(record)
        except ValueError:
            unchecked.append(stored.idx)
            continue
        leaked = located.released_by(released)
        if leaked:
            hits.append(EntryHit(stored.idx, int(entry.get("ts", 0)), len(released), leaked))
            seen = np.union1d(seen, released)
    return hits, unchecked, len(located.leaked) - located.released_by(seen)


def render(trace: Trace, source_name: str) -> str:
    a = trace.attribution
    frame = trace.extract.frame
    lines = [
        f"extract: {source_name} ({trace.extract.format}, {len(frame)} rows, "
        f"{len(frame.columns)} columns)",
        f"candidates: {trace.candidates} views recomputed from the workspace's current data, "
        "policies and secret",
    ]
    lines += [f"  not recomputed: {s}" for s in trace.skipped]
    if trace.extract.claimed:
        claim = {k: trace.extract.claimed.get(k) for k in ("dataset", "grant", "policy")}
        lines.append(f"the file claims to be {claim} (not trusted; content decides)")
    if a.ignored:
        lines.append(f"ignored columns (no released column holds their values): {list(a.ignored)}")
    if a.named is not None:
        mapping = a.mapping.get(a.named.grant, {})
        lines.append(
            "columns matched by content: " + ", ".join(f"{k} -> {v}" for k, v in mapping.items())
        )
        lines.append(
            f"ATTRIBUTED to client {a.named.client!r}, grant {a.named.grant!r} "
            f"(dataset {a.named.dataset}), confidence {_confidence(a.confidence)}"
        )
    else:
        lines.append(f"NO ATTRIBUTION ({a.reason.removeprefix('no attribution: ')})")
    lines.append(f"  {a.reason}" if a.named else "")
    lines.append(
        "rank  client               grant                        rows  cells  +rows  -rows"
    )
    for rank, ev in enumerate(a.ranking[:8], 1):
        lines.append(
            f"{rank:>4}  {ev.client[:20]:<20} {ev.grant[:28]:<28} {ev.rows_matched:>5}  "
            f"{ev.cells_matched:>5}  {ev.distinguishing:>5}  {ev.contradicting:>5}"
        )
    lines.append(
        "  rows: leaked rows that are rows of the view; cells: leaked cells found in the matched "
        "column; +rows/-rows: rows only this view / only the other (the runner-up, for rank 1; "
        "rank 1, for the others) explains"
    )
    if a.named is not None:
        lines.append(trace.log_note)
        if trace.entries:
            lines.append("audit entries whose responses contained attributed rows:")
            for hit in trace.entries:
                when = datetime.fromtimestamp(hit.ts / 1000, UTC).isoformat(timespec="seconds")
                lines.append(
                    f"  entry {hit.idx}  {when}  released {hit.rows} rows, "
                    f"{hit.leaked} of the attributed rows"
                )
        if trace.unchecked:
            lines.append(
                f"entries of this client and grant for another data or policy version (their "
                f"rows cannot be checked against today's view): {list(trace.unchecked)}"
            )
        if trace.not_found:
            lines.append(
                f"{trace.not_found} attributed rows are in no recorded response of this view"
            )
    return "\n".join(line for line in lines if line != "")


def as_json(trace: Trace) -> dict[str, Any]:
    a = trace.attribution
    return {
        "format": trace.extract.format,
        "rows": a.rows,
        "attributed": a.named is not None,
        "client": a.named.client if a.named else None,
        "grant": a.named.grant if a.named else None,
        "dataset": a.named.dataset if a.named else None,
        "confidence": a.confidence,
        "reason": a.reason,
        "mapping": a.mapping,
        "ignored": list(a.ignored),
        "ranking": [asdict(e) for e in a.ranking],
        "entries": [asdict(h) for h in trace.entries],
        "unchecked_entries": list(trace.unchecked),
        "rows_in_no_entry": trace.not_found,
        "candidates": trace.candidates,
        "skipped": list(trace.skipped),
    }


def _confidence(value: float) -> str:
    return "> 0.9999" if value > 0.9999 else f"{value:.4f}"


def run(
    extract: Extract,
    candidates: list[Candidate],
    skipped: list[str],
    deadline: Deadline = UNLIMITED,
) -> Trace:
    attribution = attribute(extract.frame, candidates, deadline)
    return Trace(extract, attribution, len(candidates), tuple(skipped))
