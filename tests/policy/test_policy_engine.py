"""Issue 4: decisions with reason codes, purposes and validity over HTTP, explain, policy tests,
and reloads that never let a bad edit become active."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.audit.entry import decode_entry
from gateway.audit.reader import read_entries
from gateway.auth.registry import ClientRegistry
from gateway.cli import main
from gateway.policy.engine import Engine
from gateway.policy.files import load_policies
from tests.conftest import BASE, Demo, client_with, token_for
from tests.doubles import AuditCapture, FakeClock
from tests.paths import REPO

BOTH_STORES = True  # tests using `demo` run on both stores: SQLite and PostgreSQL

ROWS = "/v1/datasets/residents/rows"


def bearer(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **extra}


def entries(demo: Demo) -> list[dict[str, Any]]:
    _, stored = read_entries(demo.settings.audit_database)
    return [decode_entry(e.line) for e in stored]


def admin_token(client: TestClient, demo: Demo) -> str:
    registry = ClientRegistry(demo.settings.registry_database)
    _, secret = registry.add("admin", scopes=("admin",))
    registry.close()
    assert secret is not None
    return token_for(client, "admin", secret)


# --- decisions (table-driven, like Datasette's permission tests) ---------------------------

CASES = [
    # client, dataset, purpose, at, scopes, allowed, reason, grant
    (
        "demo",
        "residents",
        "statistics",
        "2026-06-01",
        ["datasets:read"],
        True,
        None,
        "demo-residents",
    ),
    (
        "demo",
        "residents",
        "statistics",
        "2025-06-01",
        ["datasets:read"],
        False,
        "outside_validity",
        None,
    ),
    (
        "demo",
        "residents",
        "research",
        "2025-06-01",
        ["datasets:read"],
        True,
        None,
        "demo-residents-research-2025",
    ),
    (
        "demo",
        "residents",
        "research",
        "2026-06-01",
        ["datasets:read"],
        False,
        "outside_validity",
        None,
    ),
    (
        "demo",
        "residents",
        "marketing",
        "2026-06-01",
        ["datasets:read"],
        False,
        "purpose_not_allowed",
        None,
    ),
    ("demo", "residents", None, "2026-06-01", ["datasets:read"], False, "purpose_missing", None),
    ("demo", "residents", "statistics", "2026-06-01", ["audit:read"], False, "scope_missing", None),
    (
        "demo",
        "nothing_here",
        "statistics",
        "2026-06-01",
        ["datasets:read"],
        False,
        "no_grant",
        None,
    ),
    (
        "someone",
        "residents",
        "statistics",
        "2026-06-01",
        ["datasets:read"],
        False,
        "no_grant",
        None,
    ),
    (
        "demo",
        "enterprise_registry",
        "credit-assessment",
        "2028-12-31T23:59:00+08:00",
        ["datasets:read"],
        True,
        None,
        "demo-enterprise-registry",
    ),
    (
        "demo",
        "enterprise_registry",
        "credit-assessment",
        "2029-01-01T00:00:00+08:00",
        ["datasets:read"],
        False,
        "outside_validity",
        None,
    ),
]


@pytest.mark.parametrize(
    ("client", "dataset", "purpose", "at", "scopes", "allowed", "reason", "grant"), CASES
)
def test_decisions(
    template_home: Path,
    client: str,
    dataset: str,
    purpose: str | None,
    at: str,
    scopes: list[str],
    allowed: bool,
    reason: str | None,
    grant: str | None,
) -> None:
    """Deny by default; allow only through a grant matching client, dataset, purpose, time and
    scopes; every denial has its reason code; every decision names the policy-set hash. (Pure
    policy evaluation: the demo's policy files, no store, so one run per case.)"""
    engine = Engine(load_policies(template_home / "policies", template_home))
    decision = engine.decide(
        client,
        dataset,
        purpose,
        scopes,
        datetime.fromisoformat(at).replace(tzinfo=datetime.fromisoformat(at).tzinfo or UTC),
    )
    assert decision.allowed is allowed
    assert decision.reason == reason
    assert (decision.grant.id if decision.grant else None) == grant
    assert decision.policy == engine.policy.hash


# --- over HTTP ---------------------------------------------------------------------------------


@pytest.mark.store_independent
def test_purpose_by_parameter_or_header(client: TestClient, token: str) -> None:
    """The purpose comes from `purpose=` or the Data-Purpose header; giving two different ones,
    or none, is a 400 naming the parameter."""
    assert (
        client.get(f"{ROWS}?purpose=statistics&_size=1", headers=bearer(token)).status_code == 200
    )
    assert (
        client.get(
            f"{ROWS}?_size=1", headers=bearer(token, **{"Data-Purpose": "statistics"})
        ).status_code
        == 200
    )
    clash = client.get(
        f"{ROWS}?purpose=statistics", headers=bearer(token, **{"Data-Purpose": "research"})
    )
    assert clash.status_code == 400
    assert clash.json()["parameter"] == "purpose"
    missing = client.get(ROWS, headers=bearer(token))
    assert missing.status_code == 400
    assert missing.json()["parameter"] == "purpose"


def test_denial_carries_the_safe_reason_and_is_audited(
    client: TestClient, demo: Demo, token: str
) -> None:
    """A purpose the grant does not list: 403 with the reason code; the entry has it too."""
    response = client.get(f"{ROWS}?purpose=marketing", headers=bearer(token))
    assert response.status_code == 403
    body = response.json()
    assert body["reason"] == "purpose_not_allowed"
    assert "rows" not in body
    entry = entries(demo)[-1]
    assert entry["decision"] == "deny"
    assert entry["reason"] == "purpose_not_allowed"
    assert entry["dataset"] == "residents"
    assert entry["policy"] == load_policies(demo.home / "policies", demo.home).hash


@pytest.mark.store_independent
def test_view_reports_the_privacy_model_achieved(client: TestClient, token: str) -> None:
    """The rows response and the dataset description report k over the whole view."""
    view = client.get(f"{ROWS}?purpose=statistics&_size=1", headers=bearer(token)).json()["view"]
    assert view["privacy"]["k_required"] == 5
    assert view["privacy"]["k"] >= 5
    described = client.get(
        "/v1/datasets/residents?purpose=statistics", headers=bearer(token)
    ).json()
    assert described["privacy"]["k"] == view["privacy"]["k"]
    assert described["rows"] == view["total_rows"]


@pytest.mark.store_independent
def test_unreachable_privacy_model_releases_nothing(
    client: TestClient, demo: Demo, token: str
) -> None:
    """If the grant's k cannot be met within its suppression limit, no row leaves (503)."""
    path = demo.home / "policies" / "residents.yaml"
    text = path.read_text()
    assert text.count("      k: 5\n") == 1  # the statistics grant
    # k above the number of rows the grant's row filter keeps: no recoding can reach it.
    path.write_text(text.replace("      k: 5\n", "      k: 100000\n"))
    with TestClient(create_app(demo.settings), base_url=BASE) as fresh:
        good = token_for(fresh, demo.client_id, demo.client_secret)
        response = fresh.get(f"{ROWS}?purpose=statistics", headers=bearer(good))
    assert response.status_code == 503
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "rows" not in response.json()
    assert response.json()["type"].endswith("privacy-unreachable")
    assert "would suppress" in response.json()["detail"]


def test_grant_request_limit(demo: Demo, clock: FakeClock) -> None:
    """A grant's requests_per_minute is enforced with 429 (three calls in one calendar minute:
    the clock stands at the start of one)."""
    path = demo.home / "policies" / "residents.yaml"
    path.write_text(path.read_text().replace("requests_per_minute: 120", "requests_per_minute: 2"))
    with client_with(demo, clock) as fresh:
        good = token_for(fresh, demo.client_id, demo.client_secret)
        codes = [
            fresh.get(f"{ROWS}?purpose=statistics&_size=1", headers=bearer(good)).status_code
            for _ in range(3)
        ]
    assert codes == [200, 200, 429]


# --- explain and policy tests ------------------------------------------------------------


def test_explain_over_http_and_cli(
    client: TestClient, demo: Demo, capsys: pytest.CaptureFixture[str]
) -> None:
    """Explain names every rule tried; for an allow it shows released values under raw column
    names, never raw values. The CLI exits 0 on allow and 3 on deny."""
    admin = admin_token(client, demo)
    response = client.get(
        "/v1/admin/explain?client=demo&dataset=residents&purpose=statistics&at=2026-06-01",
        headers=bearer(admin),
    )
    assert response.status_code == 200
    result = response.json()
    assert result["decision"] == "allow"
    assert result["tried"][0]["outcome"] == "match"
    assert result["row_filter"] == "age >= 18 and age <= 65"
    assert result["quasi_identifiers"] == [
        "gender",
        "age",
        "province",
        "city",
        "district",
        "employer_credit_code",
    ]
    assert result["achieved"]["k"] >= 5
    assert result["risk"]["rows_in_unique_classes"] == 0
    raw = pd.read_csv(demo.home / "data" / "residents.csv", dtype=str)
    assert result["sample"]
    for row in result["sample"]:
        assert list(row) == [c["column"] for c in result["columns"]]  # raw column names
        code = row["employer_credit_code"]  # masked (preset credit_code): at most 4 shown
        assert len(code) == 18
        assert code.count("*") >= 14
        assert code not in set(raw["employer_credit_code"])
        assert row["id_card"] not in set(raw["id_card"])  # synthetic, never a real one
        assert row["age"] not in set(raw["age"])  # a band label, never a raw age
        assert row["monthly_income"] not in set(raw["monthly_income"])
    command = ["policy", "explain", "--home", str(demo.home), "--client", "demo"]
    code = main([*command, "--dataset", "residents", "--purpose", "statistics"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("ALLOW")
    assert "-> grant demo-residents: match" in out
    assert "quasi-identifiers: gender, age, province, city, district, employer_credit_code" in out
    assert "privacy model: k=5, l=2 on monthly_income, local recoding" in out
    assert "{'" not in out  # no Python dict anywhere in the text (issue 17 item 7)
    assert "  achieved: k=" in out
    assert "  risk: 0 of " in out
    assert not set(raw["id_card"]) & set(out.replace("=", " ").split())  # no raw 身份证号
    code = main([*command, "--dataset", "residents", "--purpose", "marketing"])
    out = capsys.readouterr().out
    assert code == 3
    assert "DENY" in out
    assert "purpose_not_allowed" in out
    data_token = token_for(client, demo.client_id, demo.client_secret)
    assert (
        client.get(
            "/v1/admin/explain?client=demo&dataset=residents", headers=bearer(data_token)
        ).status_code
        == 403
    )


@pytest.mark.store_independent
def test_example_policies_pass_their_tests(demo: Demo, capsys: pytest.CaptureFixture[str]) -> None:
    """`gateway policy test` passes on the shipped example policies (values checked on data)."""
    code = main(["policy", "test", "--home", str(demo.home)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "10 passed, 0 failed" in out


@pytest.mark.store_independent
def test_policy_test_failure_is_reported(demo: Demo, capsys: pytest.CaptureFixture[str]) -> None:
    """A case that no longer holds fails with what was expected and what happened; exit 1."""
    cases = demo.home / "policies" / "tests" / "demo.yaml"
    cases.write_text(
        cases.read_text().replace("reason: purpose_not_allowed", "reason: outside_validity")
    )
    code = main(["policy", "test", "--home", str(demo.home)])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL" in out
    assert "expected reason 'outside_validity', got 'purpose_not_allowed'" in out


# --- reload ---------------------------------------------------------------------------------


def reload(client: TestClient, admin: str) -> Any:
    return client.post("/v1/admin/reload", headers=bearer(admin))


def test_bad_edit_keeps_the_last_good_set(client: TestClient, demo: Demo, token: str) -> None:
    """A broken file, or a valid one whose policy tests fail, never becomes active; the status
    names the error; the rejection is logged once."""
    admin = admin_token(client, demo)
    before = client.get("/v1/admin/status", headers=bearer(admin)).json()["policy"]["active"]
    path = demo.home / "policies" / "residents.yaml"
    good_text = path.read_text()
    assert "transform: mask, preset: credit_code" in good_text
    path.write_text(good_text.replace("transform: mask, preset: credit_code", "transform: maks"))
    response = reload(client, admin)
    assert response.status_code == 422
    status = response.json()["policy"]
    assert status["active"] == before
    assert "unknown transform 'maks'" in status["last_error"]
    assert (
        client.get(f"{ROWS}?purpose=statistics&_size=1", headers=bearer(token)).status_code == 200
    )
    # Valid YAML, but it breaks a policy test (statistics no longer allowed):
    path.write_text(good_text.replace("purposes: [statistics]", "purposes: [census]"))
    response = reload(client, admin)
    assert response.status_code == 422
    assert "policy tests failed" in response.json()["policy"]["last_error"]
    assert response.json()["policy"]["active"] == before
    rejected = [e for e in entries(demo) if e.get("action") == "policy.rejected"]
    assert len(rejected) == 2
    assert all(e["active"] == before for e in rejected)


def test_good_edit_goes_live_and_is_logged(client: TestClient, demo: Demo, token: str) -> None:
    """A valid edit that passes the tests replaces the set at once; one audit entry records the
    old and new hash and the file changed; later calls name the new hash."""
    admin = admin_token(client, demo)
    before = client.get("/v1/admin/status", headers=bearer(admin)).json()["policy"]["active"]
    path = demo.home / "policies" / "residents.yaml"
    path.write_text(path.read_text().replace("rows_per_request: 500", "rows_per_request: 400"))
    response = reload(client, admin)
    assert response.status_code == 200
    after = response.json()["policy"]["active"]
    assert after != before
    logged = [e for e in entries(demo) if e.get("action") == "policy.reload"]
    # The set the gateway started with went live once, logged once (trigger "start").
    started = [e for e in logged if e.get("trigger") == "start"]
    assert len(started) == 1
    assert started[0]["new"] == before
    logged = [e for e in logged if e.get("trigger") != "start"]
    assert len(logged) == 1
    assert (logged[0]["old"], logged[0]["new"], logged[0]["files"]) == (
        before,
        after,
        ["residents.yaml"],
    )
    page = client.get(f"{ROWS}?purpose=statistics&_size=450", headers=bearer(token))
    assert page.status_code == 400  # the new limit applies
    assert entries(demo)[-1]["policy"] == after


def test_reload_picks_up_file_changes_by_itself(demo: Demo) -> None:
    """Without any call, an edited file is noticed (polling) and goes live: the swap is logged
    by the watcher's own thread, and status then names the new set. (The directory is looked
    at every 0.05 s here instead of every 2 s: what is tested is that it is looked at.)"""
    app = create_app(demo.settings, policy_poll_seconds=0.05)
    with TestClient(app, base_url=BASE) as client:
        admin = admin_token(client, demo)
        before = client.get("/v1/admin/status", headers=bearer(admin)).json()["policy"]["active"]
        audit = AuditCapture(demo.settings.audit_database)
        path = demo.home / "policies" / "enterprise_registry.yaml"
        path.write_text(path.read_text().replace("rows_per_day: 200000", "rows_per_day: 150000"))
        logged = audit.wait_for(lambda new: any(e.get("action") == "policy.reload" for e in new))
        (reload,) = [e for e in logged if e.get("action") == "policy.reload"]
        assert (reload["old"], reload["files"]) == (before, ["enterprise_registry.yaml"])
        active = client.get("/v1/admin/status", headers=bearer(admin)).json()["policy"]["active"]
    assert active != before
    assert active == reload["new"]


def test_status_shape(client: TestClient, demo: Demo) -> None:
    """GET /v1/admin/status: active hash, load time, files, last error; and the audit state."""
    body = client.get("/v1/admin/status", headers=bearer(admin_token(client, demo))).json()
    assert set(body["policy"]) >= {"active", "loaded_at", "files", "last_error"}
    assert body["policy"]["files"] == ["enterprise_registry.yaml", "residents.yaml"]
    assert body["audit"]["halted"] is None
    json.dumps(body)


def test_repository_policy_tests_are_the_packaged_ones() -> None:
    """policies/tests in the repository is the packaged demo test set."""
    repo = REPO / "policies" / "tests"
    from gateway.demo import POLICY_DIR

    assert (repo / "demo.yaml").read_bytes() == (POLICY_DIR / "tests" / "demo.yaml").read_bytes()
