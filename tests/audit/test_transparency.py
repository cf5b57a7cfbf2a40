"""Issue 6 promises: checkpoints and bundles (each attack on a log or a bundle runs in
test_tamper.py, against both readers), the offline verifier, key windows, and a failed write
that halts the log until an operator resumes it."""

from __future__ import annotations

import base64
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from gateway.audit.bundle import export_bundle, read_bundle
from gateway.audit.checkpoint import parse_checkpoint
from gateway.audit.entry import signed_message
from gateway.audit.halt import resume
from gateway.audit.signing import ENTRY_CONTEXT, Signer, generate_keypair, key_id, load_signer
from gateway.audit.store import AuditLog
from gateway.audit.verify import VerifyReport, verify_log
from gateway.errors import AuditUnavailable


def new_signer() -> Signer:
    key = Ed25519PrivateKey.generate()
    return Signer(key, key_id(key.public_key()))


def trust(*signers: Signer) -> dict[str, Ed25519PublicKey]:
    return {s.kid: s.private_key.public_key() for s in signers}


@pytest.fixture(scope="module")
def signer() -> Signer:
    return new_signer()


@pytest.fixture(scope="module")
def log_db(tmp_path_factory: pytest.TempPathFactory, signer: Signer) -> Path:
    """A 20-entry log with checkpoints at 8, 16 and 20."""
    path = tmp_path_factory.mktemp("tlog") / "log.sqlite3"
    log = AuditLog(path, signer)
    for i in range(20):
        log.append({"kind": "test", "n": i})
        if i + 1 in (8, 16, 20):
            log.checkpoint()
    log.close()
    return path


@pytest.fixture(scope="module")
def bundle_template(tmp_path_factory: pytest.TempPathFactory, log_db: Path) -> Path:
    out = tmp_path_factory.mktemp("bundle") / "b"
    assert export_bundle(log_db, out) == 20
    return out


def copy_bundle(template: Path, tmp_path: Path) -> Path:
    target = tmp_path / "bundle"
    shutil.copytree(template, target)
    return target


def verify_bundle(path: Path, signer: Signer, kept: tuple[str, ...] = ()) -> VerifyReport:
    b = read_bundle(path)
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


def lines(path: Path) -> list[bytes]:
    return (path / "entries.jsonl").read_bytes().split(b"\n")[:-1]


def write_lines(path: Path, entries: list[bytes], sigs: list[str] | None = None) -> None:
    (path / "entries.jsonl").write_bytes(b"".join(e + b"\n" for e in entries))
    if sigs is not None:
        (path / "signatures.jsonl").write_text("".join(s + "\n" for s in sigs))


def sig_lines(path: Path) -> list[str]:
    return (path / "signatures.jsonl").read_text().splitlines()


def problems(report: VerifyReport) -> list[tuple[str, int]]:
    return [(p.kind, p.where) for p in report.problems]


def test_checkpoint_is_a_c2sp_signed_note(log_db: Path, signer: Signer) -> None:
    """Three text lines (origin, size, base64 root), a blank line, an em-dash signature line."""
    note = (
        sqlite3.connect(log_db)
        .execute("SELECT note FROM checkpoints WHERE size = 20")
        .fetchone()[0]
    )
    text, sigs = note.split("\n\n")
    origin, size, root = text.split("\n")
    assert origin.startswith("public-data-gateway/")
    assert size == "20"
    assert len(base64.b64decode(root)) == 32
    assert sigs.startswith("\u2014 " + origin + " ")
    checkpoint = parse_checkpoint(note, trust(signer))
    assert checkpoint.size == 20
    with pytest.raises(ValueError, match="no valid signature"):
        parse_checkpoint(note, trust(new_signer()))
    with pytest.raises(ValueError, match="no valid signature"):
        parse_checkpoint(note.replace("\n20\n", "\n21\n"), trust(signer))


def test_torn_final_record_is_reported(
    bundle_template: Path, signer: Signer, tmp_path: Path
) -> None:
    """A last line without its newline is reported and kept out of the verified log."""
    path = copy_bundle(bundle_template, tmp_path)
    raw = (path / "entries.jsonl").read_bytes()
    (path / "entries.jsonl").write_bytes(raw[:-1])
    report = verify_bundle(path, signer)
    assert ("entry", 19) in problems(report)
    assert any("torn" in str(p) for p in report.problems)


def test_partial_export_checks_checkpoints_with_prefix_leaves(
    log_db: Path, signer: Signer, tmp_path: Path
) -> None:
    """An export of entries 10..19 still verifies every checkpoint, via the earlier leaf hashes."""
    out = tmp_path / "part"
    assert export_bundle(log_db, out, first=10) == 10
    report = verify_bundle(out, signer)
    assert report.ok, report.problems
    assert report.checkpoints == 3
    (out / "prefix-leaves.txt").write_text(
        (out / "prefix-leaves.txt").read_text().replace("a", "b", 1)
    )
    assert not verify_bundle(out, signer).ok


def test_key_rotation_windows(tmp_path: Path) -> None:
    """After a rotation the new key signs; the old key's later signatures are rejected; an auditor
    holding only the old key follows the rotation entry."""
    old_path, new_path = tmp_path / "old.key", tmp_path / "new.key"
    generate_keypair(old_path, tmp_path / "old.pub")
    generate_keypair(new_path, tmp_path / "new.pub")
    old, new = load_signer(old_path), load_signer(new_path)
    db = tmp_path / "log.sqlite3"
    log = AuditLog(db, old, signer_for=lambda kid: new if kid == new.kid else None)
    for i in range(3):
        log.append({"kind": "test", "n": i})
    rotation = log.rotate(new, "tester", lambda: None)
    after = log.append({"kind": "test", "n": 3})
    log.close()
    assert rotation == 3
    assert after.kid == new.kid
    out = tmp_path / "bundle"
    export_bundle(db, out)
    b = read_bundle(out)
    report = verify_log(b.origin, b.entries, trust(old), checkpoints=b.checkpoints)
    assert report.ok, report.problems
    # The rotation checkpoint carries both signatures.
    note = next(n for n in b.checkpoints if n.split("\n")[1] == "4")
    assert set(parse_checkpoint(note, trust(old, new)).signed_by) == {old.kid, new.kid}
    # The old key signing after its window is rejected, even when the auditor trusts it.
    entries, sigs = lines(out), sig_lines(out)
    sigs[4] = json.dumps(
        {
            "idx": 4,
            "kid": old.kid,
            "sig": base64.b64encode(old.sign(ENTRY_CONTEXT, signed_message(entries[4]))).decode(),
        }
    )
    write_lines(out, entries, sigs)
    b = read_bundle(out)
    report = verify_log(b.origin, b.entries, trust(old, new), checkpoints=b.checkpoints)
    assert problems(report) == [("entry", 4)]
    assert "outside its window" in str(report.problems[0])


def test_failed_write_halts_until_resumed(tmp_path: Path) -> None:
    """Promise 6: a real write failure (database full) fails the call, halts the log for every
    process, and appends stay refused until an operator resumes."""
    db = tmp_path / "log.sqlite3"
    signer = new_signer()
    log = AuditLog(db, signer)
    log.append({"kind": "test"})
    pages = log._conn.execute("PRAGMA page_count").fetchone()[0]
    log._conn.execute(f"PRAGMA max_page_count = {pages}")  # the disk is "full" now
    with pytest.raises(AuditUnavailable, match="halted"):
        log.append({"kind": "test", "pad": "x" * 20000})
    log._conn.execute("PRAGMA max_page_count = 1000000")  # space is back ...
    with pytest.raises(AuditUnavailable, match="halted"):
        log.append({"kind": "test"})  # ... but the log stays halted
    other = AuditLog(db, signer)  # another process of the same gateway (same keys)
    with pytest.raises(AuditUnavailable, match="halted"):
        other.append({"kind": "test"})  # sees the halt too
    assert resume(db) is not None
    assert log.append({"kind": "test"}).idx == 1
    log.close()
    other.close()


def test_concurrent_appends_share_commits(tmp_path: Path) -> None:
    """16 threads appending at once: every append gets a distinct index in one valid chain."""
    signer = new_signer()
    log = AuditLog(tmp_path / "log.sqlite3", signer)
    results: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(50):
            appended = log.append({"kind": "test"})
            with lock:
                results.append(appended.idx)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    assert sorted(results) == list(range(800))
    from gateway.audit.reader import read_log

    contents = read_log(tmp_path / "log.sqlite3")
    assert verify_log(contents.origin, contents.entries, trust(signer)).ok


BLOCKER = """
import sys
BLOCKED = ("pandas", "numpy", "starlette", "authlib", "joserfc", "yaml", "faker", "uvicorn")
for name in BLOCKED + ("pyarrow",):
    sys.modules[name] = None  # importing any of these now fails
import runpy
sys.argv = ["verify", *sys.argv[1:]]
runpy.run_module("gateway.audit.verify", run_name="__main__")
"""


def run_verifier(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCKER, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ},
    )


def test_verifier_runs_with_stdlib_and_cryptography_only(
    bundle_template: Path, signer: Signer, tmp_path: Path
) -> None:
    """`python -m gateway.audit.verify` needs no server dependency; exit 0 / 1 / 2."""
    from cryptography.hazmat.primitives import serialization

    pem = tmp_path / "audit.pub"
    pem.write_bytes(
        signer.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    ok = run_verifier(str(bundle_template), "--key", str(pem))
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("OK: 20 entries verified")
    bad = copy_bundle(bundle_template, tmp_path)
    entries = lines(bad)
    entries[4] = entries[4].replace(b'"n":4', b'"n":5')
    write_lines(bad, entries)
    broken = run_verifier(str(bad), "--key", str(pem))
    assert broken.returncode == 1
    assert broken.stdout.splitlines()[0].startswith("entry 4 INVALID:")
    usage = run_verifier(str(tmp_path / "nope"), "--key", str(pem))
    assert usage.returncode == 2


def test_checkpoints_while_appending_never_break_the_log(tmp_path: Path) -> None:
    """Checkpoints signed while 8 threads append (found by load testing: they once shared the
    write connection without a lock and halted the log)."""
    signer = new_signer()
    log = AuditLog(tmp_path / "log.sqlite3", signer)
    stop = threading.Event()
    errors: list[Exception] = []

    def checkpointer() -> None:
        while not stop.is_set():
            try:
                log.checkpoint()
            except Exception as exc:
                errors.append(exc)

    def appender() -> None:
        for _ in range(150):
            log.append({"kind": "test"})

    background = threading.Thread(target=checkpointer)
    background.start()
    threads = [threading.Thread(target=appender) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stop.set()
    background.join()
    log.checkpoint()
    assert log.halted is None
    log.close()
    assert errors == []
    from gateway.audit.reader import read_log

    contents = read_log(tmp_path / "log.sqlite3")
    report = verify_log(
        contents.origin, contents.entries, trust(signer), checkpoints=contents.checkpoints
    )
    assert report.ok, report.problems
    assert report.entries == 1200
    assert report.checkpoints >= 2
