"""Issue 8: `gateway store migrate --to postgresql://...` moves a real workspace's registry and
audit log from the SQLite default, byte for byte, verifies the copy, and refuses unsafe moves.
Skips without a reachable PostgreSQL server."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.audit.bundle import export_bundle
from gateway.audit.reader import read_entries
from gateway.audit.verify import verify_path
from gateway.auth.registry import ClientRegistry
from gateway.cli import main
from tests.conftest import BASE, Demo, token_for


def cli(*args: str) -> int:
    return main(list(args))


def test_migrate_round_trips_a_real_log(
    demo: Demo, pg_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with TestClient(create_app(demo.settings), base_url=BASE) as client:  # a log with real calls
        token = token_for(client, demo.client_id, demo.client_secret)
        for url in ("/v1/datasets", "/v1/datasets/residents/rows?purpose=statistics&_size=5"):
            client.get(url, headers={"Authorization": f"Bearer {token}"})
        client.get("/v1/datasets")  # 401
    _, source_entries = read_entries(demo.settings.audit_database)
    source = [(e.idx, e.line, e.kid, e.sig) for e in source_entries]
    assert len(source) >= 4
    home = str(demo.home)

    assert cli("store", "migrate", "--home", home, "--to", pg_url) == 0
    out = capsys.readouterr().out
    assert f"verified: {len(source)} entries" in out
    target = demo.settings.with_overrides(store=pg_url)
    _, copied_entries = read_entries(target.audit_database)
    assert [(e.idx, e.line, e.kid, e.sig) for e in copied_entries] == source  # byte for byte
    assert ClientRegistry(target.registry_database).get(demo.client_id) is not None

    # The migrated store serves: the same client's token works and new entries extend the chain.
    with TestClient(create_app(target), base_url=BASE) as client:
        token = token_for(client, demo.client_id, demo.client_secret)
        assert client.get("/v1/datasets", headers={"Authorization": f"Bearer {token}"}).is_success
    assert cli("audit", "verify", "--home", home, "--store", pg_url) == 0
    assert f"OK: {len(source) + 2} entries verified" in capsys.readouterr().out

    # Export works unchanged against PostgreSQL, and the bundle verifies offline.
    bundle = tmp_path / "bundle"
    assert export_bundle(target.audit_database, bundle) == len(source) + 2
    _, report = verify_path(bundle, [demo.home / "keys" / "audit-ed25519.pub"])
    assert report.ok, report.problems

    # A target that already holds a log is refused; the source stays untouched.
    assert cli("store", "migrate", "--home", home, "--to", pg_url) == 1
    assert "already holds" in capsys.readouterr().err


def test_a_tampered_log_is_not_migrated(
    demo: Demo, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    db = demo.home / "audit" / "log.sqlite3"
    conn = sqlite3.connect(db)
    (line,) = conn.execute("SELECT line FROM entries WHERE idx = 0").fetchone()
    forged = line.replace("demo", "demx", 1)
    assert forged != line  # the edit had a target
    conn.execute("UPDATE entries SET line = ? WHERE idx = 0", (forged,))
    conn.commit()
    conn.close()
    assert cli("store", "migrate", "--home", str(demo.home), "--to", pg_url) == 1
    assert "does not verify; not migrating" in capsys.readouterr().err


def test_a_copy_that_does_not_verify_is_removed(demo: Demo, pg_url: str) -> None:
    """If the copied log fails verification, the target is emptied again, so the migration can
    simply be run once more after the cause is fixed."""
    from gateway.errors import ConfigError
    from gateway.runtime.migrate import migrate

    source = demo.settings
    target = source.with_overrides(store=pg_url)
    args = (
        source.audit_database,
        source.registry_database,
        target.audit_database,
        target.registry_database,
    )
    with pytest.raises(ConfigError, match="copy was removed"):
        migrate(*args, lambda database: "forced failure")
    conn = target.audit_database.connect()
    assert conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0] == 0
    conn.close()
    assert ClientRegistry(target.registry_database).all() == []
    assert migrate(*args, lambda database: None)  # and again, now successfully
