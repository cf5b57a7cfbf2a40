"""File modes (issue 14, item 9): everything the gateway writes in a workspace is private to its
owner (files 0600, directories 0700) whatever the umask, and `serve` warns about files that are
not. Under umask 022, data/*.csv (raw personal data), the audit log with its -wal, and the
registry used to be created 0644."""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.cli import main
from gateway.settings import Settings
from tests.conftest import BASE, TEST_ROWS, token_for


@pytest.fixture
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.fixture
def server_loggers() -> Iterator[None]:
    """`serve` configures the server's logging; put the loggers back for the other tests."""
    names = ("gateway", "uvicorn", "uvicorn.error", "uvicorn.access")
    saved = {
        n: (lg.handlers[:], lg.level, lg.propagate, lg.disabled)
        for n, lg in ((n, logging.getLogger(n)) for n in names)
    }
    try:
        yield
    finally:
        for name, (handlers, level, propagate, disabled) in saved.items():
            logger = logging.getLogger(name)
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate = propagate
            logger.disabled = disabled


def _open_to_others(home: Path) -> list[str]:
    """Every path under the workspace (itself included) that is not 0600 / 0700."""
    wrong: list[str] = []
    for path in [home, *sorted(home.rglob("*"))]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        want = 0o700 if path.is_dir() else 0o600
        if mode != want:
            wrong.append(f"{path.relative_to(home.parent)} {mode:o}")
    return wrong


def test_every_file_the_gateway_writes_is_private_whatever_the_umask(
    umask_022: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Keys, raw data, the audit log and its -wal/-shm, the registry, stored views, rotated keys
    and an exported bundle are 0600 in 0700 directories under umask 022 (promise 2: no raw
    value leaves, not even to another user of the machine)."""
    home = tmp_path / "ws"
    assert main(["init", "--demo", "--home", str(home), "--rows", str(TEST_ROWS)]) == 0
    creds = json.loads((home / "demo-client.json").read_text())
    settings = Settings(home=home, public_url=BASE)
    with TestClient(create_app(settings), base_url=BASE) as client:
        token = token_for(client, creds["client_id"], creds["client_secret"])
        auth = {"Authorization": f"Bearer {token}"}
        assert client.get("/v1/datasets", headers=auth).status_code == 200
        rows = client.get("/v1/datasets/residents/rows?purpose=statistics", headers=auth)
        assert rows.status_code == 200
        # SQLite creates -wal and -shm with the database file's mode: they exist now.
        for database in (home / "audit" / "log.sqlite3", home / "state" / "registry.sqlite3"):
            for suffix in ("", "-wal", "-shm"):
                path = Path(f"{database}{suffix}")
                assert path.exists(), path
                assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert list((home / "state" / "views").iterdir()), "no view was stored"
        assert _open_to_others(home) == []
    assert main(["clients", "add", "second", "--home", str(home)]) == 0
    assert main(["keys", "rotate", "audit", "--home", str(home)]) == 0
    assert main(["keys", "rotate", "token", "--home", str(home)]) == 0
    # at once: the cache-window refusal is tested in test_cli_admin
    assert main(["keys", "rotate", "token", "--force", "--home", str(home)]) == 0
    bundle = home / "exports" / "bundle-1"
    assert main(["audit", "export", "--out", str(bundle), "--home", str(home)]) == 0
    keys = [f"--key={k}" for k in sorted((home / "keys").glob("audit-ed25519*.pub"))]
    assert main(["audit", "verify", str(bundle), "--home", str(home), *keys]) == 0
    capsys.readouterr()
    assert (bundle / "checkpoints").is_dir()
    assert any((home / "keys").glob("token-es256.*.pub")), "no retired token key was written"
    assert _open_to_others(home) == []


def test_serve_warns_once_about_files_open_to_other_users(
    umask_022: None,
    server_loggers: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A data file and a key readable by others (older versions, a copy, an admin): `serve`
    says so at start in one log line on stderr, naming the files and the fix; none: silence."""
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: None)
    home = tmp_path / "ws"
    assert main(["init", "--demo", "--home", str(home), "--rows", "300"]) == 0
    capsys.readouterr()
    assert main(["serve", "--home", str(home)]) == 0
    assert "open to other users" not in capsys.readouterr().err
    (home / "data" / "residents.csv").chmod(0o644)
    (home / "keys" / "token-es256.key").chmod(0o640)
    assert main(["serve", "--home", str(home)]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "other users" in line]
    assert len(lines) == 1, lines
    record = json.loads(lines[0])
    assert record["level"] == "warning"
    assert record["message"].startswith("2 workspace file(s)")
    assert "data/residents.csv" in record["message"]
    assert "keys/token-es256.key" in record["message"]
    assert f"chmod -R go= {home}" in record["message"]
