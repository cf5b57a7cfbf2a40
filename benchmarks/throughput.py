"""HTTP throughput: the protected rows endpoint against the framework's floor.

The floor is a bare Starlette app returning the same, already desensitized 100-row page as fixed
bytes from memory. Ours is `gateway serve` doing everything: token check, policy decision, view
lookup, filter, render, an Ed25519-signed durable audit entry and the receipt. Both run under
uvicorn with the same worker count over plain HTTP on loopback, driven by wrk with 16
connections; rounds alternate so that machine noise hits both. Prints requests/s, p50 and p99
for each, and the ratio.

    python benchmarks/throughput.py [--seconds 10] [--rounds 2] [--workers 1]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

FLOOR_APP = """
import os
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route
BODY = open(os.environ["FLOOR_BODY"], "rb").read()
async def page(request):
    return Response(BODY, media_type="application/json")
app = Starlette(routes=[Route("/page", page)])
"""
QUERY = "/v1/datasets/residents/rows?purpose=statistics&_size=100"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_ready(port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing listens on {port}")


def wrk(url: str, seconds: int, headers: list[str], connections: int = 16) -> dict[str, float]:
    threads = min(2, connections)
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    for header in headers:
        command[1:1] = ["-H", header]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def latency(pct: str) -> float:
        match = re.search(rf"\s{pct}%\s+([\d.]+)(us|ms|s)", out)
        assert match is not None
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": rps,
        "p50": latency("50"),
        "p99": latency("99"),
        "non2xx": float(errors.group(1)) if errors else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")
    work = Path(tempfile.mkdtemp(prefix="gw-bench-"))
    home = work / "ws"
    gateway = [sys.executable, "-m", "gateway"]
    subprocess.run(
        [*gateway, "init", "--demo", "--home", str(home)], check=True, capture_output=True
    )
    policy = home / "policies" / "residents.yaml"
    text = policy.read_text()
    text = re.sub(r"limits: \{[^}]*\}", "limits: {rows_per_request: 500}", text, count=1)
    policy.write_text(text)
    client = subprocess.run(
        [*gateway, "clients", "add", "bench", "--rate-limit", "100000000", "--home", str(home)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    secret = next(
        line.split()[-1] for line in client.splitlines() if line.startswith("client_secret")
    )
    text = policy.read_text().replace("clients: [demo]", "clients: [demo, bench]", 1)
    policy.write_text(text)

    port = free_port()
    env = {
        **os.environ,
        "GATEWAY_MAX_INFLIGHT": "1000",
        "GATEWAY_PUBLIC_URL": f"http://127.0.0.1:{port}",
    }
    ours = subprocess.Popen(
        [
            *gateway,
            "serve",
            "--home",
            str(home),
            "--insecure-http",
            "--port",
            str(port),
            "--workers",
            str(args.workers),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    wait_ready(port)
    base = f"http://127.0.0.1:{port}"
    token = httpx.post(
        f"{base}/oauth/token", data={"grant_type": "client_credentials"}, auth=("bench", secret)
    ).json()["access_token"]
    sample = httpx.get(base + QUERY, headers={"Authorization": f"Bearer {token}"})
    assert sample.status_code == 200, sample.text
    body_file = work / "page.json"
    body_file.write_bytes(sample.content)
    floor_port = free_port()
    floor = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "floor:app",
            "--port",
            str(floor_port),
            "--workers",
            str(args.workers),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        cwd=work,
        env={**os.environ, "FLOOR_BODY": str(body_file), "PYTHONPATH": str(work)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    (work / "floor.py").write_text(FLOOR_APP)
    wait_ready(floor_port)
    results: dict[str, list[dict[str, float]]] = {"floor": [], "ours": []}
    try:
        for _ in range(args.rounds):
            results["floor"].append(wrk(f"http://127.0.0.1:{floor_port}/page", args.seconds, []))
            results["ours"].append(
                wrk(base + QUERY, args.seconds, [f"Authorization: Bearer {token}"])
            )
    finally:
        for process in (ours, floor):
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(30)
    print(
        f"{len(sample.content)} byte page of 100 rows, {args.workers} worker(s), 16 connections, "
        f"{args.seconds} s x {args.rounds} rounds"
    )
    for name, runs in results.items():
        best = max(runs, key=lambda r: r["rps"])
        latency = f"p50 {best['p50']:7.2f} ms   p99 {best['p99']:7.2f} ms"
        print(f"{name:<6} {best['rps']:9.0f} req/s   {latency}   non-2xx {best['non2xx']:.0f}")
    ratio = max(r["rps"] for r in results["ours"]) / max(r["rps"] for r in results["floor"])
    print(f"ours/floor throughput: {ratio:.2f}")
    print(json.dumps(results))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
