"""Real `gateway` processes for end-to-end tests: the CLI as a subprocess, `gateway serve` over
TLS on a free port, an OAuth client that trusts the workspace's CA, and the fixtures that make a
workspace with `gateway init --demo` as a user does."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from authlib.integrations.httpx_client import OAuth2Client

ROWS = "2000"


def gateway(*args: str, home: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args, "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=120,
        check=check,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    home: Path
    base: str
    ca: ssl.SSLContext
    process: subprocess.Popen[bytes]
    clients: list[OAuth2Client] = field(default_factory=list)

    def stop(self) -> None:
        """Close the test's clients, then stop the server as an operator does (SIGTERM: calls
        in flight finish and are logged). A client left open would hold an idle TLS connection
        that keeps the server in its graceful shutdown for GRACEFUL_SECONDS."""
        for client in self.clients:
            client.close()
        self.clients.clear()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(30)


def start_server(home: Path, *extra: str, env: dict[str, str] | None = None) -> Server:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway",
            "serve",
            "--home",
            str(home),
            "--port",
            str(port),
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
        env={**os.environ, **(env or {})},
    )
    ca = ssl.create_default_context(cafile=str(home / "keys" / "ca.crt"))
    server = Server(home, f"https://127.0.0.1:{port}", ca, process)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"gateway serve exited: {process.stderr.read().decode() if process.stderr else ''}"
            )
        # Ready when a TLS handshake succeeds; no HTTP call, so the audit log stays untouched.
        try:
            with (
                socket.create_connection(("127.0.0.1", port), timeout=2) as raw,
                ca.wrap_socket(raw, server_hostname="127.0.0.1"),
            ):
                return server
        except OSError:
            time.sleep(0.2)
    server.stop()
    raise RuntimeError("gateway serve did not become ready within 60 s")


@pytest.fixture(scope="module")
def initialized(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace made by `gateway init --demo`, as a user makes it (once per module)."""
    home = tmp_path_factory.mktemp("e2e") / "ws"
    gateway("init", "--demo", "--rows", ROWS, home=home)
    return home


@pytest.fixture
def home(initialized: Path, tmp_path: Path) -> Path:
    """A copy of it for one test: its own log, registry, state and keys."""
    home = tmp_path / "ws"
    shutil.copytree(initialized, home, symlinks=True)
    return home


@pytest.fixture
def server(home: Path) -> Iterator[Server]:
    server = start_server(home)
    yield server
    server.stop()


def oauth_client(server: Server, client_id: str, secret: str) -> OAuth2Client:
    client = OAuth2Client(
        client_id, secret, token_endpoint_auth_method="client_secret_basic", verify=server.ca
    )
    server.clients.append(client)  # closed by server.stop() if the test has not closed it
    client.fetch_token(f"{server.base}/oauth/token", grant_type="client_credentials")
    return client
