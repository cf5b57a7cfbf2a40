"""OpenAPI 3.1 matches reality: schemathesis generates requests from the served description
(bounded) and finds no 5xx and no response that violates the declared schema; /docs is local."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance
from starlette.testclient import TestClient

from gateway.api.openapi import build_openapi
from gateway.api.routes import ENDPOINTS
from gateway.auth.registry import ClientRegistry
from tests.conftest import BASE, Demo, token_for

SCHEMA = schemathesis.openapi.from_dict(build_openapi(BASE, ENDPOINTS))
# An operation that fails to parse has no .ok(): the AttributeError then fails collection loudly.
LABELS = sorted(op.ok().label for op in SCHEMA.get_all_operations())  # type: ignore[union-attr]


@pytest.fixture
def headers(client: TestClient, demo: Demo) -> dict[str, str]:
    registry = ClientRegistry(demo.home / "state" / "registry.sqlite3")
    _, secret = registry.add("everything", scopes=("datasets:read", "audit:read", "admin"))
    registry.close()
    assert secret is not None
    token = token_for(client, "everything", secret)
    return {"Authorization": f"Bearer {token}", "Data-Purpose": "statistics"}


def test_served_description_is_the_tested_one(client: TestClient) -> None:
    """/openapi.json serves exactly the description these tests generate requests from."""
    assert client.get("/openapi.json").json() == build_openapi(BASE, ENDPOINTS)


@pytest.mark.parametrize("label", LABELS)
def test_operation_matches_its_description(
    client: TestClient, headers: dict[str, str], label: str
) -> None:
    """For each operation: generated requests never cause a 5xx, and every response has a
    declared status and matches its declared schema."""
    operation = SCHEMA.find_operation_by_label(label)
    assert operation is not None

    @settings(
        max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    @given(operation.as_strategy())
    def run(case: Any) -> None:
        kwargs = case.as_transport_kwargs(base_url=BASE, headers=headers)
        kwargs.pop("cookies", None)
        response = client.request(**kwargs)
        assert response.status_code < 500, (
            label,
            kwargs.get("url"),
            response.status_code,
            response.text[:300],
        )
        case.validate_response(
            response, checks=[response_schema_conformance, status_code_conformance]
        )

    run()


def test_docs_page_is_local(client: TestClient) -> None:
    """/docs is a packaged page that loads nothing from elsewhere."""
    page = client.get("/docs")
    assert page.status_code == 200
    assert "/openapi.json" in page.text
    assert "http://" not in page.text
    assert "https://" not in page.text
