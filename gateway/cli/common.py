"""What every command shares: the settings from flags and environment, and output."""

from __future__ import annotations

import argparse
import sys
from typing import TypeAlias

from gateway.settings import Settings

# argparse's sub-command registry (its class is private, and generic only to type checkers).
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def settings_of(args: argparse.Namespace) -> Settings:
    base = Settings.from_env()
    return base.with_overrides(
        home=getattr(args, "home", None),
        host=getattr(args, "host", None),
        port=getattr(args, "port", None),
        workers=getattr(args, "workers", None),
        insecure_http=getattr(args, "insecure_http", None) or None,
        store=getattr(args, "store", None),
    )


def print_out(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def print_err(text: str) -> None:
    sys.stderr.write(text + "\n")
