"""Start-up cost of `gateway serve`, two (or more) versions interleaved in one run.

Every end-to-end test and every worker process pays what the server does before its first
answer. For each version (`name=PYTHONPATH`: the directory holding the `gateway` package, for
another branch `git archive <rev> gateway | tar -x -C DIR`) and each round, in turn on one demo
workspace: `gateway serve --insecure-http` (one worker) is started, `GET /healthz` is polled
until it answers 200, and the server's process-group CPU seconds (from /proc) and the wall time
to that first 200 are recorded; then the server is stopped. Also, per round, the CPU seconds of
`python -c "import gateway.app"` alone. Medians, and each version's ratio to the first.

    python benchmarks/startup.py --rounds 5 main=/tmp/main this=.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from benchws import bench_workspace, cpu_seconds, free_port


def _env(source: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(Path(source).resolve())}


def serve_once(source: str, home: Path) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one `gateway serve` up to its first 200 on /healthz."""
    port = free_port()
    argv = [sys.executable, "-m", "gateway", "serve", "--home", str(home)]
    argv += ["--port", str(port), "--insecure-http"]
    start = time.monotonic()
    process = subprocess.Popen(
        argv,
        env=_env(source),
        cwd=home.parent,  # not a checkout: the current directory comes before PYTHONPATH
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = start + 120
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"gateway serve ({source}) exited with {process.returncode}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.02)
        else:
            raise RuntimeError(f"gateway serve ({source}) gave no 200 within 120 s")
        wall = time.monotonic() - start
        cpu = cpu_seconds(process.pid)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(60)
    return cpu, wall


def import_once(source: str, cwd: Path) -> float:
    """CPU seconds of a Python process that imports gateway.app and exits."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(
        [sys.executable, "-c", "import gateway.app"],
        env=_env(source),
        cwd=cwd,
        check=True,
        timeout=120,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("versions", nargs="+", help="name=PYTHONPATH")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    versions = [tuple(v.split("=", 1)) for v in args.versions]
    results: dict[str, dict[str, list[float]]] = {
        name: {"serve_cpu": [], "serve_wall": [], "import_cpu": []} for name, _ in versions
    }
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "ws"
        bench_workspace(home)
        for _name, source in versions:  # one unrecorded start each: views stored, caches warm
            serve_once(source, home)
        for _ in range(args.rounds):
            for name, source in versions:
                cpu, wall = serve_once(source, home)
                results[name]["serve_cpu"].append(cpu)
                results[name]["serve_wall"].append(wall)
                results[name]["import_cpu"].append(import_once(source, home.parent))
    base = versions[0][0]
    print(f"load average: {os.getloadavg()}")
    for metric in ("serve_cpu", "serve_wall", "import_cpu"):
        ref = statistics.median(results[base][metric])
        for name, _ in versions:
            values = results[name][metric]
            med = statistics.median(values)
            shown = " ".join(f"{v:.2f}" for v in values)
            print(f"{metric:10} {name:6} median {med:.2f} s  ratio {med / ref:.2f}  [{shown}]")


if __name__ == "__main__":
    main()
