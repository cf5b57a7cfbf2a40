"""Admin commands that end access (issue 17 item 7), against a live gateway over TLS with real
OAuth tokens: `clients rotate-secret` revokes the tokens the old secret got, `clients retire`
ends a client for good while its audit trail stays and verifies, and a second
`keys rotate token` within the JWKS cache window is refused without --force."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest
from authlib.integrations.httpx_client import OAuthError

from gateway.audit.entry import decode_entry
from gateway.audit.reader import read_entries
from gateway.auth.keys import STATE_FILE
from gateway.cli import main
from tests.conftest import Demo
from tests.servers import DemoWorkspaces, Server, gateway, oauth_client, start_server


def entries(home: Path) -> list[dict[str, object]]:
    _, stored = read_entries(home / "audit" / "log.sqlite3")
    return [decode_entry(e.line) for e in stored]


def status(server: Server, token: str) -> int:
    with httpx.Client(verify=server.ca, timeout=30) as http:
        response = http.get(
            f"{server.base}/v1/datasets", headers={"Authorization": f"Bearer {token}"}
        )
    return response.status_code


def secret_of(output: str) -> str:
    return next(
        line.split()[-1] for line in output.splitlines() if line.startswith("client_secret")
    )


@pytest.mark.e2e
def test_rotate_secret_revokes_live_tokens_and_retire_ends_a_client(
    tmp_path: Path, demo_workspaces: DemoWorkspaces
) -> None:
    """Promise 9 (revoked tokens and disabled clients stop at once), with real tokens: after
    rotate-secret the old token gets 401 and a token from the new secret works; after retire
    the client gets no token and cannot come back, and every entry naming it still verifies."""
    home = demo_workspaces.copy(tmp_path / "ws", rows=500)
    creds = json.loads((home / "demo-client.json").read_text())
    temp_secret = secret_of(gateway("clients", "add", "temp", home=home).stdout)
    server = start_server(home)
    try:
        demo = oauth_client(server, creds["client_id"], creds["client_secret"])
        old_token = demo.token["access_token"]
        demo.close()
        assert status(server, old_token) == 200
        rotated = gateway("clients", "rotate-secret", "demo", home=home)
        assert "every token the client held has been revoked" in rotated.stdout
        assert status(server, old_token) == 401
        fresh = oauth_client(server, "demo", secret_of(rotated.stdout))
        assert status(server, fresh.token["access_token"]) == 200
        fresh.close()
        with pytest.raises(OAuthError, match="invalid_client"):
            oauth_client(server, "demo", creds["client_secret"])

        temp = oauth_client(server, "temp", temp_secret)
        temp_token = temp.token["access_token"]
        temp.close()
        assert status(server, temp_token) == 200
        retired = gateway("clients", "retire", "temp", home=home)
        assert "retired for good" in retired.stdout
        assert status(server, temp_token) == 401
        with pytest.raises(OAuthError, match="invalid_client"):
            oauth_client(server, "temp", temp_secret)
    finally:
        server.stop()
    for again in (["enable", "temp"], ["rotate-secret", "temp"], ["retire", "temp"]):
        refused = gateway("clients", *again, home=home, check=False)
        assert refused.returncode == 1
        assert "retired" in refused.stderr
    assert gateway("clients", "add", "temp", home=home, check=False).returncode == 1
    listed = gateway("clients", "list", home=home).stdout.splitlines()
    assert any(line.startswith("temp\tretired\t") for line in listed)

    verified = gateway("audit", "verify", home=home, check=False)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    log = entries(home)
    actions = [(e.get("action"), e.get("subject")) for e in log if e.get("kind") == "admin"]
    assert ("client.rotate_secret", "demo") in actions
    assert ("client.retire", "temp") in actions
    temp_calls = [e for e in log if e.get("kind") == "http" and e.get("client") == "temp"]
    # its token request and its data call are still there (refusals of a revoked token name
    # no client: they record the token's hash)
    assert {e.get("route") for e in temp_calls} >= {"/oauth/token", "/v1/datasets"}
    assert {e.get("status") for e in temp_calls} == {200}


def test_second_token_key_step_within_cache_window_needs_force(
    demo: Demo, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second `keys rotate token` right after the first is refused (exit 1, nothing changes,
    nothing logged) and says what to do; with --force it activates the key."""
    home = ["--home", str(demo.home)]
    assert main(["keys", "rotate", "token", *home]) == 0
    published = capsys.readouterr().out
    assert "sooner, it refuses unless given --force" in published
    state = (demo.home / "keys" / STATE_FILE).read_bytes()
    logged = len(entries(demo.home))
    assert main(["keys", "rotate", "token", *home]) == 1
    refused = capsys.readouterr().err
    assert re.search(r"was published \d+ s ago; .* Run this again in \d+ s", refused)
    assert "--force" in refused
    assert (demo.home / "keys" / STATE_FILE).read_bytes() == state
    assert len(entries(demo.home)) == logged
    assert main(["keys", "rotate", "token", "--force", *home]) == 0
    assert "now signs" in capsys.readouterr().out
    last = entries(demo.home)[-1]
    assert (last["action"], last["kind"]) == ("token_key.activated", "admin")
