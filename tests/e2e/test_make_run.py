"""`make run` as a newcomer runs it, on a port of their choosing: it creates the demo workspace
(policies as plain files of the workspace, not links into the package) and serves HTTPS there."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.paths import REPO
from tests.servers import free_port

pytestmark = pytest.mark.e2e


MAKE = shutil.which("make")


@pytest.mark.skipif(MAKE is None, reason="needs make")
@pytest.mark.skipif(
    not (REPO / ".venv" / "bin" / "gateway").exists(), reason="needs the repository's .venv"
)
def test_make_run_serves_on_the_port_given(tmp_path: Path) -> None:
    """`make run PORT=N HOME_DIR=...` initializes the workspace for port N and serves HTTPS on
    it; the workspace's policies are regular files, and editing one leaves the package alone."""
    port = free_port()
    home = tmp_path / "ws"
    process = subprocess.Popen(
        # -o: take the installed .venv as it is (this test is about the run recipe)
        [str(MAKE), "-o", ".venv/.installed", "run", f"PORT={port}", f"HOME_DIR={home}"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")},
    )
    try:
        deadline = time.monotonic() + 240
        context: ssl.SSLContext | None = None
        while time.monotonic() < deadline:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            if context is None and (home / "keys" / "ca.crt").exists():
                context = ssl.create_default_context(cafile=str(home / "keys" / "ca.crt"))
            if context is not None:
                try:
                    with (
                        socket.create_connection(("127.0.0.1", port), timeout=2) as raw,
                        context.wrap_socket(raw, server_hostname="127.0.0.1"),
                    ):
                        break
                except OSError:
                    pass
            time.sleep(0.5)
        else:
            pytest.fail("make run did not serve within 240 s")
        assert context is not None
        creds = json.loads((home / "demo-client.json").read_text())
        assert creds["base_url"] == f"https://127.0.0.1:{port}"
        with httpx.Client(verify=context) as http:
            assert http.get(f"{creds['base_url']}/healthz").status_code == 200
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(30)
    policies = sorted((home / "policies").rglob("*"))
    assert policies
    assert not any(p.is_symlink() for p in policies)
    packaged = REPO / "gateway" / "demo" / "policies" / "residents.yaml"
    before = packaged.read_bytes()
    edited = home / "policies" / "residents.yaml"
    edited.write_bytes(edited.read_bytes() + b"# an admin's edit\n")
    assert packaged.read_bytes() == before
