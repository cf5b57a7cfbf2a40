"""Export bundles: a self-contained directory an auditor verifies offline.

    bundle.json        {"format", "origin", "first", "count", "exported_ts"}
    entries.jsonl      the entries' canonical lines, one per line, byte for byte as signed
    signatures.jsonl   {"idx", "kid", "sig" (base64)} per entry, same order
    checkpoints/       <size>.note: every signed checkpoint whose size is within the bundle
    keys.json          every audit key with its window: {"kid", "public_key" (base64, raw
                       32 bytes), "from_idx", "to_idx" (null while current)} (informational;
                       trust comes from the keys the auditor supplies and the rotation entries)
    keys/<kid>.pub     the same keys as PEM files
    prefix-leaves.txt  when first > 0: hex leaf hashes of entries 0..first-1, so checkpoints can be
                       checked without the earlier entries' contents

Standard library + cryptography only.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.audit.entry import StoredEntry, leaf_hash
from gateway.audit.reader import read_log
from gateway.audit.schema import KeyWindow
from gateway.fsutil import PRIVATE_DIR, new_private, private_dir
from gateway.store.db import Database

FORMAT = "public-data-gateway/audit-bundle/v1"


@dataclass(frozen=True)
class Bundle:
    origin: str
    first: int
    entries: Iterator[StoredEntry]
    checkpoints: list[str]
    keys: list[KeyWindow]
    prefix_leaves: list[bytes]
    torn: bytes | None  # a final entry line without its newline, quarantined


def export_bundle(db: Path | Database, out: Path, first: int = 0, last: int | None = None) -> int:
    """Write entries first..last-1 (default: to the end) and what verifies them; returns count."""
    contents = read_log(db)
    # Private like the workspace (0700 directories, 0600 files), wherever it is written: the
    # owner hands the bundle to auditors; other users of the machine get nothing.
    private_dir(out.parent)
    out.mkdir(PRIVATE_DIR)  # FileExistsError: never write into an existing directory
    os.chmod(out, PRIVATE_DIR)
    private_dir(out / "checkpoints")
    private_dir(out / "keys")
    count = 0
    prefix: list[str] = []
    with new_private(out / "entries.jsonl") as lines, new_private(out / "signatures.jsonl") as sigs:
        for entry in contents.entries:
            if entry.idx < first:
                prefix.append(leaf_hash(entry.line).hex())
                continue
            if last is not None and entry.idx >= last:
                break
            lines.write(entry.line + b"\n")
            sig = base64.b64encode(entry.sig).decode()
            sigs.write(
                (json.dumps({"idx": entry.idx, "kid": entry.kid, "sig": sig}) + "\n").encode()
            )
            count += 1
    end = first + count
    for note in contents.checkpoints:
        size = int(note.split("\n")[1])
        if size <= end:
            _write(out / "checkpoints" / f"{size}.note", note.encode())
    windows = []
    for i, key in enumerate(contents.keys):
        to_idx = contents.keys[i + 1].from_idx - 1 if i + 1 < len(contents.keys) else None
        windows.append(
            {
                "kid": key.kid,
                "public_key": base64.b64encode(key.public_key).decode(),
                "from_idx": key.from_idx,
                "to_idx": to_idx,
            }
        )
        pem = Ed25519PublicKey.from_public_bytes(key.public_key).public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        _write(out / "keys" / f"{key.kid}.pub", pem)
    _write(out / "keys.json", (json.dumps(windows, indent=2) + "\n").encode())
    if first:
        _write(out / "prefix-leaves.txt", "".join(h + "\n" for h in prefix).encode())
    meta = {
        "format": FORMAT,
        "origin": contents.origin,
        "first": first,
        "count": count,
        "exported_ts": int(time.time() * 1000),
    }
    _write(out / "bundle.json", (json.dumps(meta, indent=2) + "\n").encode())
    return count


def _write(path: Path, data: bytes) -> None:
    with new_private(path) as handle:
        handle.write(data)


def read_bundle(directory: Path) -> Bundle:
    """Read a bundle; raises ValueError when it is not one (a usage problem, not tampering)."""
    try:
        meta = json.loads((directory / "bundle.json").read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{directory} is not an audit bundle: {exc}") from None
    if meta.get("format") != FORMAT:
        raise ValueError(f"{directory}: unknown bundle format {meta.get('format')!r}")
    first = int(meta.get("first", 0))
    raw = (directory / "entries.jsonl").read_bytes()
    lines = raw.split(b"\n")
    torn = None
    if lines and lines[-1] == b"":
        lines.pop()
    elif lines:
        torn = lines.pop()  # no final newline: a torn last record, reported by the verifier
    sigs = [json.loads(s) for s in (directory / "signatures.jsonl").read_text().splitlines() if s]
    by_idx = {int(s["idx"]): s for s in sigs}

    def entries() -> Iterator[StoredEntry]:
        for offset, line in enumerate(lines):
            sig = by_idx.get(first + offset, {})
            yield StoredEntry(
                first + offset, line, str(sig.get("kid", "")), base64.b64decode(sig.get("sig", ""))
            )

    notes = [
        p.read_text()
        for p in sorted((directory / "checkpoints").glob("*.note"), key=lambda p: int(p.stem))
    ]
    keys = [
        KeyWindow(k["kid"], base64.b64decode(k["public_key"]), int(k["from_idx"]))
        for k in json.loads((directory / "keys.json").read_text())
    ]
    prefix_file = directory / "prefix-leaves.txt"
    prefix = (
        [bytes.fromhex(h) for h in prefix_file.read_text().split()] if prefix_file.exists() else []
    )
    return Bundle(str(meta["origin"]), first, entries(), notes, keys, prefix, torn)
