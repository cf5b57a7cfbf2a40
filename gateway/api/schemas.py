"""JSON schemas and parameters shared by endpoint declarations (gateway/api/endpoints.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.api.endpoints import Param, json_content
from gateway.model.filterlang import OPERATORS

STRING: dict[str, Any] = {"type": "string"}
OBJECT: dict[str, Any] = {"type": "object"}
STRINGS: dict[str, Any] = {"type": "array", "items": STRING}


def requiring(*names: str) -> dict[str, Any]:
    return {"type": "object", "required": list(names)}


DATASET_ID = Param("dataset_id", "Dataset id", STRING, where="path", required=True)
PURPOSE = Param("purpose", "The purpose of the request (or the Data-Purpose header)", STRING)

PROBLEM_SCHEMA = {
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": STRING,
        "title": STRING,
        "status": {"type": "integer"},
        "detail": STRING,
        "parameter": STRING,
        "reason": STRING,
        "request_id": STRING,
    },
}

COLUMN = {
    "type": "object",
    "required": ["name", "type", "transform", "category"],
    "properties": {
        "name": STRING,
        "type": STRING,
        "description": STRING,
        "transform": STRING,
        "category": STRING,
    },
}
_GRANT_FIELDS: dict[str, Any] = {
    "purposes": STRINGS,
    "valid_until": {"type": ["string", "null"]},
    "rows_per_request": {"type": "integer"},
    "rows": {"type": ["integer", "null"]},
    "columns": {"type": "array", "items": COLUMN},
    "not_identifying": {"type": "object", "additionalProperties": STRING},
}
DATASET = {
    "type": "object",
    "required": ["id", "title", "grant", "purposes", "rows_per_request", "columns"],
    "properties": {
        "id": STRING,
        "title": STRING,
        "description": STRING,
        "licence": STRING,
        "grant": STRING,
        **_GRANT_FIELDS,
        "updated": {"type": ["string", "null"]},
        "privacy": {"type": ["object", "null"]},
        "policy": STRING,
    },
}
CATALOG = {
    "type": "object",
    "required": ["datasets", "policy"],
    "properties": {
        "policy": STRING,
        "datasets": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["id", "title", "purposes", "grants"],
                "properties": {
                    "id": STRING,
                    "title": STRING,
                    "description": STRING,
                    "licence": STRING,
                    "updated": {"type": ["string", "null"]},
                    "purposes": STRINGS,
                    "grants": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["id", "purposes", "rows_per_request", "columns"],
                            "properties": {"id": STRING, **_GRANT_FIELDS},
                        },
                    },
                },
            },
        },
    },
}


def rows_page(row: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON page of rows whose items follow `row`."""
    return {
        "type": "object",
        "required": ["rows", "next", "view"],
        "properties": {
            "rows": {"type": "array", "items": row},
            "next": {"type": ["string", "null"], "description": "cursor for the next page"},
            "view": requiring("dataset", "grant", "policy", "total_rows", "columns"),
        },
    }


def rows_content(row: Mapping[str, Any]) -> Mapping[str, Any]:
    """The 200 response of a rows endpoint, in its three formats, with its Link header."""
    return {
        "description": 'A page of rows; `Link: <...>; rel="next"` names the next page',
        "headers": {
            "Link": {
                "description": "RFC 8288 link to the next page (absent on the last page)",
                "schema": STRING,
            }
        },
        "content": {
            "application/json": {"schema": rows_page(row)},
            "text/csv": {"schema": STRING},
            "application/x-ndjson": {"schema": STRING},
        },
    }


_FILTER_HELP = ", ".join(f"`__{op.name}`" for op in OPERATORS)
ROWS_PARAMS = (
    PURPOSE,
    Param("_size", "Rows per page (default 100, at most the grant's limit)", {"type": "integer"}),
    Param("_next", "Cursor from the previous page's `next` (or follow its Link)", STRING),
    Param("_col", "Return only these columns (repeatable)", STRINGS),
    Param("_nocol", "Leave out these columns (repeatable)", STRINGS),
    Param("_sort", "Sort ascending by a column", STRING),
    Param("_sort_desc", "Sort descending by a column", STRING),
    Param("_extra", "`count` adds the number of matching rows", {**STRING, "enum": ["count"]}),
    Param(
        "_format",
        "json (default), csv or ndjson; or use Accept",
        {**STRING, "enum": ["json", "csv", "ndjson"]},
    ),
    Param(
        "filters",
        "Filters on released values: `col=v` (equal) or `col__op=v` with op one of "
        f"{_FILTER_HELP} (docs/developers.md)",
        {"type": "object", "additionalProperties": STRING},
        extra={"style": "form", "explode": True},
    ),
)

OAUTH_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": STRING, "error_description": STRING},
}
TOKEN_FORM = {
    "type": "object",
    "properties": {
        "grant_type": {**STRING, "enum": ["client_credentials"]},
        "scope": STRING,
        "client_id": STRING,
        "client_secret": STRING,
        "client_assertion_type": STRING,
        "client_assertion": STRING,
    },
    "required": ["grant_type"],
}
TOKEN_ARG_FORM = {
    "type": "object",
    "properties": {"token": STRING, "token_type_hint": STRING},
    "required": ["token"],
}


def form(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": schema}}}


def oauth_responses(ok: dict[str, Any]) -> dict[str, Any]:
    return {
        "200": json_content(ok),
        "400": json_content(OAUTH_ERROR, "OAuth error (RFC 6749 5.2)"),
        "401": json_content(OAUTH_ERROR, "Client authentication failed"),
    }
