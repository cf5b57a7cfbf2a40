"""Packaged demo assets: the example policy files written by `gateway init --demo`."""

from pathlib import Path

POLICY_DIR = Path(__file__).parent / "policies"
