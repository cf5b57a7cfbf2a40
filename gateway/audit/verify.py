"""Offline verification of an audit log or export bundle, trusting only the keys you give it.

Runs with the standard library and `cryptography` alone:

    python -m gateway.audit.verify BUNDLE_DIR --key audit-ed25519.pub [--checkpoint kept.note]
    python -m gateway.audit.verify --log audit/log.sqlite3 --key audit-ed25519.pub

Each entry i is checked in turn (docs/audit-format.md section 6):
 1. its index is the next one (no gap, no duplicate, no reordering);
 2. the line is a canonical JSON object (RFC 8785) of version 1 for this log's origin;
 3. its `idx` field is i, its `prev` is the leaf hash of entry i-1 (64 zeros for entry 0);
 4. its `ts` is not earlier than the previous entry's;
 5. it is signed, over ENTRY_CONTEXT || statement(origin, idx, ts, leaf hash), by the key whose
    window contains i. Windows start
    with the trusted keys; a valid `key.rotate` entry signed by the active key hands over to the
    new key from the next index, and the old key is retired.
Then every checkpoint (the log's own and any the auditor kept): its signature is by a key active
at its size, its root equals the Merkle root (RFC 9162) of the first `size` leaves, consecutive
checkpoints are consistent, and none is larger than the log (truncation).

Exit status: 0 intact, 1 invalid, 2 usage error.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import itertools
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.audit.checkpoint import parse_checkpoint
from gateway.audit.entry import (
    GENESIS_PREV,
    VERSION,
    StoredEntry,
    decode_entry,
    leaf_hash,
    statement,
)
from gateway.audit.events import is_key_rotation
from gateway.audit.merkle import MerkleTree, verify_consistency
from gateway.audit.signing import ENTRY_CONTEXT, key_id, load_public_key, verify_signature
from gateway.errors import ConfigError

if TYPE_CHECKING:  # the verifier itself needs only the standard library and cryptography
    from gateway.store.db import Database


@dataclass(frozen=True)
class Problem:
    kind: str  # "entry" or "checkpoint"
    where: int  # entry index or checkpoint size
    reason: str

    def __str__(self) -> str:
        return f"{self.kind} {self.where} INVALID: {self.reason}"


@dataclass
class VerifyReport:
    first: int = 0
    entries: int = 0
    head: str | None = None  # hex leaf hash of the last entry
    checkpoints: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def bad_index(self) -> int | None:
        """The first invalid entry's index (None if every entry is valid)."""
        bad = [p.where for p in self.problems if p.kind == "entry"]
        return min(bad) if bad else None

    @property
    def problem(self) -> str | None:
        return str(self.problems[0]) if self.problems else None


class _Keys:
    """Which key may sign which index: trusted keys, handed over by rotation entries."""

    def __init__(self, trusted: Mapping[str, Ed25519PublicKey]) -> None:
        self.known: dict[str, Ed25519PublicKey] = dict(trusted)
        self.retired: dict[str, int] = {}  # kid -> last index it may sign
        self.activated: dict[str, int] = {}  # kid -> first index it may sign (from a rotation)

    def may_sign(self, kid: str, idx: int) -> Ed25519PublicKey | None:
        key = self.known.get(kid)
        if key is None:
            return None
        if kid in self.retired and idx > self.retired[kid]:
            return None
        if kid in self.activated and idx < self.activated[kid]:
            return None
        return key

    def rotate(self, old_kid: str, idx: int, entry: Mapping[str, object]) -> str | None:
        """Apply a key.rotate entry at idx signed by old_kid; return a problem or None."""
        try:
            raw = base64.b64decode(str(entry.get("new_key", "")), validate=True)
            new_key = Ed25519PublicKey.from_public_bytes(raw)
        except (ValueError, binascii.Error):
            return "key.rotate entry carries no valid Ed25519 public key"
        new_kid = key_id(new_key)
        if entry.get("new_kid") != new_kid or entry.get("old_kid") != old_kid:
            return "key.rotate entry's key ids do not match its keys"
        self.known[new_kid] = new_key
        self.activated[new_kid] = idx + 1
        self.retired[old_kid] = idx
        return None


def verify_log(
    origin: str,
    entries: Iterable[StoredEntry],
    trusted: Mapping[str, Ed25519PublicKey],
    *,
    checkpoints: Sequence[str] = (),
    kept_checkpoints: Sequence[str] = (),
    first: int = 0,
    prefix_leaves: Sequence[bytes] = (),
    torn: bytes | None = None,
) -> VerifyReport:
    if not trusted:
        # An empty trust set would make every signature check vacuous; refuse it.
        raise ValueError("no trusted audit public keys given")
    report = VerifyReport(first=first)
    keys = _Keys(trusted)
    if len(prefix_leaves) != first:
        report.problems.append(
            Problem(
                "entry",
                first,
                f"bundle starts at {first} but carries {len(prefix_leaves)} earlier leaf hashes",
            )
        )
    tree = MerkleTree(prefix_leaves)
    prev: str | None = (
        prefix_leaves[-1].hex() if prefix_leaves else (GENESIS_PREV if first == 0 else None)
    )
    last_ts = 0
    expected = first
    for stored in entries:
        problem = _check_entry(stored, expected, origin, prev, last_ts, keys)
        leaf = leaf_hash(stored.line)
        tree.append(leaf)
        if problem:
            report.problems.append(Problem("entry", expected, problem))
            prev = None  # the next entry's link cannot be checked against an invalid entry
        else:
            entry = decode_entry(stored.line)
            last_ts = int(entry["ts"])
            prev = leaf.hex()
            if is_key_rotation(entry):
                rotation_problem = keys.rotate(stored.kid, expected, entry)
                if rotation_problem:
                    report.problems.append(Problem("entry", expected, rotation_problem))
        report.head = leaf.hex()
        report.entries += 1
        expected += 1
    if torn is not None:
        report.problems.append(
            Problem(
                "entry",
                expected,
                "torn final record (no newline); quarantined, not part of the verified log",
            )
        )
    _check_checkpoints(report, tree, origin, keys, checkpoints, kept_checkpoints)
    return report


def _check_entry(
    stored: StoredEntry, expected: int, origin: str, prev: str | None, last_ts: int, keys: _Keys
) -> str | None:
    if stored.idx != expected:
        return f"stored at index {stored.idx}, expected {expected} (missing or reordered entries)"
    try:
        entry = decode_entry(stored.line)
    except (ValueError, UnicodeDecodeError, TypeError, RecursionError) as exc:
        return f"not canonical JSON: {exc}"
    if entry.get("v") != VERSION:
        return f"unknown entry version {entry.get('v')!r}"
    if entry.get("origin") != origin:
        return f"origin {entry.get('origin')!r} is not this log's {origin!r}"
    if entry.get("idx") != expected:
        return f"claims idx {entry.get('idx')!r} (duplicated or moved entry)"
    if prev is not None and entry.get("prev") != prev:
        return "prev does not match the hash of the previous entry"
    ts = entry.get("ts")
    if not isinstance(ts, int) or isinstance(ts, bool) or ts < last_ts:
        return f"timestamp {ts!r} is invalid or earlier than its predecessor"
    key = keys.may_sign(stored.kid, expected)
    if key is None:
        if stored.kid in keys.known:
            return f"signed by key {stored.kid} outside its window"
        return f"signed by unknown key {stored.kid!r}"
    message = statement(origin, expected, ts, leaf_hash(stored.line))
    if not verify_signature(key, ENTRY_CONTEXT, message, stored.sig):
        return "signature does not verify"
    return None


def _check_checkpoints(
    report: VerifyReport,
    tree: MerkleTree,
    origin: str,
    keys: _Keys,
    notes: Sequence[str],
    kept: Sequence[str],
) -> None:
    parsed: dict[int, bytes] = {}
    for note, source in [(n, "log") for n in notes] + [(n, "kept") for n in kept]:
        size = _size_of(note)
        try:
            checkpoint = parse_checkpoint(note, keys.known, origin=origin)
        except ValueError as exc:
            report.problems.append(Problem("checkpoint", size, str(exc)))
            continue
        if not any(
            keys.may_sign(kid, checkpoint.size - 1) or keys.may_sign(kid, checkpoint.size)
            for kid in checkpoint.signed_by
        ):
            report.problems.append(
                Problem("checkpoint", size, "signed outside the signing key's window")
            )
            continue
        if checkpoint.size > tree.size:
            report.problems.append(
                Problem(
                    "checkpoint",
                    size,
                    f"the log has only {tree.size} entries; entries were removed from its end"
                    + (" (a checkpoint you kept)" if source == "kept" else ""),
                )
            )
            continue
        if checkpoint.size and checkpoint.root != tree.root(checkpoint.size):
            report.problems.append(
                Problem("checkpoint", size, "root does not match the entries (forked log)")
            )
            continue
        if checkpoint.size in parsed and parsed[checkpoint.size] != checkpoint.root:
            report.problems.append(
                Problem("checkpoint", size, "two checkpoints of this size disagree")
            )
            continue
        parsed[checkpoint.size] = checkpoint.root
        report.checkpoints += 1
    sizes = sorted(s for s in parsed if s)
    for old, new in itertools.pairwise(sizes):
        proof = tree.consistency_proof(old, new)
        if not verify_consistency(old, new, parsed[old], parsed[new], proof):
            report.problems.append(
                Problem("checkpoint", new, f"not consistent with checkpoint {old}")
            )


def _size_of(note: str) -> int:
    lines = note.split("\n")
    size = lines[1] if len(lines) > 1 else ""
    return int(size) if size.isascii() and size.isdigit() else -1  # (not "²": int() fails)


# --- command line ------------------------------------------------------------------------------


def load_keys(paths: Iterable[Path | str]) -> dict[str, Ed25519PublicKey]:
    """Trusted keys by key id, from PEM files."""
    keys = {}
    for path in paths:
        key = load_public_key(Path(path))
        keys[key_id(key)] = key
    return keys


def verify_path(
    target: Path | Database, key_files: Sequence[Path], kept: Sequence[Path] = ()
) -> tuple[str, VerifyReport]:
    """Verify a bundle directory or a log database (a SQLite file, or a PostgreSQL store);
    returns (origin, report)."""
    from gateway.audit.bundle import read_bundle
    from gateway.audit.reader import read_log

    keys = load_keys(key_files)
    kept_notes = [p.read_text() for p in kept]
    if isinstance(target, Path) and target.is_dir():
        bundle = read_bundle(target)
        report = verify_log(
            bundle.origin,
            bundle.entries,
            keys,
            checkpoints=bundle.checkpoints,
            kept_checkpoints=kept_notes,
            first=bundle.first,
            prefix_leaves=bundle.prefix_leaves,
            torn=bundle.torn,
        )
        return bundle.origin, report
    contents = read_log(target)
    report = verify_log(
        contents.origin,
        contents.entries,
        keys,
        checkpoints=contents.checkpoints,
        kept_checkpoints=kept_notes,
    )
    return contents.origin, report


def print_report(origin: str, report: VerifyReport, out: TextIO | None = None) -> int:
    write = (out or sys.stdout).write
    for problem in report.problems:
        write(f"{problem}\n")
    last = report.first + report.entries - 1
    span = f"entries {report.first}..{last}" if report.entries else "no entries"
    if report.ok:
        write(
            f"OK: {report.entries} entries verified ({span}, origin {origin}); "
            f"{report.checkpoints} checkpoint(s); head {report.head or '-'}\n"
        )
        return 0
    write(
        f"INVALID: {len(report.problems)} problem(s) in {report.entries} entries ({span}, "
        f"origin {origin})\n"
    )
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gateway.audit.verify",
        description="Verify an audit bundle or log offline. Exit 0 intact, 1 invalid, 2 usage.",
    )
    parser.add_argument("target", nargs="?", help="bundle directory (from `gateway audit export`)")
    parser.add_argument("--log", help="an audit log database instead of a bundle")
    parser.add_argument("--key", action="append", required=True, help="trusted public key (PEM)")
    parser.add_argument(
        "--checkpoint",
        action="append",
        default=[],
        help="a signed checkpoint you kept earlier: the log must contain it",
    )
    args = parser.parse_args(argv)
    if bool(args.target) == bool(args.log):
        parser.error("give a bundle directory or --log FILE (exactly one)")
    try:
        origin, report = verify_path(
            Path(args.target or args.log),
            [Path(k) for k in args.key],
            [Path(c) for c in args.checkpoint],
        )
    except (ConfigError, ValueError, OSError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    return print_report(origin, report)


if __name__ == "__main__":
    raise SystemExit(main())
