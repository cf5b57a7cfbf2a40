"""The `gateway` command for admins and auditors: one module per command group."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from gateway.cli import answers, audit, clients, keys, policy, serve, store, trace
from gateway.cli.common import print_err
from gateway.errors import ConfigError, GatewayError


def build_parser() -> argparse.ArgumentParser:
    home = argparse.ArgumentParser(add_help=False)
    home.add_argument(
        "--home", help="workspace directory (default: $GATEWAY_HOME or the current directory)"
    )
    home.add_argument(
        "--store",
        help="where the audit log and registry live: postgresql://USER@HOST/DB or "
        "sqlite:///DIR (default: $GATEWAY_STORE, else SQLite files in the workspace)",
    )
    parser = argparse.ArgumentParser(
        prog="gateway", description="Public-data authorized-operation gateway"
    )
    sub = parser.add_subparsers(dest="command", required=True)

    for group in (serve, clients, policy, store, audit, answers, trace, keys):
        group.add_commands(sub, home)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except ConfigError as exc:  # its message may list several problems, one per line
        print_err(f"error: {exc}")
        return exc.exit_code
    except GatewayError as exc:  # the audit log or the store failed, an extract was refused...
        print_err(f"error: {' '.join(str(exc).split()) or type(exc).__name__}")
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    return result
