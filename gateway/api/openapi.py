"""The OpenAPI 3.1 description of the API, kept true by a schemathesis run in the test suite."""

from __future__ import annotations

from typing import Any

from gateway import __version__
from gateway.scopes import SCOPES

PROBLEM = {"$ref": "#/components/responses/Problem"}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _problems(*codes: int) -> dict[str, Any]:
    return {str(code): PROBLEM for code in codes}


def _param(
    name: str,
    description: str,
    schema: dict[str, Any],
    *,
    where: str = "query",
    required: bool = False,
) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "description": description,
        "required": required,
        "schema": schema,
    }


DATASET_ID = _param("dataset_id", "Dataset id", {"type": "string"}, where="path", required=True)
PURPOSE = _param(
    "purpose", "The purpose of the request (or the Data-Purpose header)", {"type": "string"}
)
_COLUMN = {
    "type": "object",
    "required": ["name", "type", "transform", "category"],
    "properties": {
        "name": {"type": "string"},
        "type": {"type": "string"},
        "description": {"type": "string"},
        "transform": {"type": "string"},
        "category": {"type": "string"},
    },
}
_PRIVACY = {"type": ["object", "null"]}
_DATASET = {
    "type": "object",
    "required": ["id", "title", "grant", "purposes", "columns"],
    "properties": {
        "id": {"type": "string"},
        "title": {"type": "string"},
        "description": {"type": "string"},
        "licence": {"type": "string"},
        "grant": {"type": "string"},
        "purposes": {"type": "array", "items": {"type": "string"}},
        "valid_until": {"type": ["string", "null"]},
        "max_rows": {"type": "integer"},
        "updated": {"type": ["string", "null"]},
        "rows": {"type": ["integer", "null"]},
        "columns": {"type": "array", "items": _COLUMN},
        "privacy": _PRIVACY,
        "policy": {"type": "string"},
    },
}
_ROWS = {
    "type": "object",
    "required": ["rows", "next", "view"],
    "properties": {
        "rows": {"type": "array", "items": {"type": "object"}},
        "next": {"type": ["string", "null"], "description": "cursor for the next page"},
        "view": {
            "type": "object",
            "required": ["dataset", "grant", "policy", "total_rows", "columns"],
        },
    },
}
_FORM_TOKEN = {
    "type": "object",
    "properties": {
        "grant_type": {"type": "string", "enum": ["client_credentials"]},
        "scope": {"type": "string"},
        "client_id": {"type": "string"},
        "client_secret": {"type": "string"},
        "client_assertion_type": {"type": "string"},
        "client_assertion": {"type": "string"},
    },
    "required": ["grant_type"],
}
_FORM_TOKEN_ARG = {
    "type": "object",
    "properties": {"token": {"type": "string"}, "token_type_hint": {"type": "string"}},
    "required": ["token"],
}
_OAUTH_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}, "error_description": {"type": "string"}},
}


def _form(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": schema}}}


def _oauth_responses(ok: dict[str, Any]) -> dict[str, Any]:
    return {
        "200": _json(ok),
        "400": _json(_OAUTH_ERROR, "OAuth error (RFC 6749 5.2)"),
        "401": _json(_OAUTH_ERROR, "Client authentication failed"),
        **_problems(413, 414, 431, 503),
    }


def build_openapi(base_url: str) -> dict[str, Any]:
    bearer: list[dict[str, list[str]]] = [{"oauth2": []}]
    rows_params = [
        DATASET_ID,
        PURPOSE,
        _param(
            "_size", "Rows per page (default 100, at most the grant's limit)", {"type": "integer"}
        ),
        _param("_next", "Cursor from the previous page's `next`", {"type": "string"}),
        _param(
            "_col",
            "Return only these columns (repeatable)",
            {"type": "array", "items": {"type": "string"}},
        ),
        _param(
            "_nocol",
            "Leave out these columns (repeatable)",
            {"type": "array", "items": {"type": "string"}},
        ),
        _param("_sort", "Sort ascending by a column", {"type": "string"}),
        _param("_sort_desc", "Sort descending by a column", {"type": "string"}),
        _param(
            "_extra",
            "`count` adds the number of matching rows",
            {"type": "string", "enum": ["count"]},
        ),
        _param(
            "_format",
            "json (default), csv or ndjson; or use Accept",
            {"type": "string", "enum": ["json", "csv", "ndjson"]},
        ),
        {
            "name": "filters",
            "in": "query",
            "style": "form",
            "explode": True,
            "description": "Filters on released values: `col=v`, `col__exact`, `__not`, "
            "`__in` (comma list), `__gt`, `__gte`, `__lt`, `__lte`, `__startswith`, "
            "`__contains`, `__isnull`",
            "schema": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    ]
    audit_range = [
        _param("from", "First index", {"type": "integer", "minimum": 0}, required=True),
        _param("to", "End index (exclusive)", {"type": "integer", "minimum": 1}, required=True),
    ]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Public-data authorized-operation gateway",
            "version": __version__,
            "description": "Desensitized, purpose-bound, audited access to public datasets. "
            "See docs/developers.md.",
        },
        "servers": [{"url": base_url}],
        "components": {
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
                    "content": {
                        "application/problem+json": {
                            "schema": {
                                "type": "object",
                                "required": ["type", "title", "status"],
                                "properties": {
                                    "type": {"type": "string"},
                                    "title": {"type": "string"},
                                    "status": {"type": "integer"},
                                    "detail": {"type": "string"},
                                    "parameter": {"type": "string"},
                                    "reason": {"type": "string"},
                                    "request_id": {"type": "string"},
                                },
                            }
                        }
                    },
                },
            },
        },
        "paths": {
            "/healthz": {
                "get": {
                    "summary": "Liveness",
                    "responses": {
                        "200": _json({"type": "object", "required": ["status"]}),
                        **_problems(503),
                    },
                }
            },
            "/readyz": {
                "get": {
                    "summary": "Readiness: keys, policies, audit log",
                    "responses": {
                        "200": _json({"type": "object", "required": ["ready", "checks"]}),
                        "503": {
                            "description": "Not ready (or the audit log cannot record the call)"
                        },
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics of this worker",
                    "responses": {
                        "200": {
                            "description": "Prometheus text format",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        },
                        **_problems(503),
                    },
                }
            },
            "/oauth/token": {
                "post": {
                    "summary": "Access token (client credentials)",
                    "requestBody": _form(_FORM_TOKEN),
                    "responses": _oauth_responses({"type": "object"}),
                }
            },
            "/oauth/revoke": {
                "post": {
                    "summary": "Revoke your token (RFC 7009)",
                    "requestBody": _form(_FORM_TOKEN_ARG),
                    "responses": _oauth_responses({"type": "object"}),
                }
            },
            "/oauth/introspect": {
                "post": {
                    "summary": "Introspect a token (RFC 7662)",
                    "requestBody": _form(_FORM_TOKEN_ARG),
                    "responses": _oauth_responses({"type": "object", "required": ["active"]}),
                }
            },
            "/.well-known/jwks.json": {
                "get": {
                    "summary": "Token signing keys",
                    "responses": {
                        "200": _json({"type": "object", "required": ["keys"]}),
                        **_problems(503),
                    },
                }
            },
            "/.well-known/oauth-authorization-server": {
                "get": {
                    "summary": "OAuth metadata (RFC 8414)",
                    "responses": {
                        "200": _json({"type": "object", "required": ["issuer"]}),
                        **_problems(503),
                    },
                }
            },
            "/v1/datasets": {
                "get": {
                    "summary": "Datasets you hold a grant for",
                    "security": bearer,
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["datasets"],
                                "properties": {"datasets": {"type": "array", "items": _DATASET}},
                            }
                        ),
                        **_problems(400, 401, 403, 429, 503),
                    },
                }
            },
            "/v1/datasets/{dataset_id}": {
                "get": {
                    "summary": "A dataset's released schema",
                    "security": bearer,
                    "parameters": [DATASET_ID, PURPOSE],
                    "responses": {
                        "200": _json(_DATASET),
                        **_problems(400, 401, 403, 404, 429, 503),
                    },
                }
            },
            "/v1/datasets/{dataset_id}/rows": {
                "get": {
                    "summary": "Desensitized rows",
                    "security": bearer,
                    "parameters": rows_params,
                    "responses": {
                        "200": {
                            "description": "A page of rows",
                            "content": {
                                "application/json": {"schema": _ROWS},
                                "text/csv": {"schema": {"type": "string"}},
                                "application/x-ndjson": {"schema": {"type": "string"}},
                            },
                        },
                        **_problems(400, 401, 403, 404, 414, 429, 431, 503),
                    },
                }
            },
            "/v1/audit/checkpoint": {
                "get": {
                    "summary": "Newest signed checkpoint (C2SP)",
                    "responses": {
                        "200": {
                            "description": "A signed note",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        },
                        **_problems(404, 503),
                    },
                }
            },
            "/v1/audit/proof": {
                "get": {
                    "summary": "Inclusion proof",
                    "parameters": [
                        _param(
                            "idx", "Entry index", {"type": "integer", "minimum": 0}, required=True
                        ),
                        _param(
                            "size", "Tree size", {"type": "integer", "minimum": 1}, required=True
                        ),
                    ],
                    "responses": {
                        "200": _json({"type": "object", "required": ["proof", "root"]}),
                        **_problems(400, 503),
                    },
                }
            },
            "/v1/audit/keys": {
                "get": {
                    "summary": "Audit keys and the rotation entries that handed over between them",
                    "responses": {
                        "200": _json({"type": "object", "required": ["keys", "rotations"]}),
                        **_problems(400, 503),
                    },
                }
            },
            "/v1/audit/consistency": {
                "get": {
                    "summary": "Consistency proof",
                    "parameters": [
                        _param(
                            "from",
                            "Older tree size",
                            {"type": "integer", "minimum": 1},
                            required=True,
                        ),
                        _param(
                            "to",
                            "Newer tree size",
                            {"type": "integer", "minimum": 1},
                            required=True,
                        ),
                    ],
                    "responses": {
                        "200": _json({"type": "object", "required": ["proof"]}),
                        **_problems(400, 503),
                    },
                }
            },
            "/v1/audit/entries": {
                "get": {
                    "summary": "Raw audit entries (scope audit:read)",
                    "security": bearer,
                    "parameters": audit_range,
                    "responses": {
                        "200": _json({"type": "object", "required": ["entries"]}),
                        **_problems(400, 401, 403, 429, 503),
                    },
                }
            },
            "/v1/admin/status": {
                "get": {
                    "summary": "Policy and audit status (scope admin)",
                    "security": bearer,
                    "responses": {
                        "200": _json({"type": "object", "required": ["policy", "audit"]}),
                        **_problems(401, 403, 429, 503),
                    },
                }
            },
            "/v1/admin/reload": {
                "post": {
                    "summary": "Reload policies now (scope admin)",
                    "security": bearer,
                    "responses": {
                        "200": _json({"type": "object"}),
                        "422": _json({"type": "object"}, "Rejected"),
                        **_problems(401, 403, 429, 503),
                    },
                }
            },
            "/v1/admin/explain": {
                "get": {
                    "summary": "Explain a decision (scope admin)",
                    "security": bearer,
                    "parameters": [
                        _param("client", "Client id", {"type": "string"}, required=True),
                        _param("dataset", "Dataset id", {"type": "string"}, required=True),
                        _param("purpose", "Purpose", {"type": "string"}),
                        _param("at", "ISO 8601 time", {"type": "string"}),
                    ],
                    "responses": {
                        "200": _json({"type": "object", "required": ["decision"]}),
                        **_problems(400, 401, 403, 429, 503),
                    },
                }
            },
        },
    }
