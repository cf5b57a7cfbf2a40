"""Differentially private aggregates: the noise OpenDP adds matches the declared epsilon, the
budget is spent atomically in the shared store (exactly once across processes racing), and
queries together never spend more than the budget."""

from __future__ import annotations

import math
import multiprocessing
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import opendp.prelude as dp
import pytest
from starlette.testclient import TestClient

from gateway.aggregate import noise
from gateway.aggregate.budget import Budgets
from gateway.audit.entry import decode_entry
from gateway.audit.reader import read_entries
from gateway.model.aggregate import Bounds, Privacy
from gateway.store.db import Database
from tests.conftest import Demo
from tests.privacy.budget_race import spend_many

PLANNING = "/v1/datasets/residents/aggregate?purpose=planning"
DRAWS = 4000


def discrete_laplace_variance(scale: float) -> float:
    """Variance of the discrete Laplace distribution P(k) ~ exp(-|k|/scale)."""
    q = math.exp(-1 / scale)
    return 2 * q / (1 - q) ** 2


def test_count_noise_scale_matches_the_declared_epsilon() -> None:
    """The count measurement's scale is 1/epsilon (sensitivity 1), OpenDP's privacy map gives
    back exactly the declared epsilon, a 1 % smaller scale would pass it, and the empirical
    variance over many draws is that of the declared scale (the tolerance, 15 %, is over four
    standard errors wide; a scale off by the square root of 2 doubles the variance)."""
    epsilon = Decimal("0.1")
    measurement, scale = noise.count_measurement(["a", "b"], "laplace", epsilon, Decimal(0))
    assert scale == pytest.approx(10.0, rel=1e-6)
    assert measurement.map(1) <= 0.1 + 1e-12
    tighter = dp.t.make_count_by_categories(
        dp.vector_domain(dp.atom_domain(T=str)),
        dp.symmetric_distance(),
        categories=["a", "b"],
        null_category=False,
        MO=dp.L1Distance[int],
        TOA=int,
    ) >> dp.m.then_laplace(scale * 0.99)
    assert tighter.map(1) > 0.1
    data = ["a"] * 50 + ["b"] * 7
    draws = np.array([measurement(data) for _ in range(DRAWS // 2)], dtype=float)
    errors = (draws - np.array([50, 7])).ravel()
    expected = discrete_laplace_variance(scale)
    assert abs(errors.mean()) < 4 * math.sqrt(expected / len(errors))
    assert errors.var() == pytest.approx(expected, rel=0.15)


def test_sum_noise_scale_matches_epsilon_and_bounds() -> None:
    """A sum's sensitivity is the widest clamping bound; the scale is sensitivity/epsilon;
    empirical variance 2 * scale^2 within 15 %."""
    bounds = Bounds(-50, 1000)
    assert noise.sum_sensitivity(bounds) == 1000
    measurement, scale, sensitivity = noise.sum_measurement(
        3, bounds, "laplace", Decimal("0.5"), Decimal(0)
    )
    assert scale == pytest.approx(2000.0, rel=1e-6)
    assert measurement.map(sensitivity) <= 0.5 + 1e-12
    truth = [1000, 0, -200]
    draws = np.array([measurement(truth) for _ in range(DRAWS // 3)], dtype=float)
    errors = (draws - np.array(truth)).ravel()
    assert errors.var() == pytest.approx(discrete_laplace_variance(scale), rel=0.15)


def test_gaussian_noise_matches_epsilon_and_delta() -> None:
    """Gaussian: OpenDP's map meets (epsilon, delta); the empirical variance is the scale's."""
    measurement, scale = noise.count_measurement(["a"], "gaussian", Decimal("0.5"), Decimal("1e-6"))
    eps, delta = measurement.map(1)
    assert eps <= 0.5 + 1e-9
    assert delta <= 1e-6
    draws = np.array([measurement(["a"] * 20)[0] for _ in range(DRAWS)], dtype=float)
    assert (draws - 20).var() == pytest.approx(scale**2, rel=0.15)


def test_budget_is_spent_exactly_once_across_two_processes(tmp_path: Path) -> None:
    """Two worker processes racing on one store: exactly budget / cost queries succeed."""
    path = str(tmp_path / "registry.db")
    Budgets(Database.sqlite(Path(path))).close()
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    workers = [context.Process(target=spend_many, args=(path, 20, queue)) for _ in range(2)]
    for worker in workers:
        worker.start()
    results = [queue.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    assert sum(results) == 15  # 1.5 / 0.1, never 16, however the two interleave
    budgets = Budgets(Database.sqlite(Path(path)))
    rules = Privacy("laplace", Decimal("0.1"), Decimal(0), Decimal("1.5"), Decimal(0), "day")
    after = budgets.spend("c", "g", rules, (Decimal("0.1"), Decimal(0)), now=1_800_000_000)
    assert not after.allowed
    assert after.epsilon_left == 0
    later = budgets.spend("c", "g", rules, (Decimal("0.1"), Decimal(0)), now=1_800_086_400)
    assert later.allowed  # a new period, a new budget


def test_budget_on_postgresql_is_exact_across_connections(pg_url: str) -> None:
    """The PostgreSQL store: the same statement, exact across connections (hosts)."""
    rules = Privacy(
        "gaussian", Decimal("0.3"), Decimal("1e-7"), Decimal(1), Decimal("3e-7"), "week"
    )
    stores = [Budgets(Database(pg_url, True)) for _ in range(2)]
    try:
        won = [
            stores[i % 2].spend("c", "g", rules, (rules.epsilon, rules.delta)).allowed
            for i in range(8)
        ]
    finally:
        for store in stores:
            store.close()
    assert sum(won) == 3  # delta allows 3, epsilon 3 (0.9 <= 1)


def _get(client: TestClient, token: str, url: str) -> Any:
    return client.get(url, headers={"Authorization": f"Bearer {token}"})


def test_queries_together_never_spend_more_than_the_budget(
    client: TestClient, demo: Demo, token: str
) -> None:
    """Two queries that differ by one person (a differencing attack: the same counts grouped
    with and without a second column) are each charged in full; once the budget is spent the
    next is refused with 429 and its own problem type, and the sum of what OpenDP's maps say
    the answered queries cost stays within the budget."""
    from tests.conftest import services_of

    svc = services_of(client)
    grant = next(g for g in svc.engine.policy.grants if g.id == "demo-residents-planning")
    assert grant.aggregate is not None
    assert grant.aggregate.dp is not None
    dp_rules = grant.aggregate.dp
    queries = ["group_by=province", "group_by=province,gender"]
    answered: list[float] = []
    refused = None
    for i in range(200):
        response = _get(client, token, f"{PLANNING}&{queries[i % 2]}")
        if response.status_code == 429:
            refused = response
            break
        assert response.status_code == 200, response.text
        privacy = response.json()["privacy"]
        measurement, _ = noise.count_measurement(["x"], "laplace", dp_rules.epsilon, Decimal(0))
        answered.append(measurement.map(1))
        assert float(response.headers["dp-budget-epsilon-remaining"]) == pytest.approx(
            float(dp_rules.budget_epsilon) - len(answered) * float(dp_rules.epsilon)
        )
        assert privacy["budget"]["epsilon_remaining"] >= 0
    assert refused is not None
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"] == "urn:gateway:problem:privacy-budget-exhausted"
    assert refused.headers["retry-after"]
    assert len(answered) == int(dp_rules.budget_epsilon / dp_rules.epsilon)
    assert sum(answered) <= float(dp_rules.budget_epsilon) + 1e-9
    _, stored = read_entries(demo.settings.audit_database)
    entries = [decode_entry(e.line) for e in stored]
    logged = [e for e in entries if e.get("route") == "/v1/datasets/{dataset_id}/aggregate"]
    assert len(logged) == len(answered) + 1
    assert logged[-1]["status"] == 429
    assert logged[-1]["dp"]["spent"] == "no"
    assert logged[-1]["dp"]["epsilon_remaining"] == "0"
    assert [Decimal(e["dp"]["epsilon_remaining"]) for e in logged[:2]] == [
        dp_rules.budget_epsilon - dp_rules.epsilon,
        dp_rules.budget_epsilon - 2 * dp_rules.epsilon,
    ]


def test_budget_is_per_client_and_grant(client: TestClient, demo: Demo, token: str) -> None:
    """Spending one grant's budget leaves the suppression grant's exact tables alone (they
    have no budget) and another client's budget untouched."""
    from tests.conftest import services_of

    svc = services_of(client)
    grant = next(g for g in svc.engine.policy.grants if g.id == "demo-residents-planning")
    assert grant.aggregate is not None
    assert grant.aggregate.dp is not None
    rules = replace(grant.aggregate.dp)
    assert svc.budgets is not None
    while svc.budgets.spend(demo.client_id, grant.id, rules, (rules.epsilon, rules.delta)).allowed:
        pass
    assert _get(client, token, f"{PLANNING}&group_by=gender").status_code == 429
    exact = _get(
        client, token, "/v1/datasets/residents/aggregate?purpose=statistics&group_by=gender"
    )
    assert exact.status_code == 200
    assert "dp-budget-epsilon-remaining" not in exact.headers
    other = svc.budgets.spend("someone-else", grant.id, rules, (rules.epsilon, rules.delta))
    assert other.allowed


@pytest.mark.parametrize(
    "query",
    [
        "group_by=district",  # not a declared grouping column of this grant
        "group_by=gender,province,gender",
        "group_by=gender&measure=median",
        "group_by=gender&measure=sum",
        "group_by=gender&measure=sum&column=age",
        "group_by=gender&measure=count&column=monthly_income",
        "group_by=gender&group_by=province",
        "group_by=gender&epsilon=100",
        "group_by=%EF%BC%91",
        "group_by=" + "x," * 3000,
    ],
)
def test_bad_queries_get_4xx_and_spend_nothing(client: TestClient, token: str, query: str) -> None:
    """Promise 10: a clear 4xx, and no budget spent on a query that is refused."""
    response = _get(client, token, f"{PLANNING}&{query}")
    assert 400 <= response.status_code < 500, response.text
    assert "dp-budget-epsilon-remaining" not in response.headers
    fine = _get(client, token, f"{PLANNING}&group_by=gender")
    assert fine.headers["dp-budget-epsilon-remaining"] == "1.75"


def test_store_migrate_carries_the_spent_budget(demo: Demo, pg_url: str) -> None:
    """Moving to PostgreSQL (`gateway store migrate`) keeps what was spent: no budget is handed
    back by a migration."""
    from gateway.runtime.migrate import migrate

    rules = Privacy("laplace", Decimal("0.5"), Decimal(0), Decimal(1), Decimal(0), "day")
    before = Budgets(demo.settings.registry_database)
    assert before.spend("c", "g", rules, (rules.epsilon, rules.delta)).allowed
    before.close()
    target = demo.settings.with_overrides(store=pg_url)
    migrate(
        demo.settings.audit_database,
        demo.settings.registry_database,
        target.audit_database,
        target.registry_database,
        lambda database: None,
    )
    after = Budgets(target.registry_database)
    try:
        assert after.spend("c", "g", rules, (rules.epsilon, rules.delta)).allowed
        assert not after.spend("c", "g", rules, (rules.epsilon, rules.delta)).allowed
    finally:
        after.close()
