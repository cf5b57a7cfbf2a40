"""`gateway audit verify|export|resume`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.cli import answers, report
from gateway.cli.common import Subparsers, print_err, print_out, settings_of

if TYPE_CHECKING:
    from gateway.store.db import Database

# Each command imports what it needs when it runs: `gateway audit verify` loads the verifier,
# not the exporter, the policy history or pandas.


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from gateway.audit.verify import print_report, verify_path

    settings = settings_of(args)
    ws = settings.workspace
    if args.target and args.log:
        print_err("give a bundle directory or --log, not both")
        return 2
    target: Path | Database = (
        Path(args.target)
        if args.target
        else Path(args.log)
        if args.log
        else settings.audit_database
    )
    if args.key:
        key_files = [Path(k) for k in args.key]
    elif args.target:
        print_err(
            "verifying a bundle needs --key: the audit public key you obtained from the operator"
        )
        return 2
    else:
        key_files = [ws.audit_pub, *sorted(ws.keys.glob("audit-ed25519.*.pub"))]
    try:
        origin, report = verify_path(target, key_files, [Path(c) for c in args.checkpoint or []])
    except ValueError as exc:
        print_err(f"error: {exc}")
        return 2
    code = print_report(origin, report)
    if report.ok:
        print_out(
            "signatures, key windows, indices, the hash chain and every checkpoint are intact."
        )
        if not args.checkpoint:
            print_out(
                "Keep the newest checkpoint (GET /v1/audit/checkpoint) and pass it with "
                "--checkpoint next time: that also proves no entry was removed from the end."
            )
    return code


def cmd_audit_export(args: argparse.Namespace) -> int:
    from gateway.audit.bundle import export_bundle
    from gateway.audit.paging import index_range
    from gateway.audit.query import make_filters
    from gateway.policy.history import attach_sets

    settings = settings_of(args)
    out = Path(args.out)
    if out.exists():
        print_err(f"error: {out} exists; choose a new directory")
        return 2
    first, end = args.from_idx, args.to_idx
    if args.since or args.until:
        try:
            filters = make_filters({}, since=args.since, until=args.until)
        except ValueError as exc:
            print_err(f"error: {exc}")
            return 2
        start, stop = index_range(settings.audit_database, filters.since_ms, filters.until_ms)
        first, end = max(first, start), stop if end is None else min(end, stop)
    count = export_bundle(
        settings.audit_database, out, first, end if end is None else max(end, first)
    )
    sets = attach_sets(out, settings.workspace.policy_sets)
    span = f" ({first}..{first + count - 1})" if count else ""
    print_out(f"exported {count} entries{span} to {out}")
    if sets:
        print_out(f"with the {len(sets)} policy set(s) they name (policy-sets/)")
    print_out(f"verify with: python -m gateway.audit.verify {out} --key <audit public key>")
    return 0


def cmd_audit_resume(args: argparse.Namespace) -> int:
    from gateway.audit.halt import resume
    from gateway.audit.verify import print_report, verify_path
    from gateway.cli.report import note_resume

    settings = settings_of(args)
    ws = settings.workspace
    origin, report = verify_path(
        settings.audit_database, [ws.audit_pub, *sorted(ws.keys.glob("audit-ed25519.*.pub"))]
    )
    if not report.ok:
        print_report(origin, report)
        print_err(
            "the log does not verify; not resuming. Investigate before appending more entries."
        )
        return 1
    reason = resume(settings.audit_database)
    note_resume(settings, reason)
    if reason:
        print_out(f"resumed (was halted: {reason})")
    else:
        # A process whose halt note could not be written (a full disk) resumes all the same.
        print_out(
            "resumed: no halt was recorded in the log; any gateway process halted by a write "
            "it could not record (e.g. a full disk) accepts calls again"
        )
    return 0


def add_commands(sub: Subparsers, home: argparse.ArgumentParser) -> None:
    p = sub.add_parser("audit", help="audit log")
    asub = p.add_subparsers(dest="action", required=True)
    c = asub.add_parser("verify", parents=[home], help="verify a log or bundle offline")
    c.add_argument("target", nargs="?", help="bundle directory (default: the workspace's log)")
    c.add_argument("--key", action="append", help="trusted audit public key (PEM; repeatable)")
    c.add_argument("--log", help="audit log file (default: the workspace's audit/log.sqlite3)")
    c.add_argument(
        "--checkpoint", action="append", help="a checkpoint you kept; must be in the log"
    )
    c.set_defaults(func=cmd_audit_verify)
    c = asub.add_parser("export", parents=[home], help="write a self-contained bundle for auditors")
    c.add_argument("--out", required=True, help="new directory for the bundle")
    c.add_argument("--from", dest="from_idx", type=int, default=0, help="first index (default 0)")
    c.add_argument("--to", dest="to_idx", type=int, help="end index, exclusive (default: all)")
    c.add_argument("--since", help="entries from this time: ISO 8601 (UTC unless an offset) or 1h")
    c.add_argument("--until", help="entries before this time (same forms as --since)")
    c.set_defaults(func=cmd_audit_export)
    report.add_command(asub, home)
    c = asub.add_parser("resume", parents=[home], help="clear a halt after verifying the log")
    c.set_defaults(func=cmd_audit_resume)
    answers.add_audit_commands(asub, home)
