"""The route cache hands every request to the route Starlette's router would, with the same
path parameters, on the first call and on every repeated one; what matches no route fully (404,
405) is still Starlette's own answer."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.routing import Router

from gateway.api.router import ROUTE_CACHE_PATH, CachedRouter
from gateway.api.routes import ENDPOINTS
from gateway.console.views import console_routes

CALLS = [
    ("GET", "/v1/datasets"),
    ("GET", "/v1/datasets/residents"),
    ("GET", "/v1/datasets/residents/rows"),
    ("GET", "/v1/datasets/enterprises/rows"),
    ("GET", "/v1/datasets/residents/rows/"),
    ("HEAD", "/v1/datasets/residents/rows"),
    ("POST", "/v1/datasets/residents/rows"),
    ("POST", "/oauth/token"),
    ("GET", "/oauth/token"),
    ("GET", "/healthz"),
    ("HEAD", "/healthz"),
    ("GET", "/console/sign-in"),
    ("POST", "/console/sign-in"),
    ("GET", "/nowhere"),
    ("GET", "/v1/datasets/" + "x" * ROUTE_CACHE_PATH + "/rows"),
]


class _Handled(Exception):
    """Raised by a route instead of running its handler: carries what it was handed."""

    def __init__(self, scope: dict[str, Any]) -> None:
        super().__init__()
        self.route: Any = scope["route"]
        self.params = dict(scope.get("path_params", {}))


async def _receive() -> Any:
    return {"type": "http.request", "body": b""}


async def _capture(scope: Any, receive: Any, send: Any) -> None:
    raise _Handled(scope)


async def _route_of(router: Router, method: str, path: str) -> tuple[Any, Any]:
    """(the route a request was handed to and its path parameters, or what else was sent)."""
    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append((message["type"], message.get("status")))

    scope = {"type": "http", "method": method, "path": path, "root_path": "", "headers": []}
    try:
        await router.app(scope, _receive, send)
    except _Handled as handled:
        return (handled.route.path, handled.route.methods), handled.params
    except Exception as exc:  # a 405 is an HTTPException raised for the app's handler
        return type(exc).__name__, str(exc)
    return "sent", sent


def _router(cls: type[Router]) -> Router:
    router = cls([*(e.route() for e in ENDPOINTS), *console_routes()], redirect_slashes=False)
    for route in router.routes:
        route.handle = _capture  # type: ignore[method-assign]
    return router


def test_cached_routes_are_starlettes() -> None:
    """Each call, asked three times of the cached router, gets what Starlette's router gives."""
    plain, cached = _router(Router), _router(CachedRouter)
    for method, path in CALLS:
        expected = asyncio.run(_route_of(plain, method, path))
        for _ in range(3):
            assert asyncio.run(_route_of(cached, method, path)) == expected, (method, path)
