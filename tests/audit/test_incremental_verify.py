"""Promise: the console and usage figures come only from a verified log, and verifying it again
after appends checks only the new entries without weakening what "verified" means: a bad new
entry is refused, a rewrite of the verified prefix is caught by the next full verification (or
at once when entries were removed or the newest verified entry changed), and the figures equal
those of a fresh full verification."""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from gateway.audit.incremental import IncrementalVerifier, Mode
from gateway.audit.query import LogNotVerified, load_verified
from gateway.audit.signing import Signer, key_id
from gateway.audit.store import AuditLog
from gateway.store.config import databases
from tests.conftest import services_of
from tests.console.test_console_app import console  # noqa: F401 - the signed-in console fixture
from tests.pgserver import create_database, drop_database


@dataclass
class Clock:
    """A clock the test moves by hand."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Calls:
    seen: list[tuple[Mode, int, int]] = field(default_factory=list)

    def __call__(self, mode: Mode, first: int, count: int) -> None:
        self.seen.append((mode, first, count))


@dataclass
class Log:
    path: Path
    key: Path
    log: AuditLog

    def add(self, n: int) -> None:
        for i in range(n):
            self.log.append({"kind": "http", "route": "/v1/x", "client": f"c{i % 3}", "rows": i})

    def edit(self, idx: int, old: str, new: str) -> None:
        with sqlite3.connect(self.path) as conn:
            changed = conn.execute(
                "UPDATE entries SET line = replace(line, ?, ?) WHERE idx = ?",
                (old.encode(), new.encode(), idx),
            ).rowcount
        conn.close()
        assert changed == 1


def open_log(directory: Path) -> Log:
    key = Ed25519PrivateKey.generate()
    pub = directory / "audit.pub"
    pub.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    path = directory / "log.sqlite3"
    return Log(path, pub, AuditLog(path, Signer(key, key_id(key.public_key()))))


@pytest.fixture
def log(tmp_path: Path) -> Iterator[Log]:
    opened = open_log(tmp_path)
    opened.add(20)
    yield opened
    opened.log.close()


def test_second_view_verifies_only_the_new_entries(log: Log) -> None:
    """Promise: after one full verification, the next call checks only what was appended."""
    calls = Calls()
    verifier = IncrementalVerifier(observe=calls, clock=Clock())
    assert len(verifier.load(log.path, [log.key]).entries) == 20
    log.add(3)
    again = verifier.load(log.path, [log.key])
    assert len(again.entries) == 23
    assert calls.seen == [("full", 0, 20), ("incremental", 20, 3)]
    assert again.verification == load_verified(log.path, [log.key]).verification


def test_tampered_entry_appended_after_the_cache_is_refused(log: Log) -> None:
    """Hostile: an entry appended (and then altered) after the prefix was cached is refused as
    a full verification refuses it, and the cache is dropped."""
    verifier = IncrementalVerifier(clock=Clock())
    verifier.load(log.path, [log.key])
    log.add(5)
    log.edit(22, '"rows":2', '"rows":200')
    with pytest.raises(LogNotVerified) as refused:
        verifier.load(log.path, [log.key])
    assert "entry 22" in refused.value.problem
    assert verifier.verified_size == 0
    with pytest.raises(LogNotVerified):  # and again (from scratch) on the next call
        verifier.load(log.path, [log.key])


def test_tampered_prefix_is_caught_by_the_next_full_verification(log: Log) -> None:
    """Hostile: a rewrite inside the verified prefix that keeps the entry count and the newest
    verified entry is not seen by the incremental step (docs/console.md says so); the next full
    verification, due `full_every_s` after the last, refuses the log."""
    clock = Clock()
    calls = Calls()
    verifier = IncrementalVerifier(full_every_s=600, clock=clock, observe=calls)
    verifier.load(log.path, [log.key])
    log.edit(5, '"rows":5', '"rows":500')
    log.add(2)
    clock.now += 599
    assert len(verifier.load(log.path, [log.key]).entries) == 22  # the documented window
    clock.now += 1
    with pytest.raises(LogNotVerified) as refused:
        verifier.load(log.path, [log.key])
    assert "entry 5" in refused.value.problem
    assert [mode for mode, _, _ in calls.seen] == ["full", "incremental", "full"]


def test_removed_entries_force_a_full_verification(log: Log) -> None:
    """Hostile: deleting an entry of the verified prefix shrinks the count: verified in full,
    refused at once."""
    verifier = IncrementalVerifier(clock=Clock())
    verifier.load(log.path, [log.key])
    with sqlite3.connect(log.path) as conn:
        conn.execute("DELETE FROM entries WHERE idx = 7")
    conn.close()
    with pytest.raises(LogNotVerified) as refused:
        verifier.load(log.path, [log.key])
    assert "entry 7" in refused.value.problem or "entry 8" in refused.value.problem


def test_changed_newest_verified_entry_forces_a_full_verification(log: Log) -> None:
    """Hostile: the newest verified entry altered in place is noticed at once (its leaf hash is
    compared before the new entries are checked)."""
    calls = Calls()
    verifier = IncrementalVerifier(clock=Clock(), observe=calls)
    verifier.load(log.path, [log.key])
    log.edit(19, '"rows":1', '"rows":100')
    with pytest.raises(LogNotVerified):
        verifier.load(log.path, [log.key])
    assert [mode for mode, _, _ in calls.seen] == ["full", "full"]


def test_a_key_change_forces_a_full_verification(log: Log, tmp_path: Path) -> None:
    """Trusting other keys is another question: it is answered in full (and here refused)."""
    verifier = IncrementalVerifier(clock=Clock())
    verifier.load(log.path, [log.key])
    (tmp_path / "other").mkdir()
    other = open_log(tmp_path / "other")
    other.log.close()
    with pytest.raises(LogNotVerified):
        verifier.load(log.path, [other.key])


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    batches=st.lists(
        st.tuples(st.integers(min_value=0, max_value=6), st.booleans()), min_size=1, max_size=4
    )
)
def test_figures_after_appends_equal_a_fresh_full_verification(
    batches: list[tuple[int, bool]],
) -> None:
    """Property: over any sequence of appends (with or without a checkpoint after each), the
    incrementally verified log answers exactly what a fresh full verification answers."""
    with tempfile.TemporaryDirectory() as directory:
        opened = open_log(Path(directory))
        try:
            verifier = IncrementalVerifier(clock=Clock())
            for count, checkpoint in [(2, False), *batches]:
                opened.add(count)
                if checkpoint:
                    opened.log.checkpoint()
                fresh = load_verified(opened.path, [opened.key])
                kept = verifier.load(opened.path, [opened.key])
                assert kept.entries == fresh.entries
                assert kept.verification == fresh.verification
            keep = verifier.load(opened.path, [opened.key], lambda e: e.get("client") == "c1")
            assert keep.entries == [e for e in fresh.entries if e.get("client") == "c1"]
        finally:
            opened.log.close()


def test_console_page_views_verify_only_new_entries(console: TestClient) -> None:  # noqa: F811
    """Promise: the console's second page view checks only the entries appended since the
    first (counted through the verifier's hook, not timed)."""
    calls = Calls()
    svc = services_of(console)
    svc.verified_log = IncrementalVerifier(observe=calls)
    assert console.get("/console/usage").status_code == 200
    assert console.get("/console/refusals").status_code == 200
    assert [mode for mode, _, _ in calls.seen] == ["full", "incremental"]
    (_, _, first_size), (_, start, added) = calls.seen
    assert start == first_size  # nothing of the first view's prefix was checked again
    assert added >= 1  # at least the first page view's own audit entry


def test_postgresql_store_is_verified_incrementally_too(tmp_path: Path) -> None:
    """The same promise on a PostgreSQL store (skips without a server): only new entries are
    checked, a bad one is refused, the figures equal a full verification."""
    url, name = create_database()
    try:
        database = databases(url, tmp_path / "a", tmp_path / "r", 5000)[0]
        key = Ed25519PrivateKey.generate()
        pub = tmp_path / "audit.pub"
        pub.write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        log = AuditLog(database, Signer(key, key_id(key.public_key())))
        try:
            calls = Calls()
            verifier = IncrementalVerifier(clock=Clock(), observe=calls)
            for i in range(6):
                log.append({"kind": "http", "client": "c", "rows": i})
            verifier.load(database, [pub])
            log.append({"kind": "http", "client": "c", "rows": 6})
            kept = verifier.load(database, [pub])
            assert kept.entries == load_verified(database, [pub]).entries
            assert calls.seen == [("full", 0, 6), ("incremental", 6, 1)]
            log.append({"kind": "http", "client": "c", "rows": 7})
            conn = database.connect()
            try:
                conn.execute(
                    "UPDATE entries SET line = replace(line, ?, ?) WHERE idx = 7",
                    ('"rows":7', '"rows":70'),
                )
            finally:
                conn.close()
            with pytest.raises(LogNotVerified):
                verifier.load(database, [pub])
        finally:
            log.close()
    finally:
        drop_database(name)
