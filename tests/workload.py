"""A known workload on a real app: several clients, grants, refusals, a rate limit and a policy
edit made through the admin API. Tests compare every query, usage and history figure with
counts computed independently from the raw entries it leaves."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.audit.reader import read_entries
from gateway.auth.registry import ClientRegistry
from gateway.settings import Settings
from tests.conftest import BASE, Demo, token_for

# A grant for a second data client, added while the gateway runs (a policy edit).
ACME_GRANT = """
  - id: acme-enterprise
    clients: [acme]
    purposes: [market-analysis]
    valid: {from: 2026-01-01, until: 2028-12-31}
    limits: {rows_per_request: 100}
    columns:
      industry: keep
      province: keep
"""
ACME_RATE = 3  # requests per minute: its ninth call within a minute is refused


@dataclass(frozen=True)
class Workload:
    settings: Settings

    @property
    def home(self) -> Path:
        return self.settings.home


def _register(settings: Settings, client_id: str, scopes: tuple[str, ...], **limits: Any) -> str:
    registry = ClientRegistry(settings.registry_database)
    try:
        _, secret = registry.add(client_id, scopes=scopes, **limits)
    finally:
        registry.close()
    assert secret is not None
    return secret


def run_workload(demo: Demo) -> Workload:
    """Drive the app through the workload."""
    settings = demo.settings
    acme = _register(settings, "acme", ("datasets:read",), rate_per_min=ACME_RATE)
    ops = _register(settings, "ops", ("admin",))
    auditor = _register(settings, "auditor", ("audit:read",))
    _drive(settings, demo, acme, ops, auditor)
    return Workload(settings)


def _drive(settings: Settings, demo: Demo, acme: str, ops: str, auditor: str) -> None:
    # The edit below goes live through the admin API, not the file watcher, which would race it
    # and log the change as the gateway's own: the watcher looks once an hour here (in place of
    # the GATEWAY_POLICY_POLL_SECONDS setting's 2 s).
    app = create_app(settings, policy_poll_seconds=3600.0)
    with TestClient(app, base_url=BASE) as client:
        demo_token = token_for(client, demo.client_id, demo.client_secret)

        def get(token: str, url: str, **headers: str) -> int:
            response = client.get(url, headers={"Authorization": f"Bearer {token}", **headers})
            return response.status_code

        rows = "/v1/datasets/residents/rows"
        assert get(demo_token, f"{rows}?purpose=statistics&_size=50") == 200
        assert get(demo_token, f"{rows}?purpose=statistics&_size=30") == 200
        assert get(demo_token, f"{rows}?_size=20", **{"Data-Purpose": "planning"}) == 200
        assert (
            get(demo_token, "/v1/datasets/enterprise_registry/rows?purpose=market-analysis&_size=7")
            == 200
        )
        assert get(demo_token, f"{rows}?purpose=research") == 403  # the grant has expired
        assert get(demo_token, f"{rows}") == 400  # no purpose among several grants
        assert get(demo_token, f"{rows}?purpose=13812345678") == 403  # not a declared purpose
        assert get(demo_token, "/v1/datasets/no_such_thing/rows?purpose=statistics") == 404
        assert client.get("/v1/datasets").status_code == 401
        assert get(demo_token, "/v1/datasets") == 200
        acme_token = token_for(client, "acme", acme)
        statuses = [get(acme_token, f"{rows}?purpose=statistics") for _ in range(ACME_RATE * 2 + 2)]
        assert 429 in statuses
        assert set(statuses) <= {404, 429}
        before = json.loads(
            client.get("/v1/datasets", headers={"Authorization": f"Bearer {demo_token}"}).text
        )["policy"]
        # The edit: a grant for acme, made live through the admin API by the client `ops`.
        policy = settings.workspace.policies / "enterprise_registry.yaml"
        policy.write_bytes(policy.read_bytes().rstrip(b"\n") + b"\n" + ACME_GRANT.encode())
        ops_token = token_for(client, "ops", ops)
        reload = client.post("/v1/admin/reload", headers={"Authorization": f"Bearer {ops_token}"})
        assert reload.status_code == 200, reload.text
        after = reload.json()["policy"]["active"]
        assert after != before
        acme_token = token_for(client, "acme", acme)  # may be refused by the rate: retry below
        path = "/v1/datasets/enterprise_registry/rows?purpose=market-analysis&_size=5"
        assert get(acme_token, path) in (200, 429)
        auditor_token = token_for(client, "auditor", auditor)
        assert get(auditor_token, "/v1/audit/entries?limit=5") == 200


def raw_entries(settings: Settings) -> list[dict[str, Any]]:
    """Every entry as the log holds it, decoded with nothing but json (the independent side)."""
    _, stored = read_entries(settings.audit_database)
    return [json.loads(e.line) for e in stored]


def make_template(template_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The workload, run on a copy of the demo workspace (once per module: it takes seconds)."""
    home = tmp_path_factory.mktemp("workload") / "ws"
    shutil.copytree(template_home, home, symlinks=True)
    creds = json.loads((home / "demo-client.json").read_text())
    run_workload(Demo(Settings(home=home, public_url=BASE), "demo", creds["client_secret"]))
    return home


def copy_workload(template: Path, tmp_path: Path) -> Workload:
    """A private copy of the workload's workspace (a test may tamper with it)."""
    home = tmp_path / "ws"
    shutil.copytree(template, home, symlinks=True)
    return Workload(Settings(home=home, public_url=BASE))


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the `gateway` command in-process; its exit code, stdout and stderr."""
    from gateway.cli import main

    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err
