"""Attribution: which (client, grant) view a leaked extract was cut from.

Every candidate view is recomputed from the workspace (same data, policies and secret, so the
same pseudonyms, synthetic values and fingerprints). Columns are matched by content, never by
name: a leaked column maps to the released column that contains most of its distinct values.
A leaked row matches a candidate when its whole tuple (on the columns that map) is a row of the
candidate's view. The candidate matching most rows is named only if the evidence separates it
from every other candidate: enough rows it explains that the other does not, few the other
explains that it does not, and a confidence (a closed-world posterior, below) of at least
`CONFIDENCE`. Otherwise the answer is "no attribution": a false accusation costs more than a
missed one.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from gateway.trace.extract import hashes
from gateway.trace.limits import UNLIMITED, Deadline

MIN_CONTAINMENT = 0.5  # share of a leaked column's distinct values a released column must hold
MIN_SHARE = 0.5  # the named view must explain at least this share of the leaked rows
MIN_DISTINGUISHING = 10  # rows it explains and each other candidate does not
MAX_CONTRADICTING = 0.1  # rows another candidate explains and it does not, per distinguishing row
CONFIDENCE = 0.999
ERROR_RATE = 0.05  # per-row chance of a spurious match or a corrupted cell (the model's epsilon)
_MIX = np.uint64(0x9E3779B97F4A7C15)


# A recipient nobody is (not a valid client id): its views are the baseline every attribution
# must beat, so a leak that any recipient's view would explain is never pinned on one.
DECOY = "~no-recipient"


@dataclass(frozen=True)
class Candidate:
    """One recipient's view, as canonical-text hashes per released column, in the keyed order
    the recipient paged through (row i is position i, as recorded in audit entries)."""

    dataset: str
    grant: str
    client: str
    view_key: str
    columns: dict[str, npt.NDArray[np.uint64]]

    @classmethod
    def of(
        cls, dataset: str, grant: str, client: str, view_key: str, ordered: pd.DataFrame
    ) -> Candidate:
        return cls(
            dataset, grant, client, view_key, {c: hashes(ordered[c]) for c in ordered.columns}
        )

    @property
    def rows(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0


@dataclass(frozen=True)
class Evidence:
    dataset: str
    grant: str
    client: str
    rows_matched: int  # leaked rows that are rows of this view (on the mapped columns)
    cells_matched: int  # leaked cells whose value occurs in the mapped column of this view
    distinguishing: int = 0  # rows it explains that the best other candidate does not
    contradicting: int = 0  # rows the best other candidate explains that it does not


@dataclass(frozen=True)
class Attribution:
    rows: int
    mapping: dict[str, dict[str, str]]  # grant -> leaked column -> released column
    ignored: tuple[str, ...]  # leaked columns no candidate explains (added or unrecognizable)
    ranking: tuple[Evidence, ...]  # best first
    named: Evidence | None  # the attributed candidate, or None: no attribution
    confidence: float
    reason: str
    located: Located | None = None  # for the named candidate: where its matched rows are


def _combine(columns: list[npt.NDArray[np.uint64]], rows: int) -> npt.NDArray[np.uint64]:
    """One 64-bit key per row over several hashed columns (order-sensitive)."""
    key = np.zeros(rows, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for i, column in enumerate(columns):
            key = (key * _MIX) ^ (column + np.uint64(i + 1))
            key ^= key >> np.uint64(29)
    return key


def _contains(
    sorted_values: npt.NDArray[np.uint64], probe: npt.NDArray[np.uint64]
) -> npt.NDArray[np.bool_]:
    """Which of `probe` occur in `sorted_values` (sorted, unique), by binary search."""
    if not len(sorted_values):
        return np.zeros(len(probe), dtype=bool)
    at = np.minimum(np.searchsorted(sorted_values, probe), len(sorted_values) - 1)
    found: npt.NDArray[np.bool_] = sorted_values[at] == probe
    return found


class Pool:
    """Candidates prepared once for many traces: value sets per column, per grant and per view."""

    def __init__(self, candidates: Sequence[Candidate]) -> None:
        self.candidates = list(candidates)
        self.groups: dict[tuple[str, str], list[int]] = {}
        for i, cand in enumerate(self.candidates):
            self.groups.setdefault((cand.dataset, cand.grant), []).append(i)
        self.unions = {
            key: {
                name: np.unique(np.concatenate([self.candidates[i].columns[name] for i in members]))
                for name in self.candidates[members[0]].columns
            }
            for key, members in self.groups.items()
        }
        self.values = [{n: np.unique(h) for n, h in c.columns.items()} for c in self.candidates]

    def mapping(
        self,
        key: tuple[str, str],
        leak: dict[str, npt.NDArray[np.uint64]],
        deadline: Deadline = UNLIMITED,
    ) -> dict[str, str]:
        """Leaked column -> released column of this grant, by containment of distinct values."""
        unions = self.unions[key]
        mapping: dict[str, str] = {}
        for leaked, values in leak.items():
            deadline.check()
            distinct = np.unique(values)
            best, best_share = None, 0.0
            for name, union in unions.items():
                share = float(_contains(union, distinct).mean())
                tie_by_name = share == best_share and name.casefold() == leaked.casefold()
                if share > best_share or tie_by_name:
                    best, best_share = name, share
            if best is not None and best_share >= MIN_CONTAINMENT:
                mapping[leaked] = best
        return mapping


@functools.cache
def _null_hash() -> np.uint64:
    """The hash of an empty cell (a column of nothing else says nothing): the same on every
    call, computed once per process (its canonical text alone costs a dozen Arrow calls)."""
    return np.uint64(hashes(pd.Series([None]))[0])


def attribute(
    leaked: pd.DataFrame, pool: Pool | Sequence[Candidate], deadline: Deadline = UNLIMITED
) -> Attribution:
    """Name the candidate the leaked rows came from, or explain why not. Loops over columns
    and candidates check the deadline (TraceTimeout)."""
    pool = pool if isinstance(pool, Pool) else Pool(pool)
    candidates = pool.candidates
    rows = len(leaked)
    leak: dict[str, npt.NDArray[np.uint64]] = {}
    for c in leaked.columns:
        deadline.check()
        leak[str(c)] = hashes(leaked[c])
    null_hash = _null_hash()
    leak = {c: h for c, h in leak.items() if not (h == null_hash).all()}
    mappings = {key: pool.mapping(key, leak, deadline) for key in pool.groups}
    explained = sorted({c for m in mappings.values() for c in m})
    ignored = tuple(c for c in leak if c not in explained)
    if not candidates or not explained or rows == 0:
        return Attribution(
            rows,
            {g: m for (_, g), m in mappings.items()},
            ignored,
            (),
            None,
            0.0,
            "no attribution: no column of the extract matches a released column",
        )
    leak_key = _combine([leak[c] for c in explained], rows)
    matched: list[npt.NDArray[np.bool_]] = []
    evidence: list[Evidence] = []
    for i, cand in enumerate(candidates):
        deadline.check()
        mapping = mappings[(cand.dataset, cand.grant)]
        cells = sum(
            int(_contains(pool.values[i][mapping[c]], leak[c]).sum())
            for c in explained
            if c in mapping
        )
        if all(c in mapping for c in explained):
            view_key = _combine([cand.columns[mapping[c]] for c in explained], cand.rows)
            hit = np.isin(leak_key, view_key)
        else:  # a leaked column this grant does not release: its rows cannot come from here
            hit = np.zeros(rows, dtype=bool)
        matched.append(hit)
        evidence.append(Evidence(cand.dataset, cand.grant, cand.client, int(hit.sum()), cells))
    order = sorted(range(len(candidates)), key=lambda i: (-evidence[i].rows_matched, i))
    best = order[0]
    distinguishing = [int((matched[best] & ~matched[i]).sum()) for i in range(len(candidates))]
    contradicting = [int((matched[i] & ~matched[best]).sum()) for i in range(len(candidates))]
    others = [i for i in order if i != best]
    weight = math.log((1 - ERROR_RATE) / ERROR_RATE)
    odds = sum(math.exp(-weight * (distinguishing[i] - contradicting[i])) for i in others)
    confidence = 1.0 / (1.0 + odds)
    runner = others[0] if others else None
    ranking = [evidence[best]]
    if runner is not None:
        ranking[0] = _with(evidence[best], distinguishing[runner], contradicting[runner])
    ranking += [_with(evidence[i], contradicting[i], distinguishing[i]) for i in others]
    reason = _verdict(rows, evidence[best], others, distinguishing, contradicting, confidence)
    if not reason and candidates[best].client == DECOY:
        reason = (
            "no attribution: a recipient that does not exist explains the extract best; its "
            "columns carry nothing recipient-specific"
        )
    mapping_out = {g: m for (_, g), m in mappings.items()}
    if reason:
        return Attribution(rows, mapping_out, ignored, tuple(ranking), None, confidence, reason)
    winner = candidates[best]
    mapping = mappings[(winner.dataset, winner.grant)]
    view_key = _combine([winner.columns[mapping[c]] for c in explained], winner.rows)
    return Attribution(
        rows,
        mapping_out,
        ignored,
        tuple(ranking),
        ranking[0],
        confidence,
        f"attributed: {evidence[best].rows_matched} of {rows} rows match this view",
        Located.of(leak_key, view_key, matched[best]),
    )


def _with(ev: Evidence, distinguishing: int, contradicting: int) -> Evidence:
    return Evidence(
        ev.dataset,
        ev.grant,
        ev.client,
        ev.rows_matched,
        ev.cells_matched,
        distinguishing,
        contradicting,
    )


def _verdict(
    rows: int,
    best: Evidence,
    others: list[int],
    distinguishing: list[int],
    contradicting: list[int],
    confidence: float,
) -> str:
    """Empty when the evidence suffices; otherwise why there is no attribution."""
    if best.rows_matched < max(1, MIN_SHARE * rows):
        return (
            f"no attribution: the best candidate explains {best.rows_matched} of {rows} rows "
            "(the extract may come from another source, an older data or policy version, "
            "or several recipients)"
        )
    if others:
        weakest = min(distinguishing[i] for i in others)
        if weakest < MIN_DISTINGUISHING:
            return (
                f"no attribution: only {weakest} rows tell the best candidate from another "
                f"(at least {MIN_DISTINGUISHING} needed); the extract's columns carry too little "
                "recipient-specific information"
            )
        mixed = [i for i in others if contradicting[i] > MAX_CONTRADICTING * distinguishing[i]]
        if mixed:
            return (
                "no attribution: rows match several recipients' views (a combined extract?); "
                "see the ranking"
            )
    if confidence < CONFIDENCE:
        return f"no attribution: confidence {confidence:.4f} is below {CONFIDENCE}"
    return ""


@dataclass(frozen=True)
class Located:
    """Where the attributed rows are in the named view: which view rows each could be."""

    leaked: npt.NDArray[np.uint64]  # the row key of each matched leaked row
    positions: npt.NDArray[np.int64]  # view rows equal to some matched leaked row ...
    keys: npt.NDArray[np.uint64]  # ... and their row keys

    @classmethod
    def of(
        cls,
        leak_key: npt.NDArray[np.uint64],
        view_key: npt.NDArray[np.uint64],
        matched: npt.NDArray[np.bool_],
    ) -> Located:
        leaked = leak_key[matched]
        positions = np.flatnonzero(np.isin(view_key, leaked)).astype(np.int64)
        return cls(leaked, positions, view_key[positions])

    def released_by(self, released: npt.NDArray[np.int64]) -> int:
        """How many matched leaked rows a response releasing these view positions contained
        (a leaked row equal to several view rows counts if any of them was released)."""
        keys = np.unique(self.keys[np.isin(self.positions, released)])
        return int(np.isin(self.leaked, keys).sum())
