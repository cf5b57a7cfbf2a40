"""Promise 6: signed, chained entries in one total order, written by several processes, failing
closed when the log cannot be written. (Tampering is found at its index: test_tamper.py.)"""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from gateway.audit.reader import read_entries
from gateway.audit.signing import Signer, key_id, load_signer
from gateway.audit.store import AuditLog
from gateway.audit.verify import VerifyReport, verify_log
from gateway.errors import AuditUnavailable


def make_signer() -> Signer:
    key = Ed25519PrivateKey.generate()
    return Signer(key, key_id(key.public_key()))


def keys_of(signer: Signer) -> dict[str, Ed25519PublicKey]:
    return {signer.kid: signer.private_key.public_key()}


def verify(path: Path, signer: Signer) -> VerifyReport:
    origin, entries = read_entries(path)
    return verify_log(origin, entries, keys_of(signer))


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
