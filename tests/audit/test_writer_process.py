"""Promise 6 with the audit writer in its own process (gateway/audit/procwriter.py): entries
appended from the event loop are written by a spawned child, one durable signed entry per
call or a clear AuditUnavailable; a dead, hung or halted child fails closed; a halt the child
recorded is the serving process's halt; the child exits with its parent."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.audit.entry import HEADER_FIELDS, Appended
from gateway.audit.halt import resume
from gateway.audit.reader import read_log
from gateway.audit.signing import Signer, key_id
from gateway.audit.store import AuditLog
from gateway.audit.verify import verify_log
from gateway.errors import AuditUnavailable, ConfigError
from gateway.settings import Settings
from tests.audit.writerproc import holds_open, state, unread, wait_for
from tests.conftest import Demo, services_of


def new_signer() -> Signer:
    key = Ed25519PrivateKey.generate()
    return Signer(key, key_id(key.public_key()))


def process_log(
    path: Path, signer: Signer, busy_timeout_ms: int = 10_000, answer_s: float = 5.0
) -> AuditLog:
    return AuditLog(
        path,
        signer,
        writer_process=True,
        busy_timeout_ms=busy_timeout_ms,
        writer_answer_s=answer_s,
    )


def started(log: AuditLog) -> AuditLog:
    """`log` once its writer child is up and has opened the log: a short answer limit then
    measures the child's answers, not its start (imports take longer than 0.6 s on a loaded
    machine)."""
    try:
        log.start_writer()
        pid = log.writer_pid
        assert pid is not None
        path = Path(log.database.url)
        wait_for(lambda: holds_open(pid, path), "the writer has opened the log")
    except BaseException:
        log.close()  # no writer child left behind by a failed start
        raise
    return log


def halt_of(log: AuditLog) -> str | None:
    return log.halted


def verified(path: Path, signer: Signer) -> int:
    """Verify the whole log with the signer's public key; its number of entries."""
    contents = read_log(path)
    entries = list(contents.entries)
    report = verify_log(contents.origin, entries, {signer.kid: signer.private_key.public_key()})
    assert report.ok, report.problems
    return len(entries)


async def gather(log: AuditLog, events: list[dict[str, object]]) -> list[Appended | BaseException]:
    """Append concurrently; each call's entry or error (a hang fails after 120 s instead of
    stalling the suite: a safety bound, not a timing assertion)."""
    calls = [log.append_async(event) for event in events]  # type: ignore[arg-type]
    return list(await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 120))


def test_loop_appends_are_signed_and_committed_by_a_spawned_child(tmp_path: Path) -> None:
    """64 concurrent calls from the event loop: 64 consecutive entries in one valid chain, all
    written by a child process that did not get the key on its command line or environment."""
    signer = new_signer()
    log = process_log(tmp_path / "log.sqlite3", signer)
    try:
        results = asyncio.run(gather(log, [{"kind": "test", "n": n} for n in range(64)]))
        assert sorted(r.idx for r in results if isinstance(r, Appended)) == list(range(64))
        pid = log.writer_pid
        assert pid is not None
        assert pid != os.getpid()
        assert b"gateway.audit.child" in Path(f"/proc/{pid}/cmdline").read_bytes()
        pem = signer.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        body = pem.split(b"\n")[1]  # a line of the key's base64
        for where in ("cmdline", "environ"):
            assert body not in Path(f"/proc/{pid}/{where}").read_bytes()
    finally:
        log.close()
    assert state(pid) in (None, "Z")  # closing the log ends the child
    assert verified(tmp_path / "log.sqlite3", signer) == 64


def test_a_killed_writer_fails_its_waiting_calls_and_is_restarted(tmp_path: Path) -> None:
    """Fail closed: calls waiting on a writer that is killed get AuditUnavailable (never a
    receipt without an entry, never an entry written twice); a new writer takes the next calls."""
    signer = new_signer()
    db = tmp_path / "log.sqlite3"
    log = process_log(db, signer)

    async def scenario() -> tuple[list[Appended | BaseException], int]:
        await log.append_async({"kind": "test", "n": -1})
        pid = log.writer_pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        wait_for(lambda: state(pid) == "T", "the writer is stopped")
        waiting = [
            asyncio.ensure_future(log.append_async({"kind": "test", "n": n})) for n in range(20)
        ]
        while not unread(pid):  # the batch went out in one message the child has not read
            await asyncio.sleep(0)
        os.kill(pid, signal.SIGKILL)
        failed = list(await asyncio.gather(*waiting, return_exceptions=True))
        refused: list[str] = []
        while True:  # refused for a second (fail closed), then served by a new child
            try:
                await log.append_async({"kind": "test", "n": 100})
                break
            except AuditUnavailable as exc:
                refused.append(str(exc))
                await asyncio.sleep(0.02)
        assert log.writer_pid not in (None, pid)
        assert all("audit writer process" in reason for reason in refused)
        return failed, len(refused)

    try:
        failed, _ = asyncio.run(scenario())
    finally:
        log.close()
    assert len(failed) == 20
    assert all(isinstance(r, AuditUnavailable) for r in failed), failed
    assert "was killed by signal 9" in str(failed[0])
    assert verified(db, signer) == 2  # the first call and the one after the restart


def test_a_batch_larger_than_the_pipe_is_written_whole(tmp_path: Path) -> None:
    """One loop iteration's entries can exceed the pipe's buffer (here about 1.2 MB): the rest
    is written when the pipe drains, and every call gets its own entry, in one valid chain."""
    signer = new_signer()
    db = tmp_path / "log.sqlite3"
    log = process_log(db, signer)
    try:
        # Distinct strings: marshal would send one shared string only once.
        events = [{"kind": "test", "n": n, "pad": f"{n}" + "x" * 4000} for n in range(300)]
        results = asyncio.run(gather(log, events))
    finally:
        log.close()
    assert sorted(r.idx for r in results if isinstance(r, Appended)) == list(range(300))
    assert verified(db, signer) == 300


def test_a_hung_writer_is_killed_and_its_calls_fail(tmp_path: Path) -> None:
    """Fail closed, not hung: a writer that answers nothing for its answer limit (5 s by default;
    0.5 s here) + 2 x the busy timeout is killed, and the calls waiting on it get
    AuditUnavailable naming the limit."""
    signer = new_signer()
    log = started(process_log(tmp_path / "log.sqlite3", signer, busy_timeout_ms=50, answer_s=0.5))

    async def scenario() -> BaseException | Appended:
        await log.append_async({"kind": "test"})
        pid = log.writer_pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        (result,) = await asyncio.gather(log.append_async({"kind": "test"}), return_exceptions=True)
        return result

    try:
        result = asyncio.run(scenario())
    finally:
        log.close()
    assert isinstance(result, AuditUnavailable)
    assert "did not answer within 0.6 s" in str(result)


def test_closing_the_log_does_not_wait_forever_for_a_hung_writer(tmp_path: Path) -> None:
    """A stopping gateway is not held by a hung writer: `close` kills it once it has not
    finished within its answer limit (0.5 s here) + 2 x the busy timeout (a calm writer finishes
    at once: see the first test)."""
    signer = new_signer()
    log = started(process_log(tmp_path / "log.sqlite3", signer, busy_timeout_ms=50, answer_s=0.5))
    asyncio.run(gather(log, [{"kind": "test"}]))
    pid = log.writer_pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    wait_for(lambda: state(pid) == "T", "the writer is stopped")
    log.close()
    wait_for(lambda: state(pid) in (None, "Z"), "the hung writer is killed")
    assert verified(tmp_path / "log.sqlite3", signer) == 1


def test_a_halt_recorded_by_the_child_is_the_serving_process_halt(tmp_path: Path) -> None:
    """Promise 6: a write that fails in the writer process (database full) halts the log: the
    serving process reports it (`halted`, /readyz), every other process refuses too, and appends
    resume only after `gateway audit resume`."""
    signer = new_signer()
    db = tmp_path / "log.sqlite3"
    log = process_log(db, signer)
    process = log._process
    assert process is not None

    async def append(event: dict[str, object]) -> Appended:
        return await log.append_async(event)  # type: ignore[arg-type]

    try:
        asyncio.run(append({"kind": "test"}))
        with sqlite3.connect(db) as conn:
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
        process.pragma("max_page_count", pages)  # the child's disk is "full" now
        with pytest.raises(AuditUnavailable, match="halted"):
            asyncio.run(append({"kind": "test", "pad": "x" * 20000}))
        reason = log.halted
        assert reason is not None
        assert "write failed" in reason
        assert read_log(db).halted is not None  # the child recorded the note
        other = AuditLog(db, signer)  # another worker
        with pytest.raises(AuditUnavailable, match="halted"):
            other.append({"kind": "test"})
        other.close()
        process.pragma("max_page_count", 1_000_000)  # space is back ...
        with pytest.raises(AuditUnavailable, match="halted"):
            asyncio.run(append({"kind": "test"}))  # ... but the log stays halted
        assert resume(db) is not None
        assert halt_of(log) is None
        assert asyncio.run(append({"kind": "test"})).idx == 1
    finally:
        log.close()
    assert verified(db, signer) == 2


def test_the_writer_exits_when_its_parent_dies(tmp_path: Path) -> None:
    """The child never outlives the serving process: killed with SIGKILL (no clean-up), its
    parent's end of the pipe closes and the child exits."""
    script = textwrap.dedent(
        f"""
        import asyncio, os, signal, sys
        from pathlib import Path
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        from gateway.audit.signing import Signer, key_id
        from gateway.audit.store import AuditLog
        key = Ed25519PrivateKey.generate()
        signer = Signer(key, key_id(key.public_key()))
        log = AuditLog(Path({str(tmp_path / "log.sqlite3")!r}), signer, writer_process=True)
        asyncio.run(log.append_async({{"kind": "test"}}))
        print(log.writer_pid, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    pid = int(done.stdout.strip())
    wait_for(lambda: state(pid) in (None, "Z"), "the orphaned writer exits")


class Color(enum.StrEnum):
    RED = "red"


def test_an_event_the_pipe_cannot_carry_fails_alone(tmp_path: Path) -> None:
    """Hostile input: an event holding something that is not JSON fails its own call with the
    writer thread's error type; the other calls of its batch are written. Enum values are
    written as their JSON value, as the writer thread writes them."""
    signer = new_signer()
    db = tmp_path / "log.sqlite3"
    log = process_log(db, signer)
    try:
        results = asyncio.run(
            gather(log, [{"kind": "a"}, {"kind": "b", "bad": {1, 2}}, {"kind": Color.RED}])
        )
    finally:
        log.close()
    assert isinstance(results[0], Appended)
    assert isinstance(results[1], TypeError)
    assert isinstance(results[2], Appended)
    lines = [json.loads(e.line) for e in read_log(db).entries]
    assert [line["kind"] for line in lines] == ["a", "red"]
    assert verified(db, signer) == 2


KEYS = st.text(st.characters(max_codepoint=127), max_size=6)  # canonical JSON: ASCII keys
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53 - 1), max_value=2**53 - 1)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=12,
)
EVENTS = st.dictionaries(
    KEYS.filter(lambda k: k not in HEADER_FIELDS), JSON, min_size=1, max_size=5
)


@pytest.fixture(scope="module")
def shared_log(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[AuditLog, Path, Signer]]:
    signer = new_signer()
    db = tmp_path_factory.mktemp("wp") / "log.sqlite3"
    log = process_log(db, signer)
    yield log, db, signer
    log.close()


@settings(max_examples=25)
@given(events=st.lists(EVENTS, min_size=1, max_size=6))
def test_entries_written_by_the_child_hold_exactly_the_event(
    shared_log: tuple[AuditLog, Path, Signer], events: list[dict[str, object]]
) -> None:
    """Property: whatever JSON an event holds (odd Unicode, nesting, big integers), the entry
    the child writes is the event plus the log's header fields, and the chain verifies. Each
    example runs on a new event loop: the child's replies follow the loop that is alive."""
    log, db, signer = shared_log
    results = asyncio.run(gather(log, events))
    assert all(isinstance(r, Appended) for r in results), results
    stored = {e.idx: json.loads(e.line) for e in read_log(db).entries}
    for event, result in zip(events, results, strict=True):
        assert isinstance(result, Appended)
        line = stored[result.idx]
        assert {k: v for k, v in line.items() if k not in HEADER_FIELDS} == event
    verified(db, signer)


@pytest.fixture(scope="module")
def both_writers(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Signer, list[tuple[AuditLog, Path]]]]:
    """One log written by the writer process, one by the writer thread, same key."""
    signer = new_signer()
    with contextlib.ExitStack() as stack:
        logs = []
        for writer_process in (True, False):
            db = tmp_path_factory.mktemp("both") / "log.sqlite3"
            log = AuditLog(db, signer, writer_process=writer_process)
            stack.callback(log.close)
            logs.append((log, db))
        yield signer, logs


@settings(max_examples=25)
@given(events=st.lists(EVENTS, min_size=1, max_size=4))
def test_both_writers_store_the_same_entry_for_an_event(
    both_writers: tuple[Signer, list[tuple[AuditLog, Path]]], events: list[dict[str, object]]
) -> None:
    """Property: GATEWAY_AUDIT_WRITER only chooses who does the work. The writer process and
    the writer thread store, for the same events in the same order, consecutive entries with
    the same fields in the same order and the same values, apart from what differs between any
    two logs (origin, index, time, previous hash); both chains verify. (Each example compares
    only the entries it appended, so one failing example does not make the next ones fail.)"""
    signer, logs = both_writers
    lines: list[list[dict[str, object]]] = []
    for log, db in logs:

        async def append_in_order(log: AuditLog = log) -> list[int]:
            return [(await log.append_async(event)).idx for event in events]  # type: ignore[arg-type]

        written = asyncio.run(append_in_order())
        assert written == list(range(written[0], written[0] + len(events)))
        stored = {e.idx: json.loads(e.line) for e in read_log(db).entries}
        lines.append([stored[idx] for idx in written])
        verified(db, signer)
    by_process, by_thread = lines
    differ = ("origin", "idx", "ts", "prev")
    for one, other in zip(by_process, by_thread, strict=True):
        assert list(one) == list(other)
        same = {k: v for k, v in one.items() if k not in differ}
        assert same == {k: v for k, v in other.items() if k not in differ}


def test_a_served_app_starts_its_writer_before_the_first_call(demo: Demo) -> None:
    """The writer process is started with the app (its imports are not paid by the first
    call); PostgreSQL keeps the writer thread, so there is none. The first call's entry is the
    one that child writes."""
    from starlette.testclient import TestClient

    from gateway.app import create_app

    shipped = dataclasses.replace(demo.settings, audit_writer="process")  # the default
    assert Settings().audit_writer == "process"
    with TestClient(create_app(shipped), base_url="https://testserver") as client:
        audit_log = services_of(client).audit_log
        pid = audit_log.writer_pid
        if audit_log.database.postgres:
            assert pid is None
            return
        assert pid is not None
        assert state(pid) not in (None, "Z")
        size = audit_log.size()
        assert client.get("/healthz").status_code == 200
        assert audit_log.writer_pid == pid  # the same child wrote the call's entry
        assert audit_log.size() == size + 1


def test_the_thread_writer_is_chosen_by_setting_and_a_wrong_name_is_refused(demo: Demo) -> None:
    """GATEWAY_AUDIT_WRITER=thread: no writer process, and calls are still audited; any other
    name than process or thread is refused at start-up, naming the choices."""
    from starlette.testclient import TestClient

    from gateway.app import create_app

    threaded = dataclasses.replace(demo.settings, audit_writer="thread")
    with TestClient(create_app(threaded), base_url="https://testserver") as client:
        audit_log = services_of(client).audit_log
        size = audit_log.size()
        assert client.get("/healthz").status_code == 200
        assert audit_log.writer_pid is None
        assert audit_log.size() == size + 1
    assert Settings.from_env({"GATEWAY_AUDIT_WRITER": "thread"}).audit_writer == "thread"
    with pytest.raises(ConfigError, match="AUDIT_WRITER must be one of process, thread"):
        Settings.from_env({"GATEWAY_AUDIT_WRITER": "threads"})
