"""The auditor's verifier on its own (verifier/pyproject.toml): built into a wheel, installed
in a fresh virtual environment with `cryptography` as its only dependency, it verifies an
exported bundle (exit 0), finds a tampered entry (exit 1), and the server is not there."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.conftest import Demo
from tests.paths import REPO

CLOSURE = """
import json, runpy, sys
for name in ("pandas", "numpy", "starlette", "authlib", "joserfc", "yaml", "faker", "uvicorn",
             "pyarrow", "httpx", "httpx2", "anyio", "psycopg"):
    sys.modules[name] = None  # importing any of these now fails
for argv in (sys.argv[1:3], ["--log", sys.argv[3], *sys.argv[2:3]]):
    sys.argv = ["verify", *argv]
    try:
        runpy.run_module("gateway.audit.verify", run_name="__main__")
    except SystemExit as done:
        assert done.code == 0, done.code
import gateway.audit.receipt, gateway.audit.rotation
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] == "gateway")))
"""


def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=600, check=False, cwd=cwd
    )


def test_verifier_distribution_lists_every_module_verification_imports(
    demo: Demo, tmp_path: Path
) -> None:
    """verifier/pyproject.toml names every gateway module that verifying a bundle and a log,
    and checking receipts, import (so a refactor that adds one cannot break the auditors'
    install unnoticed)."""
    import json
    import tomllib

    bundle = tmp_path / "bundle"
    exported = run(
        sys.executable, "-m", "gateway", "audit", "export", "--out", bundle, "--home", demo.home
    )
    assert exported.returncode == 0, exported.stderr
    key = demo.home / "keys" / "audit-ed25519.pub"
    log = demo.home / "audit" / "log.sqlite3"
    closure = run(sys.executable, "-c", CLOSURE, bundle, f"--key={key}", log, cwd=REPO)
    assert closure.returncode == 0, closure.stderr
    imported = set(json.loads(closure.stdout.splitlines()[-1]))
    listed = tomllib.loads((REPO / "verifier" / "pyproject.toml").read_text())["tool"][
        "setuptools"
    ]["py-modules"]
    shipped = {m.removesuffix(".__init__") for m in listed}
    assert imported <= shipped, sorted(imported - shipped)


@pytest.mark.e2e
def test_verifier_installs_alone_with_cryptography_and_verifies_a_bundle(
    demo: Demo, tmp_path: Path
) -> None:
    """Promise 6 for auditors: the offline verifier installs without the gateway's server
    dependencies and verifies (and refuses) a bundle exactly as the full package does."""
    wheels = tmp_path / "wheels"
    built = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", wheels, REPO / "verifier")
    if built.returncode != 0:
        pytest.skip(f"cannot build the verifier wheel here (no package index?): {built.stderr}")
    (wheel,) = wheels.glob("public_data_gateway_verifier-*.whl")

    # A fresh environment without pip of its own (ensurepip costs more than all the rest): this
    # process's pip installs into it with --python, resolving the wheel's dependencies there.
    env_dir = tmp_path / "auditor-env"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    pip = (sys.executable, "-m", "pip", "--python", python)
    installed = run(*pip, "install", "--quiet", wheel)
    if installed.returncode != 0:
        pytest.skip(f"cannot install cryptography in a fresh environment: {installed.stderr}")
    listed = run(*pip, "list", "--format=freeze")
    names = {line.split("==")[0].lower() for line in listed.stdout.splitlines()}
    assert names - {"pip", "setuptools", "wheel"} == {
        "public-data-gateway-verifier",
        "cryptography",
        "cffi",
        "pycparser",
    }
    server_side = run(python, "-c", "import gateway.app")
    assert server_side.returncode != 0  # the server is not installed, only the verifier
    receipts = run(python, "-c", "import gateway.audit.receipt, gateway.audit.rotation")
    assert receipts.returncode == 0, receipts.stderr

    bundle = tmp_path / "bundle"
    exported = run(
        sys.executable, "-m", "gateway", "audit", "export", "--out", bundle, "--home", demo.home
    )
    assert exported.returncode == 0, exported.stderr
    key = demo.home / "keys" / "audit-ed25519.pub"
    ok = run(env_dir / "bin" / "gateway-verify", bundle, "--key", key, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("OK: ")
    as_module = run(
        python,
        "-m",
        "gateway.audit.verify",
        "--log",
        demo.home / "audit" / "log.sqlite3",
        "--key",
        key,
        cwd=tmp_path,
    )
    assert as_module.returncode == 0, as_module.stderr

    entries = bundle / "entries.jsonl"
    lines = entries.read_bytes().splitlines(keepends=True)
    lines[0] = lines[0].replace(b'"client.add"', b'"client.xxx"')
    entries.write_bytes(b"".join(lines))
    broken = run(env_dir / "bin" / "gateway-verify", bundle, "--key", key, cwd=tmp_path)
    assert broken.returncode == 1
    assert broken.stdout.startswith("entry 0 INVALID:")
