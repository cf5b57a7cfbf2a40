"""The gateway's own work per call, in process: the ASGI app called directly (no HTTP server),
`--concurrency` calls at a time on one event loop, the benchmark's hot call (the 100-row
statistics page). Prints the event-loop thread's CPU per call (`time.thread_time`: the request
path's own work, the audit writer thread excluded), the process's CPU per call and the wall
time per call, for each of `--runs` runs of `--calls` calls.

    python benchmarks/inprocess.py [--home WS] [--calls 3000] [--runs 3] [--loop uvloop]

Run it under `py-spy record` to see where the loop's time goes. Several versions of the code
are compared by running this file with each on PYTHONPATH, interleaved (`--home` shared, so a
workspace is built once; pass `--runs 1` and alternate).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

from benchws import bench_workspace  # on sys.path

QUERY = b"purpose=statistics&_size=100"
PATH = "/v1/datasets/residents/rows"

Message = dict[str, Any]
App = Callable[
    [dict[str, Any], Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
    Coroutine[Any, Any, None],
]


def scope(
    method: str, path: str, query: bytes, headers: list[tuple[bytes, bytes]]
) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8443),
        "client": ("127.0.0.1", 50000),
        "scheme": "http",
        "method": method,
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "headers": [(b"host", b"127.0.0.1:8443"), *headers],
        "state": {},
    }


async def call(app: App, sc: dict[str, Any], body: bytes = b"") -> tuple[int, bytes]:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    status, chunks = 0, []

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        else:
            chunks.append(message.get("body", b""))

    await app(sc, receive, send)
    return status, b"".join(chunks)


async def lifespan(app: App) -> tuple[asyncio.Task[None], asyncio.Queue[Message]]:
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    started = asyncio.Event()

    async def receive() -> Message:
        return await inbox.get()

    async def send(message: Message) -> None:
        if message["type"].startswith("lifespan.startup"):
            started.set()

    task = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)
    )
    await inbox.put({"type": "lifespan.startup"})
    await started.wait()
    return task, inbox


async def run(home: Path, secret: str, calls: int, runs: int, concurrency: int) -> None:
    from gateway.app import create_app
    from gateway.settings import Settings

    settings = Settings.from_env({
        "GATEWAY_HOME_DIR": str(home), "GATEWAY_INSECURE_HTTP": "1",
        "GATEWAY_MAX_INFLIGHT": "1000", "GATEWAY_PUBLIC_URL": "http://127.0.0.1:8443",
    })  # fmt: skip
    app: App = create_app(settings)  # type: ignore[assignment]
    task, inbox = await lifespan(app)
    basic = base64.b64encode(f"bench:{secret}".encode()).decode()
    status, body = await call(app, scope("POST", "/oauth/token", b"", [
        (b"authorization", f"Basic {basic}".encode()),
        (b"content-type", b"application/x-www-form-urlencoded"),
        (b"content-length", b"29"),
    ]), b"grant_type=client_credentials")  # fmt: skip
    assert status == 200, body
    bearer = f"Bearer {json.loads(body)['access_token']}".encode()
    headers = [(b"authorization", bearer), (b"user-agent", b"wrk"), (b"accept", b"*/*")]
    status, body = await call(app, scope("GET", PATH, QUERY, headers))  # builds the view
    assert status == 200, body

    async def worker(count: int) -> None:
        for _ in range(count):
            status, _ = await call(app, scope("GET", PATH, QUERY, headers))
            assert status == 200

    for _ in range(runs):
        thread, process, wall = time.thread_time(), time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker(calls // concurrency) for _ in range(concurrency)))
        done = concurrency * (calls // concurrency)
        thread = (time.thread_time() - thread) / done * 1e6
        process = (time.process_time() - process) / done * 1e6
        wall = (time.perf_counter() - wall) / done * 1e6
        print(
            f"loop {thread:6.1f} us/call  process {process:6.1f} us/call  wall {wall:7.1f} us/call",
            flush=True,
        )
    await inbox.put({"type": "lifespan.shutdown"})
    await task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, help="a bench workspace (made if missing)")
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--loop", default="uvloop", choices=["asyncio", "uvloop"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gw-inproc-") as tmp:
        home = args.home or Path(tmp) / "ws"
        secret_file = home / "bench-secret"
        if not secret_file.exists():
            secret = bench_workspace(home)
            secret_file.write_text(secret)
        secret = secret_file.read_text()
        coroutine = run(home, secret, args.calls, args.runs, args.concurrency)
        if args.loop == "uvloop":
            import uvloop

            uvloop.run(coroutine)
        else:
            asyncio.run(coroutine)


if __name__ == "__main__":
    main()
