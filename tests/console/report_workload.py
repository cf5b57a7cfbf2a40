"""A known workload for the report and console tests: calls at chosen times (the audit log's
clock is replaced by a test clock), refusals of several kinds, a night, a spike, a new client
whose daily quota runs out, a policy change and a rejected one, and an audit key rotation."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from gateway.audit.entry import decode_entry
from gateway.audit.events import client_changed
from gateway.audit.reader import read_entries
from gateway.auth.registry import ClientRegistry
from gateway.workspace import actor, admin_event
from tests.conftest import Demo, token_for

CST = dt.timezone(dt.timedelta(hours=8))
HOSTILE = "</pre><script>alert(1)</script><img src=https://evil.example/x>"


@dataclass
class Clock:
    """Milliseconds since the epoch, moved by the test; the audit log stamps entries with it."""

    now: int

    def __call__(self) -> int:
        self.now += 1  # a millisecond per entry: distinct, increasing timestamps
        return self.now

    def at(self, moment: dt.datetime) -> None:
        self.now = max(self.now, int(moment.timestamp() * 1000))


@dataclass(frozen=True)
class Workload:
    day: dt.datetime  # 00:00 CST of the workload's first day
    analyst_secret: str


def install_clock(monkeypatch: pytest.MonkeyPatch) -> tuple[Clock, dt.datetime]:
    """A test clock for the audit log, starting after every entry already written (timestamps
    never go back), at 00:00 CST of the day after tomorrow."""
    real = dt.datetime.now(CST)
    day = dt.datetime(real.year, real.month, real.day, tzinfo=CST) + dt.timedelta(days=2)
    clock = Clock(int(day.timestamp() * 1000))
    monkeypatch.setattr("gateway.audit.writer.now_ms", clock)
    return clock, day


def reloader_of(client: TestClient) -> Any:
    app: Any = client.app
    while not hasattr(app, "state"):
        app = app.app
    return app.state.reloader


def run_workload(client: TestClient, demo: Demo, clock: Clock, day: dt.datetime) -> Workload:
    def at(hour: int, minute: int = 0, days: int = 0) -> None:
        clock.at(day + dt.timedelta(days=days, hours=hour, minutes=minute))

    def rows(token: str, dataset: str, purpose: str, size: int) -> int:
        response = client.get(
            f"/v1/datasets/{dataset}/rows",
            params={"purpose": purpose, "_size": str(size)},
            headers={"Authorization": f"Bearer {token}"},
        )
        return response.status_code

    # Day 1, 09:xx: a token, a listing, 5 + 2 pages, 3 unauthenticated calls, one 404 (13 calls).
    at(9)
    token = token_for(client, demo.client_id, demo.client_secret)
    bearer = {"Authorization": f"Bearer {token}"}
    assert client.get("/v1/datasets", headers=bearer).status_code == 200
    for _ in range(5):
        assert rows(token, "residents", "statistics", 20) == 200
    for _ in range(2):
        assert rows(token, "enterprise_registry", "market-analysis", 50) == 200
    at(9, 30)
    for _ in range(3):
        assert client.get("/v1/datasets").status_code == 401
    assert client.get("/v1/datasets/nope", headers=bearer).status_code == 404
    # Day 1, 23:30: three pages at night.
    at(23, 30)
    for _ in range(3):
        assert rows(token, "residents", "statistics", 10) == 200
    # Day 2, 10:xx: a spike of 40 listings.
    at(10, days=1)
    for _ in range(40):
        assert client.get("/v1/datasets", headers=bearer).status_code == 200
    # Day 2, 14:xx: a new client with a 30-row daily quota, granted residents by a policy edit.
    at(14, days=1)
    registry = ClientRegistry(demo.settings.registry_database)
    try:
        _, secret = registry.add("analyst", ("datasets:read",), rows_per_day=30)
    finally:
        registry.close()
    assert secret is not None
    # The actor is the OS user name (LOGNAME first): text an admin controls, shown as text.
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LOGNAME", HOSTILE)
        admin_event(demo.settings, client_changed("client.add", "analyst", actor()))
    policy = demo.home / "policies" / "residents.yaml"
    text = policy.read_text()
    policy.write_text(text.replace("clients: [demo]", "clients: [demo, analyst]", 1))
    assert reloader_of(client).reload("test").last_error is None
    analyst = token_for(client, "analyst", secret)
    assert rows(analyst, "residents", "statistics", 20) == 200
    assert rows(analyst, "residents", "statistics", 20) == 429
    assert rows(analyst, "residents", "statistics", 20) == 429
    # Day 2, 15:00: a broken policy edit (hostile text in it) is rejected and logged.
    at(15, days=1)
    bad = demo.home / "policies" / "zz-broken.yaml"
    bad.write_text(f"dataset: [{HOSTILE}\n")
    assert reloader_of(client).reload("test").last_error is not None
    bad.unlink()
    return Workload(day, secret)


def raw_entries(home: Path) -> list[dict[str, Any]]:
    """Every entry of the workspace's log, decoded straight from the stored lines."""
    _, stored = read_entries(home / "audit" / "log.sqlite3")
    return [decode_entry(s.line) for s in stored]


def within(since: int | None, until: int | None) -> Callable[[dict[str, Any]], bool]:
    return lambda e: (since is None or e["ts"] >= since) and (until is None or e["ts"] < until)


def dump(entries: list[dict[str, Any]]) -> str:
    return "\n".join(json.dumps(e, ensure_ascii=False) for e in entries)
