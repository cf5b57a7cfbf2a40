"""Decisions: who may read which dataset for which purpose, now. Compiled once per policy set
into an index by (client, dataset), so a decision looks at the few grants that could apply.

An allowed decision is remembered per (client, dataset, purpose, scopes) together with the
interval of instants over which every grant it looked at keeps its validity: within that
interval the same inputs give the same decision, outside it (a grant has expired, or a clock
went back before a grant's start) the decision is made afresh. An Engine belongs to one policy
set (a reload builds a new one), so a cached decision never outlives the policy it came from.
Denials are never cached."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from gateway.model.grant import Grant
from gateway.model.policyset import PolicySet

# Reason codes, safe to show the caller (they reveal nothing beyond what its own grants say).
NO_GRANT = "no_grant"
PURPOSE_MISSING = "purpose_missing"
PURPOSE_NOT_ALLOWED = "purpose_not_allowed"
OUTSIDE_VALIDITY = "outside_validity"
SCOPE_MISSING = "scope_missing"
# When several grants fail for different reasons, report the one closest to matching.
_CLOSENESS = (SCOPE_MISSING, OUTSIDE_VALIDITY, PURPOSE_NOT_ALLOWED)
_CACHE_MAX = 4096  # remembered allowed decisions per policy set; emptied when full


@dataclass(frozen=True)
class Tried:
    grant: str
    outcome: str  # "match" or a reason code
    detail: str


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str | None
    grant: Grant | None
    policy: str
    tried: tuple[Tried, ...]


class Engine:
    def __init__(self, policy: PolicySet) -> None:
        self.policy = policy
        index: defaultdict[tuple[str, str], list[Grant]] = defaultdict(list)
        for grant in policy.grants:
            for client in grant.clients:
                index[(client, grant.dataset)].append(grant)
        self._index = dict(index)
        # (client, dataset, purpose, scopes) -> (first, last instant it holds (None: open), it)
        self._allowed: dict[
            tuple[str, str, str, frozenset[str]],
            tuple[datetime | None, datetime | None, Decision],
        ] = {}

    def candidates(self, client: str, dataset: str) -> list[Grant]:
        return self._index.get((client, dataset), [])

    def decide(
        self, client: str, dataset: str, purpose: str | None, scopes: Iterable[str], at: datetime
    ) -> Decision:
        """Deny by default; allow through the one grant that lists this client, dataset and
        purpose, is valid at `at`, and whose required scopes the token carries."""
        held = scopes if isinstance(scopes, frozenset) else frozenset(scopes)
        key = (client, dataset, purpose or "", held)
        cached = self._allowed.get(key)
        if cached is not None:
            first, last, decision = cached
            if (first is None or first <= at) and (last is None or at <= last):
                return decision
        decision = self._decide(client, dataset, purpose, held, at)
        if decision.allowed:
            self._remember(key, decision)
        return decision

    def _remember(self, key: tuple[str, str, str, frozenset[str]], decision: Decision) -> None:
        """Keep an allowed decision for as long as each grant it checked the validity of (every
        grant tried that has the purpose: all were valid, or one would say outside_validity)
        stays valid; never one whose tried grants mention the instant."""
        if any(t.outcome == OUTSIDE_VALIDITY for t in decision.tried):
            return
        # The grants were tried in candidate order, up to the match.
        tried = self.candidates(key[0], key[1])[: len(decision.tried)]
        outcomes = zip(tried, decision.tried, strict=True)
        checked = [g for g, t in outcomes if t.outcome != PURPOSE_NOT_ALLOWED]
        starts = [g.valid_from for g in checked if g.valid_from is not None]
        ends = [g.valid_until for g in checked if g.valid_until is not None]
        if len(self._allowed) >= _CACHE_MAX:
            self._allowed.clear()
        self._allowed[key] = (max(starts, default=None), min(ends, default=None), decision)

    def _decide(
        self, client: str, dataset: str, purpose: str | None, held: frozenset[str], at: datetime
    ) -> Decision:
        grants = self.candidates(client, dataset)
        if not grants:
            return Decision(False, NO_GRANT, None, self.policy.hash, ())
        if not purpose:
            missing = tuple(
                Tried(g.id, PURPOSE_MISSING, "the request states no purpose") for g in grants
            )
            return Decision(False, PURPOSE_MISSING, None, self.policy.hash, missing)
        tried: list[Tried] = []
        for grant in grants:
            outcome, detail = _check(grant, purpose, held, at)
            tried.append(Tried(grant.id, outcome, detail))
            if outcome == "match":
                return Decision(True, None, grant, self.policy.hash, tuple(tried))
        reasons = {t.outcome for t in tried}
        reason = next(r for r in _CLOSENESS if r in reasons)
        return Decision(False, reason, None, self.policy.hash, tuple(tried))

    def visible(self, client: str, at: datetime) -> list[Grant]:
        """Grants of this client valid at `at` (for the catalog; any purpose)."""
        return [g for g in self.policy.grants if client in g.clients and g.valid_at(at)]


def _check(grant: Grant, purpose: str, scopes: frozenset[str], at: datetime) -> tuple[str, str]:
    if purpose not in grant.purposes:
        return PURPOSE_NOT_ALLOWED, f"purpose {purpose!r} is not one of {sorted(grant.purposes)}"
    if not grant.valid_at(at):
        window = f"{_fmt(grant.valid_from)} .. {_fmt(grant.valid_until)}"
        return OUTSIDE_VALIDITY, f"{at.isoformat(timespec='seconds')} is outside {window}"
    missing = sorted(grant.scopes - scopes)
    if missing:
        return SCOPE_MISSING, f"the token lacks scope(s) {missing}"
    return "match", "client, dataset, purpose, validity and scopes all match"


def _fmt(moment: datetime | None) -> str:
    return moment.isoformat(timespec="seconds") if moment else "open"
