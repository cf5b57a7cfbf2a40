"""Follow audit key rotations from keys you already trust (needs only `cryptography`).

After `gateway keys rotate audit`, receipts and checkpoints are signed by a key that a developer
who got the old public key out of band does not know. The rotation itself is an entry of the
log, signed by the old key and carrying the new one (docs/audit-format.md section 5), so trust
can be handed over without asking the operator again: `GET /v1/audit/keys` (public) returns
those entries, and `follow_rotations` accepts each new key whose rotation entry verifies under
a key already trusted, in index order. Nothing else from that answer is trusted.

    keys = load_keys(["audit-ed25519.pub"])
    keys = follow_rotations(keys, http.get(f"{gw}/v1/audit/keys").json())
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.audit.entry import signed_message
from gateway.audit.events import is_key_rotation
from gateway.audit.signing import ENTRY_CONTEXT, key_id, verify_signature

MAX_ROTATIONS = 10_000


def _rotation(item: object) -> tuple[int, str, bytes, bytes]:
    """(idx, signing kid, signature, entry line) of one item of the answer."""
    if not isinstance(item, dict):
        raise ValueError("a rotation is not a JSON object")
    idx, kid, sig, line = item.get("idx"), item.get("kid"), item.get("sig"), item.get("entry")
    if not (
        isinstance(idx, int)
        and not isinstance(idx, bool)
        and isinstance(kid, str)
        and isinstance(sig, str)
        and isinstance(line, str)
    ):
        raise ValueError("a rotation lacks idx, kid, sig or entry, or has one of the wrong type")
    try:
        signature = base64.b64decode(sig, validate=True)
    except (ValueError, binascii.Error):
        raise ValueError(f"rotation {idx}: the signature is not base64") from None
    return idx, kid, signature, line.encode("utf-8")


def _new_key(idx: int, old_kid: str, line: bytes) -> tuple[str, Ed25519PublicKey]:
    """The key a verified key.rotate entry hands over to (its ids checked against the keys)."""
    entry = json.loads(line)
    if not isinstance(entry, dict) or entry.get("idx") != idx:
        raise ValueError(f"rotation {idx}: the entry is not the one at index {idx}")
    if not is_key_rotation(entry):
        raise ValueError(f"rotation {idx}: the entry is not a key.rotate entry")
    try:
        raw = base64.b64decode(str(entry.get("new_key", "")), validate=True)
        new_key = Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, binascii.Error):
        raise ValueError(f"rotation {idx}: no valid Ed25519 public key in the entry") from None
    new_kid = key_id(new_key)
    if entry.get("old_kid") != old_kid or entry.get("new_kid") != new_kid:
        raise ValueError(f"rotation {idx}: the entry's key ids do not match its keys")
    return new_kid, new_key


def follow_rotations(
    trusted: Mapping[str, Ed25519PublicKey], answer: Mapping[str, object]
) -> dict[str, Ed25519PublicKey]:
    """The trusted keys plus every key handed over, directly or in a chain, by a rotation entry
    signed by one of them. Rotations signed by keys not (yet) trusted are passed over; one that
    is signed by a trusted key but does not verify raises ValueError (the log or the answer has
    been tampered with)."""
    rotations = answer.get("rotations")
    if not isinstance(rotations, list) or len(rotations) > MAX_ROTATIONS:
        raise ValueError("the answer has no list of rotations")
    keys = dict(trusted)
    for idx, kid, sig, line in sorted((_rotation(r) for r in rotations), key=lambda r: r[0]):
        key = keys.get(kid)
        if key is None:
            continue
        try:
            message = signed_message(line)
        except (ValueError, UnicodeDecodeError):
            raise ValueError(f"rotation {idx}: the entry is not a log entry") from None
        if not verify_signature(key, ENTRY_CONTEXT, message, sig):
            raise ValueError(f"rotation {idx}: the signature by {kid} does not verify")
        new_kid, new_key = _new_key(idx, kid, line)
        keys[new_kid] = new_key
    return keys
