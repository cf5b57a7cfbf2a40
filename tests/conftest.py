"""Shared fixtures: a real demo workspace (keys, data, policies, client) and an in-process app."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.audit.signing import key_id, load_public_key
from gateway.runtime.migrate import migrate
from gateway.settings import Settings
from gateway.workspace import init_workspace
from tests.pgserver import create_database, drop_database

TEST_ROWS = 2000
BASE = "https://testserver"


@dataclass(frozen=True)
class Demo:
    settings: Settings
    client_id: str
    client_secret: str

    @property
    def home(self) -> Path:
        return self.settings.home


@pytest.fixture(scope="session")
def template_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("template") / "ws"
    init_workspace(Settings(home=home, public_url=BASE), demo=True, rows=TEST_ROWS)
    return home


@pytest.fixture
def demo(request: pytest.FixtureRequest, template_home: Path, tmp_path: Path) -> Iterator[Demo]:
    """A fresh copy of the demo workspace for one test (its own log, registry and keys). On the
    SQLite default store, or, where a module parametrizes `demo` with "postgresql", on a new
    PostgreSQL database the workspace's state was migrated to (skipped without a server)."""
    home = tmp_path / "ws"
    shutil.copytree(template_home, home, symlinks=True)
    creds = json.loads((home / "demo-client.json").read_text())
    settings = Settings(home=home, public_url=BASE)
    if getattr(request, "param", "sqlite") == "sqlite":
        yield Demo(settings, creds["client_id"], creds["client_secret"])
        return
    url, name = create_database()
    try:
        target = settings.with_overrides(store=url)
        migrate(
            settings.audit_database,
            settings.registry_database,
            target.audit_database,
            target.registry_database,
            lambda database: None,
        )
        yield Demo(target, creds["client_id"], creds["client_secret"])
    finally:
        drop_database(name)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A new, empty PostgreSQL database for one test (skips without a server)."""
    url, name = create_database()
    try:
        yield url
    finally:
        drop_database(name)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A module with `BOTH_STORES = True` runs each test that uses `demo` on both stores."""
    if getattr(metafunc.module, "BOTH_STORES", False) and "demo" in metafunc.fixturenames:
        metafunc.parametrize("demo", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture
def client(demo: Demo) -> Iterator[TestClient]:
    with TestClient(create_app(demo.settings), base_url=BASE) as test_client:
        yield test_client


def token_for(client: TestClient, client_id: str, secret: str) -> str:
    response = client.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


@pytest.fixture
def token(client: TestClient, demo: Demo) -> str:
    return token_for(client, demo.client_id, demo.client_secret)


def audit_keys(home: Path) -> dict[str, Ed25519PublicKey]:
    public = load_public_key(home / "keys" / "audit-ed25519.pub")
    return {key_id(public): public}


def services_of(client: TestClient) -> Any:
    """The Services of the app behind a TestClient (through the middleware layers)."""
    app: Any = client.app
    while not hasattr(app, "state"):
        app = app.app
    return app.state.services
