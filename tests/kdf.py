"""scrypt remembered, for the tests' own process.

Every client secret is checked with scrypt (gateway.auth.registry.derive), about 40 ms of CPU
by design. Each test's workspace is a copy of one template, so the suite derives the same
(secret, salt, cost) again and again (tests/auth with test_api.py and test_rows_api.py: 153 of
205 derivations repeat an earlier one; their CPU time fell from 46.9 s to 37.8 s). The tests
remember each result instead. scrypt is a pure function, so every check answers exactly as
before, and every call still goes through `registry.derive`: tests that count or hold up
derivations wrap it as they did. Gateways started as subprocesses hash as in production."""

from __future__ import annotations

import functools
from collections.abc import Callable

from gateway.auth import registry

Derive = Callable[[str, bytes, int, int, int, int], bytes]


def remember_derivations() -> None:
    """Replace `registry.derive` with a remembering wrapper (once per process)."""
    if getattr(registry.derive, "remembers", False):
        return
    derive: Derive = registry.derive

    @functools.wraps(derive)
    def remembered(secret: str, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
        return cached(secret, salt, n, r, p, dklen)

    cached = functools.lru_cache(maxsize=4096)(derive)
    remembered.remembers = True  # type: ignore[attr-defined]
    registry.derive = remembered
