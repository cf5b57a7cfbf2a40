"""Read a log or bundle once, verify exactly what was read, and hand out the decoded entries.

Reading and verifying the same snapshot matters for a live log: entries appended between a
verification pass and a second read would otherwise be reported unverified.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.audit.bundle import read_bundle
from gateway.audit.entry import decode_entry
from gateway.audit.reader import read_log
from gateway.audit.verify import VerifyReport, load_keys, verify_log
from gateway.errors import ConfigError
from gateway.store.db import Database


class NotVerified(ConfigError):
    """The log did not verify: nothing is reported from it."""

    def __init__(self, origin: str, report: VerifyReport) -> None:
        problems = "\n".join(str(p) for p in report.problems[:20])
        more = len(report.problems) - 20
        super().__init__(
            f"the audit log {origin} does not verify ({len(report.problems)} problem(s)); "
            f"no report is built from an unverified log:\n{problems}"
            + (f"\n... and {more} more" if more > 0 else "")
        )
        self.report = report


@dataclass(frozen=True, order=True)
class CheckpointInfo:
    size: int  # entries the checkpoint commits to
    root: str  # the Merkle root, base64 as in the note


@dataclass(frozen=True)
class VerifiedLog:
    origin: str
    report: VerifyReport
    entries: list[dict[str, Any]]  # decoded, in index order, every one verified
    checkpoints: list[CheckpointInfo]
    halted: str | None  # the live log's halt note (None for a bundle, or when not halted)
    source: str  # what was read: a path or a database's display name


def load_verified(target: Path | Database, key_files: list[Path]) -> VerifiedLog:
    """Verify a bundle directory or a log database against the trusted keys; raise NotVerified
    (with every problem) unless every entry and checkpoint verifies."""
    keys = load_keys(key_files)
    if isinstance(target, Path) and target.is_dir():
        bundle = read_bundle(target)
        stored = list(bundle.entries)
        origin, notes, halted = bundle.origin, bundle.checkpoints, None
        report = verify_log(
            origin,
            stored,
            keys,
            checkpoints=notes,
            first=bundle.first,
            prefix_leaves=bundle.prefix_leaves,
            torn=bundle.torn,
        )
        source = str(target)
    else:
        contents = read_log(target)
        stored = list(contents.entries)
        origin, notes, halted = contents.origin, contents.checkpoints, contents.halted
        report = verify_log(origin, stored, keys, checkpoints=notes)
        source = target.display if isinstance(target, Database) else str(target)
    if not report.ok:
        raise NotVerified(origin, report)
    # Every note verified above (signature, root, consistency); here they are only read.
    checkpoints = sorted(
        CheckpointInfo(int(lines[1]), lines[2]) for lines in (n.split("\n") for n in notes)
    )
    entries = [decode_entry(s.line) for s in stored]
    return VerifiedLog(origin, report, entries, checkpoints, halted, source)
