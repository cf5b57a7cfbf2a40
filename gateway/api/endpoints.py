"""Each endpoint declared once: method, path, scope, summary, parameters and responses.

The declaration is the single source of three things that used to be written apart and drifted:
the Starlette route, the audit entry's `route` label (the matched template, set before the
handler runs), and the endpoint's operation in the OpenAPI document. A scoped endpoint is
authenticated here, before its handler runs: a declared scope is always the enforced scope.

Adding an endpoint is one declaration beside its handler (docs/architecture.md):

    @endpoint("GET", "/v1/things/{thing_id}", summary="A thing", scope=DATASETS_READ,
              parameters=(Param("thing_id", "Thing id", STRING, where="path", required=True),),
              responses={"200": json_content(THING)}, problems=(400, 401, 403, 404, 429, 503))
    async def thing(request: Request) -> Response:
        svc, ctx, principal = caller(request)
        ...

`gateway/api/routes.py` collects the declarations of each handler module in order.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Literal

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.api.common import authenticate
from gateway.api.context import audit_context

Handler = Callable[[Request], Awaitable[Response]]
Schema = Mapping[str, Any]

# Routes that authenticate, release data or count quota answer HEAD with 405: Starlette would
# run the GET handler for it, so rows would be cut, recorded and counted though no body is sent.
NO_HEAD = ("/v1/", "/oauth/")
PROBLEM = {"$ref": "#/components/responses/Problem"}
BEARER: tuple[dict[str, list[str]], ...] = ({"oauth2": []},)


@dataclass(frozen=True)
class Param:
    """One documented parameter (the handler still parses and validates it itself)."""

    name: str
    description: str
    schema: Schema
    where: Literal["query", "path"] = "query"
    required: bool = False
    extra: Schema = field(default_factory=dict)  # e.g. style/explode for a free-form group

    def openapi(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "in": self.where,
            "description": self.description,
            "required": self.required,
            "schema": dict(self.schema),
            **self.extra,
        }


def json_content(schema: Schema, description: str = "OK") -> dict[str, Any]:
    """A response (or request body) object with one JSON schema."""
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def text_content(description: str, media_type: str = "text/plain") -> dict[str, Any]:
    return {"description": description, "content": {media_type: {"schema": {"type": "string"}}}}


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    summary: str
    scope: str | tuple[str, ...] | None = None  # scope(s) a token must hold (one of); None: public
    parameters: tuple[Param, ...] = ()
    responses: Schema = field(default_factory=dict)  # status -> OpenAPI response object
    problems: tuple[int, ...] = ()  # statuses answered with an RFC 9457 problem
    request_body: Schema | None = None
    optional_auth: bool = False  # public, but a presented token is checked (and used)
    # For endpoints under /v1/datasets/{dataset_id} that answer rows: the 200 response for a
    # given row schema. A caller's document repeats the endpoint per dataset, rows typed.
    rows_response: Callable[[Schema], Schema] | None = None

    @property
    def name(self) -> str:
        return self.handler.__name__

    @property
    def head(self) -> bool:
        """Whether HEAD is answered (by the GET handler): never on API or OAuth routes."""
        return self.method == "GET" and not self.path.startswith(NO_HEAD)

    def route(self) -> Route:
        """The Starlette route: label the audit entry with this template, authenticate a
        scoped endpoint, then run the handler."""
        declared, handler = self, self.handler

        async def run(request: Request) -> Response:
            audit_context(request).route = declared.path
            if declared.scope is not None:
                authenticate(request, declared.scope)
            return await handler(request)

        run.__name__ = run.__qualname__ = self.name
        route = Route(self.path, run, methods=[self.method], name=self.name)
        if not self.head and route.methods is not None:
            route.methods.discard("HEAD")
        return route

    def operation(self) -> dict[str, Any]:
        """The OpenAPI operation object."""
        operation: dict[str, Any] = {"operationId": self.name, "summary": self.summary}
        if self.scope is not None:
            operation["security"] = [dict(s) for s in BEARER]
        elif self.optional_auth:
            operation["security"] = [{}, *(dict(s) for s in BEARER)]
        if self.parameters:
            operation["parameters"] = [p.openapi() for p in self.parameters]
        if self.request_body is not None:
            operation["requestBody"] = dict(self.request_body)
        responses = dict(self.responses)
        if self.rows_response is not None:
            responses["200"] = self.rows_response({"type": "object"})
        operation["responses"] = {
            **{status: dict(body) for status, body in responses.items()},
            **{str(code): PROBLEM for code in self.problems},
        }
        return operation

    def typed_operation(
        self, dataset: str, row: Schema, purposes: tuple[str, ...]
    ) -> tuple[str, dict[str, Any]]:
        """The path and operation of this rows endpoint for one dataset: `{dataset_id}` filled
        in, `purpose` one of the caller's, rows described by `row`."""
        if self.rows_response is None:
            raise ValueError(f"{self.path} answers no rows")
        operation = self.operation()
        operation["operationId"] = f"{self.name}_{dataset}"
        operation["parameters"] = [
            {**p, "schema": {"type": "string", "enum": list(purposes)}}
            if p["name"] == "purpose"
            else p
            for p in operation.get("parameters", [])
            if p["name"] != "dataset_id"
        ]
        operation["responses"]["200"] = self.rows_response(row)
        return self.path.replace("{dataset_id}", dataset), operation


def endpoint(
    method: str,
    path: str,
    *,
    summary: str,
    scope: str | tuple[str, ...] | None = None,
    parameters: tuple[Param, ...] = (),
    responses: Schema | None = None,
    problems: tuple[int, ...] = (),
    request_body: Schema | None = None,
    optional_auth: bool = False,
    rows_response: Callable[[Schema], Schema] | None = None,
) -> Callable[[Handler], Endpoint]:
    """Declare the decorated handler as an endpoint."""

    def declare(handler: Handler) -> Endpoint:
        return Endpoint(
            method,
            path,
            handler,
            summary,
            scope,
            parameters,
            responses or {},
            problems,
            request_body,
            optional_auth,
            rows_response,
        )

    return declare


def endpoints_in(*modules: ModuleType) -> tuple[Endpoint, ...]:
    """The endpoints declared in these modules, in declaration order; a method and path
    declared twice is a programming error."""
    declared = tuple(
        value
        for module in modules
        for value in vars(module).values()
        if isinstance(value, Endpoint) and value.handler.__module__ == module.__name__
    )
    seen: set[tuple[str, str]] = set()
    for item in declared:
        if (item.method, item.path) in seen:
            raise ValueError(f"{item.method} {item.path} is declared twice")
        seen.add((item.method, item.path))
    return declared
