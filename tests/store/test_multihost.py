"""Issue 8: three gateway hosts (separate processes and workspaces sharing keys, policies, data
and one PostgreSQL store) behind a round-robin 'load balancer' produce ONE verifiable log with
one total order, count quotas exactly, honour a revocation everywhere within a second, and serve
byte-identical pages. Skips without a reachable PostgreSQL server."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from gateway.audit.reader import read_entries
from gateway.settings import Settings
from tests.pgserver import Databases
from tests.servers import Server, gateway, start_servers, stop_servers

pytestmark = pytest.mark.e2e

PUBLIC = "https://gateway.example"  # the URL behind the load balancer: the tokens' issuer
VALID = "/v1/datasets/enterprise_registry/rows?purpose=market-analysis&_size=5"
PAGE = "/v1/datasets/enterprise_registry/rows?purpose=market-analysis&_size=100&_sort=founded"
DENIED = "/v1/datasets/residents/rows?purpose=marketing"
QUOTA_PAGE = "/v1/datasets/enterprise_registry/rows?purpose=market-analysis&_size=10"
CALLS = 3000
QUOTA_ROWS = 1000  # the quota client's rows per day: 100 pages of 10


@pytest.fixture
def store_url(pg_databases: Databases) -> Iterator[str]:
    url, name = pg_databases.acquire()
    try:
        yield url
    finally:
        pg_databases.release(name)


@pytest.fixture
def hosts(tmp_path: Path, store_url: str) -> Iterator[list[Server]]:
    first = tmp_path / "host1"
    gateway("init", "--demo", "--rows", "2000", "--store", store_url, home=first)
    added = gateway(
        "clients",
        "add",
        "quota",
        "--rows-per-day",
        str(QUOTA_ROWS),
        "--store",
        store_url,
        home=first,
    )
    (first / "quota.secret").write_text(re.search(r"secret:\s*(\S+)", added.stdout)[1])  # type: ignore[index]
    policy = first / "policies" / "enterprise_registry.yaml"
    text = policy.read_text(encoding="utf-8")
    policy.unlink()  # may be a link into the package
    # The quota client shares the enterprise grant; the grant's per-minute limit is lifted so
    # the only limit in play is the quota client's daily rows (windows never split the test).
    text = text.replace("clients: [demo]", "clients: [demo, quota]", 1)
    text = text.replace(" requests_per_minute: 300,", "", 1)
    policy.write_text(text, encoding="utf-8")
    homes = [first]
    for n in (2, 3):  # the other hosts get a copy of the first one's keys, policies and data
        shutil.copytree(first, tmp_path / f"host{n}", symlinks=True)
        homes.append(tmp_path / f"host{n}")
    env = {
        "GATEWAY_STORE": store_url,
        "GATEWAY_PUBLIC_URL": PUBLIC,
        "GATEWAY_RATE_PER_MINUTE": "100000",
    }
    servers = start_servers(homes, env=env)
    try:
        yield servers
    finally:
        stop_servers(servers)


def token(client: httpx.Client, base: str, client_id: str, secret: str) -> str:
    response = client.post(
        f"{base}/oauth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def refused_everywhere(
    clients: list[httpx.Client], hosts: list[Server], bearer: str, by: float
) -> list[int]:
    """The status of a valid page call with `bearer` on every host, asked again every 50 ms
    until all three refuse it (401) or the monotonic time `by` has passed. A revocation or a
    disabled client is a row in the shared store, read again at least every CACHE_SECONDS: once
    a host refuses, it keeps refusing, so all three refusing before `by` is the promise kept by
    then (asking only once at `by` waited out the whole second)."""
    while True:
        statuses = [
            client.get(
                f"{server.base}{VALID}", headers={"Authorization": f"Bearer {bearer}"}
            ).status_code
            for client, server in zip(clients, hosts, strict=True)
        ]
        if statuses == [401, 401, 401] or time.monotonic() >= by:
            return statuses
        time.sleep(0.05)


def test_three_hosts_one_log(hosts: list[Server], store_url: str) -> None:
    home = hosts[0].home
    creds = json.loads((home / "demo-client.json").read_text())
    quota_secret = (home / "quota.secret").read_text()
    clients = [httpx.Client(verify=s.ca, timeout=30) for s in hosts]
    demo_token = token(clients[0], hosts[0].base, creds["client_id"], creds["client_secret"])
    quota_token = token(clients[1], hosts[1].base, "quota", quota_secret)
    database = Settings(home=home, store=store_url).audit_database

    def size() -> int:
        _, entries = read_entries(database)
        return sum(1 for _ in entries)

    before = size()

    # --- byte-identical views: the same page from every host -------------------------------
    page_hashes = set()
    for client, server in zip(clients, hosts, strict=True):
        response = client.get(
            f"{server.base}{PAGE}", headers={"Authorization": f"Bearer {demo_token}"}
        )
        assert response.status_code == 200
        page_hashes.add(hashlib.sha256(response.content).hexdigest())
    assert len(page_hashes) == 1, "hosts served different bytes for the same page"

    # --- 3,000 mixed calls, round-robin over the three hosts ------------------------------
    kinds = ["valid", "denied", "unauthenticated", "quota"]

    def call(n: int) -> tuple[str, int, int]:
        kind = kinds[n % 4]
        host = n % 3
        headers = {}
        url = VALID
        if kind in ("valid", "denied"):
            headers["Authorization"] = f"Bearer {demo_token}"
            url = VALID if kind == "valid" else DENIED
        elif kind == "quota":
            headers["Authorization"] = f"Bearer {quota_token}"
            url = QUOTA_PAGE
        response = clients[host].get(f"{hosts[host].base}{url}", headers=headers)
        receipt = response.headers["audit-receipt"]
        idx = int(re.search(r"idx=(\d+)", receipt)[1])  # type: ignore[index]
        return kind, response.status_code, idx

    with ThreadPoolExecutor(12) as pool:
        results = list(pool.map(call, range(CALLS - 3)))  # 3 page-hash calls made already

    outcomes = Counter((kind, status) for kind, status, _ in results)
    quota_calls = sum(1 for k, _, _ in results if k == "quota")
    assert outcomes[("valid", 200)] == sum(1 for k, _, _ in results if k == "valid")
    assert outcomes[("denied", 403)] == sum(1 for k, _, _ in results if k == "denied")
    assert outcomes[("unauthenticated", 401)] == sum(
        1 for k, _, _ in results if k == "unauthenticated"
    )
    # Exact across hosts: 100 pages of 10 rows fit the daily quota, every other call is 429.
    assert outcomes[("quota", 200)] == QUOTA_ROWS // 10
    assert outcomes[("quota", 429)] == quota_calls - QUOTA_ROWS // 10

    # --- one log: exactly one entry per call, one total order, verified --------------------
    indices = sorted(idx for _, _, idx in results)
    assert len(set(indices)) == len(indices) == CALLS - 3
    assert size() - before == CALLS
    assert indices[-1] < before + CALLS
    verified = gateway("audit", "verify", "--store", store_url, home=hosts[2].home)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert f"OK: {before + CALLS} entries verified" in verified.stdout

    # --- a revocation at one host is honoured by all three within one second ---------------
    revoked = clients[0].post(
        f"{hosts[0].base}/oauth/revoke",
        data={"token": demo_token},
        auth=(creds["client_id"], creds["client_secret"]),
    )
    assert revoked.status_code == 200
    revoked_at = time.monotonic()
    first = clients[0].get(
        f"{hosts[0].base}{VALID}", headers={"Authorization": f"Bearer {demo_token}"}
    )
    assert first.status_code == 401  # the host that revoked: at once
    # the promise: within one second
    assert refused_everywhere(clients, hosts, demo_token, by=revoked_at + 1.0) == [401, 401, 401]

    # --- disabling a client (an admin command on any machine) stops it on every host -------
    fresh = token(clients[2], hosts[2].base, "quota", quota_secret)
    gateway("clients", "disable", "quota", "--store", store_url, home=hosts[1].home)
    disabled_at = time.monotonic()
    assert refused_everywhere(clients, hosts, fresh, by=disabled_at + 1.0) == [401, 401, 401]
    for client in clients:
        client.close()
