"""Start-up cost and the policy watcher's interval: a serving process builds its app and answers
its first call without importing the libraries only some calls need (pandas, NumPy, Arrow,
networkx, OpenDP, faker), and GATEWAY_POLICY_POLL_SECONDS is read strictly."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from gateway.errors import ConfigError
from gateway.settings import Settings
from tests.conftest import Demo
from tests.paths import REPO

LAZY = ("pandas", "numpy", "pyarrow", "networkx", "opendp", "faker")

BUILD = """
import json, sys
from pathlib import Path
import uvicorn
from starlette.testclient import TestClient
from gateway.app import create_app
from gateway.cli.serve import http_protocol
from gateway.policy.files import load_policies
from gateway.settings import Settings
from gateway.workspace import exposure_warning
settings = Settings(home=Path(sys.argv[1]))
load_policies(settings.workspace.policies, settings.home)
exposure_warning(settings.workspace)
http_protocol(settings.request_seconds)
with TestClient(create_app(settings), base_url="https://testserver") as client:
    assert client.get("/healthz").status_code == 200
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
"""


def test_building_the_served_app_imports_no_library_only_some_calls_need(demo: Demo) -> None:
    """What `gateway serve` does up to its first answer (the serve command's module, the HTTP
    protocol, create_app on a demo workspace, its start-up and a /healthz call) imports neither
    pandas, NumPy, Arrow, networkx, OpenDP nor faker: each costs start-up CPU in every worker
    and test server, and loads at its first use instead (pandas and NumPy at the first view)."""
    done = subprocess.run(
        [sys.executable, "-c", BUILD, str(demo.home)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        cwd=REPO,
    )
    loaded = set(json.loads(done.stdout.splitlines()[-1]))
    assert "starlette" in loaded  # the probe did build the app
    assert loaded.isdisjoint(LAZY), sorted(loaded & set(LAZY))


def test_policy_poll_seconds_default_and_round_trip() -> None:
    """The default stays 2 s; a value read from GATEWAY_POLICY_POLL_SECONDS reaches worker
    processes unchanged through to_env."""
    assert Settings().policy_poll_seconds == 2.0
    read = Settings.from_env({"GATEWAY_POLICY_POLL_SECONDS": "0.25"})
    assert read.policy_poll_seconds == 0.25
    assert Settings.from_env(read.to_env()) == read
    assert Settings.from_env({"GATEWAY_POLICY_POLL_SECONDS": ""}).policy_poll_seconds == 2.0


@pytest.mark.parametrize(
    "raw",
    ["nan", "inf", "1e3", "1_0", "-1", "0", "0.01", "3601", "٣", "２", " 2", "2 ", "0x10", "."],
)
def test_policy_poll_seconds_refuses_what_is_not_a_sane_decimal(raw: str) -> None:
    """NaN, exponents, underscores, signs, Unicode digits, spaces, and intervals outside 0.05 to
    3600 s stop start-up with a message naming the variable (float() would take several)."""
    with pytest.raises(ConfigError, match="GATEWAY_POLICY_POLL_SECONDS"):
        Settings.from_env({"GATEWAY_POLICY_POLL_SECONDS": raw})


def test_policy_poll_seconds_is_checked_when_built_directly() -> None:
    """A Settings built in code (not from the environment) is held to the same range."""
    for value in (0.0, float("nan"), float("inf"), 1e9):
        with pytest.raises(ConfigError, match="GATEWAY_POLICY_POLL_SECONDS"):
            Settings(policy_poll_seconds=value)
