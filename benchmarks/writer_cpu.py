"""CPU per entry of the audit writer process alone (gateway/audit/child.py), driven over its
pipe as a serving process drives it, with no HTTP server and no event loop in the way.

`--inflight` calls wait at once (wrk's 16 connections); each reply's entries are sent again in
one message, as a serving loop sends the entries of the calls that the reply released, or with
`--split` each in a message of its own, as a loop that handles one call per iteration does
(smaller group commits: what a served run looks like). The
child's CPU (user + system, from /proc) over the entries it committed is printed per run, for
each version (`name=PYTHONPATH`), rounds interleaved:

    python benchmarks/writer_cpu.py --rounds 5 main=/tmp/main this=.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchws import EVENT, bench_workspace  # on sys.path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's gateway

from gateway.audit.wire import Frames, frame  # after the path is set


def process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:13]) / os.sysconf("SC_CLK_TCK")


class Writer:
    """One version's child on a copy of the workspace's log."""

    def __init__(self, pythonpath: str, home: Path, log: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(Path(pythonpath).resolve())}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.audit.child"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, cwd=home.parent,
        )  # fmt: skip
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.wfd, self.rfd = self.proc.stdin.fileno(), self.proc.stdout.fileno()
        key = home / "keys" / "audit-ed25519.key"
        self.send(
            {
                "url": str(log),
                "busy_timeout_ms": 10_000,
                "synchronous": "FULL",
                "key": key.read_bytes(),
                "key_path": str(key),
            }
        )
        self.frames = Frames()
        self.batch = 0

    def send(self, message: object) -> None:
        data = memoryview(frame(message))
        while data:
            data = data[os.write(self.wfd, data) :]

    def append(self, count: int) -> None:
        self.batch += 1
        events = [{**EVENT, "rid": f"{self.batch:08x}{i:08x}"} for i in range(count)]
        self.send(("append", self.batch, events, int(time.time() * 1000)))

    def run(self, entries: int, inflight: int, split: bool = False) -> float:
        """CPU microseconds of the child per committed entry."""
        before = process_cpu(self.proc.pid)
        done = sent = 0
        for _ in range(inflight):
            self.append(1)
            sent += 1
        while done < entries:
            data = os.read(self.rfd, 1 << 18)
            if not data:
                raise SystemExit("the writer process exited")
            for message in self.frames.feed(data):
                if message[0] != "done":
                    raise SystemExit(f"the writer process answered {message!r}")
                answered = sum(len(outcomes) for _, outcomes in message[1])
                done += answered
                if sent < entries:
                    for size in [1] * answered if split else [answered]:
                        self.append(size)
                    sent += answered
        while done < sent:  # let the last appends land before the clock stops
            for message in self.frames.feed(os.read(self.rfd, 1 << 18)):
                done += sum(len(outcomes) for _, outcomes in message[1])
        return 1e6 * (process_cpu(self.proc.pid) - before) / done

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("versions", nargs="+", help="name=PYTHONPATH")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--entries", type=int, default=3000)
    parser.add_argument("--inflight", type=int, default=16)
    parser.add_argument("--split", action="store_true", help="one message per entry")
    args = parser.parse_args()
    start_load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="gw-writer-cpu-") as tmp:
        home = Path(tmp) / "ws"
        bench_workspace(home)
        writers: dict[str, Writer] = {}
        for spec in args.versions:
            name, _, pythonpath = spec.partition("=")
            log = Path(tmp) / f"{name}.sqlite3"
            shutil.copy(home / "audit" / "log.sqlite3", log)
            writers[name] = Writer(pythonpath, home, log)
        results: dict[str, list[float]] = {name: [] for name in writers}
        try:
            for writer in writers.values():
                writer.run(200, args.inflight)  # warm: imports, first statements
            for _ in range(args.rounds):
                for name, writer in writers.items():
                    results[name].append(writer.run(args.entries, args.inflight, args.split))
        finally:
            for writer in writers.values():
                writer.close()
    print(
        f"{args.rounds} rounds of {args.entries} entries, {args.inflight} in flight"
        f"{', one message each' if args.split else ''}; "
        f"load average {start_load:.2f} -> {os.getloadavg()[0]:.2f}"
    )
    for name, runs in results.items():
        print(
            f"{name:<8} writer CPU/entry median {statistics.median(runs):6.1f} us "
            f"(rounds {', '.join(f'{r:.1f}' for r in runs)})"
        )


if __name__ == "__main__":
    main()
