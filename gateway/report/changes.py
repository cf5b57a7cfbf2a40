"""The policy change timeline, for the report and the console: every set that went live
(gateway.policy.history, from the verified `policy.reload` entries) with what changed in its
files, and every rejected edit."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.errors import ConfigError
from gateway.policy.history import PolicyVersion, diff_sets, history, load_set

MAX_DIFF_LINES = 2000  # per change; the rest is left to `gateway policy diff`


@dataclass(frozen=True)
class Change:
    idx: int
    ts: int
    action: str  # policy.reload | policy.rejected
    actor: str | None
    trigger: str | None
    old: str | None  # the set that was live before (reload) or stayed live (rejected)
    new: str | None  # the set that went live (reload)
    files: tuple[str, ...]  # files that changed (reload)
    error: str | None  # why the edit was rejected
    diff: tuple[
        tuple[str, str], ...
    ]  # (css class, line) of a unified diff, when both sets are kept
    note: str | None  # why no diff is shown


def diff_lines(text: str) -> tuple[tuple[str, str], ...]:
    """A unified diff's lines with the class each is drawn with; at most MAX_DIFF_LINES."""
    lines = text.splitlines(keepends=True)
    shown = []
    for line in lines[:MAX_DIFF_LINES]:
        if line.startswith(("+++", "---", "@@")):
            css = "hunk"
        elif line.startswith("+"):
            css = "add"
        elif line.startswith("-"):
            css = "del"
        else:
            css = "ctx"
        shown.append((css, line.rstrip("\n")))  # each line is a block of its own
    if len(lines) > MAX_DIFF_LINES:
        more = len(lines) - MAX_DIFF_LINES
        shown.append(("hunk", f"... {more} more lines: run `gateway policy diff`"))
    return tuple(shown)


def _diff(
    version: PolicyVersion, sets: Path | None
) -> tuple[tuple[tuple[str, str], ...], str | None]:
    if version.previous is None:
        return (), "the first set this log records: nothing to compare with"
    if sets is None:
        return (), "no policy sets at hand (a bundle exported without them?)"
    try:
        old, new = load_set(sets, version.previous), load_set(sets, version.hash)
    except ConfigError as exc:
        return (), f"files not kept: {exc}"
    text = diff_sets(old, new, version.previous[:12], version.hash[:12])
    return diff_lines(text), None if text else "the files are identical"


def timeline(
    entries: Iterable[Mapping[str, Any]], sets: Path | None, keep: Any = None
) -> list[Change]:
    """Policy changes in log order; `keep(entry)` chooses which (a period), all without it."""
    chosen = [e for e in entries if e.get("kind") == "admin" and (keep is None or keep(e))]
    versions = {v.idx: v for v in history(chosen, sets)}
    changes = []
    for entry in chosen:
        action = entry.get("action")
        idx, ts = int(entry["idx"]), int(entry["ts"])
        if action == "policy.reload" and idx in versions:
            version = versions[idx]
            diff, note = _diff(version, sets)
            changes.append(
                Change(
                    idx,
                    ts,
                    "policy.reload",
                    version.actor,
                    version.trigger,
                    version.previous,
                    version.hash,
                    version.files,
                    None,
                    diff,
                    note,
                )
            )
        elif action == "policy.rejected":
            changes.append(
                Change(
                    idx,
                    ts,
                    "policy.rejected",
                    _text(entry, "actor"),
                    _text(entry, "trigger"),
                    _text(entry, "active"),
                    None,
                    (),
                    _text(entry, "error"),
                    (),
                    None,
                )
            )
    return changes


def _text(entry: Mapping[str, Any], name: str) -> str | None:
    value = entry.get(name)
    return value if isinstance(value, str) else None
