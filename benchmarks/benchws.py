"""What the HTTP benchmarks share (throughput.py, export.py, scaleout.py import it; this
directory is on sys.path when one of them runs): the demo workspace with a `bench` client, and
the helpers that start, wait for and measure a server process.

A `bench` client (rate limit 100,000,000 calls a minute, so the limiter never refuses a
benchmark call) is added to the demo workspace and to the `residents` grant, whose limits are
replaced by `limits`.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

GATEWAY = [sys.executable, "-m", "gateway"]
PAGE_LIMITS = "{rows_per_request: 500}"
# An entry of the benchmark's hot call (the 100-row statistics page), as the middleware logs it.
EVENT: dict[str, Any] = {
    "kind": "http", "rid": "", "method": "GET", "route": "/v1/datasets/{dataset_id}/rows",
    "path_hmac": "405a621248aa605e711a8b04ea87206b5fe67c49ed3c05330012c1c95a658f49",
    "query_hmac": "2f3dc81106f05d29600ff2e1a452e55eaaf40b7a649130ef6568144f924d5ff2",
    "status": 200, "client": "bench",
    "token_sha256": "222523192f3d545a5837eb0fe3bcd1f5e109b18f99fd2ee4fd68857c4df578b2",
    "decision": "allow", "reason": None, "dataset": "residents", "purpose": "statistics",
    "grant": "demo-residents",
    "policy": "2d32d062e4e9175a30507c00eb81358bfc5c8eef8f4e17fd5c57734083839487",
    "transforms": [
        "id_card:synthesize", "gender:keep", "age:generalize", "province:keep", "city:keep",
        "district:keep", "employer_credit_code:mask", "monthly_income:generalize",
    ],
    "rows": 100, "resp_sha256": "4e3a00969aee1ccd7c8c4cbd6013bf59e9120767756a2aefa1099ddf3163ca9a",
    "view": "bd4c4b3272f5eb1ad6735f50", "row_ids": "eJxjYAADxlE8ODAATb8AZA==",
}  # fmt: skip
TICKS = os.sysconf("SC_CLK_TCK")


def bench_workspace(
    home: Path, *, rows: int | None = None, store: str | None = None, limits: str = PAGE_LIMITS
) -> str:
    """`gateway init --demo` in `home` (with `rows` rows per dataset, on `store` if given) and a
    `bench` client allowed on the residents grant with `limits`; returns the client's secret."""
    extra = ["--store", store] if store else []
    sizes = ["--rows", str(rows)] if rows is not None else []
    _gateway("init", "--demo", "--home", str(home), *sizes, *extra)
    added = _gateway(
        "clients", "add", "bench", "--rate-limit", "100000000", "--home", str(home), *extra
    )
    secret = next(
        line.split()[-1] for line in added.splitlines() if line.startswith("client_secret")
    )
    policy = home / "policies" / "residents.yaml"
    text = policy.read_text()
    text = re.sub(r"limits: \{[^}]*\}", f"limits: {limits}", text, count=1)
    policy.unlink()  # a new inode: a running gateway's file check sees the edit at once
    policy.write_text(text.replace("clients: [demo]", "clients: [demo, bench]", 1))
    return secret


def _gateway(*args: str) -> str:
    return subprocess.run([*GATEWAY, *args], check=True, capture_output=True, text=True).stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_ready(port: int, process: subprocess.Popen[bytes] | None = None) -> None:
    """Wait until something listens on `port` (up to 2 minutes); fail if `process` exits."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server on {port} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def _group(pgid: int) -> list[tuple[str, str]]:
    """(stat, status) of every live process in a process group (a server and its workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[2]) != pgid:
                continue
            found.append((stat, (entry / "status").read_text()))
        except (OSError, ValueError, IndexError):
            continue
    return found


def rss_mib(pgid: int) -> float:
    """Resident memory of every process in a process group."""
    total = 0
    for _, status in _group(pgid):
        match = re.search(r"VmRSS:\s+(\d+) kB", status)
        total += int(match.group(1)) if match else 0
    return total / 1024


def cpu_seconds(pgid: int) -> float:
    """User + system CPU time of every live process in a process group (all its threads, and
    the children they waited for), from /proc."""
    total = 0
    for stat, _ in _group(pgid):
        fields = stat.rsplit(")", 1)[1].split()
        # fields[11..14]: utime, stime, cutime, cstime (proc(5), counting from state = 0)
        total += sum(int(value) for value in fields[11:15])
    return total / TICKS
