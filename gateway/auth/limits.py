"""Per-client request rate (fixed one-minute windows) and daily row quota, counted in the shared
registry database so every worker sees the same numbers. Answers 429 with `Retry-After` and the
`RateLimit-*` headers of draft-ietf-httpapi-ratelimit-headers."""

from __future__ import annotations

import time
from dataclasses import dataclass

from gateway.auth.registry import ClientRegistry
from gateway.auth.tokens import Principal
from gateway.errors import TooManyRequests

DAY = 86_400


@dataclass(frozen=True)
class RateState:
    limit: int
    remaining: int
    reset: int  # seconds until the window resets

    @property
    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset),
        }


class Limiter:
    def __init__(self, registry: ClientRegistry, default_rate_per_min: int) -> None:
        self._registry = registry
        self._default = default_rate_per_min

    def request(self, principal: Principal, now: float | None = None) -> RateState:
        """Count one request; raise TooManyRequests past the client's rate."""
        now = time.time() if now is None else now
        limit = principal.rate_per_min or self._default
        window = int(now // 60)
        reset = 60 - int(now % 60)
        allowed, used = self._registry.take(
            f"rpm:{principal.client_id}:{window}", 1, limit, (window + 2) * 60
        )
        state = RateState(limit, max(0, limit - used), reset)
        if not allowed:
            raise TooManyRequests(
                f"more than {limit} requests per minute; retry in {reset} s",
                retry_after=reset,
                headers=state.headers,
            )
        return state

    def rows(self, principal: Principal, count: int, now: float | None = None) -> None:
        """Reserve `count` rows of today's quota (UTC day); raise TooManyRequests if it would
        pass it. Nothing is released when it is refused."""
        if principal.rows_per_day is None or count == 0:
            return
        now = time.time() if now is None else now
        day = int(now // DAY)
        reset = DAY - int(now % DAY)
        allowed, used = self._registry.take(
            f"rows:{principal.client_id}:{day}", count, principal.rows_per_day, (day + 2) * DAY
        )
        if not allowed:
            remaining = max(0, principal.rows_per_day - used)
            raise TooManyRequests(
                f"this page would pass the daily quota of {principal.rows_per_day} rows "
                f"({remaining} left today); ask for fewer rows or retry after {reset} s",
                retry_after=reset,
                headers={
                    "RateLimit-Limit": str(principal.rows_per_day),
                    "RateLimit-Remaining": str(remaining),
                    "RateLimit-Reset": str(reset),
                },
            )
