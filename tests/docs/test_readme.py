"""The README walk-through, run as written against a live server over TLS; its shown output must
match what really comes out (lines with `…` are per-workspace and only matched around the `…`)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.paths import REPO
from tests.servers import gateway, start_server

pytestmark = pytest.mark.e2e
BASH = shutil.which("bash") or "/bin/bash"
README = REPO / "README.md"


def blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", README.read_text(), flags=re.S)


def line_matches(expected: str, actual: str) -> bool:
    if "…" not in expected:
        return expected == actual
    pattern = ".+".join(re.escape(part) for part in expected.split("…"))
    return re.fullmatch(pattern, actual) is not None


def assert_output(expected: str, actual: str) -> None:
    """Every expected line appears, in order, in the actual output."""
    remaining = actual.splitlines()
    for line in expected.strip("\n").splitlines():
        while remaining and not line_matches(line, remaining[0]):
            remaining.pop(0)
        assert remaining, f"README line not in the output: {line!r}\n--- output ---\n{actual}"
        remaining.pop(0)


def json_block(text: str) -> list[str]:
    """The lines of the first pretty-printed JSON object in `text` (from `{` to `}`)."""
    lines = text.splitlines()
    start = lines.index("{")
    return lines[start : lines.index("}", start) + 1]


def assert_json_shown_whole(expected: str, actual: str) -> None:
    """The JSON the README shows is the whole body, line for line: no field the server prints
    is left out of the sample (a subsequence match would not notice)."""
    shown, printed = json_block(expected), json_block(actual)
    assert len(shown) == len(printed), "\n".join(
        line for line in printed if not any(line_matches(s, line) for s in shown)
    )
    for want, got in zip(shown, printed, strict=True):
        assert line_matches(want, got), (want, got)


def run_bash(script: str, cwd: Path, base: str) -> str:
    script = script.replace("https://127.0.0.1:8443", base)
    script = script.replace(".venv/bin/gateway", f"{sys.executable} -m gateway")
    result = subprocess.run(
        [BASH, "-c", script], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    return result.stdout


@pytest.mark.skipif(shutil.which("curl") is None, reason="the README walk-through uses curl")
def test_readme_walkthrough_runs_as_written(tmp_path: Path) -> None:
    """README quick start: token, datasets, rows, 401, verify, then tamper and verify fails."""
    home = tmp_path / "ws"
    gateway("init", "--demo", home=home)  # the default 20,000 rows, as `make run` creates
    server = start_server(home)
    try:
        walkthrough, tamper = blocks("bash")
        shown_walkthrough, shown_tamper = blocks("text")
        printed = run_bash(walkthrough, home, server.base)
        assert_output(shown_walkthrough, printed)
        assert_json_shown_whole(shown_walkthrough, printed)
    finally:
        server.stop()
    assert_output(shown_tamper, run_bash(tamper, home, server.base))
