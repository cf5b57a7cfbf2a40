"""Promise 1 (deny by default) with remembered decisions: an Engine that has already decided
answers exactly as a fresh one at every instant, also across each grant's first and last
instant and with a clock that goes back; the instant after a grant expires is denied."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from gateway.model.policyset import PolicySet
from gateway.policy.engine import OUTSIDE_VALIDITY, Engine
from gateway.policy.files import load_policies

TICK = timedelta(microseconds=1)  # the resolution of datetime: the next instant


def _policy(home: Path) -> PolicySet:
    return load_policies(home / "policies", home)


def _instants(engine: Engine) -> list[datetime]:
    """Each grant's boundaries and the instants right beside them, in order."""
    found = {datetime(2020, 1, 1, tzinfo=UTC), datetime(2030, 1, 1, tzinfo=UTC)}
    for grant in engine.policy.grants:
        for edge in (grant.valid_from, grant.valid_until):
            if edge is not None:
                found |= {edge - TICK, edge, edge + TICK}
    return sorted(found)


def test_a_remembered_decision_is_the_fresh_one_at_every_instant(template_home: Path) -> None:
    """The same client, dataset, purpose and scopes asked at each grant boundary, forwards and
    then backwards in time, get from one engine what a new engine decides."""
    policy = _policy(template_home)
    engine = Engine(policy)
    instants = _instants(engine)
    asks = [
        (client, dataset, purpose, scopes)
        for client in ("demo", "nobody")
        for dataset in (*sorted(policy.datasets), "unknown")
        for purpose in (*sorted(policy.purposes), "other", None)
        for scopes in (frozenset({"datasets:read"}), frozenset())
    ]
    for at in [*instants, *reversed(instants), *instants]:
        for client, dataset, purpose, scopes in asks:
            fresh = Engine(policy).decide(client, dataset, purpose, scopes, at)
            assert engine.decide(client, dataset, purpose, scopes, at) == fresh, (at, purpose)


def test_the_instant_after_a_grant_expires_is_denied(template_home: Path) -> None:
    """An allowed decision remembered up to a grant's last instant is not reused one
    microsecond later: the call is denied as outside the grant's validity."""
    engine = Engine(_policy(template_home))
    grant = next(g for g in engine.candidates("demo", "residents") if "statistics" in g.purposes)
    assert grant.valid_until is not None
    scopes = frozenset({"datasets:read"}) | grant.scopes
    for at in (grant.valid_until - timedelta(days=1), grant.valid_until):
        allowed = engine.decide("demo", "residents", "statistics", scopes, at)
        assert allowed.allowed
        assert allowed.grant is grant
    after = engine.decide("demo", "residents", "statistics", scopes, grant.valid_until + TICK)
    assert not after.allowed
    assert after.reason == OUTSIDE_VALIDITY
