"""`gateway audit report`: a self-contained HTML report of a verified log (docs/report.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from gateway.cli.common import Subparsers, print_err, print_out, settings_of
from gateway.report.command import add_arguments, write_report
from gateway.store.db import Database


def cmd_audit_report(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    ws = settings.workspace
    if args.bundle and not args.key:
        print_err("a report on a bundle needs --key: the audit public key you obtained out of band")
        return 2
    key_files = (
        [Path(k) for k in args.key]
        if args.key
        else [ws.audit_pub, *sorted(ws.keys.glob("audit-ed25519.*.pub"))]
    )
    target: Path | Database = Path(args.bundle) if args.bundle else settings.audit_database
    print_out(
        write_report(
            target, key_files, Path(args.out), since=args.since, until=args.until, tz=args.tz
        )
    )
    return 0


def add_command(sub: Subparsers, home: argparse.ArgumentParser) -> None:
    """Register `report` under `gateway audit`."""
    c = sub.add_parser(
        "report", parents=[home], help="write a self-contained HTML report of a verified log"
    )
    add_arguments(c)
    c.set_defaults(func=cmd_audit_report)
