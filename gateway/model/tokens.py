"""Per-person tokens (`pseudonymize`, `synthesize`) and their key scope: which releases give the
same person the same token, and so can be joined on it (docs/privacy.md#linkage).

- `recipient` (the default): one client's view under one grant. Tokens link neither across
  grants nor across clients, and differ per recipient (a leak is traced through them);
- `grant`: every client of one grant (they receive the same rows anyway);
- `client`: every grant of one client: its views link on the token, so the joined release is
  what that client holds. Needs a written `justification`;
- `shared`: everyone, every grant. Needs a written `justification`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SCOPES = ("recipient", "grant", "client", "shared")
DEFAULT_SCOPE = "recipient"
TOKEN_TRANSFORMS = frozenset({"pseudonymize", "synthesize"})
# Scopes under which two grants' tokens of the same person are equal.
LINKING_SCOPES = frozenset({"client", "shared"})
DEFAULT_LENGTH = 20  # hex characters of a `pseudonymize` token


def token_scope(params: Mapping[str, Any]) -> str:
    """The key scope of a per-person token transform with these parameters."""
    return str(params.get("scope", DEFAULT_SCOPE))


def link_key(transform: str, params: Mapping[str, Any]) -> tuple[object, ...] | None:
    """What makes two grants' released tokens of the same source column equal for the same
    person and client: the transform, its key scope and every parameter that shapes the value
    (the justification does not). None when the column links nothing across grants."""
    if transform not in TOKEN_TRANSFORMS or token_scope(params) not in LINKING_SCOPES:
        return None
    # A hex token of another `length` is a prefix of the same HMAC: it links all the same.
    ignored = {"justification", "length"}
    shaping = sorted((k, repr(v)) for k, v in params.items() if k not in ignored)
    return (transform, token_scope(params), *shaping)


def token_width(params: Mapping[str, Any]) -> int | None:
    """The length of a hex pseudonym (`pseudonymize`, format token), else None."""
    if params.get("format", "token") != "token":
        return None
    return int(params.get("length", DEFAULT_LENGTH))
