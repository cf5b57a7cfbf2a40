"""Verifying a live log again and again without re-reading all of it.

The console and the usage endpoint answer only from a verified log (gateway.audit.query). A
full verification reads, decodes and checks the signature of every entry: seconds per 10,000
entries. An `IncrementalVerifier` (one per process, held by the app's Services) keeps what the
last verification established, the verified prefix: its size, the chain state the verifier
carries (key windows, Merkle tree, last leaf hash and time), the checkpoints it verified, and
the decoded entries. The next call then:

1. re-verifies fully when the stored entry count is below the verified size (entries were
   removed), when the newest verified entry's stored bytes changed (its leaf hash differs), when
   the origin or trusted keys changed, or when the last full verification is older than
   `full_every_s` seconds;
2. otherwise checks only the entries appended since (index, canonical form, origin, chaining,
   time order, signature by the key whose window holds the index, key rotations), extends the
   Merkle tree, and checks every checkpoint note against the extended tree (roots, windows, and
   consistency with the cached ones; a note verified before skips only its signature check).

Any problem raises LogNotVerified, as a full verification does, and drops the cache, so the
next call starts from scratch. What the incremental step does not see is a rewrite inside the
verified prefix that leaves the count and the newest verified entry alone: that is found by the
next full verification (at most `full_every_s` later) and by `gateway audit verify`.
docs/console.md says the same to operators.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.audit.checkpoint import Checkpoint
from gateway.audit.entry import leaf_hash
from gateway.audit.query import LogNotVerified, Verification, VerifiedLog, verification_of
from gateway.audit.reader import count_entries, read_log
from gateway.audit.verify import Chain, VerifyReport, check_checkpoints, load_keys
from gateway.store.db import Database

Mode = Literal["full", "incremental"]
# Fields with few distinct values: the cache keeps one copy of each value (and of each key),
# so a decoded entry costs about 0.8 KB instead of 2.2 KB (benchmarks/incremental_verify.py).
_SHARED = frozenset(
    ("kind", "route", "method", "client", "dataset", "purpose", "grant", "decision", "reason",
     "origin", "action", "actor", "subject", "trigger", "v", "status")
)  # fmt: skip
# Told of each verification: its mode, the first index it checked and how many entries.
Observer = Callable[[Mode, int, int], None]


@dataclass
class _Verified:
    """The verified prefix of one log under one set of trusted keys."""

    label: str
    key_ids: frozenset[str]
    chain: Chain
    entries: list[dict[str, Any]]
    checkpoints: dict[str, Checkpoint]
    full_at: float  # the clock when it was last verified in full
    strings: dict[str, str]  # one copy of each key and of each value of a _SHARED field


def _compact(entry: dict[str, Any], strings: dict[str, str]) -> dict[str, Any]:
    """The same entry (equal to it), sharing its keys and repeated values with earlier ones."""
    return {
        strings.setdefault(k, k): (
            strings.setdefault(v, v) if k in _SHARED and isinstance(v, str) else v
        )
        for k, v in entry.items()
    }


class IncrementalVerifier:
    """Verifies a live log, checking only what was appended since the last call (see the module
    docstring for what is re-checked when). Thread-safe: one verification runs at a time."""

    def __init__(
        self,
        *,
        full_every_s: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
        observe: Observer | None = None,
    ) -> None:
        self.full_every_s = full_every_s
        self._clock = clock
        self._observe = observe
        self._lock = threading.Lock()
        self._cache: _Verified | None = None

    @property
    def verified_size(self) -> int:
        """Entries in the cached verified prefix (0 when nothing is cached)."""
        cache = self._cache
        return cache.chain.tree.size if cache else 0

    def drop(self) -> None:
        """Forget the verified prefix: the next call verifies in full."""
        with self._lock:
            self._cache = None

    def load(
        self,
        source: Path | Database,
        key_files: Sequence[Path],
        keep: Callable[[Mapping[str, Any]], bool] | None = None,
        *,
        policy_sets: Path | None = None,
    ) -> VerifiedLog:
        """What `load_verified` answers for a log database, from the cached prefix plus the
        entries appended since. Raises LogNotVerified (and forgets the prefix) on any problem."""
        keys = load_keys(key_files)
        label = f"audit log {source.display if isinstance(source, Database) else source}"
        with self._lock:
            try:
                cache = self._usable(label, keys)
                verification = self._extend(source, cache) if cache else None
                if cache is None or verification is None:
                    cache, verification = self._full(source, label, keys)
            except BaseException:
                self._cache = None
                raise
            self._cache = cache
            entries = cache.entries
        kept = list(entries) if keep is None else [e for e in entries if keep(e)]
        return VerifiedLog(verification, kept, policy_sets)

    # --- the two ways -----------------------------------------------------------------------

    def _usable(self, label: str, keys: Mapping[str, Ed25519PublicKey]) -> _Verified | None:
        cache = self._cache
        if cache is None or cache.label != label or cache.key_ids != frozenset(keys):
            return None
        if self._clock() - cache.full_at >= self.full_every_s:
            return None  # time for a full verification
        return cache

    def _full(
        self, source: Path | Database, label: str, keys: Mapping[str, Ed25519PublicKey]
    ) -> tuple[_Verified, Verification]:
        contents = read_log(source)
        chain = Chain(contents.origin, keys)
        report = VerifyReport()
        entries: list[dict[str, Any]] = []
        strings: dict[str, str] = {}
        for stored in contents.entries:
            entry = chain.feed(stored, report)
            if entry is not None:
                entries.append(_compact(entry, strings))
        if self._observe:
            self._observe("full", 0, report.entries)
        valid = check_checkpoints(
            report, chain.tree, contents.origin, chain.keys, contents.checkpoints
        )
        verification = verification_of(contents.origin, label, report, contents.checkpoints)
        if not report.ok:
            raise LogNotVerified(verification, report.problem or "invalid")
        cache = _Verified(label, frozenset(keys), chain, entries, valid, self._clock(), strings)
        return cache, verification

    def _extend(self, source: Path | Database, cache: _Verified) -> Verification | None:
        """The verification of the log extended from the cached prefix; None when the prefix
        cannot be trusted to be there unchanged (then a full verification follows)."""
        chain = cache.chain
        size = chain.tree.size
        if count_entries(source) < size:
            return None  # entries were removed: verify everything again
        contents = read_log(source, start=max(size - 1, 0))
        if contents.origin != chain.origin:
            return None
        entries = contents.entries
        if size:
            last = next(entries, None)
            if last is None or last.idx != size - 1 or leaf_hash(last.line) != chain.tree.leaf(-1):
                return None  # the newest verified entry is not stored as it was verified
        report = VerifyReport(entries=size, head=chain.tree.leaf(-1).hex() if size else None)
        added: list[dict[str, Any]] = []
        for stored in entries:
            entry = chain.feed(stored, report)
            if entry is not None:
                added.append(_compact(entry, cache.strings))
        if self._observe:
            self._observe("incremental", size, report.entries - size)
        valid = check_checkpoints(
            report,
            chain.tree,
            chain.origin,
            chain.keys,
            contents.checkpoints,
            known=cache.checkpoints,
        )
        verification = verification_of(chain.origin, cache.label, report, contents.checkpoints)
        if not report.ok:
            raise LogNotVerified(verification, report.problem or "invalid")
        cache.entries.extend(added)
        cache.checkpoints = valid
        return verification
