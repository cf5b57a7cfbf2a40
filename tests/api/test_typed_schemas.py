"""Typed schemas: the OpenAPI document served to a caller describes the rows of each dataset the
caller holds a grant for (released columns, types, formats), generated from the active policy
set, so it changes on reload; without a token it names no dataset (promise 10). Real rows
validate against it. The page limit has one name, `rows_per_request`; `max_rows` in a policy
file still works, with a warning."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance
from starlette.testclient import TestClient

from gateway.auth.registry import ClientRegistry
from gateway.cli import main
from gateway.policy.files import load_policies
from tests.api.test_api import bearer, entries
from tests.conftest import BASE, Demo, token_for
from tests.policy.test_policy_files import GRANT, HEADER, problems, write

JSON_TYPES = {"string": "string", "integer": "integer", "date": "string"}
GRANTS = {"residents": "statistics", "enterprise_registry": "market-analysis"}


def _app(client: TestClient) -> Any:
    app: Any = client.app
    while not hasattr(app, "state"):
        app = app.app
    return app


def _validator(document: dict[str, Any], ref: str) -> Any:
    schema = {"$ref": ref, "components": document["components"]}
    return jsonschema_rs.Draft202012Validator(schema, validate_formats=True)


def test_a_callers_document_types_each_granted_datasets_rows(
    client: TestClient, token: str
) -> None:
    """Each dataset the caller may read gets its rows path; its row schema names exactly the
    grant's released columns with their released types (dates with format `date`; a
    quasi-identifier the privacy model generalized is text in both)."""
    document = client.get("/openapi.json", headers=bearer(token)).json()
    schemas = document["components"]["schemas"]
    for dataset, purpose in GRANTS.items():
        operation = document["paths"][f"/v1/datasets/{dataset}/rows"]["get"]
        purposes = next(p for p in operation["parameters"] if p["name"] == "purpose")
        assert purpose in purposes["schema"]["enum"]
        assert not [p for p in operation["parameters"] if p["name"] == "dataset_id"]
        described = client.get(f"/v1/datasets/{dataset}?purpose={purpose}", headers=bearer(token))
        grant = described.json()["grant"]
        row = schemas[f"{dataset}.{grant}.row"]
        assert row["additionalProperties"] is False
        released = {c["name"]: c for c in described.json()["columns"]}
        assert set(row["properties"]) == set(released)
        for name, prop in row["properties"].items():
            kind = JSON_TYPES[released[name]["type"]]
            assert prop["x-transform"] == released[name]["transform"]
            assert prop["x-category"] == released[name]["category"]
            assert prop["type"] == [kind, "null"]
        if dataset == "enterprise_registry":
            assert row["properties"]["founded"]["format"] == "date"
            assert row["properties"]["registered_capital"]["type"] == ["integer", "null"]


def test_released_rows_validate_against_the_typed_schema(client: TestClient, token: str) -> None:
    """Every row of a full page validates against its dataset's row schema, formats checked."""
    document = client.get("/openapi.json", headers=bearer(token)).json()
    for dataset, purpose in GRANTS.items():
        operation = document["paths"][f"/v1/datasets/{dataset}/rows"]["get"]
        page_schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
        items = page_schema["properties"]["rows"]["items"]
        refs = [items] if "$ref" in items else items["anyOf"]
        rows = client.get(
            f"/v1/datasets/{dataset}/rows?purpose={purpose}&_size=500", headers=bearer(token)
        ).json()["rows"]
        assert rows
        for row in rows:
            errors = [
                [e.message for e in _validator(document, r["$ref"]).iter_errors(row)] for r in refs
            ]
            assert any(not e for e in errors), errors


def test_the_document_follows_a_policy_reload(client: TestClient, demo: Demo, token: str) -> None:
    """A reload that stops releasing a column changes the caller's document at once."""

    def row() -> dict[str, Any]:
        schemas = client.get("/openapi.json", headers=bearer(token)).json()["components"]
        found: dict[str, Any] = schemas["schemas"][
            "enterprise_registry.demo-enterprise-registry.row"
        ]
        return found

    assert "founded" in row()["properties"]
    policy = demo.home / "policies" / "enterprise_registry.yaml"
    policy.write_text(policy.read_text().replace("      founded: keep\n", "", 1))
    status = _app(client).state.reloader.reload("test")
    assert status.last_error is None
    assert "founded" not in row()["properties"]


def test_without_a_token_no_dataset_is_named(client: TestClient, demo: Demo) -> None:
    """Promise 10: the public document names no dataset and may be cached; a bad token is a 401
    (audited), not a silently generic document."""
    public = client.get("/openapi.json")
    assert public.status_code == 200
    assert "schemas" not in public.json()["components"]
    assert "residents" not in public.text
    assert public.headers["cache-control"].startswith("public")
    refused = client.get("/openapi.json", headers=bearer("not-a-token"))
    assert refused.status_code == 401
    assert entries(demo)[-1]["route"] == "/openapi.json"
    assert entries(demo)[-1]["status"] == 401


def test_a_caller_sees_only_its_own_datasets(client: TestClient, demo: Demo, token: str) -> None:
    """Promise 10: another client's document names none of the demo client's datasets, and the
    demo client's is private (never stored by a shared cache)."""
    registry = ClientRegistry(demo.home / "state" / "registry.sqlite3")
    _, secret = registry.add("stranger", scopes=("datasets:read",))
    registry.close()
    assert secret is not None
    stranger = client.get("/openapi.json", headers=bearer(token_for(client, "stranger", secret)))
    assert stranger.status_code == 200
    assert "residents" not in stranger.text
    assert "enterprise" not in stranger.text
    own = client.get("/openapi.json", headers=bearer(token))
    assert own.headers["cache-control"].startswith("private")
    assert "Authorization" in own.headers["vary"]


@pytest.fixture
def typed_schema(client: TestClient, token: str) -> Any:
    document = client.get("/openapi.json", headers=bearer(token)).json()
    return schemathesis.openapi.from_dict(document)


@pytest.mark.parametrize("dataset", sorted(GRANTS))
def test_typed_operations_match_reality(
    client: TestClient, token: str, typed_schema: Any, dataset: str
) -> None:
    """Schemathesis over a caller's typed rows operations: no 5xx, every response matches."""
    operation = typed_schema.find_operation_by_label(f"GET /v1/datasets/{dataset}/rows")
    assert operation is not None

    @settings(
        max_examples=10, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    @given(operation.as_strategy())
    def run(case: Any) -> None:
        kwargs = case.as_transport_kwargs(base_url=BASE, headers=bearer(token))
        kwargs.pop("cookies", None)
        response = client.request(**kwargs)
        assert response.status_code < 500, response.text[:300]
        case.validate_response(
            response, checks=[response_schema_conformance, status_code_conformance]
        )

    run()


def test_max_rows_is_the_old_name_of_rows_per_request(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`max_rows` (in a grant or its limits) still sets the page limit, and `policy check` warns
    that it is deprecated; given next to `rows_per_request` it is refused."""
    text = HEADER + GRANT.replace("    columns:\n", "    max_rows: 70\n    columns:\n")
    policies = write(tmp_path / "ws", text + "      city: keep\n")
    loaded = load_policies(policies, tmp_path / "ws")
    assert loaded.grants[0].rows_per_request == 70
    assert any("max_rows is deprecated" in w for w in loaded.warnings)
    assert main(["policy", "check", "--home", str(tmp_path / "ws")]) == 0
    assert "warning: people.yaml" in capsys.readouterr().out
    inside = HEADER + GRANT.replace("    columns:\n", "    limits: {max_rows: 80}\n    columns:\n")
    policies = write(tmp_path / "ws2", inside + "      city: keep\n")
    assert load_policies(policies, tmp_path / "ws2").grants[0].rows_per_request == 80
    both = HEADER + GRANT.replace(
        "    columns:\n", "    max_rows: 70\n    limits: {rows_per_request: 9}\n    columns:\n"
    )
    found = problems(tmp_path / "ws3", both + "      city: keep\n")
    assert any("max_rows is the old name of rows_per_request" in p for p in found), found
