"""Whole-view download: the streaming export against paging, side by side, in one run.

One gateway (uvicorn with uvloop and httptools, one worker, plain HTTP on loopback, as
benchmarks/throughput.py runs it) serves a demo workspace of --rows resident records under the
`statistics` grant (k-anonymity and l-diversity by local recoding, synthetic IDs, masks). Each
round, in turn:

  paging   the baseline: every row fetched as JSON pages of 10,000 rows (the largest page the
           grant allows here), following `next`, over one keep-alive connection: what a client
           had to do before the export existed
  csv      GET /export?format=csv, the body read as it streams (csv-cold: the first export of
           the view, which also converts it to an Arrow table once)
  ndjson   GET /export?format=ndjson
  parquet  GET /export?format=parquet
  render   the floor: the same view rendered to CSV in this process as a first export renders
           it (Arrow conversion, then the chunks; no HTTP, no audit, no quota)

Each figure is the best of --rounds rounds (rows per second of wall time for the whole
download, including the audit entry and the quota check). Ratios are against paging (how much
faster a download became) and against the render floor (how much of the floor the HTTP path
keeps). The server's resident memory is read after the warm-up and again after every export: an
export that buffered the body would grow it by the body's size.

    python benchmarks/export.py [--rows 100000] [--rounds 3] [--port 9300]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from benchws import bench_workspace  # this directory is on sys.path

PURPOSE = "purpose=statistics"
TARGET = 200_000  # rows per second for CSV (issue 18)


def setup(work: Path, rows: int) -> tuple[Path, str]:
    home = work / "ws"
    limits = "{rows_per_request: 10000, rows_per_day: 1000000000}"
    return home, bench_workspace(home, rows=rows, limits=limits)


def rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    return int(match.group(1)) / 1024 if match else 0.0


def wait_ready(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing answers on {port}")


def paging(client: httpx.Client, base: str) -> int:
    rows, cursor = 0, None
    while True:
        url = f"{base}/v1/datasets/residents/rows?{PURPOSE}&_size=10000"
        page = client.get(url + (f"&_next={cursor}" if cursor else "")).json()
        rows += len(page["rows"])
        cursor = page["next"]
        if cursor is None:
            return rows


def export(client: httpx.Client, base: str, fmt: str) -> int:
    url = f"{base}/v1/datasets/residents/export?{PURPOSE}&format={fmt}"
    with client.stream("GET", url) as response:
        assert response.status_code == 200, response.read()
        for _ in response.iter_bytes(1 << 16):
            pass
        return int(response.headers["export-rows"])


def render_floor(home: Path) -> tuple[int, float]:
    """The released view rendered to CSV in-process as a first export does it: converted to
    Arrow (formula cells neutralized), then written chunk by chunk (best of 3)."""
    from gateway.api.export import csv_stream, selected_positions
    from gateway.query import parse_query
    from gateway.runtime.released import to_arrow
    from gateway.runtime.services import build_services
    from gateway.settings import Settings

    svc = build_services(Settings(home=home))
    grant = next(g for g in svc.policy.grants if g.id == "demo-residents")
    dataset = svc.policy.datasets[grant.dataset]
    source = svc.sources.load(dataset)
    view = svc.views.get(
        source.frame,
        source.version,
        dataset,
        grant,
        svc.policy.hash,
        svc.context("bench", grant),
    )
    query = parse_query({}, {c.name: c.type for c in view.columns}, max_size=1, default_size=1)
    best = 0.0
    for _ in range(3):
        started = time.perf_counter()
        positions = selected_positions(view.ordered, query)
        table = to_arrow(view.ordered[list(query.columns)], csv=True)
        sink = io.BytesIO()
        for chunk in csv_stream(table, positions):
            sink.write(chunk)
        best = max(best, len(positions) / (time.perf_counter() - started))
    svc.close()
    return len(positions), best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--port", type=int, default=9300)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gw-export-bench-") as tmp:
        work = Path(tmp)
        started = time.monotonic()
        home, secret = setup(work, args.rows)
        print(f"workspace of {args.rows} rows in {time.monotonic() - started:.0f} s", flush=True)
        base = f"http://127.0.0.1:{args.port}"
        env = {
            **os.environ,
            "GATEWAY_HOME_DIR": str(home),
            "GATEWAY_INSECURE_HTTP": "1",
            "GATEWAY_PORT": str(args.port),
            "GATEWAY_PUBLIC_URL": base,
        }
        command = [
            sys.executable, "-m", "uvicorn", "gateway.app:app_from_env", "--factory",
            "--host", "127.0.0.1", "--port", str(args.port), "--loop", "uvloop",
            "--http", "gateway.httpserver:ProblemHttpToolsProtocol",
            "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip
        server = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        try:
            wait_ready(args.port, server)
            token = httpx.post(
                f"{base}/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=("bench", secret),
                timeout=60,
            ).json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            best: dict[str, float] = {}
            memory: list[float] = []
            with httpx.Client(headers=headers, timeout=600) as client:
                total = paging(client, base)  # warm-up: builds the view
                began = time.perf_counter()
                export(client, base, "csv")  # the first export also converts the view to Arrow
                best["csv-cold"] = total / (time.perf_counter() - began)
                memory.append(rss_mib(server.pid))
                for _ in range(args.rounds):
                    for name in ("paging", "csv", "ndjson", "parquet"):
                        began = time.perf_counter()
                        rows = (
                            paging(client, base) if name == "paging" else export(client, base, name)
                        )
                        rate = rows / (time.perf_counter() - began)
                        assert rows == total, (name, rows, total)
                        best[name] = max(best.get(name, 0.0), rate)
                        if name != "paging":
                            memory.append(rss_mib(server.pid))
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(60)
        floor_rows, best["render"] = render_floor(home)
        assert floor_rows == total
    print(f"{total} released rows; best of {args.rounds} rounds, rows per second:")
    for name in ("paging", "csv-cold", "csv", "ndjson", "parquet", "render"):
        print(
            f"  {name:<8} {best[name]:>10,.0f}   x{best[name] / best['paging']:5.2f} paging"
            f"   {best[name] / best['render']:5.2f} of render"
        )
    verdict = "meets" if best["csv"] >= TARGET else "misses"
    print(f"CSV export {best['csv']:,.0f} rows/s {verdict} the {TARGET:,} rows/s target")
    print(f"server RSS after warm-up {memory[0]:.0f} MiB, max after exports {max(memory):.0f} MiB")
    if args.json:
        args.json.write_text(json.dumps({"rows": total, "best": best, "rss_mib": memory}))


if __name__ == "__main__":
    main()
