"""Promise 6: signed, chained entries in one total order; tampering is found at its index."""

from __future__ import annotations

import itertools
import multiprocessing
import shutil
import sqlite3
import tempfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.audit.entry import decode_entry, leaf_hash, signed_message
from gateway.audit.reader import read_entries
from gateway.audit.signing import ENTRY_CONTEXT, Signer, key_id, load_signer
from gateway.audit.store import AuditLog
from gateway.audit.verify import VerifyReport, verify_log
from gateway.errors import AuditUnavailable


def make_signer() -> Signer:
    key = Ed25519PrivateKey.generate()
    return Signer(key, key_id(key.public_key()))


def keys_of(signer: Signer) -> dict[str, Ed25519PublicKey]:
    return {signer.kid: signer.private_key.public_key()}


def build_log(path: Path, signer: Signer, n: int) -> None:
    log = AuditLog(path, signer)
    for i in range(n):
        log.append({"kind": "test", "n": i, "note": f"事件 {i}"})
    log.close()


def verify(path: Path, signer: Signer) -> VerifyReport:
    origin, entries = read_entries(path)
    return verify_log(origin, entries, keys_of(signer))


@pytest.fixture(scope="module")
def signer() -> Signer:
    return make_signer()


@pytest.fixture(scope="module")
def log_template(tmp_path_factory: pytest.TempPathFactory, signer: Signer) -> Path:
    path = tmp_path_factory.mktemp("log") / "log.sqlite3"
    build_log(path, signer, 12)
    return path


def copy_log(template: Path, directory: Path) -> Path:
    target = directory / "log.sqlite3"
    shutil.copyfile(template, target)
    return target


def test_intact_log_verifies(log_template: Path, signer: Signer) -> None:
    """An untouched log verifies, with indices 0..n-1 each chained to its predecessor."""
    report = verify(log_template, signer)
    assert report.ok
    assert report.entries == 12
    _, entries = read_entries(log_template)
    lines = [e.line for e in entries]
    assert [decode_entry(line)["idx"] for line in lines] == list(range(12))
    assert decode_entry(lines[0])["prev"] == "0" * 64
    for before, after in itertools.pairwise(lines):
        assert decode_entry(after)["prev"] == leaf_hash(before).hex()


@settings(max_examples=40, deadline=None)
@given(idx=st.integers(0, 11), position=st.integers(0, 10_000), bit=st.integers(0, 7))
def test_any_flipped_bit_is_found_at_its_index(
    log_template: Path, signer: Signer, idx: int, position: int, bit: int
) -> None:
    """Flipping any single bit of entry idx makes verification fail exactly at idx."""
    with tempfile.TemporaryDirectory() as tmp:
        path = copy_log(log_template, Path(tmp))
        conn = sqlite3.connect(path)
        conn.text_factory = bytes
        (line,) = conn.execute("SELECT line FROM entries WHERE idx = ?", (idx,)).fetchone()
        data = bytearray(line)
        data[position % len(data)] ^= 1 << bit
        conn.execute("UPDATE entries SET line = CAST(? AS TEXT) WHERE idx = ?", (bytes(data), idx))
        conn.commit()
        conn.close()
        report = verify(path, signer)
    assert not report.ok
    # Exactly one problem, at idx: the next entry's link is not blamed for its predecessor.
    assert [(p.kind, p.where) for p in report.problems] == [("entry", idx)]


def test_deleted_entry_is_reported(log_template: Path, signer: Signer, tmp_path: Path) -> None:
    """Removing an entry from the middle is found at the missing index."""
    path = copy_log(log_template, tmp_path)
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM entries WHERE idx = 5")
    report = verify(path, signer)
    assert report.bad_index == 5
    assert "missing" in (report.problem or "")


def test_reordered_entries_are_reported(log_template: Path, signer: Signer, tmp_path: Path) -> None:
    """Swapping two entries' contents is found at the first of them."""
    path = copy_log(log_template, tmp_path)
    with sqlite3.connect(path) as conn:
        rows = dict(conn.execute("SELECT idx, line FROM entries WHERE idx IN (3, 4)").fetchall())
        conn.execute("UPDATE entries SET line = ? WHERE idx = 3", (rows[4],))
        conn.execute("UPDATE entries SET line = ? WHERE idx = 4", (rows[3],))
    assert verify(path, signer).bad_index == 3


def test_forged_entry_signed_by_another_key_fails(
    log_template: Path, signer: Signer, tmp_path: Path
) -> None:
    """An attacker who rewrites and re-signs an entry with their own key is caught."""
    path = copy_log(log_template, tmp_path)
    forger = make_signer()
    with sqlite3.connect(path) as conn:
        (line,) = conn.execute("SELECT line FROM entries WHERE idx = 7").fetchone()
        forged = line.replace('"n":7', '"n":70').encode()
        sig = forger.sign(ENTRY_CONTEXT, signed_message(forged))
        conn.execute(
            "UPDATE entries SET line = ?, sig = ?, kid = ? WHERE idx = 7",
            (forged.decode(), sig, forger.kid),
        )
    report = verify(path, signer)
    assert report.bad_index == 7
    assert "unknown key" in (report.problem or "")


def test_empty_trust_set_is_refused(log_template: Path) -> None:
    """Verifying against no keys is an error, never a vacuous success."""
    origin, entries = read_entries(log_template)
    with pytest.raises(ValueError, match="no trusted"):
        verify_log(origin, entries, {})


def test_entry_cannot_override_log_fields(tmp_path: Path) -> None:
    """An event cannot set idx, prev, ts, origin or v itself."""
    log = AuditLog(tmp_path / "log.sqlite3", make_signer())
    with pytest.raises(ValueError, match="log-assigned"):
        log.append({"idx": 0, "kind": "forged"})
    log.close()


def test_locked_log_fails_closed(tmp_path: Path) -> None:
    """When the log cannot be written (another writer holds the lock), append raises
    AuditUnavailable instead of silently dropping the entry."""
    path = tmp_path / "log.sqlite3"
    log = AuditLog(path, make_signer(), busy_timeout_ms=100)
    log.append({"kind": "test"})
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(AuditUnavailable):
            log.append({"kind": "test"})
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    log.append({"kind": "test"})  # recovers once the lock is gone
    log.close()


def _worker(path: str, key_pem_path: str, count: int) -> None:
    log = AuditLog(Path(path), load_signer(Path(key_pem_path)))
    for i in range(count):
        log.append({"kind": "test", "n": i})
    log.close()


def test_processes_appending_concurrently_share_one_chain(tmp_path: Path) -> None:
    """Four processes appending at once produce one gap-free, verifiable chain."""
    from gateway.audit.signing import generate_keypair

    key, pub = tmp_path / "k.key", tmp_path / "k.pub"
    generate_keypair(key, pub)
    path = tmp_path / "log.sqlite3"
    AuditLog(path, load_signer(key)).close()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_worker, args=(str(path), str(key), 40)) for _ in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    signer = load_signer(key)
    report = verify(path, signer)
    assert report.ok, report.problem
    assert report.entries == 160


def test_receipt_verifies_and_detects_changes(tmp_path: Path) -> None:
    """A receipt verifies under the log key; changing its index or using another key fails."""
    from gateway.audit.receipt import make_receipt, verify_receipt

    signer = make_signer()
    log = AuditLog(tmp_path / "log.sqlite3", signer)
    appended = log.append({"kind": "test"})
    log.close()
    header = make_receipt(appended)
    fields = verify_receipt(header, keys_of(signer))
    assert fields["idx"] == 0
    assert fields["leaf"] == appended.leaf
    with pytest.raises(ValueError, match="does not verify"):
        verify_receipt(header.replace("idx=0", "idx=1"), keys_of(signer))
    with pytest.raises(ValueError, match="unknown key"):
        verify_receipt(header, keys_of(make_signer()))
    with pytest.raises(ValueError, match="malformed"):
        verify_receipt("idx=0; garbage", keys_of(signer))
