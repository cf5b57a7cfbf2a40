"""The commands that answer auditors' and admins' questions from the verified log:
`gateway audit query`, `gateway audit explain`, `gateway usage`, `gateway policy history` and
`gateway policy diff`. Thin wiring: the logic is in gateway/audit/query.py, gateway/audit/usage.py
and gateway/policy/history.py.

Each reads the workspace's live log (verified with the workspace's audit public keys) or an
exported bundle (`--bundle DIR --key PUB`, verified with the keys the auditor trusts), and says
how far verification reached before it answers; a log that does not verify gets no answer.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.audit.events import Kind
from gateway.audit.query import (  # (what the parser needs; each command imports the rest)
    COUNT_FIELDS,
    FILTER_FIELDS,
    Filters,
    VerifiedLog,
    make_filters,
)
from gateway.cli.common import Subparsers, print_err, print_out, settings_of
from gateway.errors import ConfigError
from gateway.settings import Settings

if TYPE_CHECKING:
    from gateway.store.db import Database


def _out(text: str = "") -> None:
    print_out(text[:-1] if text.endswith("\n") else text)


# --- sources and filters ---------------------------------------------------------------------


def add_source(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bundle", help="an exported bundle directory instead of the workspace's live log"
    )
    parser.add_argument(
        "--key",
        action="append",
        help="trusted audit public key (PEM; repeatable); required with --bundle",
    )


def add_filters(parser: argparse.ArgumentParser, *, entries: bool = True) -> None:
    parser.add_argument("--since", help="from this time: ISO 8601 (UTC unless an offset) or 1h, 2d")
    parser.add_argument("--until", help="before this time (same forms as --since)")
    names = FILTER_FIELDS if entries else ("client", "dataset", "purpose")
    for name in names:
        parser.add_argument(
            f"--{name}", action="append", default=[], help=f"only this {name} (repeatable)"
        )


def _filters(args: argparse.Namespace) -> Filters:
    values = {name: getattr(args, name, None) or [] for name in FILTER_FIELDS}
    try:
        return make_filters(values, since=args.since, until=args.until)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _verified(
    args: argparse.Namespace,
    settings: Settings,
    keep: Callable[[Mapping[str, Any]], bool] | None,
) -> VerifiedLog:
    """The verified log the command answers from; prints how far verification reached (to
    stderr, so that stdout holds only the answer)."""
    from gateway.audit.query import load_verified

    ws = settings.workspace
    target: Path | Database
    if args.bundle:
        if not args.key:
            raise ConfigError(
                "reading a bundle needs --key: the audit public key you obtained from the operator"
            )
        target, keys = Path(args.bundle), [Path(k) for k in args.key]
        if not target.is_dir():
            raise ConfigError(f"{target} is not a bundle directory")
    else:
        target = settings.audit_database
        keys = [Path(k) for k in args.key] if args.key else ws.audit_public_keys
    try:
        verified = load_verified(target, keys, keep, policy_sets=None)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if verified.policy_sets is None:
        verified = VerifiedLog(verified.verification, verified.entries, ws.policy_sets)
    print_err(verified.verification.describe())
    return verified


# --- gateway audit query ---------------------------------------------------------------------


def cmd_audit_query(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.audit.query import COLUMNS, count_by, row_of, to_csv, to_table

    filters = _filters(args)
    verified = _verified(args, settings, filters.matches)
    if args.count_by:
        fields = [f.strip() for f in args.count_by.split(",") if f.strip()]
        try:
            groups = count_by(verified.entries, fields)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        columns = [*fields, "calls", "rows", "refused", "errors"]
        if args.format == "json":
            _out(json.dumps(groups, ensure_ascii=False, indent=2))
        else:
            _out(to_csv(groups, columns) if args.format == "csv" else to_table(groups, columns))
        return 0
    if args.format == "json":
        body = {"verification": verified.verification.as_json(), "entries": verified.entries}
        _out(json.dumps(body, ensure_ascii=False, indent=2))
        return 0
    rows = [row_of(e) for e in verified.entries]
    if args.format == "csv":
        _out(to_csv(rows, COLUMNS))
        return 0
    shown = [c for c in COLUMNS if any(r.get(c) is not None for r in rows)] or list(COLUMNS)
    _out(to_table(rows, shown))  # columns no matching entry fills are left out
    print_err(f"{len(rows)} matching entries")
    return 0


def cmd_audit_explain(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.audit.query import iso_time
    from gateway.policy.history import explain_entry

    idx = args.index
    verified = _verified(args, settings, lambda e: e.get("idx") == idx)
    if not verified.entries:
        print_err(f"no entry {idx} in the verified log")
        return 1
    result = explain_entry(verified.entries[0], verified.policy_sets)
    if args.json:
        _out(json.dumps(result, ensure_ascii=False, indent=2))
        return 0
    when = iso_time(int(result["ts"])) if isinstance(result["ts"], int) else "-"
    _out(f"entry {idx} at {when}: {result['client'] or '-'} {result['route'] or '-'}")
    _out(
        f"  dataset {result['dataset'] or '-'}, purpose {result['purpose'] or '-'}: "
        f"{result['decision']} {result['reason'] or ''} ({result['rows']} rows)".rstrip()
    )
    _out(f"  policy set {result['policy'] or '-'}, grant {result['grant'] or '-'}")
    if result["text"] is not None:
        _out(f"  {result['file']}, line {result['line']}:")
        _out(str(result["text"]))
    else:
        _out(f"  {result['note']}")
    return 0


# --- gateway usage ---------------------------------------------------------------------------


def cmd_usage(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.audit.query import to_table
    from gateway.audit.usage import CSV_COLUMNS, totals, usage, usage_csv, usage_json
    from gateway.auth.registry import ClientRegistry

    filters = _filters(args)
    verified = _verified(args, settings, filters.matches)
    quotas: dict[str, int | None] = {}
    if not args.bundle:
        registry = ClientRegistry(settings.registry_database)
        try:
            quotas = {c.client_id: c.rows_per_day for c in registry.all()}
        finally:
            registry.close()
    rows = usage(verified.entries, quotas)
    if args.format == "csv":
        _out(usage_csv(rows))
    elif args.format == "json":
        body = {
            "verification": verified.verification.as_json(),
            "usage": usage_json(rows),
            "totals": totals(rows),
        }
        _out(json.dumps(body, ensure_ascii=False, indent=2))
    else:
        table = []
        for row in usage_json(rows):
            reasons = row["refusals_by_reason"]
            assert isinstance(reasons, dict)  # noqa: S101 - built by usage()
            table.append({**row, "refusals_by_reason": _pairs(reasons)})
        _out(to_table(table, CSV_COLUMNS))
        total = totals(rows)
        print_err(
            f"total: {total['calls']} calls, {total['rows']} rows released, "
            f"{total['refusals']} refused, {total['errors']} failed"
        )
    return 0


def _pairs(counts: Mapping[str, object]) -> str:
    return ";".join(f"{k}={v}" for k, v in sorted(counts.items())) or "-"


# --- gateway policy history / diff -----------------------------------------------------------


def _policy_entries(entry: Mapping[str, Any]) -> bool:
    return entry.get("kind") == Kind.ADMIN and str(entry.get("action", "")).startswith("policy.")


def cmd_policy_history(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.audit.query import iso_time, to_table
    from gateway.policy.history import history

    verified = _verified(args, settings, _policy_entries)
    versions = history(verified.entries, verified.policy_sets)
    if args.json:
        _out(json.dumps([v.__dict__ for v in versions], ensure_ascii=False, indent=2))
        return 0
    rows = [
        {
            "idx": v.idx,
            "time": iso_time(v.ts) if v.ts is not None else None,
            "policy": v.hash[:12],
            "previous": v.previous[:12] if v.previous else None,
            "actor": v.actor,
            "trigger": v.trigger,
            "kept": "yes" if v.stored else "no",
            "files": ",".join(v.files) or None,
        }
        for v in versions
    ]
    columns = ("idx", "time", "policy", "previous", "actor", "trigger", "kept", "files")
    _out(to_table(rows, columns))
    rejected = [e for e in verified.entries if e.get("action") == "policy.rejected"]
    if rejected:
        hint = "`gateway audit query --action policy.rejected`"
        print_err(f"{len(rejected)} rejected edit(s): {hint}")
    return 0


def cmd_policy_diff(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.policy.history import diff_sets, known_sets, load_set, resolve

    ws = settings.workspace
    where = Path(args.bundle) / "policy-sets" if args.bundle else ws.policy_sets
    kept = known_sets(where)
    old, new = resolve(args.old, kept), resolve(args.new, kept)
    text = diff_sets(load_set(where, old), load_set(where, new), old[:12], new[:12])
    _out(text if text else f"policy sets {old[:12]} and {new[:12]} are identical")
    return 0


# --- parser ----------------------------------------------------------------------------------


def _bind(
    parser: argparse.ArgumentParser, run: Callable[[argparse.Namespace, Settings], int]
) -> None:
    parser.set_defaults(func=lambda args: run(args, settings_of(args)))


FORMATS = ("table", "json", "csv")


def add_audit_commands(asub: Subparsers, home: argparse.ArgumentParser) -> None:
    """`gateway audit query|explain`."""
    c = asub.add_parser(
        "query", parents=[home], help="entries matching filters, from the verified log"
    )
    add_source(c)
    add_filters(c)
    c.add_argument("--format", choices=FORMATS, default="table")
    c.add_argument(
        "--count-by",
        metavar="FIELDS",
        help=f"count calls and rows per group instead of listing: {','.join(COUNT_FIELDS)}",
    )
    _bind(c, cmd_audit_query)
    c = asub.add_parser(
        "explain", parents=[home], help="the policy set and the grant (its text) behind an entry"
    )
    c.add_argument("index", type=_index, help="the entry's index (idx)")
    add_source(c)
    c.add_argument("--json", action="store_true")
    _bind(c, cmd_audit_explain)


def add_policy_commands(psub: Subparsers, home: argparse.ArgumentParser) -> None:
    """`gateway policy history|diff`."""
    c = psub.add_parser(
        "history", parents=[home], help="every policy set that went live: when, by whom"
    )
    add_source(c)
    c.add_argument("--json", action="store_true")
    _bind(c, cmd_policy_history)
    c = psub.add_parser("diff", parents=[home], help="what changed between two policy sets")
    c.add_argument("old", help="policy hash (or a prefix of 6+ hex digits)")
    c.add_argument("new", help="policy hash (or prefix)")
    c.add_argument("--bundle", help="use the policy sets an exported bundle carries")
    _bind(c, cmd_policy_diff)


def add_commands(sub: Subparsers, home: argparse.ArgumentParser) -> None:
    """`gateway usage`."""
    c = sub.add_parser(
        "usage",
        parents=[home],
        help="usage per client, dataset, purpose and day from the verified log (CSV for billing)",
    )
    add_source(c)
    add_filters(c, entries=False)
    c.add_argument("--format", choices=FORMATS, default="table")
    _bind(c, cmd_usage)


def _index(text: str) -> int:
    if not (text.isascii() and text.isdigit() and len(text) <= 18):
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not an entry index")
    return int(text)
