"""HTTP throughput: the protected rows endpoint against the framework's floor, per server.

The floor is a bare Starlette app returning the same, already desensitized 100-row page as fixed
bytes from memory. Ours is the gateway doing everything: token check, policy decision, request
counters, view lookup, filter, render, an Ed25519-signed durable audit entry and the receipt.
Both run under the same server command (uvicorn with asyncio and h11, uvicorn with uvloop and
httptools, granian) with the same worker count over plain HTTP on loopback, driven by wrk with 16
connections; floor and ours alternate, round by round, so that machine noise hits both.

Scenarios, in this order, on one workspace:
  fresh     no view on disk: the first request computes it
  restart   the server restarted over the same workspace (views read back from state/views/)
  log1m     the audit log grown to --entries entries (1,000,000 by default) before starting;
            start-up time (to the first page) and the resident memory are reported
  workers2  the same with 2 worker processes, against a 2-worker floor

The big log is written directly through the store's own functions (canonical entry lines, the
hash chain, Ed25519 signatures over the entry statements, signed in parallel batches; a signed
checkpoint over all of it), not by HTTP. `--verify` runs `gateway audit verify` on it.

Own cost per call = 1/ours - 1/floor (seconds per request on the same server): what the gateway
adds to what any app on that server pays.

    python benchmarks/throughput.py [--seconds 5] [--rounds 2] [--entries 1000000]
        [--servers uvicorn,uvicorn-fast,granian] [--scenarios fresh,restart,log1m,workers2]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from benchws import bench_workspace, cpu_seconds, free_port, rss_mib, wait_ready

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
BIN = Path(sys.executable).parent


def uvicorn(loop: str, http: str) -> Callable[[str, int, int, bool], list[str]]:
    """The floor runs uvicorn's own protocol; ours the gateway's subclass of it (the same
    parser) that audits refusals, as `gateway serve` does (it ships the httptools one)."""
    ours = {
        "h11": "gateway.api.protocol:GatewayH11Protocol",
        "httptools": "gateway.api.protocol_fast:GatewayHttpToolsProtocol",
    }

    def command(target: str, port: int, workers: int, factory: bool) -> list[str]:
        return [
            sys.executable,
            "-m",
            "uvicorn",
            target,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--loop",
            loop,
            "--http",
            ours[http] if factory else http,
            "--no-access-log",
            "--log-level",
            "warning",
            *(["--factory"] if factory else []),
        ]

    return command


def granian(target: str, port: int, workers: int, factory: bool) -> list[str]:
    return [
        str(BIN / "granian"),
        "--interface",
        "asgi",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--no-access-log",
        "--log-level",
        "warning",
        *(["--factory"] if factory else []),
        target,
    ]


SERVERS: dict[str, Callable[[str, int, int, bool], list[str]]] = {
    "uvicorn": uvicorn("asyncio", "h11"),
    "uvicorn-fast": uvicorn("uvloop", "httptools"),
    "granian": granian,
}


def wrk(
    url: str, seconds: int, headers: list[str], connections: int = 16, pgid: int | None = None
) -> dict[str, float]:
    """One wrk run: requests/s, p50 and p99 latency (ms), non-2xx count; with `pgid`, also the
    server's CPU microseconds per request (its process group's CPU time over the requests wrk
    completed: steadier than throughput on a loaded machine)."""
    threads = min(2, connections)
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    for header in headers:
        command[1:1] = ["-H", header]
    cpu_before = cpu_seconds(pgid) if pgid is not None else 0.0
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    cpu = cpu_seconds(pgid) - cpu_before if pgid is not None else 0.0
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
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
        "cpu_us": 1e6 * cpu / requests if pgid is not None and requests else 0.0,
    }


@dataclass
class Bench:
    work: Path
    home: Path
    secret: str
    seconds: int
    rounds: int
    body_file: Path | None = None
    rows: list[dict[str, object]] = field(default_factory=list)

    def start(
        self, command: list[str], env: dict[str, str], cwd: Path | None = None
    ) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            command,
            env=env,
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def start_ours(
        self, server: str, workers: int
    ) -> tuple[subprocess.Popen[bytes], str, str, float]:
        """Start the gateway; returns the process, its base URL, a token and the seconds from
        spawn to the first page."""
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "GATEWAY_HOME_DIR": str(self.home),
            "GATEWAY_INSECURE_HTTP": "1",
            "GATEWAY_PORT": str(port),
            "GATEWAY_WORKERS": str(workers),
            "GATEWAY_MAX_INFLIGHT": "1000",
            "GATEWAY_PUBLIC_URL": base,
        }
        spawned = time.monotonic()
        process = self.start(SERVERS[server]("gateway.app:app_from_env", port, workers, True), env)
        wait_ready(port, process)
        token = httpx.post(
            f"{base}/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=("bench", self.secret),
            timeout=120,
        ).json()["access_token"]
        sample = httpx.get(base + QUERY, headers={"Authorization": f"Bearer {token}"}, timeout=120)
        first_page = time.monotonic() - spawned
        assert sample.status_code == 200, sample.text
        if self.body_file is None:
            self.body_file = self.work / "page.json"
            self.body_file.write_bytes(sample.content)
        return process, base, token, first_page

    def start_floor(self, server: str, workers: int) -> tuple[subprocess.Popen[bytes], str]:
        assert self.body_file is not None
        (self.work / "floor.py").write_text(FLOOR_APP)
        port = free_port()
        env = {**os.environ, "FLOOR_BODY": str(self.body_file), "PYTHONPATH": str(self.work)}
        process = self.start(SERVERS[server]("floor:app", port, workers, False), env, self.work)
        wait_ready(port, process)
        return process, f"http://127.0.0.1:{port}/page"

    def measure(self, scenario: str, server: str, workers: int) -> None:
        ours, base, token, first_page = self.start_ours(server, workers)
        floor, floor_url = self.start_floor(server, workers)
        runs: dict[str, list[dict[str, float]]] = {"floor": [], "ours": []}
        rss = 0.0
        try:
            httpx.get(floor_url)
            for _ in range(self.rounds):
                runs["floor"].append(wrk(floor_url, self.seconds, [], pgid=floor.pid))
                auth = [f"Authorization: Bearer {token}"]
                runs["ours"].append(wrk(base + QUERY, self.seconds, auth, pgid=ours.pid))
            rss = rss_mib(ours.pid)
        finally:
            for process in (ours, floor):
                stop(process)
        best_floor = max(runs["floor"], key=lambda r: r["rps"])
        best_ours = max(runs["ours"], key=lambda r: r["rps"])
        row: dict[str, object] = {
            "scenario": scenario,
            "server": server,
            "workers": workers,
            "floor": best_floor,
            "ours": best_ours,
            "ratio": best_ours["rps"] / best_floor["rps"],
            "own_us": 1e6 * (1 / best_ours["rps"] - 1 / best_floor["rps"]),
            # CPU time per request, medians of the rounds: the server's own cost without the
            # machine's other load (what wall time per request mixes in).
            "cpu_floor_us": statistics.median(r["cpu_us"] for r in runs["floor"]),
            "cpu_ours_us": statistics.median(r["cpu_us"] for r in runs["ours"]),
            "first_page_s": first_page,
            "rss_mib": rss,
            "runs": runs,
        }
        self.rows.append(row)
        print(line(row), flush=True)


def stop(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(60)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def line(row: dict[str, object]) -> str:
    floor, ours = row["floor"], row["ours"]
    assert isinstance(floor, dict)
    assert isinstance(ours, dict)
    return (
        f"{row['scenario']:<9} {row['server']:<13} {row['workers']}w "
        f"floor {floor['rps']:7.0f} ours {ours['rps']:6.0f} ratio {row['ratio']:5.2f} "
        f"own {row['own_us']:5.0f} us  CPU/req {row['cpu_floor_us']:4.0f}/"
        f"{row['cpu_ours_us']:5.0f} us  p50 {floor['p50']:5.2f}/{ours['p50']:6.2f} ms "
        f"p99 {floor['p99']:5.2f}/{ours['p99']:6.2f} ms  non-2xx {ours['non2xx']:.0f}  "
        f"first page {row['first_page_s']:5.1f} s  RSS {row['rss_mib']:5.0f} MiB"
    )


# --- a big audit log, written directly ---------------------------------------------------------


def _sign_chunk(args: tuple[Path, list[bytes]]) -> list[bytes]:
    from gateway.audit.signing import ENTRY_CONTEXT, load_signer

    key_path, statements = args
    signer = load_signer(key_path)
    return [signer.sign(ENTRY_CONTEXT, s) for s in statements]


def grow_log(home: Path, total: int, chunk: int = 50_000) -> tuple[int, float]:
    """Append entries until the log holds `total`; each is a copy of the newest request entry
    (a new rid), chained, signed and stored exactly as the writer does. Returns (added, s)."""
    from gateway.audit.entry import HEADER_FIELDS, encode_entry, leaf_hash, statement
    from gateway.audit.schema import SEQUENCER
    from gateway.audit.signing import load_signer
    from gateway.audit.store import AuditLog
    from gateway.settings import Settings

    settings = Settings(home=home)
    key_path = settings.workspace.audit_key
    signer = load_signer(key_path)
    log = AuditLog(settings.audit_database, signer)
    started = time.monotonic()
    size = log.size()
    newest = json.loads(log.entries(size - 1, size)[0].line)
    template = {k: v for k, v in newest.items() if k not in HEADER_FIELDS}
    conn = log.database.connect()
    workers = os.cpu_count() or 1
    added = 0
    with ProcessPoolExecutor(workers) as pool:
        while size < total:
            conn.begin(SEQUENCER)
            idx, prev_hex, last_ts = _head(conn)
            lines, leaves, stamps = [], [], []
            ts = max(int(time.time() * 1000), last_ts)
            for i in range(idx, min(total, idx + chunk)):
                event = {**template, "rid": f"{i:016x}"}
                encoded = encode_entry(event, origin=log.origin, idx=i, ts=ts, prev=prev_hex)
                leaf = leaf_hash(encoded)
                lines.append(encoded)
                leaves.append(leaf)
                stamps.append(statement(log.origin, i, ts, leaf))
                prev_hex = leaf.hex()
            parts = [stamps[j::workers] for j in range(workers)]
            signed = list(pool.map(_sign_chunk, [(key_path, p) for p in parts]))
            sigs = [b""] * len(stamps)
            for j, part in enumerate(signed):
                sigs[j::workers] = part
            conn.executemany(
                "INSERT INTO entries (idx, line, leaf, ts, kid, sig) VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (idx + n, lines[n].decode(), leaves[n], ts, signer.kid, sigs[n])
                    for n in range(len(lines))
                ],
            )
            conn.commit()
            added += len(lines)
            size = idx + len(lines)
    conn.close()
    log.checkpoint()
    log.close()
    return added, time.monotonic() - started


def _head(conn: object) -> tuple[int, str, int]:
    from gateway.audit.schema import next_position

    head = next_position(conn)  # type: ignore[arg-type]
    return head.idx, head.prev, head.ts


# --- the run -------------------------------------------------------------------------------------


def setup(work: Path) -> tuple[Path, str]:
    home = work / "ws"
    return home, bench_workspace(home)


def plan(scenarios: list[str], servers: list[str]) -> Iterator[tuple[str, str, int]]:
    for scenario in scenarios:
        for server in servers:
            yield scenario, server, 2 if scenario == "workers2" else 1


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--servers", default="uvicorn,uvicorn-fast,granian")
    parser.add_argument("--scenarios", default="fresh,restart,log1m,workers2")
    parser.add_argument("--verify", action="store_true", help="verify the big log once")
    parser.add_argument("--json", type=Path, help="write every run here")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")
    servers = [s for s in args.servers.split(",") if s]
    unknown = set(servers) - set(SERVERS)
    if unknown:
        raise SystemExit(f"unknown servers {sorted(unknown)}; choose from {sorted(SERVERS)}")
    if "granian" in servers and not (BIN / "granian").exists():
        raise SystemExit("granian is not installed in this environment (pip install granian)")
    work = Path(tempfile.mkdtemp(prefix="gw-bench-"))
    home, secret = setup(work)
    bench = Bench(work, home, secret, args.seconds, args.rounds)
    print(
        f"100-row page, 16 connections, {args.seconds} s x {args.rounds} rounds alternating, "
        f"best round each; {os.cpu_count()} cores",
        flush=True,
    )
    grown = False
    try:
        for scenario, server, workers in plan(args.scenarios.split(","), servers):
            if scenario == "fresh":
                shutil.rmtree(home / "state" / "views", ignore_errors=True)
            if scenario in ("log1m", "workers2") and not grown:
                added, seconds = grow_log(home, args.entries)
                grown = True
                print(f"audit log grown by {added} entries to {args.entries} in {seconds:.0f} s")
                if args.verify:
                    started = time.monotonic()
                    verified = subprocess.run(
                        [sys.executable, "-m", "gateway", "audit", "verify", "--home", str(home)],
                        capture_output=True,
                        text=True,
                    )
                    print(verified.stdout.strip() or verified.stderr.strip())
                    print(f"verified in {time.monotonic() - started:.0f} s")
            bench.measure(scenario, server, workers)
    finally:
        if args.json:
            args.json.write_text(json.dumps(bench.rows, indent=1))
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
