"""The OpenAPI 3.1 description, generated from the endpoint declarations (so every mounted
route is described, and only those) and kept true by a schemathesis run in the test suite.

Served to a caller who presents a bearer token, it also describes the rows of each dataset the
caller holds a grant for: one rows path per dataset, with its released columns, their types and
formats, taken from the caller's released views under the active policy set (so it changes when
the policy is reloaded). Without a token it names no dataset (promise 10)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response

from gateway import __version__
from gateway.api.common import authenticate, json_response, services
from gateway.api.context import audit_context
from gateway.api.datasets import view_of
from gateway.api.endpoints import Endpoint
from gateway.api.schemas import PROBLEM_SCHEMA
from gateway.model.decision import Verdict
from gateway.model.scopes import DATASETS_READ, SCOPES
from gateway.privacy.kanon import PrivacyUnreachable
from gateway.privacy.views import View
from gateway.runtime.services import Services

# Released column type -> JSON Schema. Any released cell may be null (a missing source value).
_TYPES: dict[str, dict[str, Any]] = {
    "string": {"type": ["string", "null"]},
    "integer": {"type": ["integer", "null"]},
    "date": {"type": ["string", "null"], "format": "date"},
}


@dataclass(frozen=True)
class TypedRows:
    """The rows one caller may read from one dataset: a row schema per grant."""

    dataset: str
    purposes: tuple[str, ...]
    grants: tuple[tuple[str, dict[str, Any]], ...]  # (grant id, row schema)


def row_schema(view: View, descriptions: dict[str, str]) -> dict[str, Any]:
    """A released row as JSON Schema: each released column with its type and format, the
    transform that made it and its GB/T 37964 category. `_col`/`_nocol` may leave columns out,
    so none is required; no other property ever appears."""
    properties = {
        column.name: {
            **_TYPES.get(column.type, {}),
            "description": descriptions.get(column.name, ""),
            "x-transform": column.transform,
            "x-category": column.category,
        }
        for column in view.columns
    }
    return {"type": "object", "properties": properties, "additionalProperties": False}


def build_openapi(
    base_url: str, endpoints: Sequence[Endpoint], typed: Sequence[TypedRows] = ()
) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for item in endpoints:
        paths.setdefault(item.path, {})[item.method.lower()] = item.operation()
    schemas: dict[str, Any] = {}
    for rows in typed:
        refs = []
        for grant, row in rows.grants:
            name = f"{rows.dataset}.{grant}.row"
            schemas[name] = row
            refs.append({"$ref": f"#/components/schemas/{name}"})
        row_of = refs[0] if len(refs) == 1 else {"anyOf": refs}
        for item in endpoints:
            if item.rows_response is not None:
                path, operation = item.typed_operation(rows.dataset, row_of, rows.purposes)
                paths.setdefault(path, {})[item.method.lower()] = operation
    components: dict[str, Any] = {
        "securitySchemes": {
            "oauth2": {
                "type": "oauth2",
                "flows": {
                    "clientCredentials": {
                        "tokenUrl": f"{base_url}/oauth/token",
                        "scopes": {s: s for s in SCOPES},
                    }
                },
            },
        },
        "responses": {
            "Problem": {
                "description": "RFC 9457 problem",
                "content": {"application/problem+json": {"schema": PROBLEM_SCHEMA}},
            },
        },
    }
    if schemas:
        components["schemas"] = schemas
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Public-data authorized-operation gateway",
            "version": __version__,
            "description": "Desensitized, purpose-bound, audited access to public datasets. "
            "See docs/developers.md.",
        },
        "servers": [{"url": base_url}],
        "components": components,
        "paths": paths,
    }


def typed_rows(svc: Services, client_id: str) -> list[TypedRows]:
    """The row schemas of every dataset this client holds a grant for now, from its released
    views (built if need be). A grant whose view cannot be released is left out."""
    engine = svc.engine
    held: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    purposes: dict[str, set[str]] = {}
    for grant in engine.visible(client_id, datetime.now(UTC)):
        dataset = engine.policy.datasets[grant.dataset]
        try:
            view = view_of(svc, engine, dataset, grant, client_id)
        except PrivacyUnreachable:
            continue
        descriptions = {c.name: c.description for c in dataset.columns}
        held.setdefault(dataset.id, []).append((grant.id, row_schema(view, descriptions)))
        purposes.setdefault(dataset.id, set()).update(grant.purposes)
    return [
        TypedRows(dataset, tuple(sorted(purposes[dataset])), tuple(grants))
        for dataset, grants in held.items()
    ]


def endpoints_of(request: Request) -> tuple[Endpoint, ...]:
    found = request.app.state.endpoints
    assert isinstance(found, tuple)  # noqa: S101 - set by create_app
    return found


async def served_openapi(request: Request) -> Response:
    """The document for this caller: generic and cacheable without a token; with one (checked
    like on any API call), typed for the caller's grants and private."""
    svc = services(request)
    endpoints = endpoints_of(request)
    if request.headers.get("authorization") is None:
        document = build_openapi(svc.settings.base_url, endpoints)
        cache = {"Cache-Control": "public, max-age=300", "Vary": "Authorization"}
        return json_response(document, headers=cache)
    principal = authenticate(request, None)
    typed: list[TypedRows] = []
    if DATASETS_READ in principal.scopes:
        typed = await anyio.to_thread.run_sync(typed_rows, svc, principal.client_id)
    ctx = audit_context(request)
    ctx.decision, ctx.reason = Verdict.ALLOW, None
    document = build_openapi(svc.settings.base_url, endpoints, typed)
    return json_response(
        document, headers={"Cache-Control": "private, no-cache", "Vary": "Authorization"}
    )
