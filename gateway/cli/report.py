"""`gateway audit report`: a self-contained HTML report of a verified log (docs/report.md)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.cli.common import Subparsers, print_err, print_out, settings_of
from gateway.errors import AuditUnavailable
from gateway.settings import Settings

if TYPE_CHECKING:
    from gateway.store.db import Database


def cmd_audit_report(args: argparse.Namespace) -> int:
    from gateway.report.command import write_report  # (here: the other commands need none of it)

    settings = settings_of(args)
    ws = settings.workspace
    if args.bundle and not args.key:
        print_err("a report on a bundle needs --key: the audit public key you obtained out of band")
        return 2
    key_files = [Path(k) for k in args.key] if args.key else ws.audit_public_keys
    target: Path | Database = Path(args.bundle) if args.bundle else settings.audit_database
    print_out(
        write_report(
            target,
            key_files,
            Path(args.out),
            since=args.since,
            until=args.until,
            tz=args.tz,
            policy_sets=None if args.bundle else ws.policy_sets,
        )
    )
    return 0


def note_resume(settings: Settings, halt: str | None) -> None:
    """Record the resume in the log (who, and the halt note it cleared), so that reports show
    halts after the fact. If the log still cannot be written, it halts again and says so."""
    from gateway.audit.events import audit_resumed
    from gateway.audit.signing import load_signer
    from gateway.audit.store import AuditLog
    from gateway.workspace import actor

    ws = settings.workspace
    log = AuditLog(settings.audit_database, load_signer(ws.audit_key))
    try:
        log.append(audit_resumed(halt, actor()))
    except AuditUnavailable as exc:
        print_err(f"the resume could not be logged, so the log is halted again: {exc}")
    finally:
        log.close()


def add_command(sub: Subparsers, home: argparse.ArgumentParser) -> None:
    """Register `report` under `gateway audit`."""
    from gateway.report.command import add_arguments

    c = sub.add_parser(
        "report", parents=[home], help="write a self-contained HTML report of a verified log"
    )
    add_arguments(c)
    c.set_defaults(func=cmd_audit_report)
