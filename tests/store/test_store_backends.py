"""Issue 8: the store interfaces behave the same on SQLite and PostgreSQL. Every test here runs
against both backends (PostgreSQL tests create and drop their own database and skip with a
clear message when no server is reachable)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.audit.entry import decode_entry
from gateway.audit.halt import resume
from gateway.audit.reader import read_log
from gateway.audit.schema import SEQUENCER
from gateway.audit.signing import Signer, key_id
from gateway.audit.store import AuditLog
from gateway.audit.verify import verify_log
from gateway.auth.registry import CACHE_SECONDS, ClientRegistry
from gateway.errors import AuditUnavailable, ConfigError
from gateway.store.config import databases
from gateway.store.db import Database
from tests.doubles import FakeClock
from tests.pgserver import Databases


def make_signer() -> Signer:
    private = Ed25519PrivateKey.generate()
    return Signer(private, key_id(private.public_key()))


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Database, Database]]:
    """(audit database, registry database) on the backend under test."""
    if request.param == "sqlite":
        yield databases(
            f"sqlite:///{tmp_path}", tmp_path / "a.sqlite3", tmp_path / "r.sqlite3", 5000
        )
        return
    pool: Databases = request.getfixturevalue("pg_databases")
    url, name = pool.acquire()
    try:
        yield databases(url, tmp_path / "a", tmp_path / "r", 5000)
    finally:
        pool.release(name)


def test_concurrent_appends_form_one_verified_chain(store: tuple[Database, Database]) -> None:
    """Promise 3: one entry per append, distinct consecutive indices from several writers (two
    'hosts', each with its own group-commit writer), one chain that verifies."""
    signer = make_signer()
    hosts = [AuditLog(store[0], signer), AuditLog(store[0], signer)]
    seen: list[int] = []
    lock = threading.Lock()

    def worker(log: AuditLog, n: int) -> None:
        for i in range(40):
            idx = log.append({"kind": "test", "writer": n, "i": i}).idx
            with lock:
                seen.append(idx)

    threads = [threading.Thread(target=worker, args=(hosts[n % 2], n)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(seen) == list(range(320))
    assert hosts[0].origin == hosts[1].origin
    assert hosts[0].checkpoint() is not None
    contents = read_log(store[0])
    report = verify_log(
        contents.origin,
        contents.entries,
        {signer.kid: signer.private_key.public_key()},
        checkpoints=contents.checkpoints,
    )
    assert report.ok, report.problems
    assert report.entries == 320
    assert hosts[1].tree().size == 320  # the other host's tree catches up from the store
    for log in hosts:
        log.close()


def test_entries_read_back_byte_identical(store: tuple[Database, Database]) -> None:
    """Chinese text and every byte of the canonical line survive the round trip."""
    log = AuditLog(store[0], make_signer())
    log.append({"kind": "test", "note": '北京市朝阳区 \u2028 "quoted"'})
    (entry,) = log.entries(0, 1)
    assert decode_entry(entry.line)["note"] == '北京市朝阳区 \u2028 "quoted"'
    log.close()


def test_only_one_host_signs_checkpoints_at_a_time(store: tuple[Database, Database]) -> None:
    """PostgreSQL: the lease goes to one host; when it closes, another takes over. SQLite:
    every process may sign (a size is stored once)."""
    signer = make_signer()
    clock = FakeClock()  # the second host's retries for the lease go by it
    a, b = AuditLog(store[0], signer), AuditLog(store[0], signer, clock=clock)
    a.append({"kind": "test"})
    assert a.signs_checkpoints()
    assert b.signs_checkpoints() is (not store[0].postgres)
    a.close()
    assert b.signs_checkpoints() is (not store[0].postgres)  # not asked again within a second
    # A host without the lease asks again at most once a second (of b's clock); a's session
    # ends at the server a moment after close(), so b may need to ask more than once.
    deadline = time.monotonic() + 30
    while True:
        clock.advance(1.0)
        if b.signs_checkpoints() or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    assert b.signs_checkpoints()  # the lease passed on
    b.append({"kind": "test"})
    checkpoint = b.checkpoint()
    assert checkpoint is not None
    assert checkpoint.size == 2
    b.close()


def test_halt_is_seen_by_every_host_until_resumed(store: tuple[Database, Database]) -> None:
    """Promise 6 across hosts: a halt recorded by one host refuses appends on all."""
    signer = make_signer()
    a, b = AuditLog(store[0], signer), AuditLog(store[0], signer)
    a.append({"kind": "test"})
    a._halt("test halt")
    with pytest.raises(AuditUnavailable, match="halted"):
        b.append({"kind": "test"})
    assert resume(store[0]) is not None
    assert b.append({"kind": "test"}).idx == 1
    a.close()
    b.close()


def test_a_host_with_other_keys_is_refused_at_start(store: tuple[Database, Database]) -> None:
    AuditLog(store[0], make_signer()).close()
    with pytest.raises(ConfigError, match="same audit keys"):
        AuditLog(store[0], make_signer())


def test_registry_clients_revocations_replays(store: tuple[Database, Database]) -> None:
    """Clients, revocations and the assertion replay cache, seen by a second 'host' at once."""
    clock = FakeClock()  # the second host's read cache lives by it
    one, two = ClientRegistry(store[1]), ClientRegistry(store[1], clock=clock)
    _client, secret = one.add("acme", rate_per_min=5)
    assert secret is not None
    assert two.authenticate("acme", secret) is not None
    with pytest.raises(ConfigError, match="already exists"):
        two.add("acme")
    one.set_disabled("acme", True)
    assert one.authenticate("acme", secret) is None  # at once where it was changed
    assert not two.is_revoked("jti-1")
    one.revoke("jti-1", "acme", int(time.time()) + 600)
    one.revoke("jti-1", "acme", int(time.time()) + 600)  # twice is fine
    assert one.is_revoked("jti-1")
    clock.advance(CACHE_SECONDS + 0.01)  # another host: once its cached answers expire (< 1 s)
    assert two.authenticate("acme", secret) is None
    assert two.is_revoked("jti-1")
    assert one.remember_assertion("acme", "a-1", int(time.time()) + 60)
    assert not two.remember_assertion("acme", "a-1", int(time.time()) + 60)  # a replay
    assert [c.client_id for c in two.all()] == ["acme"]
    one.close()
    two.close()


def test_counters_are_exact_under_concurrency(store: tuple[Database, Database]) -> None:
    """Quotas: 8 threads on two 'hosts' taking 1 from a limit of 100, 200 tries: exactly 100
    succeed; an expired window starts again; an amount above the limit is refused."""
    hosts = [ClientRegistry(store[1]), ClientRegistry(store[1])]
    allowed: list[bool] = []
    lock = threading.Lock()
    expires = int(time.time()) + 60

    def worker(n: int) -> None:
        for _ in range(25):
            ok, _value = hosts[n % 2].take("quota", 1, 100, expires)
            with lock:
                allowed.append(ok)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert allowed.count(True) == 100
    assert hosts[0].take("quota", 1, 100, expires) == (False, 100)
    assert hosts[0].take("old", 5, 10, int(time.time()) - 1) == (True, 5)
    assert hosts[1].take("old", 5, 10, int(time.time()) + 60) == (True, 5)  # expired: reset
    assert hosts[1].take("big", 11, 10, expires) == (False, 0)
    for h in hosts:
        h.close()


def test_claim_goes_to_exactly_one_caller(store: tuple[Database, Database]) -> None:
    hosts = [ClientRegistry(store[1]) for _ in range(3)]
    wins: list[bool] = []
    lock = threading.Lock()

    def worker(registry: ClientRegistry) -> None:
        won = registry.claim("policy", "hash-1")
        with lock:
            wins.append(won)

    threads = [threading.Thread(target=worker, args=(h,)) for h in hosts * 3]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wins.count(True) == 1
    assert hosts[0].claim("policy", "hash-2")
    for h in hosts:
        h.close()


def test_unknown_store_is_refused_with_a_hint(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="postgresql://"):
        databases("mysql://x", tmp_path / "a", tmp_path / "r", 100)


def test_display_hides_only_the_password() -> None:
    database = Database("postgresql://gw:s3cret@db.internal:5432/gateway", True)
    assert database.display == "postgresql://gw:***@db.internal:5432/gateway"
    assert Database("postgresql://gw@db/gateway", True).display == "postgresql://gw@db/gateway"
    hidden = Database("postgresql://gw@db/gw?password=s3cret&sslmode=require", True)
    assert "s3cret" not in hidden.display
    assert "sslmode=require" in hidden.display
    assert "s3cret" not in repr(database)


def test_a_lock_timeout_fails_only_that_batch(store: tuple[Database, Database]) -> None:
    """Fail closed but not halted: while another writer holds the sequencer past the timeout,
    appends fail as busy; once it lets go, appending continues on the same chain."""
    database = replace(store[0], busy_timeout_ms=300)
    log = AuditLog(database, make_signer())
    log.append({"kind": "test"})
    blocker = database.connect()
    blocker.begin(SEQUENCER)
    with pytest.raises(AuditUnavailable, match="busy"):
        log.append({"kind": "test"})
    assert log.writable() is not None  # /readyz says why
    blocker.rollback()
    blocker.close()
    assert log.writable() is None
    assert log.append({"kind": "test"}).idx == 1
    assert log.halted is None
    log.close()


def test_a_lost_connection_is_not_a_failed_write(store: tuple[Database, Database]) -> None:
    """PostgreSQL restarts, failovers and idle timeouts end connections: the log reconnects and
    carries on (no halt, nothing lost from the chain)."""
    if not store[0].postgres:
        pytest.skip("a SQLite file has no connection to lose")
    log = AuditLog(store[0], make_signer())
    log.append({"kind": "test"})
    killer = store[0].connect()
    for _ in range(2):
        pid = log._conn._raw.info.backend_pid
        killer.execute("SELECT pg_terminate_backend(?)", (pid,))
        log.append({"kind": "test"})  # reconnects and retries once: the call succeeds
    assert log.halted is None
    assert log.size() == 3
    killer.close()
    log.close()


def test_many_processes_may_start_on_an_empty_store_at_once(
    store: tuple[Database, Database],
) -> None:
    """`serve --workers N` or several hosts starting together on a new database: every one
    opens the log and the registry (the schema is created once, under a lock)."""
    signer = make_signer()
    errors: list[Exception] = []

    def start() -> None:
        try:
            AuditLog(store[0], signer).close()
            ClientRegistry(store[1]).close()
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
