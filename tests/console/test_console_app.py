"""The console in-process (the browser tests are in test_console.py): sessions, headers, and a
log that does not verify."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.routing import Route
from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.auth.registry import ClientRegistry
from tests.conftest import BASE, Demo
from tests.console.report_workload import raw_entries

SAME = {"Sec-Fetch-Site": "same-origin"}
PAGES = ["/console", "/console/clients", "/console/grants", "/console/usage",
         "/console/refusals", "/console/policy"]  # fmt: skip


@pytest.fixture
def console(demo: Demo) -> Iterator[TestClient]:
    registry = ClientRegistry(demo.settings.registry_database)
    try:
        _, secret = registry.add("auditor", ("audit:read",))
    finally:
        registry.close()
    with TestClient(create_app(demo.settings), base_url=BASE) as client:
        signed = client.post(
            "/console/sign-in",
            data={"client_id": "auditor", "client_secret": secret},
            headers=SAME,
            follow_redirects=False,
        )
        assert signed.status_code == 303
        yield client


def test_every_page_is_html_under_the_strict_policy(console: TestClient) -> None:
    """Each page answers 200 with the CSP (no script source at all) and no-store."""
    for path in PAGES:
        page = console.get(path)
        assert page.status_code == 200, path
        assert page.headers["content-type"].startswith("text/html")
        csp = page.headers["content-security-policy"]
        assert "default-src 'none'" in csp
        assert "script-src" not in csp
        assert "unsafe" not in csp
        assert page.headers["cache-control"] == "no-store"
        assert "<script" not in page.text


def test_signed_out_pages_show_the_form_and_name_no_figures(demo: Demo) -> None:
    """Without a session each page is a 401 sign-in form: it shows no client, policy hash or
    log figure."""
    with TestClient(create_app(demo.settings), base_url=BASE) as client:
        for path in PAGES:
            page = client.get(path)
            assert page.status_code == 401
            assert 'action="/console/sign-in"' in page.text
            assert "demo" not in page.text
    entries = [e for e in raw_entries(demo.home) if e.get("route") in PAGES]
    assert [(e["decision"], e["reason"]) for e in entries] == [("deny", "unauthenticated")] * 6


def test_no_figures_from_a_log_that_does_not_verify(console: TestClient, demo: Demo) -> None:
    """A tampered log: the pages that count from it refuse (and say why); grants, which do not
    read the log, still show."""
    with sqlite3.connect(demo.home / "audit" / "log.sqlite3") as conn:
        conn.execute(
            "UPDATE entries SET line = replace(line, ?, ?) "
            "WHERE idx = (SELECT MAX(idx) FROM entries)",
            ('"decision":"allow"', '"decision":"none"'),
        )
    page = console.get("/console/usage")
    assert page.status_code == 500
    assert "does not verify" in page.text
    assert console.get("/console/grants").status_code == 200
    assert raw_entries(demo.home)[-2]["reason"] == "log_not_verified"


def test_each_console_route_labels_its_entry(demo: Demo) -> None:
    """Promise 6: every call to a console route is one entry naming that route's path, whatever
    the outcome (signed out here: 401, 403 for a post without a same-origin header)."""
    with TestClient(create_app(demo.settings), base_url=BASE) as client:
        app: Any = client.app
        while not hasattr(app, "router"):
            app = app.app
        routes = [
            (method, route.path)
            for route in app.router.routes
            if isinstance(route, Route) and route.path.startswith("/console")
            for method in sorted(route.methods or ())
        ]
        assert len(routes) == 9
        for method, path in routes:
            before = len(raw_entries(demo.home))
            response = client.request(method, path)
            assert response.status_code in (200, 401, 403), (method, path)
            log = raw_entries(demo.home)
            assert len(log) == before + 1
            assert log[-1]["route"] == path


def test_sign_in_guessing_is_throttled_like_the_token_endpoint(demo: Demo) -> None:
    """Promise 9: the sign-in form is the token endpoint's client authentication, throttle
    included: past the failure limit it answers 429 with Retry-After, audited, no cookie."""
    settings = dataclasses.replace(demo.settings, auth_fail_per_client=2)
    with TestClient(create_app(settings), base_url=BASE) as client:
        answers = [
            client.post(
                "/console/sign-in",
                data={"client_id": "demo", "client_secret": "wrong-" + "x" * 30},
                headers=SAME,
            )
            for _ in range(3)
        ]
    assert [a.status_code for a in answers] == [401, 401, 429]
    assert int(answers[-1].headers["retry-after"]) > 0
    assert all("set-cookie" not in a.headers for a in answers)
    entries = [e for e in raw_entries(demo.home) if e.get("route") == "/console/sign-in"]
    assert [e["reason"] for e in entries] == ["invalid_client", "invalid_client", "auth_throttled"]
