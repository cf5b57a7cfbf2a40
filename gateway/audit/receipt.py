"""The Audit-Receipt header: a signed statement that a call was logged at an index.

Header value (an RFC 8941 structured-field dictionary):

    v=1, origin="public-data-gateway/3f2a...", idx=42, ts=1764380000123,
    leaf=:<base64 leaf hash>:, kid="<key id>", sig=:<base64 Ed25519 signature>:

The signature is the entry's own: Ed25519 over ENTRY_CONTEXT || canonical JSON of
{"idx","leaf"(hex),"origin","ts","v"}, which commits to every byte of the entry.
"""

from __future__ import annotations

import base64
import re

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.audit.entry import Appended, statement
from gateway.audit.signing import ENTRY_CONTEXT, verify_signature

_ITEM = re.compile(r'\s*([a-z]+)=("(?:[^"\\]|\\.)*"|:[A-Za-z0-9+/=]*:|-?\d+)\s*(?:,|$)')


def make_receipt(appended: Appended) -> str:
    sig = appended.sig
    b64 = base64.b64encode
    return (
        f'v=1, origin="{appended.origin}", idx={appended.idx}, ts={appended.ts}, '
        f'leaf=:{b64(appended.leaf).decode()}:, kid="{appended.kid}", sig=:{b64(sig).decode()}:'
    )


def parse_receipt(header: str) -> dict[str, str | int | bytes]:
    """Parse a receipt header into its fields; raises ValueError if malformed."""
    fields: dict[str, str | int | bytes] = {}
    pos = 0
    while pos < len(header):
        match = _ITEM.match(header, pos)
        if match is None:
            raise ValueError(f"malformed Audit-Receipt near character {pos}")
        name, raw = match.group(1), match.group(2)
        if raw.startswith('"'):
            fields[name] = raw[1:-1]
        elif raw.startswith(":"):
            fields[name] = base64.b64decode(raw[1:-1], validate=True)
        else:
            fields[name] = int(raw)
        pos = match.end()
    return fields


def verify_receipt(header: str, keys: dict[str, Ed25519PublicKey]) -> dict[str, str | int | bytes]:
    """Check a receipt's signature; return its fields. Raises ValueError when it does not hold."""
    fields = parse_receipt(header)
    origin, idx, ts, leaf = (
        fields.get("origin"),
        fields.get("idx"),
        fields.get("ts"),
        fields.get("leaf"),
    )
    kid, sig = fields.get("kid"), fields.get("sig")
    if not (
        isinstance(origin, str)
        and isinstance(idx, int)
        and isinstance(ts, int)
        and isinstance(leaf, bytes)
        and isinstance(kid, str)
        and isinstance(sig, bytes)
    ):
        raise ValueError("Audit-Receipt lacks a field or has one of the wrong type")
    key = keys.get(kid)
    if key is None:
        raise ValueError(f"Audit-Receipt signed by unknown key id {kid!r}")
    if not verify_signature(key, ENTRY_CONTEXT, statement(origin, idx, ts, leaf), sig):
        raise ValueError("Audit-Receipt signature does not verify")
    return fields
