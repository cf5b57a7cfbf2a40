"""Shared fixtures: a real demo workspace (keys, data, policies, client) and an in-process app."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hypothesis
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.audit.signing import key_id, load_public_key
from gateway.clock import Clock
from gateway.runtime.migrate import migrate
from gateway.runtime.services import build_services
from gateway.settings import Settings
from gateway.workspace import init_workspace
from tests.costs import load_costs
from tests.doubles import FakeClock
from tests.kdf import cheap_new_secrets, remember_derivations
from tests.pgserver import Databases
from tests.servers import DemoWorkspaces

TEST_ROWS = 2000
BASE = "https://testserver"

if TYPE_CHECKING:
    from tests.workload import Workload


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
    """The demo workspace every `demo` copies, with the demo client's views already stored."""
    home = tmp_path_factory.mktemp("template") / "ws"
    init_workspace(Settings(home=home, public_url=BASE), demo=True, rows=TEST_ROWS)
    store_demo_views(home, tmp_path_factory.mktemp("template-views") / "ws")
    return home


def store_demo_views(home: Path, scratch: Path) -> None:
    """Put the demo client's released views into `home`'s view store (state/views), as a
    gateway that had served each of its grants once would have: computing one costs more than
    all the rest of most tests, and every test would compute the same ones again. They are made
    in a copy, so the workspace's log, registry and policy history stay as `init` left them. A
    stored view is used only under its exact key (data, policy, secret, client, code version),
    so a test that changes any of these gets a view computed afresh; tests of the view store
    itself start without them (tests/privacy/test_viewstore.py)."""
    shutil.copytree(home, scratch, symlinks=True)
    creds = json.loads((scratch / "demo-client.json").read_text())
    with TestClient(create_app(Settings(home=scratch, public_url=BASE)), base_url=BASE) as client:
        token = token_for(client, creds["client_id"], creds["client_secret"])
        auth = {"Authorization": f"Bearer {token}"}
        for dataset in client.get("/v1/datasets", headers=auth).json()["datasets"]:
            for grant in dataset["grants"]:
                url = f"/v1/datasets/{dataset['id']}/rows"
                params = {"purpose": grant["purposes"][0], "_size": "1"}
                response = client.get(url, params=params, headers=auth)
                assert response.status_code == 200, response.text
    shutil.copytree(scratch / "state" / "views", home / "state" / "views", dirs_exist_ok=True)


@pytest.fixture(scope="session")
def demo_workspaces(tmp_path_factory: pytest.TempPathFactory) -> DemoWorkspaces:
    """`gateway init --demo --rows N` once per row count for the session; tests get copies
    (tests/servers.py)."""
    return DemoWorkspaces(tmp_path_factory.mktemp("demo-workspaces"))


@pytest.fixture(scope="session")
def pg_databases() -> Iterator[Databases]:
    """New, empty PostgreSQL databases, recycled between tests (tests/pgserver.py)."""
    databases = Databases()
    yield databases
    databases.close()


@pytest.fixture
def demo(request: pytest.FixtureRequest, template_home: Path, tmp_path: Path) -> Iterator[Demo]:
    """A fresh copy of the demo workspace for one test (its own log, registry and keys). On the
    SQLite default store, or, where a module parametrizes `demo` with "postgresql", on a new
    PostgreSQL database the workspace's state was migrated to (skipped without a server).

    The in-process app writes its audit entries with the writer thread (GATEWAY_AUDIT_WRITER
    =thread) unless the module sets `AUDIT_WRITER = "process"`: spawning the writer process
    costs ~0.17 s of CPU per app, a third of a typical API test, and these tests' subject is
    the call, not who signs its entry. The writer process is what `gateway serve` ships, so
    every test that serves over TLS (tests/e2e, tests/client, the served tests of
    tests/api/test_hostile_http.py, tests/store/test_multihost.py,
    tests/audit/test_writer_process_served.py) runs on it, as do tests/api/test_api.py and
    tests/audit/test_audit_api.py; tests/audit/test_writer_process.py tests the writer process
    itself and checks that both writers store the same entries for the same events."""
    home = tmp_path / "ws"
    shutil.copytree(template_home, home, symlinks=True)
    creds = json.loads((home / "demo-client.json").read_text())
    writer = getattr(request.module, "AUDIT_WRITER", "thread")
    settings = Settings(home=home, public_url=BASE, audit_writer=writer)
    if getattr(request, "param", "sqlite") == "sqlite":
        yield Demo(settings, creds["client_id"], creds["client_secret"])
        return
    databases: Databases = request.getfixturevalue("pg_databases")
    url, name = databases.acquire()
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
        databases.release(name)


@pytest.fixture
def pg_url(pg_databases: Databases) -> Iterator[str]:
    """A new, empty PostgreSQL database for one test (skips without a server)."""
    url, name = pg_databases.acquire()
    try:
        yield url
    finally:
        pg_databases.release(name)


def pytest_configure(config: pytest.Config) -> None:
    """No timing assertions in tests: hypothesis's per-example deadline (200 ms unless a test
    sets its own) fails correct tests on a loaded machine or beside a second xdist worker. Every
    example still runs; only the stopwatch is off. And scrypt answers for a (secret, salt) it
    has already derived from memory, and hashes the secrets tests register at a lower cost
    (tests/kdf.py)."""
    hypothesis.settings.register_profile("gateway", deadline=None)
    hypothesis.settings.load_profile("gateway")
    remember_derivations()  # scrypt of the same secret and salt, once per process (tests/kdf.py)
    cheap_new_secrets()  # secrets registered here hashed at a lower cost (tests/kdf.py)


@pytest.hookimpl(trylast=True)  # after `-m` has deselected: deal only what runs
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Order the test modules by their recorded cost (tests/costs.json; a module not listed
    there counts as a median one), each module's tests kept together and in order
    (module-scoped fixtures are made once). `make test` runs N processes (pytest-xdist,
    `--dist worksteal`): each gets a contiguous share of the list, cut by number of tests, works
    from the front of it, and one that runs out takes over the back of what another has left.
    The modules are dealt, most costly first, into N parts of about equal recorded cost, each
    part most costly first, and the parts are laid end to end. The shares are cut by count, not
    by cost, so this is a heuristic: long tests (real servers, browsers, installs, large
    property tests) are spread over the list instead of bunched in one share, and what is left
    to take over at the end is mostly short ones. Measured: 257 s with two halves and two
    processes, 217 s with three processes, 162-188 s after this session's other changes."""
    costs = load_costs()
    known = sorted(costs.values())
    median = known[len(known) // 2] if known else 0.0
    parts_wanted = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))

    def module(item: pytest.Item) -> str:
        return item.nodeid.split("::", 1)[0]

    modules = list(dict.fromkeys(module(item) for item in items))
    parts: list[list[str]] = [[] for _ in range(parts_wanted)]
    totals = [0.0] * parts_wanted
    for name in sorted(modules, key=lambda m: costs.get(m, median), reverse=True):
        part = totals.index(min(totals))
        parts[part].append(name)
        totals[part] += costs.get(name, median)
    rank = {name: n for n, name in enumerate(name for part in parts for name in part)}
    items.sort(key=lambda item: rank[module(item)])


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A module with `BOTH_STORES = True` runs each test that uses `demo` on both stores, except
    a test marked `store_independent`: its subject (parameter parsing, views, rendering) never
    depends on the store, which it touches only as every call does; it runs on SQLite."""
    if (
        getattr(metafunc.module, "BOTH_STORES", False)
        and "demo" in metafunc.fixturenames
        and metafunc.definition.get_closest_marker("store_independent") is None
    ):
        metafunc.parametrize("demo", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture
def client(demo: Demo) -> Iterator[TestClient]:
    with TestClient(create_app(demo.settings), base_url=BASE) as test_client:
        yield test_client


@pytest.fixture
def clock() -> FakeClock:
    """A clock the test moves by hand (tests/doubles.py), at the start of a calendar minute."""
    return FakeClock()


def client_with(demo: Demo, clock: Clock) -> TestClient:
    """A TestClient of the demo gateway whose time-counting parts read `clock`."""
    return TestClient(
        create_app(demo.settings, build_services(demo.settings, clock)), base_url=BASE
    )


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


@pytest.fixture(scope="module")
def workload_template(template_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace after the known audit workload of tests/workload.py, made once per module."""
    from tests.workload import make_template

    return make_template(template_home, tmp_path_factory)


@pytest.fixture
def workload(workload_template: Path, tmp_path: Path) -> Workload:
    """A private copy of the workload's workspace."""
    from tests.workload import copy_workload

    return copy_workload(workload_template, tmp_path)
