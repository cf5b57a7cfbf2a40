"""`gateway store migrate`: move the log and registry to another store, verified."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from gateway.cli.common import Subparsers, print_err, print_out, settings_of

if TYPE_CHECKING:
    from gateway.store.db import Database


def cmd_store_migrate(args: argparse.Namespace) -> int:
    # (imported here: `gateway --help` and the other commands do not need them)
    from gateway.audit.verify import print_report, verify_path
    from gateway.runtime.migrate import migrate

    settings = settings_of(args)
    ws = settings.workspace
    target = settings.with_overrides(store=args.to)
    keys = [ws.audit_pub, *sorted(ws.keys.glob("audit-ed25519.*.pub"))]
    origin, before = verify_path(settings.audit_database, keys)
    if not before.ok:
        print_report(origin, before)
        print_err("the current log does not verify; not migrating. Investigate it first.")
        return 1

    def check(database: Database) -> str | None:
        _, after = verify_path(database, keys)
        if not after.ok:
            return "; ".join(str(p) for p in after.problems[:3])
        if (after.entries, after.head) != (before.entries, before.head):
            return f"{after.entries} entries with head {after.head}, expected {before.entries}"
        return None

    copied = migrate(
        settings.audit_database,
        settings.registry_database,
        target.audit_database,
        target.registry_database,
        check,
    )
    for item in copied:
        print_out(f"copied {item.rows:>8} rows of {item.table}")
    print_out(
        f"verified: {before.entries} entries, head {before.head}, origin {origin}, "
        f"in {target.audit_database.display}"
    )
    print_out(
        "Stop every gateway on the old store before switching; then serve with the new store "
        "(--store or GATEWAY_STORE, the URL you gave to --to). The old store is unchanged: "
        "keep it until the new one has served for a while."
    )
    return 0


def add_commands(sub: Subparsers, home: argparse.ArgumentParser) -> None:
    p = sub.add_parser("store", help="the database holding the audit log and registry")
    ssub = p.add_subparsers(dest="action", required=True)
    c = ssub.add_parser(
        "migrate", parents=[home], help="copy the log and registry to another store and verify"
    )
    c.add_argument("--to", required=True, help="target store, e.g. postgresql://USER@HOST/DB")
    c.set_defaults(func=cmd_store_migrate)
