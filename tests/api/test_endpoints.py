"""Each endpoint is declared once (gateway/api/endpoints.py): the mounted routes, the audit
entries' route labels and the OpenAPI document all come from the declarations, so none can drift
from another (promise 6: every call's entry names the route that answered it)."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient

from gateway.api.endpoints import endpoint, endpoints_in
from gateway.api.openapi import build_openapi
from gateway.api.routes import ENDPOINTS
from tests.api.test_api import bearer, entries
from tests.conftest import BASE, Demo


def _mounted(client: TestClient) -> set[tuple[str, str]]:
    """The API's mounted routes (the console's HTML pages under /console are not API endpoints;
    tests/console/test_console_app.py checks their route labels)."""
    app: Any = client.app
    while not hasattr(app, "router"):
        app = app.app
    return {
        (method, route.path)
        for route in app.router.routes
        if isinstance(route, Route) and not route.path.startswith("/console")
        for method in route.methods or ()
        if method != "HEAD"
    }


def test_every_mounted_route_is_described_and_every_described_route_is_mounted(
    client: TestClient,
) -> None:
    """The served OpenAPI document describes exactly the mounted routes, method by method."""
    served = client.get("/openapi.json").json()
    described = {
        (method.upper(), path) for path, item in served["paths"].items() for method in item
    }
    assert described == _mounted(client)
    assert len(described) == len(ENDPOINTS)


def _concrete(path: str) -> str:
    return path.replace("{dataset_id}", "residents")


@pytest.mark.parametrize("declared", ENDPOINTS, ids=lambda e: f"{e.method} {e.path}")
def test_audit_route_label_is_the_matched_route_template(
    client: TestClient, demo: Demo, declared: Any
) -> None:
    """Promise 6: the entry of a call names the template of the route that matched it, whatever
    the outcome (here mostly 401 and 400 answers: the label is set before the handler runs)."""
    before = len(entries(demo))
    response = client.request(declared.method, _concrete(declared.path))
    assert response.status_code < 500
    log = entries(demo)
    assert len(log) == before + 1
    assert log[-1]["route"] == declared.path


def test_a_declared_scope_is_enforced_before_the_handler(client: TestClient, demo: Demo) -> None:
    """Promise 1: every endpoint declaring a scope refuses a call without a token (401) and a
    token without that scope (403), before its handler runs."""
    from gateway.auth.registry import ClientRegistry
    from tests.conftest import token_for

    registry = ClientRegistry(demo.home / "state" / "registry.sqlite3")
    _, secret = registry.add("narrow", scopes=("audit:read",))
    registry.close()
    assert secret is not None
    narrow = token_for(client, "narrow", secret)
    scoped = [e for e in ENDPOINTS if e.scope is not None]
    accepted = {e.path: (e.scope,) if isinstance(e.scope, str) else e.scope or () for e in scoped}
    assert {s for scopes in accepted.values() for s in scopes} == {
        "datasets:read",
        "audit:read",
        "admin",
    }
    for declared in scoped:
        path = _concrete(declared.path)
        assert client.request(declared.method, path).status_code == 401, path
        answer = client.request(declared.method, path, headers=bearer(narrow))
        if "audit:read" not in accepted[declared.path]:
            assert answer.status_code == 403, path
            assert answer.json()["type"].endswith("insufficient-scope")


def test_unmatched_paths_carry_no_route_label(client: TestClient, demo: Demo) -> None:
    """A path no route matches is logged with route null, never the raw path."""
    assert client.get("/v1/datasets/residents/rows/extra").status_code == 404
    assert entries(demo)[-1]["route"] is None


def test_a_method_and_path_declared_twice_is_refused() -> None:
    """Two declarations of one method and path are a programming error, found at import."""
    import types

    module = types.ModuleType("twice")

    async def first(request: Request) -> Response:
        return Response()

    first.__module__ = "twice"
    module.one = endpoint("GET", "/x", summary="x")(first)  # type: ignore[attr-defined]
    module.two = endpoint("GET", "/x", summary="x again")(first)  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="declared twice"):
        endpoints_in(module)


def test_the_generic_document_names_no_dataset() -> None:
    """Promise 10: without a caller, the description names no dataset."""
    document = build_openapi(BASE, ENDPOINTS)
    assert "schemas" not in document["components"]
    assert not [p for p in document["paths"] if "residents" in p or "enterprise" in p]
