"""Starlette's router with the route of a (method, path) looked up once.

Starlette tries every route's regular expression in order on every request. Which route fully
matches a request, and with which path parameters, depends only on its method and path (the
routes never change after start-up), so the first full match is remembered per (method, root
path, path) and reused; anything else (no match, a partial match answered with 405, a
non-HTTP scope) goes through Starlette's own `Router.app` unchanged. Paths are caller input:
only short ones are kept, and the table is bounded and emptied when full.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.routing import BaseRoute, Match, Route, Router
from starlette.types import Receive, Scope, Send

ROUTE_CACHE_MAX = 4096
ROUTE_CACHE_PATH = 256  # longer paths are matched every time (the table stays small)


class CachedRouter(Router):
    def __init__(self, routes: Sequence[BaseRoute], **kwargs: Any) -> None:
        super().__init__(routes=routes, **kwargs)
        # (method, root path, path) -> (route, its path parameters)
        self._full: dict[tuple[str, str, str], tuple[Route, dict[str, Any]]] = {}

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or "path_params" in scope:
            await super().app(scope, receive, send)
            return
        key = (scope["method"], scope.get("root_path", ""), scope["path"])
        found = self._full.get(key)
        if found is None:
            found = self._first_full(scope)
            if found is None:  # a 404 or 405: Starlette's own handling
                await super().app(scope, receive, send)
                return
            if len(key[1]) + len(key[2]) <= ROUTE_CACHE_PATH:
                if len(self._full) >= ROUTE_CACHE_MAX:
                    self._full.clear()
                self._full[key] = found
        route, params = found
        scope.setdefault("router", self)
        scope["route"] = route
        scope["endpoint"] = route.endpoint
        scope["path_params"] = dict(params)  # a handler's own copy
        await route.handle(scope, receive, send)

    def _first_full(self, scope: Scope) -> tuple[Route, dict[str, Any]] | None:
        """The route Starlette would hand this request to, if it is a full match of a Route
        (every route is tried in order, as `Router.app` does: a partial match does not stop
        the search for a full one; a full match of something other than a Route, such as a
        Mount, is left to Starlette)."""
        for route in self.routes:
            match, child = route.matches(scope)
            if match is Match.NONE:
                continue
            if match is Match.FULL and isinstance(route, Route):
                return route, dict(child["path_params"])
            if match is Match.FULL:
                return None
            # A partial match: Starlette keeps looking for a full one after it.
        return None
