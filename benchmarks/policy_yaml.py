"""Policy YAML on libyaml's events against the pure-Python reference loader, interleaved.

Two figures, each as a ratio of runs side by side in one process (issue 16 item 6):

1. `load_located` against `load_located_reference` on each demo policy file (process CPU time,
   best of 5 timeit rounds of 20 calls, the two alternating);
2. the CPU (process time) of building the test app the way the `demo` and `client` fixtures
   of tests/conftest.py do: copy a demo workspace, create the app and run its lifespan in a
   TestClient, with the policy loaders of gateway.policy.files and gateway.policy.testing
   pointed at one loader or the other, alternating build by build.

    .venv/bin/python benchmarks/policy_yaml.py --builds 12
"""

from __future__ import annotations

import argparse
import functools
import shutil
import statistics
import tempfile
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.policy import files, testing, yamlsrc
from gateway.settings import Settings
from gateway.workspace import init_workspace

BASE = "https://testserver"
DEMO = Path(yamlsrc.__file__).resolve().parent.parent / "demo" / "policies"
LOADERS: dict[str, Callable[..., Any]] = {
    "reference": yamlsrc.load_located_reference,
    "fast": yamlsrc.load_located,
}


def per_file() -> None:
    for path in sorted(DEMO.rglob("*.yaml")):
        text = path.read_text("utf-8")
        best = {name: float("inf") for name in LOADERS}
        for _ in range(5):
            for name, load in LOADERS.items():
                call = functools.partial(load, text)
                seconds = timeit.timeit(call, number=20, timer=time.process_time) / 20
                best[name] = min(best[name], seconds)
        print(
            f"{path.relative_to(DEMO)!s:<28} {len(text):6d} chars  reference "
            f"{best['reference'] * 1e3:6.2f} ms  fast {best['fast'] * 1e3:5.2f} ms  "
            f"ratio {best['reference'] / best['fast']:5.1f}x"
        )


def build_cpu(template: Path, scratch: Path, load: Callable[..., Any]) -> float:
    """Process CPU seconds of one fixture-style app build with `load` parsing the policies."""
    files.load_located = load  # type: ignore[attr-defined]
    testing.load_located = load  # type: ignore[attr-defined]
    home = scratch / "ws"
    if home.exists():
        shutil.rmtree(home)
    start = time.process_time()
    shutil.copytree(template, home, symlinks=True)
    with TestClient(create_app(Settings(home=home, public_url=BASE)), base_url=BASE) as client:
        assert client.get("/healthz").status_code == 200
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--builds", type=int, default=12, help="app builds per loader")
    args = parser.parse_args()
    per_file()
    with tempfile.TemporaryDirectory(prefix="gw-policy-yaml-") as tmp:
        template = Path(tmp) / "template"
        init_workspace(Settings(home=template, public_url=BASE), demo=True, rows=2000)
        cpu: dict[str, list[float]] = {name: [] for name in LOADERS}
        for round_ in range(args.builds + 1):
            for name, load in LOADERS.items():
                seconds = build_cpu(template, Path(tmp), load)
                if round_:  # the first round warms imports and caches
                    cpu[name].append(seconds)
    ref, fast = (statistics.median(cpu[name]) for name in ("reference", "fast"))
    print(
        f"app build CPU, median of {args.builds}: reference {ref * 1e3:.0f} ms, "
        f"fast {fast * 1e3:.0f} ms, saved {(ref - fast) * 1e3:.0f} ms per build "
        f"({(ref - fast) / ref:.0%})"
    )


if __name__ == "__main__":
    main()
