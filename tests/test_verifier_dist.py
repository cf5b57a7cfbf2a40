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

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parent.parent


def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=600, check=False, cwd=cwd
    )


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

    env_dir = tmp_path / "auditor-env"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    installed = run(python, "-m", "pip", "install", "--quiet", wheel)
    if installed.returncode != 0:
        pytest.skip(f"cannot install cryptography in a fresh environment: {installed.stderr}")
    listed = run(python, "-m", "pip", "list", "--format=freeze")
    names = {line.split("==")[0].lower() for line in listed.stdout.splitlines()}
    assert names - {"pip", "setuptools", "wheel"} == {
        "public-data-gateway-verifier",
        "cryptography",
        "cffi",
        "pycparser",
    }
    server_side = run(python, "-c", "import gateway.app")
    assert server_side.returncode != 0  # the server is not installed, only the verifier

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
