"""Offline verification of an audit log: a walk over every entry, trusting only public keys.

Checks, in order, for each entry i (the first failure is reported with its index):
 1. the stored index is i (no gap, no reordering);
 2. the line is a canonical JSON object (RFC 8785) of format version 1, for this log's origin;
 3. its `idx` field is i;
 4. its `prev` field is the RFC 9162 leaf hash of line i-1 (64 zeros for i = 0);
 5. its `ts` is not earlier than the previous entry's;
 6. its Ed25519 signature over ENTRY_CONTEXT || line verifies under a trusted key with its key id.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.audit.entry import GENESIS_PREV, VERSION, StoredEntry, decode_entry, leaf_hash
from gateway.audit.signing import ENTRY_CONTEXT, verify_signature


@dataclass(frozen=True)
class VerifyReport:
    entries: int
    head: str | None  # hex leaf hash of the last good entry
    bad_index: int | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.bad_index is None


def verify_log(
    origin: str, entries: Iterable[StoredEntry], keys: Mapping[str, Ed25519PublicKey]
) -> VerifyReport:
    if not keys:
        # An empty trust set would make every signature check vacuous; refuse it.
        raise ValueError("no trusted audit public keys given")
    prev = GENESIS_PREV
    last_ts = 0
    count = 0
    head: str | None = None

    def fail(idx: int, problem: str) -> VerifyReport:
        return VerifyReport(count, head, idx, problem)

    for expected, stored in enumerate(entries):
        if stored.idx != expected:
            return fail(
                expected, f"entry {expected} is missing (next stored index is {stored.idx})"
            )
        try:
            entry = decode_entry(stored.line)
        except (ValueError, UnicodeDecodeError) as exc:
            return fail(expected, f"entry is not valid canonical JSON: {exc}")
        if entry.get("v") != VERSION:
            return fail(expected, f"unknown entry version {entry.get('v')!r}")
        if entry.get("origin") != origin:
            return fail(expected, f"origin {entry.get('origin')!r} is not this log's {origin!r}")
        if entry.get("idx") != expected:
            return fail(expected, f"entry claims idx {entry.get('idx')!r}")
        if entry.get("prev") != prev:
            return fail(expected, "prev does not match the hash of the previous entry")
        ts = entry.get("ts")
        if not isinstance(ts, int) or isinstance(ts, bool) or ts < last_ts:
            return fail(expected, f"timestamp {ts!r} is invalid or earlier than its predecessor")
        key = keys.get(stored.kid)
        if key is None:
            return fail(expected, f"signed by unknown key id {stored.kid!r}")
        if not verify_signature(key, ENTRY_CONTEXT, stored.line, stored.sig):
            return fail(expected, "signature does not verify")
        prev = leaf_hash(stored.line).hex()
        head = prev
        last_ts = ts
        count += 1
    return VerifyReport(count, head)
