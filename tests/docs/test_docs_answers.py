"""The commands docs/auditors.md and docs/admins.md give for the questions people ask run, as
written, on a workspace with a known workload (only the example hashes and entry index are
replaced by the workload's own), and answer from the verified log."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path
from typing import Any

import pytest

from gateway.audit import verify
from gateway.cli import main
from tests.paths import REPO
from tests.workload import Workload, raw_entries

DOCS = REPO / "docs"
ANSWERING = {("audit", "query"), ("audit", "explain"), ("usage",), ("policy", "history")}
RUNS = ANSWERING | {("audit", "export"), ("audit", "verify"), ("policy", "diff")}


def documented_commands(doc: str) -> list[str]:
    """`gateway ...` commands of the page, in order: the lines of its ```sh blocks and the
    commands in its question tables (without trailing comments)."""
    text = (DOCS / doc).read_text()
    commands: list[str] = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if line.startswith(("gateway ", "python -m gateway.audit.verify ")):
                commands.append(line)
    for line in text.splitlines():
        if line.startswith("| ") and "`gateway " in line:
            commands += re.findall(r"`(gateway [^`]+)`", line)
    return commands


def _kind(argv: list[str]) -> tuple[str, ...]:
    return tuple(argv[:1]) if argv[0] == "usage" else tuple(argv[:2])


@pytest.mark.parametrize("doc", ["auditors.md", "admins.md"])
def test_documented_commands_run(
    doc: str,
    workload: Workload,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Every documented answering command exits 0 with an answer and a verification line."""
    raw = raw_entries(workload.settings)
    hashes = [e["new"] for e in raw if e.get("action") == "policy.reload"]
    explained = next(e["idx"] for e in raw if e.get("grant") == "demo-residents")
    replace = {
        "b3dd53": hashes[0][:6],
        "a2cb5b": hashes[1][:6],
        "OLD": hashes[0][:6],
        "NEW": hashes[1][:6],
        "INDEX": str(explained),
        "4": str(explained),
    }
    cwd = tmp_path / "auditor"
    cwd.mkdir()
    shutil.copy(workload.settings.workspace.audit_pub, cwd / "audit-ed25519.pub")
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("GATEWAY_HOME", str(workload.home))
    commands = documented_commands(doc)
    ran: list[tuple[str, ...]] = []
    for command in commands:
        words = shlex.split(command)
        if words[:3] == ["python", "-m", "gateway.audit.verify"]:
            assert verify.main(words[3:]) == 0, command
            capsys.readouterr()
            continue
        argv = words[1:]
        if _kind(argv) not in RUNS:
            continue
        if argv[:2] in (["audit", "explain"], ["policy", "diff"]):
            argv = [replace.get(word, word) for word in argv]
        code = main(argv)
        out: Any = capsys.readouterr()
        assert code == 0, (command, out.err)
        assert out.out.strip(), command
        if _kind(argv) in ANSWERING:
            assert "verified" in out.err, command
        ran.append(_kind(argv))
    assert set(ran) >= ANSWERING, ran  # the page shows every kind of question
