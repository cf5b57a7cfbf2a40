"""The `gateway` command for admins and auditors."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import logging.config
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gateway.audit.bundle import export_bundle
from gateway.audit.query import index_range, make_filters
from gateway.audit.signing import generate_keypair, load_signer
from gateway.audit.store import AuditLog, resume
from gateway.audit.verify import print_report, verify_path
from gateway.auth.keys import rotate as rotate_token_key
from gateway.auth.registry import ClientRegistry
from gateway.cli_answers import register
from gateway.data.demo import DEFAULT_ROWS, DEFAULT_SEED
from gateway.data.sources import SourceCache
from gateway.errors import ConfigError
from gateway.logs import LOG_CONFIG
from gateway.policy.engine import Engine
from gateway.policy.explain import explain, render
from gateway.policy.files import PolicyError, load_policies, parse_moment
from gateway.policy.history import attach_sets
from gateway.policy.model import PolicySet
from gateway.policy.testing import ViewOf, load_cases, run_cases
from gateway.privacy.assess import FiguresOf, assess
from gateway.privacy.assess import render as render_assessment
from gateway.privacy.views import ViewCache
from gateway.services import figures_maker, read_secret, view_maker
from gateway.settings import Settings
from gateway.store.db import Database
from gateway.store.migrate import migrate
from gateway.trace.command import trace_command
from gateway.workspace import actor as _actor
from gateway.workspace import admin_event, exposure_warning, init_workspace

GRACEFUL_SECONDS = 10  # in-flight calls finish (and are logged); idle keep-alives are dropped


def _settings(args: argparse.Namespace) -> Settings:
    base = Settings.from_env()
    return base.with_overrides(
        home=getattr(args, "home", None),
        host=getattr(args, "host", None),
        port=getattr(args, "port", None),
        workers=getattr(args, "workers", None),
        insecure_http=getattr(args, "insecure_http", None) or None,
        store=getattr(args, "store", None),
    )


def _out(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def _err(text: str) -> None:
    sys.stderr.write(text + "\n")


# --- init / serve ----------------------------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> int:
    settings = _settings(args)
    report = init_workspace(settings, demo=args.demo, rows=args.rows, seed=args.seed)
    _out(f"workspace: {settings.home}")
    for item in report.created:
        _out(f"  created  {item}")
    for item in report.kept:
        _out(f"  kept     {item} (already present)")
    for note in report.notes:
        _out(f"  note     {note}")
    if args.demo:
        _out(
            f"next: `gateway serve --home {settings.home}`, then see README.md for the walk-through"
        )
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from gateway.api.protocol import KEEP_ALIVE_SECONDS, MAX_HEAD_BYTES, GatewayH11Protocol
    from gateway.app import create_app

    settings = _settings(args)
    ws = settings.workspace
    load_policies(ws.policies, ws.home)  # fail fast, in the parent, with file:line messages
    exposure = exposure_warning(ws)
    if exposure:
        logging.config.dictConfig(LOG_CONFIG)  # the server's own log (stderr), set up early
        logging.getLogger("gateway.workspace").warning(exposure)
    certfile: str | None = None
    keyfile: str | None = None
    if settings.insecure_http:
        _err(
            "WARNING: serving plain HTTP (--insecure-http). Tokens and data cross the network "
            "unencrypted; only do this behind a TLS-terminating proxy on the same host."
        )
    else:
        for path in (ws.server_cert, ws.server_key):
            if not path.is_file():
                raise ConfigError(
                    f"TLS file {path} is missing; run `gateway init` or pass --insecure-http"
                )
        certfile, keyfile = str(ws.server_cert), str(ws.server_key)
    _out(f"serving {settings.base_url} (workspace {settings.home}, {settings.workers} worker(s))")
    store = settings.audit_database.display if settings.store else "SQLite in the workspace"
    _out(f"store: {store}")
    if not settings.insecure_http:
        _out(f"clients trust the CA in {ws.ca_cert}")
    # No access log: request lines can carry personal values; the audit log is the record.
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "access_log": False,
        "log_config": LOG_CONFIG,
        "timeout_graceful_shutdown": GRACEFUL_SECONDS,
        "ssl_certfile": certfile,
        "ssl_keyfile": keyfile,
        # Hostile connections (docs/security.md): requests the parser refuses are audited, a
        # request must arrive whole within REQUEST_SECONDS, idle connections close.
        "http": GatewayH11Protocol,
        "ws": "none",  # no WebSocket upgrades: a WebSocket scope would bypass the audit log
        "timeout_keep_alive": KEEP_ALIVE_SECONDS,
        "h11_max_incomplete_event_size": MAX_HEAD_BYTES,
    }
    if settings.workers > 1:
        # Worker processes rebuild the same settings from the environment.
        os.environ.update(settings.to_env())
        uvicorn.run("gateway.app:app_from_env", factory=True, workers=settings.workers, **options)
    else:
        uvicorn.run(create_app(settings), **options)
    return 0


# --- clients ---------------------------------------------------------------------------------


def cmd_clients(args: argparse.Namespace) -> int:
    settings = _settings(args)
    registry = ClientRegistry(settings.registry_database)
    try:
        if args.action == "add":
            scopes = tuple(args.scope or ["datasets:read"])
            jwks = None
            if args.jwks:
                try:
                    jwks = json.loads(Path(args.jwks).read_text())
                except (OSError, ValueError) as exc:
                    raise ConfigError(f"cannot read the JWKS file {args.jwks}: {exc}") from exc
            client, secret = registry.add(
                args.client_id,
                scopes,
                jwks=jwks,
                rate_per_min=args.rate_limit,
                rows_per_day=args.rows_per_day,
            )
            admin_event(settings, "client.add", client.client_id)
            _out(f"client_id:     {client.client_id}")
            if secret is not None:
                _out(f"client_secret: {secret}")
            _out(f"auth methods:  {' '.join(client.auth_methods)}")
            _out(f"scopes:        {' '.join(client.scopes)}")
            if secret is not None:
                _out("The secret is shown once and stored only as a salted scrypt hash.")
        elif args.action == "list":
            for client in registry.all():
                created = dt.datetime.fromtimestamp(client.created_ms / 1000, dt.UTC)
                state = "disabled" if client.disabled else "enabled"
                granted = " ".join(client.scopes)
                methods = ",".join(client.auth_methods)
                _out(
                    f"{client.client_id}\t{state}\t{granted}\t{methods}\t{created:%Y-%m-%dT%H:%M:%SZ}"
                )
        elif args.action == "rotate-secret":
            secret = registry.rotate_secret(args.client_id)
            admin_event(settings, "client.rotate_secret", args.client_id)
            _out(f"client_secret: {secret}")
            _out("The old secret no longer works; its tokens stay valid until they expire.")
        else:
            disable = args.action == "disable"
            registry.set_disabled(args.client_id, disable)
            admin_event(settings, f"client.{args.action}", args.client_id)
            _out(f"client {args.client_id} {'disabled' if disable else 'enabled'}")
    finally:
        registry.close()
    return 0


# --- policy ----------------------------------------------------------------------------------


def cmd_policy_check(args: argparse.Namespace) -> int:
    settings = _settings(args)
    directory = Path(args.path) if args.path else settings.workspace.policies
    try:
        policy = load_policies(directory, settings.home)
    except PolicyError as exc:
        for problem in exc.problems:
            _err(
                f"{directory / problem.file}:{problem.line}: {problem.key}: {problem.message}"
                + (f"\n    hint: {problem.hint}" if problem.hint else "")
            )
        _err(f"{len(exc.problems)} problem(s); the policy set is not valid")
        return 1
    grants = len(policy.grants)
    _out(f"OK: {len(policy.datasets)} dataset(s), {grants} grant(s); policy hash {policy.hash}")
    for warning in policy.warnings:
        _out(f"  warning: {warning}")
    for grant in policy.grants:
        dataset = policy.datasets[grant.dataset]
        for name, spec in grant.columns:
            column = dataset.column(name)
            if spec.name == "keep" and column is not None and column.classification.protected:
                _out(
                    f"  note: grant {grant.id} releases {column.classification} column "
                    f"{dataset.id}.{name} raw: {spec.options.get('justification')}"
                )
        for name, why in grant.not_identifying:
            _out(f"  note: grant {grant.id} declares {dataset.id}.{name} not identifying: {why}")
    figures_of = _figures_of(settings, policy)
    if figures_of is None:
        _out("  privacy figures: not computed (no data or secret in this workspace)")
        return 0
    _out("privacy figures on the current data (every released quasi-identifier counted):")
    withheld = 0
    for assessment in assess(policy, figures_of):
        for line in render_assessment(assessment):
            _out(line)
        withheld += assessment.error is not None
    if withheld:
        _err(f"{withheld} grant view(s) cannot be released under their privacy model")
        return 1
    return 0


def _figures_of(settings: Settings, policy: PolicySet) -> FiguresOf | None:
    try:
        return figures_maker(settings, SourceCache(settings.workspace), ViewCache(), policy)
    except ConfigError:
        return None


def _view_of(settings: Settings, policy: PolicySet) -> ViewOf | None:
    try:
        return view_maker(settings, SourceCache(settings.workspace), ViewCache(), policy)
    except ConfigError:
        return None  # no data or secret here: value checks are skipped (and say so)


def cmd_policy_test(args: argparse.Namespace) -> int:
    settings = _settings(args)
    directory = Path(args.path) if args.path else settings.workspace.policies
    policy = load_policies(directory, settings.home)
    cases = load_cases(directory / "tests")
    if not cases:
        _err(f"no policy tests in {directory / 'tests'} (*.yaml with a `cases:` list)")
        return 1
    view_of = _view_of(settings, policy)
    secret = read_secret(settings) if view_of is not None else None  # keys hashes in messages
    results = run_cases(Engine(policy), cases, view_of, secret=secret)
    for result in results:
        _out(
            f"{'PASS' if result.passed else 'FAIL'}  {result.file}: {result.name}: {result.message}"
        )
    failed = sum(not r.passed for r in results)
    _out(f"{len(results) - failed} passed, {failed} failed (policy set {policy.hash})")
    return 1 if failed else 0


def cmd_policy_explain(args: argparse.Namespace) -> int:
    settings = _settings(args)
    policy = load_policies(settings.workspace.policies, settings.home)
    at = dt.datetime.now(dt.UTC)
    if args.at:
        parsed = parse_moment(args.at)
        if parsed is None:
            _err(f"--at {args.at!r} is not an ISO 8601 date or date-time")
            return 2
        at = parsed
    result = explain(
        Engine(policy),
        args.client,
        args.dataset,
        args.purpose,
        at,
        args.scope or ["datasets:read"],
        _view_of(settings, policy),
        _figures_of(settings, policy),
    )
    _out(json.dumps(result, ensure_ascii=False, indent=2) if args.json else render(result))
    return 0 if result["decision"] == "allow" else 3


# --- audit -----------------------------------------------------------------------------------


def cmd_audit_verify(args: argparse.Namespace) -> int:
    settings = _settings(args)
    ws = settings.workspace
    if args.target and args.log:
        _err("give a bundle directory or --log, not both")
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
        _err("verifying a bundle needs --key: the audit public key you obtained from the operator")
        return 2
    else:
        key_files = [ws.audit_pub, *sorted(ws.keys.glob("audit-ed25519.*.pub"))]
    try:
        origin, report = verify_path(target, key_files, [Path(c) for c in args.checkpoint or []])
    except ValueError as exc:
        _err(f"error: {exc}")
        return 2
    code = print_report(origin, report)
    if report.ok:
        _out("signatures, key windows, indices, the hash chain and every checkpoint are intact.")
        if not args.checkpoint:
            _out(
                "Keep the newest checkpoint (GET /v1/audit/checkpoint) and pass it with "
                "--checkpoint next time: that also proves no entry was removed from the end."
            )
    return code


def cmd_audit_export(args: argparse.Namespace) -> int:
    settings = _settings(args)
    out = Path(args.out)
    if out.exists():
        _err(f"error: {out} exists; choose a new directory")
        return 2
    first, end = args.from_idx, args.to_idx
    if args.since or args.until:
        try:
            filters = make_filters({}, since=args.since, until=args.until)
        except ValueError as exc:
            _err(f"error: {exc}")
            return 2
        start, stop = index_range(settings.audit_database, filters.since_ms, filters.until_ms)
        first, end = max(first, start), stop if end is None else min(end, stop)
    count = export_bundle(
        settings.audit_database, out, first, end if end is None else max(end, first)
    )
    sets = attach_sets(out, settings.workspace.policy_sets)
    span = f" ({first}..{first + count - 1})" if count else ""
    _out(f"exported {count} entries{span} to {out}")
    if sets:
        _out(f"with the {len(sets)} policy set(s) they name (policy-sets/)")
    _out(f"verify with: python -m gateway.audit.verify {out} --key <audit public key>")
    return 0


def cmd_audit_resume(args: argparse.Namespace) -> int:
    settings = _settings(args)
    ws = settings.workspace
    origin, report = verify_path(
        settings.audit_database, [ws.audit_pub, *sorted(ws.keys.glob("audit-ed25519.*.pub"))]
    )
    if not report.ok:
        print_report(origin, report)
        _err("the log does not verify; not resuming. Investigate before appending more entries.")
        return 1
    reason = resume(settings.audit_database)
    if reason:
        _out(f"resumed (was halted: {reason})")
    else:
        # A process whose halt note could not be written (a full disk) resumes all the same.
        _out(
            "resumed: no halt was recorded in the log; any gateway process halted by a write "
            "it could not record (e.g. a full disk) accepts calls again"
        )
    return 0


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    settings = _settings(args)
    ws = settings.workspace
    if args.which == "token":
        step, kid = rotate_token_key(ws.keys)
        admin_event(settings, f"token_key.{step}", kid)
        if step == "published":
            _out(f"next token key {kid} is published in the JWKS but does not sign yet.")
            _out(
                "Once clients and resource servers have refreshed the JWKS (it is cached up to "
                "5 minutes), run `gateway keys rotate token` again to make it sign."
            )
        else:
            _out(
                f"token key {kid} now signs; the previous key stays in the JWKS until every token "
                "it signed has expired."
            )
        return 0
    old = load_signer(ws.audit_key)
    staged = ws.keys / "audit-ed25519.next.key"
    staged_pub = ws.keys / "audit-ed25519.next.pub"
    staged.unlink(missing_ok=True)
    staged_pub.unlink(missing_ok=True)
    generate_keypair(staged, staged_pub)
    new = load_signer(staged)

    def install() -> None:
        # Runs inside the log's write transaction: no worker appends until the files are in place.
        ws.audit_key.rename(ws.keys / f"audit-ed25519.{old.kid}.key")
        ws.audit_pub.rename(ws.keys / f"audit-ed25519.{old.kid}.pub")
        staged.rename(ws.audit_key)
        staged_pub.rename(ws.audit_pub)

    log = AuditLog(settings.audit_database, old)
    try:
        idx = log.rotate(new, _actor(), install)
    finally:
        log.close()
    _out(f"audit key rotated: {old.kid} -> {new.kid} (rotation entry {idx}, signed by the old key;")
    _out("checkpoint signed by both). Running gateways switch to the new key at their next append.")
    _out(f"Give auditors the new public key {ws.audit_pub}; keep the old one for earlier entries.")
    return 0


# --- store -----------------------------------------------------------------------------------


def cmd_store_migrate(args: argparse.Namespace) -> int:
    settings = _settings(args)
    ws = settings.workspace
    target = settings.with_overrides(store=args.to)
    keys = [ws.audit_pub, *sorted(ws.keys.glob("audit-ed25519.*.pub"))]
    origin, before = verify_path(settings.audit_database, keys)
    if not before.ok:
        print_report(origin, before)
        _err("the current log does not verify; not migrating. Investigate it first.")
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
        _out(f"copied {item.rows:>8} rows of {item.table}")
    _out(
        f"verified: {before.entries} entries, head {before.head}, origin {origin}, "
        f"in {target.audit_database.display}"
    )
    _out(
        "Stop every gateway on the old store before switching; then serve with the new store "
        "(--store or GATEWAY_STORE, the URL you gave to --to). The old store is unchanged: "
        "keep it until the new one has served for a while."
    )
    return 0


# --- parser ----------------------------------------------------------------------------------


def cmd_trace(args: argparse.Namespace) -> int:
    settings = _settings(args)
    seconds = settings.trace_seconds if args.time_limit is None else args.time_limit
    return trace_command(settings, Path(args.file), args.dataset, args.json, seconds)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


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

    p = sub.add_parser("init", parents=[home], help="create keys, certificates (and a demo setup)")
    p.add_argument(
        "--demo", action="store_true", help="also write demo datasets, policies and a client"
    )
    p.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="rows per demo dataset")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the demo data")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("serve", parents=[home], help="serve the API over HTTPS")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--workers", type=int)
    p.add_argument(
        "--insecure-http", action="store_true", help="plain HTTP, for use behind a TLS proxy"
    )
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("clients", help="manage OAuth clients")
    csub = p.add_subparsers(dest="action", required=True)
    c = csub.add_parser("add", parents=[home], help="register a client and print its secret once")
    c.add_argument("client_id")
    c.add_argument("--jwks", help="public JWKS file: the client authenticates with private_key_jwt")
    c.add_argument("--rate-limit", type=int, help="requests per minute (default: the server's)")
    c.add_argument("--rows-per-day", type=int, help="rows released per UTC day (default: none)")
    c.add_argument(
        "--scope", action="append", help="scope to allow (repeatable; default datasets:read)"
    )
    csub.add_parser("list", parents=[home], help="list clients")
    for action in ("disable", "enable", "rotate-secret"):
        c = csub.add_parser(action, parents=[home], help=f"{action} a client")
        c.add_argument("client_id")
    p.set_defaults(func=cmd_clients)

    p = sub.add_parser("policy", help="policy files")
    psub = p.add_subparsers(dest="action", required=True)
    c = psub.add_parser("check", parents=[home], help="validate policy files, report every problem")
    c.add_argument("path", nargs="?", help="policy directory (default: the workspace's policies/)")
    c.set_defaults(func=cmd_policy_check)
    c = psub.add_parser("test", parents=[home], help="run the policy tests in <policies>/tests/")
    c.add_argument("path", nargs="?", help="policy directory (default: the workspace's policies/)")
    c.set_defaults(func=cmd_policy_test)
    c = psub.add_parser("explain", parents=[home], help="explain a decision (exit 0 allow, 3 deny)")
    c.add_argument("--client", required=True)
    c.add_argument("--dataset", required=True)
    c.add_argument("--purpose")
    c.add_argument("--at", help="ISO 8601 date or date-time (default: now)")
    c.add_argument("--scope", action="append", help="token scopes (default: datasets:read)")
    c.add_argument("--json", action="store_true", help="print JSON instead of text")
    c.set_defaults(func=cmd_policy_explain)

    p = sub.add_parser("store", help="the database holding the audit log and registry")
    ssub = p.add_subparsers(dest="action", required=True)
    c = ssub.add_parser(
        "migrate", parents=[home], help="copy the log and registry to another store and verify"
    )
    c.add_argument("--to", required=True, help="target store, e.g. postgresql://USER@HOST/DB")
    c.set_defaults(func=cmd_store_migrate)

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
    c = asub.add_parser("resume", parents=[home], help="clear a halt after verifying the log")
    c.set_defaults(func=cmd_audit_resume)
    register(asub, psub, sub, home, _settings)

    p = sub.add_parser(
        "trace", parents=[home], help="name the recipient of a leaked extract (exit 0, else 3)"
    )
    p.add_argument("file", help="the extract: CSV, JSON, NDJSON or .xlsx")
    p.add_argument("--dataset", action="append", help="only this dataset's grants (repeatable)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument(
        "--time-limit",
        type=_seconds,
        metavar="SECONDS",
        help="refuse (exit 2) a trace running longer (default: $GATEWAY_TRACE_SECONDS or 300)",
    )
    p.set_defaults(func=cmd_trace)

    p = sub.add_parser("keys", help="key management")
    ksub = p.add_subparsers(dest="action", required=True)
    c = ksub.add_parser("rotate", parents=[home], help="rotate a signing key")
    c.add_argument("which", choices=["audit", "token"], help="which key")
    c.set_defaults(func=cmd_keys_rotate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except ConfigError as exc:
        _err(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        return 130
    return result
