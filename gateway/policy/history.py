"""Policy history: every policy set that went live, kept content-addressed beside the log.

    state/policy-sets/<policy hash>/manifest.json   {"format", "hash", "files": {name: sha256}}
    state/policy-sets/<policy hash>/files/<sha256>  each file's exact bytes

The directory name is the set's policy hash (gateway.policy.files.policy_hash over the names and
contents), which every `policy.reload` entry (`new`) and every decision (`policy`) names, so a
signed entry pins the exact files; `load_set` recomputes the hash and refuses a set that does not
match it. Hierarchy files are part of the set (names `hierarchy:<path>`). Directories are 0700,
files 0600; a set is written once, to a temporary directory renamed into place.

An exported bundle carries the sets its entries name (`policy-sets/` in the bundle, same layout).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import secrets
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gateway.errors import ConfigError
from gateway.fsutil import private_dir, write_new
from gateway.policy.files import policy_hash

FORMAT = "public-data-gateway/policy-set/v1"
_HEX = re.compile(r"[0-9a-f]{64}")
MAX_SET_BYTES = (
    64 * 1024 * 1024
)  # far above any real set: a bound on what a bundle may make us read
MAX_FILES = 10_000


def store_set(directory: Path, sources: Mapping[str, bytes]) -> str:
    """Keep a policy set (name -> exact bytes) under `directory`; returns its hash. Idempotent:
    a set already kept is left as it is."""
    if not sources:
        raise ConfigError("an empty policy set cannot be kept")
    digest = policy_hash(sources)
    target = directory / digest
    if (target / "manifest.json").is_file():
        return digest
    private_dir(directory)
    staging = directory / f".{digest}.{secrets.token_hex(6)}.tmp"
    private_dir(staging / "files")
    try:
        names: dict[str, str] = {}
        for name in sorted(sources):
            content_hash = hashlib.sha256(sources[name]).hexdigest()
            names[name] = content_hash
            write_new(staging / "files" / content_hash, sources[name])
        manifest = {"format": FORMAT, "hash": digest, "files": names}
        write_new(
            staging / "manifest.json",
            (json.dumps(manifest, indent=2, ensure_ascii=False, sort_keys=True) + "\n").encode(),
        )
        try:
            os.rename(staging, target)
        except OSError:
            if not (target / "manifest.json").is_file():  # not "another process kept it first"
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return digest


def load_set(directory: Path, digest: str) -> dict[str, bytes]:
    """The files of a kept set, checked against its hash. ConfigError when it is not kept or
    does not match (altered)."""
    if _HEX.fullmatch(digest) is None:
        raise ConfigError(f"{digest[:80]!r} is not a policy hash (64 lower-case hex digits)")
    where = directory / digest
    try:
        manifest = json.loads((where / "manifest.json").read_bytes()[:1_000_000])
    except FileNotFoundError:
        raise ConfigError(f"policy set {digest[:12]} is not kept in {directory}") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"policy set {digest[:12]}: unreadable manifest ({exc})") from None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or not 0 < len(files) <= MAX_FILES:
        raise ConfigError(f"policy set {digest[:12]}: the manifest lists no files")
    sources: dict[str, bytes] = {}
    total = 0
    for name, content_hash in files.items():
        if not isinstance(name, str) or not isinstance(content_hash, str):
            raise ConfigError(f"policy set {digest[:12]}: malformed manifest")
        if _HEX.fullmatch(content_hash) is None:
            raise ConfigError(f"policy set {digest[:12]}: malformed file hash for {name[:80]!r}")
        path = where / "files" / content_hash
        if path.is_symlink() or not path.is_file():
            raise ConfigError(f"policy set {digest[:12]}: file {name[:80]!r} is missing")
        total += path.stat().st_size
        if total > MAX_SET_BYTES:
            raise ConfigError(f"policy set {digest[:12]} is larger than {MAX_SET_BYTES} bytes")
        content = path.read_bytes()
        if hashlib.sha256(content).hexdigest() != content_hash:
            raise ConfigError(f"policy set {digest[:12]}: file {name[:80]!r} was altered")
        sources[name] = content
    if policy_hash(sources) != digest:
        raise ConfigError(f"policy set {digest[:12]} does not match its hash (altered)")
    return sources


def known_sets(directory: Path) -> list[str]:
    if not directory.is_dir():
        return []
    return sorted(p.name for p in directory.iterdir() if _HEX.fullmatch(p.name) and p.is_dir())


def copy_sets(source: Path, target: Path, digests: Iterable[str]) -> list[str]:
    """Copy the kept sets named by `digests` (those present and intact) into `target`, for a
    bundle; returns the hashes copied."""
    copied = []
    for digest in sorted(set(digests)):
        try:
            files = load_set(source, digest)
        except ConfigError:
            continue
        store_set(target, files)
        copied.append(digest)
    return copied


def referenced(entries: Iterable[Mapping[str, Any]]) -> set[str]:
    """The policy hashes entries name (decisions' `policy`, reloads' `old` and `new`)."""
    found: set[str] = set()
    for entry in entries:
        for name in ("policy", "old", "new", "active"):
            value = entry.get(name)
            if isinstance(value, str) and _HEX.fullmatch(value):
                found.add(value)
    return found


# --- history, diff, explain ------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyVersion:
    hash: str
    idx: int | None  # the policy.reload entry that made it live
    ts: int | None
    actor: str | None
    trigger: str | None
    previous: str | None
    files: tuple[str, ...]  # the files that changed
    stored: bool  # its files are kept (diff and explain work)


def history(entries: Iterable[Mapping[str, Any]], directory: Path | None) -> list[PolicyVersion]:
    """Every policy set that went live, in log order, from the `policy.reload` entries."""
    kept = set(known_sets(directory)) if directory is not None else set()
    versions = []
    for entry in entries:
        if entry.get("kind") != "admin" or entry.get("action") != "policy.reload":
            continue
        new = entry.get("new")
        if not isinstance(new, str):
            continue
        files = entry.get("files")
        versions.append(
            PolicyVersion(
                hash=new,
                idx=_int(entry.get("idx")),
                ts=_int(entry.get("ts")),
                actor=_str(entry.get("actor")),
                trigger=_str(entry.get("trigger")),
                previous=_str(entry.get("old")),
                files=tuple(str(f) for f in files) if isinstance(files, list) else (),
                stored=new in kept,
            )
        )
    return versions


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def resolve(prefix: str, candidates: Iterable[str]) -> str:
    """A full policy hash from a unique prefix (at least 6 hex digits)."""
    if not re.fullmatch(r"[0-9a-f]{6,64}", prefix):
        raise ConfigError(f"{prefix[:80]!r} is not a policy hash or a prefix of 6+ hex digits")
    found = sorted({c for c in candidates if c.startswith(prefix)})
    if len(found) != 1:
        what = "no kept policy set" if not found else f"{len(found)} policy sets"
        raise ConfigError(
            f"{what} start with {prefix}; give more digits (`gateway policy history`)"
        )
    return found[0]


def diff_sets(
    old: Mapping[str, bytes], new: Mapping[str, bytes], old_label: str, new_label: str
) -> str:
    """A unified diff per file that differs (added and removed files included)."""
    parts: list[str] = []
    for name in sorted(set(old) | set(new)):
        before, after = old.get(name), new.get(name)
        if before == after:
            continue
        parts.extend(
            difflib.unified_diff(
                _lines(before),
                _lines(after),
                fromfile=f"{old_label}/{name}" if before is not None else "/dev/null",
                tofile=f"{new_label}/{name}" if after is not None else "/dev/null",
            )
        )
    return "".join(p if p.endswith("\n") else p + "\n" for p in parts)


def _lines(content: bytes | None) -> list[str]:
    if content is None:
        return []
    return content.decode("utf-8", "replace").splitlines(keepends=True)


@dataclass(frozen=True)
class GrantSource:
    file: str
    line: int  # 1-based first line of the grant
    text: str  # the grant's exact lines in the file


def grant_source(sources: Mapping[str, bytes], grant_id: str) -> GrantSource | None:
    """Where grant `grant_id` is written in a policy set, and its exact lines."""
    for name in sorted(sources):
        if name.startswith("hierarchy:") or not name.endswith((".yaml", ".yml")):
            continue
        text = sources[name].decode("utf-8", "replace")
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError:
            continue
        for node in _grant_nodes(root):
            if _scalar(node, "id") == grant_id:
                lines = text.splitlines(keepends=True)
                last = _last_node(node)
                start = node.start_mark.line
                end = last.end_mark.line + (1 if last.end_mark.column > 0 else 0)
                body = "".join(lines[start:end])
                return GrantSource(name, start + 1, body if body.endswith("\n") else body + "\n")
    return None


def _last_node(node: yaml.Node) -> yaml.Node:
    """The innermost last node of a block collection: a block collection ends where the next
    token starts (the next grant, say), its last scalar or flow collection where it ends."""
    while True:
        if isinstance(node, yaml.MappingNode) and node.value and not node.flow_style:
            node = node.value[-1][1]
        elif isinstance(node, yaml.SequenceNode) and node.value and not node.flow_style:
            node = node.value[-1]
        else:
            return node


def _grant_nodes(root: yaml.Node | None) -> list[yaml.MappingNode]:
    if not isinstance(root, yaml.MappingNode):
        return []
    for key, value in root.value:
        if (
            isinstance(key, yaml.ScalarNode)
            and key.value == "grants"
            and isinstance(value, yaml.SequenceNode)
        ):
            return [n for n in value.value if isinstance(n, yaml.MappingNode)]
    return []


def _scalar(node: yaml.MappingNode, name: str) -> str | None:
    for key, value in node.value:
        if isinstance(key, yaml.ScalarNode) and key.value == name:
            return str(value.value) if isinstance(value, yaml.ScalarNode) else None
    return None


def explain_entry(entry: Mapping[str, Any], directory: Path | None) -> dict[str, Any]:
    """Which policy set and grant decided an entry, with the grant's exact text when the set is
    kept (`text` None and `note` saying why otherwise)."""
    policy, grant = _str(entry.get("policy")), _str(entry.get("grant"))
    result: dict[str, Any] = {
        "idx": entry.get("idx"),
        "ts": entry.get("ts"),
        "client": entry.get("client"),
        "route": entry.get("route"),
        "dataset": entry.get("dataset"),
        "purpose": entry.get("purpose"),
        "decision": entry.get("decision"),
        "reason": entry.get("reason"),
        "rows": entry.get("rows"),
        "policy": policy,
        "grant": grant,
        "file": None,
        "line": None,
        "text": None,
        "note": None,
    }
    if entry.get("kind") != "http":
        result["note"] = "an admin entry: no grant decided it"
    elif policy is None:
        result["note"] = "no policy decision was needed for this call"
    elif directory is None or policy not in known_sets(directory):
        result["note"] = f"policy set {policy[:12]} is not kept here"
    elif grant is None:
        result["note"] = f"no grant of policy set {policy[:12]} applied ({entry.get('reason')})"
    else:
        found = grant_source(load_set(directory, policy), grant)
        if found is None:
            result["note"] = f"grant {grant!r} is not in policy set {policy[:12]}"
        else:
            result.update(file=found.file, line=found.line, text=found.text)
    return result


def attach_sets(bundle: Path, directory: Path) -> list[str]:
    """Copy into an exported bundle (its `policy-sets/`) every kept set its entries name;
    returns the hashes copied."""
    names: set[str] = set()
    with (bundle / "entries.jsonl").open("rb") as lines:
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict):
                names |= referenced([entry])
    return copy_sets(directory, bundle / "policy-sets", names)
