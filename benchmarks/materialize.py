"""A whole release at scale: `views.materialize` for the demo views over N demo rows.

    python benchmarks/materialize.py [--rows 1000000] [--workdir /tmp/gateway-bench]
        [--views demo-residents,demo-residents-planning,demo-enterprise-research]
        [--profile 0] [--digest]

The demo workspace of `--rows` rows (`gateway init --demo`, both datasets) is built once under
`--workdir` (outside git; kept between runs). Each view is then built in a fresh process through
`released_view_maker` (what a request does: row filter, transforms with synthetic values checked
against every real value of the workspace, fingerprint, Mondrian over every released
quasi-identifier, the outsider's check, risk figures and floors), after the data files are
loaded, and reported as CPU seconds (the robust figure on a loaded machine), wall seconds, peak
resident memory and the time of each stage (explicit timers around the stages' functions; nested
stages are indented: "real values" is part of the transform that asked for them). `--profile N`
adds cProfile's N most expensive functions (CPU clock; it slows the run down), `--digest` the
SHA-256 of the released frame (to check that a change releases the same values).
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import hashlib
import io
import json
import pstats
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any
from unittest import mock

import pandas as pd

from gateway.data.realvalues import RealValues
from gateway.data.sources import SourceCache
from gateway.policy.files import load_policies
from gateway.privacy import (
    fingerprint,
    kanon,
    mondrian,
    randomize,
    synthesize,
    transforms,
    views,
)
from gateway.runtime.services import released_view_maker
from gateway.settings import Settings
from gateway.workspace import init_workspace

VIEWS = "demo-residents,demo-residents-planning,demo-enterprise-research"


def workspace(workdir: Path, rows: int) -> tuple[Settings, float]:
    """The demo workspace of `rows` rows under `workdir`, built once (seconds it took, or 0)."""
    settings = Settings(home=workdir / f"ws-{rows}", public_url="https://testserver")
    if (settings.workspace.data / "residents.csv").exists():
        # The data is kept; the policies follow the checkout (its loader may refuse old ones).
        shutil.rmtree(settings.workspace.policies)
        init_workspace(settings, demo=True, rows=rows)
        return settings, 0.0
    start = time.perf_counter()
    init_workspace(settings, demo=True, rows=rows)
    return settings, time.perf_counter() - start


class Stages:
    """CPU and wall seconds spent in named functions, nesting shown by depth."""

    def __init__(self) -> None:
        self.order: list[tuple[int, str]] = []
        self.cpu: dict[str, float] = {}
        self.wall: dict[str, float] = {}
        self._depth = 0

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            if name not in self.cpu:
                self.order.append((self._depth, name))
                self.cpu[name] = self.wall[name] = 0.0
            self._depth += 1
            start, clock = time.perf_counter(), time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                self.cpu[name] += time.process_time() - clock
                self.wall[name] += time.perf_counter() - start
                self._depth -= 1

        return timed


@contextmanager
def instrumented(stages: Stages, helper_stages: Stages) -> Iterator[None]:
    """Timers around the stages of materialize (the benchmark patches names, the code is as is)."""
    patches: list[tuple[Any, str, str]] = [
        (views, "row_mask", "row filter"),
        (views, "apply_fingerprint", "fingerprint"),
        (views, "ladder", "hierarchies (ladders)"),
        (views, "enforce", "privacy model (enforce)"),
        (kanon, "mondrian", "mondrian"),
        (mondrian, "_search", "mondrian search"),
        (views, "_verify", "outsider's check"),
        (views, "measure", "risk figures"),
        (views, "keyed_order", "keyed order"),
    ]
    # Helpers several stages call: reported apart, as "of which" over all the stages above.
    helpers: list[tuple[Any, str, str]] = [
        (RealValues, "all", "real values of the workspace"),
        (transforms, "keyed_words", "keyed words (HMAC), transforms"),
        (fingerprint, "keyed_words", "keyed words (HMAC), fingerprint"),
        (randomize, "keyed_words", "keyed words (HMAC), date_shift"),
        (synthesize, "generate", "synthetic values"),
    ]
    catalogue = {
        name: replace(definition, apply=stages.wrap(f"transform {name}", definition.apply))
        for name, definition in transforms.CATALOGUE.items()
    }
    with ExitStack() as stack:
        for owner, attribute, label in patches:
            original = getattr(owner, attribute)
            stack.enter_context(mock.patch.object(owner, attribute, stages.wrap(label, original)))
        for owner, attribute, label in helpers:
            original = getattr(owner, attribute)
            timed = helper_stages.wrap(label, original)
            stack.enter_context(mock.patch.object(owner, attribute, timed))
        stack.enter_context(mock.patch.dict(transforms.CATALOGUE, catalogue))
        yield


def digest(frame: pd.DataFrame) -> str:
    """The released frame's values, column names and types as one SHA-256."""
    text = frame.to_csv(index=False, lineterminator="\n")
    types = ",".join(f"{c}:{t}" for c, t in frame.dtypes.items())
    return hashlib.sha256((types + "\n" + text).encode()).hexdigest()


def child(home: Path, grant_id: str, profile: int, want_digest: bool) -> None:
    """In a fresh process: load the data, then build one view with stage timers."""
    settings = Settings(home=home, public_url="https://testserver")
    policy = load_policies(settings.workspace.policies, home)
    sources = SourceCache(settings.workspace)
    start, clock = time.perf_counter(), time.process_time()
    for dataset in policy.datasets.values():
        sources.load(dataset)
    load = (time.perf_counter() - start, time.process_time() - clock)
    grant = next(g for g in policy.grants if g.id == grant_id)
    dataset = policy.datasets[grant.dataset]
    view_of = released_view_maker(settings, sources, views.ViewCache(), policy)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    stages = Stages()
    helpers = Stages()
    profiler = cProfile.Profile(time.process_time) if profile else None
    with instrumented(stages, helpers):
        start, clock = time.perf_counter(), time.process_time()
        if profiler is not None:
            profiler.enable()
        view = view_of(dataset, grant, sorted(grant.clients)[0])
        if profiler is not None:
            profiler.disable()
        wall, cpu = time.perf_counter() - start, time.process_time() - clock
    top = ""
    if profiler is not None:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(profile)
        top = out.getvalue()
    privacy = view.privacy
    risk = view.risk
    print(
        json.dumps(
            {
                "grant": grant_id,
                "source_rows": len(sources.load(dataset).frame),
                "released": len(view.frame),
                "qis": len(risk.quasi_identifiers) if risk else 0,
                "k": privacy.k if privacy else None,
                "suppressed": privacy.suppressed if privacy else None,
                "ncp": privacy.ncp if privacy else None,
                "classes": risk.classes if risk else None,
                "load": load,
                "wall": wall,
                "cpu": cpu,
                "rss_before": rss_before,
                "rss_peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                "stages": [(d, n, stages.cpu[n], stages.wall[n]) for d, n in stages.order],
                "helpers": [(n, helpers.cpu[n], helpers.wall[n]) for _, n in helpers.order],
                "digest": digest(view.frame) if want_digest else "",
                "profile": top,
            }
        )
    )


def report(r: dict[str, Any]) -> None:
    mib = 1024 * 1024
    ncp = "-" if r["ncp"] is None else f"{r['ncp']:.3f}"
    print(
        f"{r['grant']}: {r['source_rows']:,} source rows, released {r['released']:,}, "
        f"{r['qis']} QIs, k={r['k']}, suppressed {r['suppressed']}, NCP {ncp}, "
        f"classes {r['classes']}"
    )
    print(
        f"  materialize: {r['cpu']:.1f} s CPU, {r['wall']:.1f} s wall; peak RSS "
        f"{r['rss_peak'] / mib:,.0f} MiB ({r['rss_before'] / mib:,.0f} MiB after loading the data "
        f"in {r['load'][1]:.1f} s CPU)"
    )
    for depth, name, cpu, wall in r["stages"]:
        print(f"  {'  ' * depth}{name:<{34 - 2 * depth}}{cpu:8.2f} s CPU{wall:8.2f} s wall")
    if r["helpers"]:
        print("  of which, in the stages above:")
    for name, cpu, wall in r["helpers"]:
        print(f"    {name:<32}{cpu:8.2f} s CPU{wall:8.2f} s wall")
    if r["digest"]:
        print(f"  released frame sha256 {r['digest']}")
    if r["profile"]:
        print(r["profile"])


def main() -> None:
    if len(sys.argv) == 6 and sys.argv[1] == "--child":
        child(Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5] == "1")
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "gateway-bench-materialize"
    )
    parser.add_argument("--views", default=VIEWS)
    parser.add_argument("--profile", type=int, default=0, help="cProfile's top N functions")
    parser.add_argument("--digest", action="store_true", help="SHA-256 of each released frame")
    args = parser.parse_args()
    settings, made = workspace(args.workdir, args.rows)
    built = f"built in {made:.1f} s" if made else "reused"
    print(f"materialize: demo workspace of {args.rows:,} rows at {settings.home} ({built})")
    for grant_id in args.views.split(","):
        command = [
            sys.executable,
            __file__,
            "--child",
            str(settings.home),
            grant_id,
            str(args.profile),
            "1" if args.digest else "0",
        ]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        report(json.loads(output.strip().splitlines()[-1]))


if __name__ == "__main__":
    main()
