"""What an audit entry records as the call's access decision."""

from __future__ import annotations

from enum import StrEnum


class Verdict(StrEnum):
    ALLOW = "allow"  # data or a token was released under a grant or a scope
    DENY = "deny"  # refused: no grant, a scope, a limit, bad input, a refused request
    ERROR = "error"  # the gateway failed (an unfinished response, the audit log unavailable)
    NONE = "none"  # no access decision was needed (health, discovery, the JWKS)
