"""scrypt remembered, for the tests' own process.

Every client secret is checked with scrypt (gateway.auth.registry.derive), about 40 ms of CPU
by design. Each test's workspace is a copy of one template, so the suite derives the same
(secret, salt, cost) again and again (tests/auth with test_api.py and test_rows_api.py: 153 of
205 derivations repeat an earlier one; their CPU time fell from 46.9 s to 37.8 s). The tests
remember each result instead. scrypt is a pure function, so every check answers exactly as
before, and every call still goes through `registry.derive`: tests that count or hold up
derivations wrap it as they did.

The secrets the tests' own process registers (a client added by a fixture, a rotated secret)
are new each time, so remembering cannot help them: they are hashed at a lower scrypt cost
(N = 2**10, 1/16 of the work; the same code, the cost is one of the parameters every stored
hash carries and every check reads back). Django's test settings do the same with their fast
hasher. What the cost is for is an attacker holding the registry file, which no test is; a
test about the cost itself (the unknown-client hash) asks for the production cost back. The
in-process template of `demo` (tests/conftest.py) is made here, so its demo client is hashed
cheaply too; workspaces made by `gateway init` in a subprocess (tests/servers.py) and gateways
started as subprocesses hash as in production."""

from __future__ import annotations

import functools
from collections.abc import Callable

from gateway.auth import registry

Derive = Callable[[str, bytes, int, int, int, int], bytes]
PRODUCTION_N: int = registry._N
TEST_N = 2**10


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


def cheap_new_secrets() -> None:
    """Secrets registered by this process are hashed with N = TEST_N (see the module's
    docstring); checks read each stored hash's own parameters, as in production."""
    registry._N = TEST_N
