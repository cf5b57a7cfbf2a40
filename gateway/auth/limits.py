"""Per-client request rate (fixed one-minute windows) and daily row quota, counted in the shared
registry database so every worker sees the same numbers. Answers 429 with `Retry-After` and the
`RateLimit-*` headers of draft-ietf-httpapi-ratelimit-headers."""

from __future__ import annotations

import time
from dataclasses import dataclass

from gateway.auth.registry import ClientRegistry
from gateway.auth.tokens import Principal
from gateway.errors import TooManyRequests
from gateway.policy.model import Grant

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

    def grant_request(self, principal: Principal, grant: Grant, now: float | None = None) -> None:
        """Count one request against the grant's own per-minute limit, if it has one."""
        limit = grant.limits.requests_per_minute
        if limit is None:
            return
        now = time.time() if now is None else now
        window = int(now // 60)
        reset = 60 - int(now % 60)
        name = f"grpm:{grant.id}:{principal.client_id}:{window}"
        allowed, _ = self._registry.take(name, 1, limit, (window + 2) * 60)
        if not allowed:
            state = RateState(limit, 0, reset)
            raise TooManyRequests(
                f"grant {grant.id!r} allows {limit} requests per minute; retry in {reset} s",
                retry_after=reset,
                headers=state.headers,
            )

    def rows(
        self, principal: Principal, count: int, grant: Grant | None = None, now: float | None = None
    ) -> None:
        """Reserve `count` rows of today's quotas (UTC day): the client's and the grant's.
        Raise TooManyRequests if either would be passed; nothing is released then."""
        now = time.time() if now is None else now
        quotas = []
        if principal.rows_per_day is not None:
            quotas.append(
                (f"rows:{principal.client_id}", principal.rows_per_day, "your daily quota")
            )
        if grant is not None and grant.limits.rows_per_day is not None:
            quotas.append(
                (
                    f"grows:{grant.id}:{principal.client_id}",
                    grant.limits.rows_per_day,
                    f"grant {grant.id!r}'s daily quota",
                )
            )
        if not quotas or count == 0:
            return
        day = int(now // DAY)
        reset = DAY - int(now % DAY)
        for prefix, limit, label in quotas:
            allowed, used = self._registry.take(f"{prefix}:{day}", count, limit, (day + 2) * DAY)
            if not allowed:
                remaining = max(0, limit - used)
                raise TooManyRequests(
                    f"this page would pass {label} of {limit} rows ({remaining} left today); "
                    f"ask for fewer rows or retry after {reset} s",
                    retry_after=reset,
                    headers={
                        "RateLimit-Limit": str(limit),
                        "RateLimit-Remaining": str(remaining),
                        "RateLimit-Reset": str(reset),
                    },
                )
