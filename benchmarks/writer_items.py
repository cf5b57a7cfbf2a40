"""Where the audit writer process's CPU per entry goes, item by item, in process.

`Child.commit` (gateway/audit/child.py) runs on a copy of a bench log, fed the framed messages a
serving process sends (`--per` entries in each commit, in `--messages` messages), and its reply
framed as it is sent back; the CPU time of each round (`time.process_time`: a wait for
`fdatasync` does not count, its kernel work does) is divided by the entries. Each variant
replaces one item by a stub that returns a value computed beforehand (the signature, the line,
the statement, the leaf hash; or all four: what is left is the pipe's framing, the per-entry
Python, the SQL and the commit), rounds interleaved; an item's cost is the full round's median
less the variant's. With `--dir` on a disk the commit's `fdatasync` is in; on tmpfs it is not.

    python benchmarks/writer_items.py --per 8 --messages 8 --dir /tmp
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchws import EVENT, bench_workspace  # on sys.path

VARIANTS = ("full", "no sign", "no encode_entry", "no statement", "no leaf_hash", "only the rest")


class Rounds:
    """One child on a copy of the log, and the stubs of each variant."""

    def __init__(self, home: Path, log: Path, per: int, messages: int) -> None:
        child_module = importlib.import_module("gateway.audit.child")
        self.wire = importlib.import_module("gateway.audit.wire")
        self.module = writer_module = importlib.import_module("gateway.audit.writer")
        key = home / "keys" / "audit-ed25519.key"
        opening = {
            "url": str(log),
            "busy_timeout_ms": 10_000,
            "synchronous": "FULL",
            "key": key.read_bytes(),
            "key_path": str(key),
        }
        self.child = child_module.Child(opening)
        self.per, self.messages, self.batch = per, messages, 0
        self.real: dict[str, Any] = {
            name: getattr(writer_module, name)
            for name in ("encode_entry", "statement", "leaf_hash")
        }
        self.signer = self.child.signers.active
        self.line = self.real["encode_entry"](EVENT, origin="o", idx=1, ts=1, prev="0" * 64)
        self.leaf = self.real["leaf_hash"](self.line)
        self.statement = self.real["statement"]("o", 1, 1, self.leaf)
        self.signature = self.signer.sign(b"", self.statement)

    def use(self, variant: str) -> None:
        """Put the variant's stubs in place (and the real functions back first)."""
        writer_module = self.module
        for name, function in self.real.items():
            setattr(writer_module, name, function)
        object.__setattr__(self.signer, "sign", type(self.signer).sign.__get__(self.signer))
        stub = variant == "only the rest"
        if stub or variant == "no sign":
            object.__setattr__(self.signer, "sign", lambda context, message: self.signature)
        stubs: dict[str, Any] = {}
        if stub or variant == "no encode_entry":
            stubs["encode_entry"] = lambda event, **header: self.line
        if stub or variant == "no statement":
            stubs["statement"] = lambda *fields: self.statement
        if stub or variant == "no leaf_hash":
            stubs["leaf_hash"] = lambda line: self.leaf
        for name, function in stubs.items():
            setattr(writer_module, name, function)

    def run(self, rounds: int) -> float:
        """CPU microseconds per entry over `rounds` commits."""
        frame, frames = self.wire.frame, self.wire.Frames
        total = 0.0
        for _ in range(rounds):
            data = []
            for _ in range(self.messages):
                self.batch += 1
                events = [
                    {**EVENT, "rid": f"{self.batch:08x}{i:08x}"}
                    for i in range(self.per // self.messages)
                ]
                data.append(frame(("append", self.batch, events, int(time.time() * 1000))))
            sent = b"".join(data)
            start = time.process_time()
            batches = [(m[1], m[2], m[3]) for m in frames().feed(sent)]
            frame(("done", self.child.commit(batches), self.child.halt_state()))
            total += time.process_time() - start
        return 1e6 * total / (rounds * (self.per // self.messages) * self.messages)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per", type=int, default=8, help="entries per commit")
    parser.add_argument("--messages", type=int, default=1, help="messages per commit")
    parser.add_argument("--dir", default=None, help="where the log is (a disk: fdatasync counts)")
    parser.add_argument("--alternations", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=150, help="commits per measurement")
    parser.add_argument(
        "--gateway", default=str(Path(__file__).resolve().parent.parent),
        help="the directory holding the gateway package to measure (default: this checkout)",
    )  # fmt: skip
    args = parser.parse_args()
    sys.path.insert(0, str(Path(args.gateway).resolve()))
    start_load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="gw-writer-items-", dir=args.dir) as tmp:
        home = Path(tmp) / "ws"
        bench_workspace(home)
        log = Path(tmp) / "items.sqlite3"
        shutil.copy(home / "audit" / "log.sqlite3", log)
        rounds = Rounds(home, log, args.per, args.messages)
        rounds.run(100)  # warm: imports, the first statements
        results: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
        for _ in range(args.alternations):
            for variant in VARIANTS:
                rounds.use(variant)
                results[variant].append(rounds.run(args.rounds))
        rounds.use("full")
    print(
        f"{args.gateway}: {args.per} entries per commit in {args.messages} message(s), "
        f"log in {args.dir or 'TMPDIR'}; "
        f"load average {start_load:.2f} -> {os.getloadavg()[0]:.2f}"
    )
    full = statistics.median(results["full"])
    for variant, runs in results.items():
        median = statistics.median(runs)
        print(
            f"{variant:<16} {median:6.1f} us/entry (item {full - median:5.1f})  "
            f"rounds {', '.join(f'{r:.1f}' for r in runs)}"
        )


if __name__ == "__main__":
    main()
