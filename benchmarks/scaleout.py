"""Scale-out throughput: the protected rows endpoint on 1, 2 and 3 gateway hosts sharing one
PostgreSQL store, against one host on the embedded SQLite store, side by side in one run.

Each host is a `gateway serve` process (1 worker, plain HTTP on loopback) with its own workspace
copy (same keys, policies and data). wrk drives every host at once with 16 connections in all,
split across the hosts (a stand-in for a round-robin load balancer); rounds alternate between
the configurations so machine noise hits all. Every call is a full audited call: one entry per
call in the one shared log. Needs wrk and a PostgreSQL server that may create databases
(GATEWAY_TEST_PG_ADMIN, default postgresql://postgres@127.0.0.1:5432/postgres).

    python benchmarks/scaleout.py [--seconds 10] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psycopg
from benchws import bench_workspace, free_port, wait_ready  # this directory is on sys.path
from throughput import wrk

ADMIN = os.environ.get("GATEWAY_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
QUERY = "/v1/datasets/residents/rows?purpose=statistics&_size=100"
GATEWAY = [sys.executable, "-m", "gateway"]


def run(*args: str) -> str:
    return subprocess.run([*GATEWAY, *args], check=True, capture_output=True, text=True).stdout


def workspace(home: Path, store: str | None) -> str:
    """A demo workspace with a `bench` client allowed on residents; returns its secret."""
    return bench_workspace(home, store=store)


class Hosts:
    def __init__(self, homes: list[Path], store: str | None) -> None:
        self.ports = [free_port() for _ in homes]
        env = {
            **os.environ,
            "GATEWAY_MAX_INFLIGHT": "1000",
            "GATEWAY_PUBLIC_URL": "http://gateway.bench",
            **({"GATEWAY_STORE": store} if store else {}),
        }
        self.processes = [
            subprocess.Popen(
                [*GATEWAY, "serve", "--home", str(h), "--insecure-http", "--port", str(p)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            for h, p in zip(homes, self.ports, strict=True)
        ]
        for port in self.ports:
            wait_ready(port)

    def stop(self) -> None:
        for process in self.processes:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(30)


def drive(ports: list[int], token: str, seconds: int) -> float:
    """Requests/s summed over every host, all driven at once; checks every answer was 2xx."""
    per_host = max(1, 16 // len(ports))

    def one(port: int) -> dict[str, float]:
        return wrk(
            f"http://127.0.0.1:{port}{QUERY}",
            seconds,
            [f"Authorization: Bearer {token}"],
            connections=per_host,
        )

    with ThreadPoolExecutor(len(ports)) as pool:
        results = list(pool.map(one, ports))
    assert all(r["non2xx"] == 0 for r in results), results
    return sum(r["rps"] for r in results)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")
    name = f"gw_bench_{secrets.token_hex(4)}"
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    store = f"{ADMIN.rpartition('/')[0]}/{name}"
    work = Path(tempfile.mkdtemp(prefix="gw-scaleout-"))
    try:
        sqlite_secret = workspace(work / "sqlite", None)
        pg_secret = workspace(work / "pg1", store)
        for n in (2, 3):
            shutil.copytree(work / "pg1", work / f"pg{n}", symlinks=True)
        configs = {
            "sqlite, 1 host": ([work / "sqlite"], None, sqlite_secret),
            "postgresql, 1 host": ([work / "pg1"], store, pg_secret),
            "postgresql, 2 hosts": ([work / "pg1", work / "pg2"], store, pg_secret),
            "postgresql, 3 hosts": ([work / f"pg{n}" for n in (1, 2, 3)], store, pg_secret),
        }
        results: dict[str, list[float]] = {name: [] for name in configs}
        for _ in range(args.rounds):
            for label, (homes, url, secret) in configs.items():
                hosts = Hosts(homes, url)
                try:
                    base = f"http://127.0.0.1:{hosts.ports[0]}"
                    token = httpx.post(
                        f"{base}/oauth/token",
                        data={"grant_type": "client_credentials"},
                        auth=("bench", secret),
                    ).json()["access_token"]
                    for port in hosts.ports:  # warm every host's view before measuring
                        warm = httpx.get(
                            f"http://127.0.0.1:{port}{QUERY}",
                            headers={"Authorization": f"Bearer {token}"},
                            timeout=60,
                        )
                        assert warm.status_code == 200, warm.text
                    time.sleep(1)
                    results[label].append(drive(hosts.ports, token, args.seconds))
                finally:
                    hosts.stop()
        cores = os.cpu_count()
        print(
            f"100-row page, audited calls, 16 connections in all, {args.seconds} s x "
            f"{args.rounds} rounds, {cores} cores shared by hosts, PostgreSQL and wrk"
        )
        reference = max(results["sqlite, 1 host"])
        for label, runs in results.items():
            best = max(runs)
            ratio = best / reference
            print(f"{label:<22} {best:8.0f} req/s   vs sqlite, 1 host {ratio:5.2f}")
        verify = run("audit", "verify", "--home", str(work / "pg3"), "--store", store)
        print(verify.splitlines()[0])
    finally:
        shutil.rmtree(work, ignore_errors=True)
        with psycopg.connect(ADMIN, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')


if __name__ == "__main__":
    main()
