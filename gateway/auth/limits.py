"""Per-client request rate (fixed one-minute windows) and daily row quota, counted in the shared
registry database so every worker sees the same numbers. Answers 429 with `Retry-After` and the
`RateLimit-*` headers of draft-ietf-httpapi-ratelimit-headers.

Also the throttle on failed client authentication at the OAuth endpoints (`AuthThrottle`), counted
in the same store: per presented client id and per source address; and the cap on one client's
concurrent requests in this worker (`InFlight`)."""

from __future__ import annotations

import hashlib
import ipaddress
import threading
import time
from collections import defaultdict
from dataclasses import dataclass

from gateway.auth.registry import ClientRegistry
from gateway.auth.tokens import Principal
from gateway.errors import TooManyRequests
from gateway.model.grant import Grant

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


@dataclass(frozen=True)
class Throttled:
    """Too many failed client authentications: refuse without checking anything."""

    retry_after: int  # seconds until the window in which the limit was reached ends
    scope: str  # "client id" or "address": which limit was reached


def address_key(host: str | None) -> str:
    """The unit a source address is counted in: an IPv4 address, an IPv6 /64 (one subscriber's
    usual allocation: counting single IPv6 addresses would give an attacker 2^64 budgets), or
    the transport's own name for the peer (e.g. a Unix socket)."""
    if not host:
        return "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return f"peer:{host}"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def _digest(kind: str, value: str) -> str:
    """Counter names hold a digest, never the caller's bytes (ids may be anything) or a raw
    address. (A plain digest of an IPv4 address can be reversed by trying all 2^32: it keeps
    the names short and uniform, it is not an anonymization.)"""
    raw = f"{kind}:{value}".encode("utf-8", "surrogatepass")
    return hashlib.sha256(raw).hexdigest()[:32]


class AuthThrottle:
    """Failed client authentications at the OAuth endpoints, counted per presented client id
    (known or not: the answer must not tell them apart) and per source address, in fixed
    windows of `window` seconds, in the shared store (exact across workers and hosts).

    A caller is refused once either count of the current window has reached its limit, before
    any secret is hashed. Successful authentications are not counted. Checks happen inside the
    bounded hashing slot, so concurrent guessers overshoot a limit by at most the number of
    hashing slots of all workers."""

    def __init__(
        self, registry: ClientRegistry, *, per_client: int, per_address: int, window: int
    ) -> None:
        self._registry = registry
        self.per_client = per_client
        self.per_address = per_address
        self.window = window

    def _names(self, client_id: str | None, address: str, now: float) -> list[tuple[str, int, str]]:
        index = int(now // self.window)
        names = [(f"authfail:a:{_digest('a', address)}:{index}", self.per_address, "address")]
        if client_id:
            names.insert(
                0, (f"authfail:c:{_digest('c', client_id)}:{index}", self.per_client, "client id")
            )
        return names

    def check(
        self, client_id: str | None, address: str, now: float | None = None
    ) -> Throttled | None:
        """Throttled if this client id or address has used up its failures for this window."""
        now = time.time() if now is None else now
        for name, limit, scope in self._names(client_id, address, now):
            if self._registry.counter(name) >= limit:
                return Throttled(max(1, self.window - int(now % self.window)), scope)
        return None

    def failed(self, client_id: str | None, address: str, now: float | None = None) -> None:
        """Count one failed authentication against the client id (if any) and the address."""
        now = time.time() if now is None else now
        expires = (int(now // self.window) + 2) * self.window
        for name, _, _ in self._names(client_id, address, now):
            self._registry.bump(name, 1, expires)


class InFlight:
    """At most `limit` concurrent requests per client in this worker process."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._lock = threading.Lock()
        self._count: defaultdict[str, int] = defaultdict(int)

    def acquire(self, client: str) -> None:
        with self._lock:
            if self._count[client] >= self._limit:
                raise TooManyRequests(
                    f"more than {self._limit} requests of this client are in progress; retry",
                    retry_after=1,
                    headers={},
                )
            self._count[client] += 1

    def release(self, client: str) -> None:
        with self._lock:
            self._count[client] -= 1
            if self._count[client] <= 0:
                del self._count[client]
