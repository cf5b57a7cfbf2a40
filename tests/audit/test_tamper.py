"""Promise 6: tampering is found at its index, whichever way the log reaches the verifier. Each
attack below runs once against the live SQLite log (read as `gateway audit verify` reads a
workspace) and once against an exported bundle (read as an auditor reads it offline): one set of
cases, two readers, the same verdict."""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.audit.bundle import export_bundle, read_bundle
from gateway.audit.checkpoint import sign_checkpoint
from gateway.audit.entry import StoredEntry, decode_entry, leaf_hash, signed_message
from gateway.audit.reader import read_log
from gateway.audit.signing import ENTRY_CONTEXT, Signer, key_id
from gateway.audit.store import AuditLog
from gateway.audit.verify import VerifyReport, verify_log

SIZE = 20
CHECKPOINTS = (8, 16, 20)


def new_signer() -> Signer:
    key = Ed25519PrivateKey.generate()
    return Signer(key, key_id(key.public_key()))


def trust(*signers: Signer) -> dict[str, Ed25519PublicKey]:
    return {s.kid: s.private_key.public_key() for s in signers}


@dataclass(frozen=True)
class Record:
    """One stored entry as an attacker with write access sees it: the index it is stored at
    (a row's key, a signature record's idx), the line, and its signature."""

    idx: int
    line: bytes
    kid: str
    sig: bytes


class Target(Protocol):
    """A copy of the log in one reader's form, open to the attacker."""

    reader: str

    def read(self) -> tuple[str, Iterator[StoredEntry]]:
        """The log's origin and its entries as the reader yields them to the verifier."""

    def records(self) -> list[Record]: ...

    def store(self, records: Sequence[Record]) -> None:
        """Replace every entry with `records`, in this order."""

    def drop_checkpoints_above(self, size: int) -> None: ...

    def verify(self, signer: Signer, kept: Sequence[str] = ()) -> VerifyReport: ...


class LiveLog:
    """The workspace's SQLite log, edited with SQL (rows keyed by idx)."""

    reader = "log"

    def __init__(self, path: Path) -> None:
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path)
        conn.text_factory = bytes
        return conn

    def records(self) -> list[Record]:
        with self._connect() as conn:
            rows = conn.execute("SELECT idx, line, kid, sig FROM entries ORDER BY idx").fetchall()
        conn.close()
        return [Record(int(i), bytes(line), bytes(k).decode(), bytes(s)) for i, line, k, s in rows]

    def store(self, records: Sequence[Record]) -> None:
        with self._connect() as conn:
            conn.execute("DELETE FROM entries")
            conn.executemany(
                "INSERT INTO entries (idx, line, leaf, ts, kid, sig)"
                " VALUES (?, CAST(? AS TEXT), ?, 0, ?, ?)",
                [(r.idx, r.line, leaf_hash(r.line), r.kid, r.sig) for r in records],
            )
        conn.close()

    def drop_checkpoints_above(self, size: int) -> None:
        with self._connect() as conn:
            conn.execute("DELETE FROM checkpoints WHERE size > ?", (size,))
        conn.close()

    def read(self) -> tuple[str, Iterator[StoredEntry]]:
        contents = read_log(self.path)
        return contents.origin, contents.entries

    def verify(self, signer: Signer, kept: Sequence[str] = ()) -> VerifyReport:
        contents = read_log(self.path)
        return verify_log(
            contents.origin,
            contents.entries,
            trust(signer),
            checkpoints=contents.checkpoints,
            kept_checkpoints=kept,
        )


class Bundle:
    """An exported bundle, edited as files: entries.jsonl by position, signatures.jsonl by idx."""

    reader = "bundle"

    def __init__(self, path: Path) -> None:
        self.path = path

    def records(self) -> list[Record]:
        lines = (self.path / "entries.jsonl").read_bytes().split(b"\n")[:-1]
        sigs = [json.loads(s) for s in (self.path / "signatures.jsonl").read_text().splitlines()]
        return [
            Record(int(s["idx"]), line, s["kid"], base64.b64decode(s["sig"]))
            for line, s in zip(lines, sigs, strict=True)
        ]

    def store(self, records: Sequence[Record]) -> None:
        (self.path / "entries.jsonl").write_bytes(b"".join(r.line + b"\n" for r in records))
        (self.path / "signatures.jsonl").write_text(
            "".join(
                json.dumps({"idx": r.idx, "kid": r.kid, "sig": base64.b64encode(r.sig).decode()})
                + "\n"
                for r in records
            )
        )

    def drop_checkpoints_above(self, size: int) -> None:
        for note in (self.path / "checkpoints").glob("*.note"):
            if int(note.stem) > size:
                note.unlink()

    def read(self) -> tuple[str, Iterator[StoredEntry]]:
        b = read_bundle(self.path)
        return b.origin, b.entries

    def verify(self, signer: Signer, kept: Sequence[str] = ()) -> VerifyReport:
        b = read_bundle(self.path)
        return verify_log(
            b.origin,
            b.entries,
            trust(signer),
            checkpoints=b.checkpoints,
            kept_checkpoints=kept,
            first=b.first,
            prefix_leaves=b.prefix_leaves,
            torn=b.torn,
        )


@dataclass(frozen=True)
class Templates:
    log: Path
    bundle: Path

    def copy(self, reader: str, directory: Path) -> Target:
        """A private copy of the log in the form `reader` reads."""
        if reader == "log":
            shutil.copyfile(self.log, directory / "log.sqlite3")
            return LiveLog(directory / "log.sqlite3")
        shutil.copytree(self.bundle, directory / "bundle")
        return Bundle(directory / "bundle")


READERS = ["log", "bundle"]


@pytest.fixture(scope="module")
def signer() -> Signer:
    return new_signer()


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory, signer: Signer) -> Templates:
    """A 20-entry log (non-ASCII notes) with checkpoints at 8, 16 and 20, and its export."""
    root = tmp_path_factory.mktemp("tamper")
    log = AuditLog(root / "log.sqlite3", signer)
    for i in range(SIZE):
        log.append({"kind": "test", "n": i, "note": f"事件 {i}"})
        if i + 1 in CHECKPOINTS:
            log.checkpoint()
    log.close()
    assert export_bundle(root / "log.sqlite3", root / "bundle") == SIZE
    return Templates(root / "log.sqlite3", root / "bundle")


@pytest.fixture(params=READERS)
def target(request: pytest.FixtureRequest, templates: Templates, tmp_path: Path) -> Target:
    return templates.copy(request.param, tmp_path)


def problems(report: VerifyReport) -> list[tuple[str, int]]:
    return [(p.kind, p.where) for p in report.problems]


def covering(idx: int) -> list[tuple[str, int]]:
    """The checkpoints whose tree holds entry idx: a changed entry breaks each of them."""
    return [("checkpoint", size) for size in CHECKPOINTS if size > idx]


def renumbered(records: Sequence[Record]) -> list[Record]:
    """Each record stored at its new position (the attacker's best effort when lines move)."""
    return [replace(r, idx=i) for i, r in enumerate(records)]


def test_intact_log_verifies(target: Target, signer: Signer) -> None:
    """An untouched log verifies: 20 entries, indices 0..n-1 each chained to its predecessor,
    and 3 checkpoints."""
    report = target.verify(signer)
    assert report.ok, report.problems
    assert report.entries == SIZE
    assert report.checkpoints == len(CHECKPOINTS)
    lines = [r.line for r in target.records()]
    assert [decode_entry(line)["idx"] for line in lines] == list(range(SIZE))
    assert decode_entry(lines[0])["prev"] == "0" * 64
    for before, after in itertools.pairwise(lines):
        assert decode_entry(after)["prev"] == leaf_hash(before).hex()


@pytest.mark.parametrize("reader", READERS)
@settings(max_examples=40, deadline=None)
@given(idx=st.integers(0, SIZE - 1), position=st.integers(0, 10_000), bit=st.integers(0, 7))
def test_any_flipped_bit_is_found_at_its_index(
    templates: Templates, signer: Signer, reader: str, idx: int, position: int, bit: int
) -> None:
    """Flipping any single bit of entry idx makes verification fail exactly at idx (and at the
    checkpoints covering it): the next entry's link is not blamed for its predecessor."""
    with tempfile.TemporaryDirectory() as tmp:
        target = templates.copy(reader, Path(tmp))
        records = target.records()
        data = bytearray(records[idx].line)
        data[position % len(data)] ^= 1 << bit
        records[idx] = replace(records[idx], line=bytes(data))
        target.store(records)
        report = target.verify(signer)
    assert not report.ok
    if reader == "bundle" and b"\n" in data:
        # In a bundle a flip to a newline splits the line in two: a different attack, found at
        # the same index (the entries after it shift, so they are reported too).
        assert report.bad_index == idx
        return
    assert problems(report) == [("entry", idx), *covering(idx)]


def test_changed_value(target: Target, signer: Signer) -> None:
    """A value changed in entry 5: entry 5 is invalid, and so are the checkpoints covering it."""
    records = target.records()
    records[5] = replace(records[5], line=records[5].line.replace(b'"n":5', b'"n":7'))
    target.store(records)
    assert problems(target.verify(signer)) == [("entry", 5), *covering(5)]


# What each reader says about an entry that is not where it is stored: the live log reads the
# index from the row's key (a gap is a missing entry), a bundle from the line's position.
DELETED = {"log": "missing", "bundle": "claims idx 6"}


def test_deleted_entry(target: Target, signer: Signer) -> None:
    """Removing entry 5 (the others keep their indices) is found at index 5."""
    records = target.records()
    target.store(records[:5] + records[6:])
    report = target.verify(signer)
    assert report.bad_index == 5
    assert DELETED[target.reader] in str(report.problems[0])


def test_deleted_entry_renumbered(target: Target, signer: Signer) -> None:
    """Removing entry 9 and renumbering the rest to close the gap is found at index 9."""
    records = target.records()
    target.store(renumbered(records[:9] + records[10:]))
    report = target.verify(signer)
    assert report.bad_index == 9
    assert "claims idx 10" in str(report.problems[0])


def test_swapped_lines(target: Target, signer: Signer) -> None:
    """Swapping the lines of entries 3 and 4 (signatures stay in place) is found at index 3."""
    records = target.records()
    records[3], records[4] = (
        replace(records[3], line=records[4].line),
        replace(records[4], line=records[3].line),
    )
    target.store(records)
    assert target.verify(signer).bad_index == 3


def test_swapped_entries(target: Target, signer: Signer) -> None:
    """Swapping entries 3 and 4 with their signatures is found at index 3."""
    records = target.records()
    records[3], records[4] = records[4], records[3]
    target.store(renumbered(records))
    assert target.verify(signer).bad_index == 3


def test_duplicated_entry(target: Target, signer: Signer) -> None:
    """Entry 6 repeated is found at index 7, where the copy stands."""
    records = target.records()
    target.store(renumbered(records[:7] + records[6:]))
    report = target.verify(signer)
    assert report.bad_index == 7
    assert "claims idx 6" in str(report.problems[0])


@pytest.mark.parametrize("idx", [7, 11])
def test_entry_forged_with_another_key(target: Target, signer: Signer, idx: int) -> None:
    """An entry rewritten and re-signed with the attacker's own key is found at its index."""
    forger = new_signer()
    records = target.records()
    forged = records[idx].line.replace(b'"n":%d' % idx, b'"n":%d' % (idx + 90))
    assert forged != records[idx].line
    sig = forger.sign(ENTRY_CONTEXT, signed_message(forged))
    records[idx] = Record(idx, forged, forger.kid, sig)
    target.store(records)
    report = target.verify(signer)
    assert report.bad_index == idx
    assert "unknown key" in str(report.problems[0])


def test_non_canonical_reencoding(target: Target, signer: Signer) -> None:
    """The same entry re-encoded with spaces is not the signed entry: found at its index."""
    records = target.records()
    records[2] = replace(records[2], line=json.dumps(json.loads(records[2].line)).encode())
    target.store(records)
    report = target.verify(signer)
    assert report.bad_index == 2
    assert "canonical" in str(report.problems[0])


def test_truncation_below_a_kept_checkpoint(
    target: Target, templates: Templates, signer: Signer
) -> None:
    """Cutting the newest entries passes on its own, but not against a checkpoint the auditor kept
    (the case CloudTrail's validator misses)."""
    with sqlite3.connect(f"file:{templates.log}?mode=ro", uri=True) as conn:
        (note,) = conn.execute("SELECT note FROM checkpoints WHERE size = 20").fetchone()
    conn.close()
    target.store(target.records()[:14])
    target.drop_checkpoints_above(14)
    assert target.verify(signer).ok  # undetectable without outside knowledge ...
    report = target.verify(signer, kept=(note,))
    assert problems(report) == [("checkpoint", 20)]  # ... and caught with it
    assert "only 14 entries" in str(report.problems[0])


def test_forked_checkpoint(target: Target, signer: Signer) -> None:
    """A validly signed checkpoint whose root is not this log's (a split view) is reported."""
    origin = decode_entry(target.records()[0].line)["origin"]
    forked = sign_checkpoint(origin, 16, b"\x42" * 32, [signer])
    report = target.verify(signer, kept=(forked,))
    assert problems(report) == [("checkpoint", 16)]
    assert "forked" in str(report.problems[0])


def test_empty_trust_set_is_refused(target: Target) -> None:
    """Verifying against no keys is an error, never a vacuous success."""
    origin, entries = target.read()
    with pytest.raises(ValueError, match="no trusted"):
        verify_log(origin, entries, {})
