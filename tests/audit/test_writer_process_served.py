"""Promise 6 on a real `gateway serve` (TLS, one worker, its audit writer in a process of its
own): a writer killed under load never lets a 200 out without its entry, and a key rotated
while serving is picked up by the writer process."""

from __future__ import annotations

import hashlib
import os
import signal
import threading
from pathlib import Path

import httpx
import pytest

from gateway.audit.reader import read_log
from gateway.audit.receipt import verify_receipt
from gateway.audit.signing import key_id, load_public_key
from gateway.audit.verify import verify_log
from tests.audit.writerproc import state, unread, wait_for, writers_of
from tests.servers import Server, gateway, home, initialized, server

__all__ = ["home", "initialized", "server"]  # fixtures

pytestmark = pytest.mark.e2e


def trusted(home: Path) -> dict[str, object]:
    keys = [load_public_key(p) for p in [home / "keys" / "audit-ed25519.pub"]]
    keys += [load_public_key(p) for p in sorted((home / "keys").glob("audit-ed25519.*.pub"))]
    return {key_id(k): k for k in keys}


def check_log(home: Path) -> dict[int, bytes]:
    """Verify the whole log with every audit public key; each entry's leaf by index."""
    contents = read_log(home / "audit" / "log.sqlite3")
    entries = list(contents.entries)
    report = verify_log(contents.origin, entries, trusted(home))  # type: ignore[arg-type]
    assert report.ok, report.problems
    return {e.idx: hashlib.sha256(b"\x00" + e.line).digest() for e in entries}


def the_writer(server: Server) -> int:
    wait_for(lambda: len(writers_of(server.process.pid)) == 1, "one writer process runs")
    (pid,) = writers_of(server.process.pid)
    return pid


def test_a_writer_killed_under_load_never_lets_a_200_out_without_its_entry(
    server: Server, home: Path
) -> None:
    """Calls waiting on a writer that is SIGKILLed answer 503 (no data); every 200 carries a
    receipt whose entry is in the log; the log verifies; a new writer serves later calls."""
    answers: list[tuple[int, str | None]] = []
    stop = threading.Event()
    lock = threading.Lock()

    def load() -> None:
        with httpx.Client(verify=server.ca, timeout=60) as client:
            while not stop.is_set():
                response = client.get(f"{server.base}/healthz")
                with lock:
                    answers.append((response.status_code, response.headers.get("audit-receipt")))

    # Each refused call logs its error: read the server's stderr so that it never fills up,
    # and keep it for the failure message.
    errors = server.process.stderr
    assert errors is not None
    stderr: list[bytes] = []
    threading.Thread(target=lambda: stderr.extend(errors), daemon=True).start()
    with httpx.Client(verify=server.ca, timeout=60) as client:
        assert client.get(f"{server.base}/healthz").status_code == 200  # starts the writer
    pid = the_writer(server)
    threads = [threading.Thread(target=load) for _ in range(6)]
    for thread in threads:
        thread.start()
    try:
        wait_for(lambda: len(answers) >= 30, "calls are served")
        os.kill(pid, signal.SIGSTOP)
        wait_for(lambda: state(pid) == "T", "the writer is stopped")
        # The calls in flight may all be inside the child already; one more reaches the pipe.
        threads.append(threading.Thread(target=load))
        threads[-1].start()
        wait_for(lambda: unread(pid) > 0, "a call waits on the writer")
        os.kill(pid, signal.SIGKILL)
        killed_at = len(answers)
        wait_for(
            lambda: any(status == 200 for status, _ in answers[killed_at + 6 :]),
            "a new writer serves calls",
        )
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    statuses = {status for status, _ in answers}
    assert statuses <= {200, 503}, statuses
    assert any(status == 503 for status, _ in answers[killed_at:])  # the waiting calls
    try:
        assert the_writer(server) != pid
    except AssertionError as exc:
        log = b"".join(stderr[-40:]).decode(errors="replace")
        raise AssertionError(
            f"{exc}; writers {writers_of(server.process.pid)}; server:\n{log}"
        ) from None
    leaves = check_log(home)
    keys = trusted(home)
    for status, receipt in answers:
        if status == 503:
            assert receipt is None  # no entry was confirmed: no receipt, no data
            continue
        assert receipt is not None
        fields = verify_receipt(receipt, keys)  # type: ignore[arg-type]
        assert leaves[int(fields["idx"])] == fields["leaf"]


def test_an_audit_key_rotated_while_serving_signs_the_next_entries(
    server: Server, home: Path
) -> None:
    """`gateway keys rotate audit` while serving: the writer process signs the next entries
    with the new key (found at the workspace's key path), and the whole log verifies."""
    with httpx.Client(verify=server.ca, timeout=60) as client:
        before = client.get(f"{server.base}/healthz")
        old = verify_receipt(before.headers["audit-receipt"], trusted(home))  # type: ignore[arg-type]
        gateway("keys", "rotate", "audit", home=home)
        after = client.get(f"{server.base}/healthz")
        assert after.status_code == 200
        new = verify_receipt(after.headers["audit-receipt"], trusted(home))  # type: ignore[arg-type]
        assert new["kid"] != old["kid"]
        assert client.get(f"{server.base}/readyz").json()["checks"]["audit"] == "ok"
    check_log(home)
