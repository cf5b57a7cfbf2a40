"""CPU per request of two (or more) versions of the gateway, interleaved in one run.

On a shared machine wall throughput drifts by tens of percent between runs, and even CPU per
request drifts with the load; two versions measured in separate runs cannot be compared. This
runs every version at once on one demo workspace (each its own `uvicorn` process, one worker,
plain HTTP) and drives them in turn with wrk (16 connections), round after round. Each round
gives the server's CPU microseconds per request: its process group's CPU time from /proc over
the requests wrk completed, and that of the serving process alone (`serving`; the rest of the
group is the audit writer process where there is one).

A version is `name=PYTHONPATH|PROTOCOL`: the directory holding the `gateway` package to import
(for another branch: `git archive <rev> gateway | tar -x -C DIR`) and the uvicorn `--http`
protocol class. For example, main against this tree, each with the protocol it ships:

    python benchmarks/cpu_ab.py --loop uvloop \\
        "main=/tmp/main|gateway.api.protocol:GatewayH11Protocol" \\
        "this=.|gateway.api.protocol_fast:GatewayHttpToolsProtocol"
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
from benchws import bench_workspace, cpu_seconds, free_port, wait_ready  # on sys.path

QUERY = "/v1/datasets/residents/rows?purpose=statistics&_size=100"


def start(
    home: Path, pythonpath: str, protocol: str, loop: str
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(pythonpath).resolve()),
        "GATEWAY_HOME_DIR": str(home),
        "GATEWAY_INSECURE_HTTP": "1",
        "GATEWAY_PORT": str(port),
        "GATEWAY_MAX_INFLIGHT": "1000",
        "GATEWAY_PUBLIC_URL": base,
    }
    command = [
        sys.executable, "-m", "uvicorn", "gateway.app:app_from_env", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--loop", loop, "--http", protocol,
        "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    # Started outside any checkout: `python -m` puts the working directory first on sys.path,
    # before PYTHONPATH, and a checkout there would shadow the version asked for.
    process = subprocess.Popen(
        command, env=env, cwd=home.parent, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    wait_ready(port, process)
    return process, base


def token(base: str, secret: str) -> str:
    answer = httpx.post(
        f"{base}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=("bench", secret),
        timeout=120,
    )
    value: str = answer.json()["access_token"]
    return value


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of one process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:13]) / os.sysconf("SC_CLK_TCK")


def run_wrk(url: str, bearer: str, seconds: int, pgid: int) -> tuple[float, float, float]:
    """(CPU microseconds per request, requests per second, CPU microseconds per request of the
    serving process alone) of one wrk run."""
    command = ["wrk", "-t2", "-c16", f"-d{seconds}s", "-H", f"Authorization: Bearer {bearer}", url]
    before, serving = cpu_seconds(pgid), process_cpu(pgid)
    out = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    cpu, serving = cpu_seconds(pgid) - before, process_cpu(pgid) - serving
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return 1e6 * cpu / max(requests, 1), rps, 1e6 * serving / max(requests, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("versions", nargs="+", help="name=PYTHONPATH|PROTOCOL")
    parser.add_argument("--loop", default="uvloop", choices=["asyncio", "uvloop"])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=5)
    args = parser.parse_args()
    start_load = os.getloadavg()[0]  # other work on the machine moves every figure
    versions = {}
    for spec in args.versions:
        name, _, rest = spec.partition("=")
        pythonpath, _, protocol = rest.partition("|")
        versions[name] = (pythonpath, protocol)
    with tempfile.TemporaryDirectory(prefix="gw-cpu-ab-") as tmp:
        home = Path(tmp) / "ws"
        secret = bench_workspace(home)
        servers: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
        results: dict[str, list[tuple[float, float, float]]] = {name: [] for name in versions}
        try:
            for name, (pythonpath, protocol) in versions.items():
                servers[name] = start(home, pythonpath, protocol, args.loop)
            for round_ in range(args.rounds):
                for name, (process, base) in servers.items():
                    bearer = token(base, secret)  # a new one each round: tokens expire
                    if round_ == 0:  # the view is built by the first request, not measured
                        httpx.get(base + QUERY, headers={"Authorization": f"Bearer {bearer}"})
                    results[name].append(run_wrk(base + QUERY, bearer, args.seconds, process.pid))
        finally:
            for process, _ in servers.values():
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(60)
    load = os.getloadavg()[0]
    print(f"{args.rounds} rounds of {args.seconds} s, wrk 16 connections, loop {args.loop}")
    for name, runs in results.items():
        cpus = [cpu for cpu, _, _ in runs]
        serving = [cpu for _, _, cpu in runs]
        writer = [cpu - own for cpu, _, own in runs]  # the rest of the group: the writer process
        print(
            f"{name:<12} CPU/req median {statistics.median(cpus):6.0f} us "
            f"(rounds {', '.join(f'{c:.0f}' for c in cpus)})  "
            f"serving process {statistics.median(serving):6.0f} us "
            f"(rounds {', '.join(f'{c:.0f}' for c in serving)})  "
            f"writer process {statistics.median(writer):6.0f} us "
            f"(rounds {', '.join(f'{c:.0f}' for c in writer)})  "
            f"req/s median {statistics.median(r for _, r, _ in runs):7.0f}"
        )
    print(f"load average {start_load:.2f} at the start, {load:.2f} at the end")


if __name__ == "__main__":
    main()
