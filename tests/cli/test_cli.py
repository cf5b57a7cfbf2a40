"""The `gateway` command: init is idempotent and keeps secrets private; errors tell what to do."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.errors import AuditUnavailable
from tests.conftest import Demo


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_demo_creates_private_keys_and_is_idempotent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """init --demo writes 0600 secrets and never overwrites a key on a second run."""
    home = tmp_path / "ws"
    code, out, _ = run(capsys, "init", "--demo", "--rows", "300", "--home", str(home))
    assert code == 0
    assert "created  audit signing key" in out
    private = ["audit-ed25519.key", "token-es256.key", "pseudonym.secret", "ca.key", "server.key"]
    for name in private:
        assert mode(home / "keys" / name) == 0o600, name
    assert mode(home / "demo-client.json") == 0o600
    creds = json.loads((home / "demo-client.json").read_text())
    assert set(creds) >= {"client_id", "client_secret", "token_url", "base_url", "ca_cert"}
    before = {name: (home / "keys" / name).read_bytes() for name in private}
    data_before = (home / "data" / "residents.csv").read_bytes()

    code, out, _ = run(capsys, "init", "--demo", "--rows", "300", "--home", str(home))
    assert code == 0
    assert "created" not in out
    assert {name: (home / "keys" / name).read_bytes() for name in private} == before
    assert (home / "data" / "residents.csv").read_bytes() == data_before
    assert json.loads((home / "demo-client.json").read_text()) == creds


def test_home_from_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """GATEWAY_HOME picks the workspace when --home is not given."""
    monkeypatch.setenv("GATEWAY_HOME", str(tmp_path / "envhome"))
    code, _out, _ = run(capsys, "init")
    assert code == 0
    assert (tmp_path / "envhome" / "keys" / "audit-ed25519.key").exists()


def test_clients_lifecycle_is_logged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """clients add/disable/enable work, and each change is an admin event in a verifiable log."""
    home = str(tmp_path / "ws")
    run(capsys, "init", "--home", home)
    code, out, _ = run(capsys, "clients", "add", "acme-analytics", "--home", home)
    assert code == 0
    assert "client_secret:" in out
    secret = next(line.split()[-1] for line in out.splitlines() if line.startswith("client_secret"))
    assert secret not in (tmp_path / "ws" / "state" / "registry.sqlite3").read_bytes().decode(
        "latin-1"
    )
    assert run(capsys, "clients", "disable", "acme-analytics", "--home", home)[0] == 0
    code, out, _ = run(capsys, "clients", "list", "--home", home)
    assert "acme-analytics\tdisabled" in out
    assert run(capsys, "clients", "enable", "acme-analytics", "--home", home)[0] == 0
    code, out, _ = run(capsys, "audit", "verify", "--home", home)
    assert code == 0
    assert "OK: 3 entries" in out


@pytest.mark.parametrize("bad", ["UPPER", "x", "has space", "9lives", "a/b"])
def test_bad_client_ids_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bad: str
) -> None:
    """Client ids are slugs (policies reference them); others are refused with a reason."""
    code, _, err = run(capsys, "clients", "add", bad, "--home", str(tmp_path))
    assert code == 1
    assert "is invalid" in err


def test_policy_check_reports_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """policy check exits 0 on the demo set and 1 with file:line after a bad edit."""
    home = tmp_path / "ws"
    run(capsys, "init", "--demo", "--rows", "100", "--home", str(home))
    code, out, _ = run(capsys, "policy", "check", "--home", str(home))
    assert code == 0
    assert out.startswith("OK: 2 dataset(s), 5 grant(s)")
    assert "warning: residents.yaml:" in out
    assert "grant 'demo-residents-research-2025' expired on 2025-12-31" in out
    assert "releases personal column residents.gender raw" in out
    target = home / "policies" / "residents.yaml"
    target.write_text(target.read_text().replace("rows_per_request: 500", "rows_per_request: lots"))
    code, _, err = run(capsys, "policy", "check", "--home", str(home))
    assert code == 1
    assert "residents.yaml:" in err
    assert "limits.rows_per_request: must be an integer" in err


def test_audit_verify_without_a_log_says_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A missing log is an error with advice, not a traceback."""
    home = tmp_path / "ws"
    run(capsys, "init", "--home", str(home))
    (home / "audit" / "log.sqlite3").unlink()
    code, _, err = run(capsys, "audit", "verify", "--home", str(home))
    assert code == 1
    assert "no audit log" in err


def test_rotate_audit_key_while_serving(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`gateway keys rotate audit` hands over to a new key; a running gateway signs its next entry
    with it; the whole log verifies with the original public key alone."""
    from starlette.testclient import TestClient

    from gateway.app import create_app
    from gateway.audit.verify import verify_path
    from gateway.settings import Settings

    home = tmp_path / "ws"
    run(capsys, "init", "--demo", "--rows", "100", "--home", str(home))
    original = (home / "keys" / "audit-ed25519.pub").read_bytes()
    settings = Settings(home=home, public_url="https://testserver")
    with TestClient(create_app(settings), base_url="https://testserver") as client:
        before = client.get("/healthz").headers["audit-receipt"]
        code, out, _ = run(capsys, "keys", "rotate", "audit", "--home", str(home))
        assert code == 0
        assert "audit key rotated" in out
        after = client.get("/healthz").headers["audit-receipt"]
    old_kid = before.split('kid="')[1].split('"')[0]
    new_kid = after.split('kid="')[1].split('"')[0]
    assert old_kid != new_kid
    assert (home / "keys" / f"audit-ed25519.{old_kid}.key").exists()
    assert mode(home / "keys" / "audit-ed25519.key") == 0o600
    kept = tmp_path / "original.pub"
    kept.write_bytes(original)
    _, report = verify_path(home / "audit" / "log.sqlite3", [kept])
    assert report.ok, report.problems
    assert report.checkpoints >= 1
    code, out, _ = run(capsys, "audit", "verify", "--home", str(home))
    assert code == 0, out


def _break(database: Path, table: str) -> None:
    """Make every write to `table` fail the way a damaged store does (an error that is neither
    busy nor a lost connection): a trigger writing to a table that no longer exists."""
    fail = "BEGIN INSERT INTO doomed VALUES (1); END;"
    script = f"""CREATE TABLE doomed (x INTEGER);
        CREATE TRIGGER broken_insert BEFORE INSERT ON {table} {fail}
        CREATE TRIGGER broken_update BEFORE UPDATE ON {table} {fail}
        DROP TABLE doomed;"""  # `table` is one of the test's own table names
    conn = sqlite3.connect(database)
    conn.executescript(script)
    conn.close()


def _gateway(home: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """The real console entry point, in its own process (a traceback would reach stderr)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    return subprocess.run(
        [sys.executable, "-m", "gateway", *argv, "--home", str(home)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("broken", "table", "argv", "says"),
    [
        ("audit/log.sqlite3", "entries", ("clients", "add", "acme"), "the audit log"),
        ("state/registry.sqlite3", "clients", ("clients", "add", "acme"), "no such table"),
        ("state/registry.sqlite3", "clients", ("clients", "disable", "demo"), "no such table"),
    ],
)
def test_a_broken_log_or_store_is_one_line_not_a_traceback(
    demo: Demo, broken: str, table: str, argv: tuple[str, ...], says: str
) -> None:
    """Errors tell the user what happened: when the audit log (AuditUnavailable) or the store
    (StoreError) fails, the command prints one `error:` line on stderr and exits 1."""
    _break(demo.home / broken, table)
    done = _gateway(demo.home, *argv)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ")
    assert says in lines[0]


def test_a_halted_log_is_one_line_not_a_traceback(demo: Demo) -> None:
    """A log halted by an earlier failed write refuses admin events: one line, exit 1, and the
    halt's reason, until `gateway audit resume`."""
    _break(demo.home / "audit" / "log.sqlite3", "entries")
    assert _gateway(demo.home, "clients", "add", "first").returncode == 1
    done = _gateway(demo.home, "clients", "add", "second")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("error: the audit log is halted: write failed")
    assert len(done.stderr.strip().splitlines()) == 1


def test_every_gateway_error_becomes_an_exit_code(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Any GatewayError a command raises is printed as one line, with the error's exit code:
    the errors of every part join the one tree."""
    from gateway.cli import clients
    from gateway.privacy.kanon import PrivacyUnreachable
    from gateway.store.db import StoreError
    from gateway.trace.limits import ExtractError

    for error, code in (
        (StoreError("the store went away\nat once"), 1),
        (AuditUnavailable("the audit log is closed"), 1),
        (PrivacyUnreachable("k=5 cannot be met"), 1),
        (ExtractError("not a CSV file"), 2),
    ):

        def fail(args: object, error: Exception = error) -> int:
            raise error

        monkeypatch.setattr(clients, "cmd_clients", fail)
        assert main(["clients", "list"]) == code
        _, err = capsys.readouterr()
        assert err.count("\n") == 1, err
        assert err.startswith("error: ")


# What a `gateway` process loads: each command imports what it needs when it runs.
_LOADED = """
import sys
from gateway.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:  # (--help)
    code = exc.code
heavy = ("pandas", "numpy", "starlette", "uvicorn", "authlib", "faker", "networkx")
print(code, " ".join(sorted(name for name in heavy if name in sys.modules)) or "-")
"""


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["audit", "verify"], ["clients", "list"], ["clients", "add", "light"]],
    ids=lambda argv: " ".join(argv),
)
def test_light_commands_load_no_data_or_web_libraries(demo: Demo, argv: list[str]) -> None:
    """`gateway --help`, `audit verify` and the client commands run without loading pandas,
    the web stack or the privacy libraries (about 0.6 s of CPU per process otherwise, paid by
    every admin command and every end-to-end test that runs one)."""
    home = [] if argv == ["--help"] else ["--home", str(demo.home)]
    result = subprocess.run(
        [sys.executable, "-c", _LOADED, *argv, *home],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    code, loaded = result.stdout.splitlines()[-1].split(" ", 1)
    assert (code, loaded) == ("0", "-"), result.stdout + result.stderr
