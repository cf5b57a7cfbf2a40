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
from collections.abc import Iterator, Sequence
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
        in flight finish and are logged; an idle connection is dropped at once, see
        test_an_idle_tls_client_does_not_hold_a_stopping_server)."""
        self.signal_stop()
        self.process.wait(30)

    def signal_stop(self) -> None:
        """stop() without waiting for the process to end (stop_servers waits for all)."""
        for client in self.clients:
            client.close()
        self.clients.clear()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait_ready(self, seconds: float = 60) -> None:
        """Return once a TLS handshake succeeds (no HTTP call: the audit log stays untouched);
        stop the server and raise if it exits or is not ready within `seconds`."""
        port = int(self.base.rsplit(":", 1)[1])
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                stderr = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"gateway serve exited: {stderr}")
            try:
                with (
                    socket.create_connection(("127.0.0.1", port), timeout=2) as raw,
                    self.ca.wrap_socket(raw, server_hostname="127.0.0.1"),
                ):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"gateway serve did not become ready within {seconds:.0f} s")


def spawn_server(home: Path, *extra: str, env: dict[str, str] | None = None) -> Server:
    """`gateway serve` on a free port, started but not yet ready (see Server.wait_ready)."""
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
    return Server(home, f"https://127.0.0.1:{port}", ca, process)


def start_server(home: Path, *extra: str, env: dict[str, str] | None = None) -> Server:
    """`gateway serve` on a free port, once it answers a TLS handshake."""
    server = spawn_server(home, *extra, env=env)
    server.wait_ready()
    return server


def start_servers(
    homes: Sequence[Path], *extra: str, env: dict[str, str] | None = None
) -> list[Server]:
    """Several servers started side by side (each boots while the others do)."""
    servers = [spawn_server(home, *extra, env=env) for home in homes]
    try:
        for server in servers:
            server.wait_ready()
    except BaseException:
        stop_servers(servers)
        raise
    return servers


def stop_servers(servers: Sequence[Server]) -> None:
    """Stop several servers side by side: each gets SIGTERM before any is waited for (each
    shuts down gracefully, as Server.stop does, while the others do)."""
    for server in servers:
        server.signal_stop()
    for server in servers:
        server.process.wait(30)


class DemoWorkspaces:
    """Workspaces made by `gateway init --demo --rows N`, as a user makes them: the command runs
    once per row count (per test process), and each test gets a private copy (its own log,
    registry, state and keys), which is what a new `gateway init` would have given it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.templates: dict[int, Path] = {}

    def template(self, rows: int) -> Path:
        """The initialized workspace for `rows` (read it, never change it: copy it)."""
        if rows not in self.templates:
            home = self.root / f"rows-{rows}" / "ws"
            gateway("init", "--demo", "--rows", str(rows), home=home)
            self.templates[rows] = home
        return self.templates[rows]

    def copy(self, home: Path, rows: int = int(ROWS)) -> Path:
        """A private copy of the initialized workspace at `home` (which must not exist)."""
        shutil.copytree(self.template(rows), home, symlinks=True)
        return home


@pytest.fixture(scope="module")
def initialized(demo_workspaces: DemoWorkspaces) -> Path:
    """A workspace made by `gateway init --demo`, as a user makes it (tests copy it: `home`)."""
    return demo_workspaces.template(int(ROWS))


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
