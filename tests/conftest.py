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
from gateway.settings import Settings
from gateway.workspace import init_workspace

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
def demo(template_home: Path, tmp_path: Path) -> Demo:
    """A fresh copy of the demo workspace for one test (its own log, registry and keys)."""
    home = tmp_path / "ws"
    shutil.copytree(template_home, home, symlinks=True)
    creds = json.loads((home / "demo-client.json").read_text())
    return Demo(Settings(home=home, public_url=BASE), creds["client_id"], creds["client_secret"])


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
