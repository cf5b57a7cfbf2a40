"""`gateway clients ...`: register, list, disable, enable, rotate and retire OAuth clients."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.cli.common import Subparsers, print_out, settings_of
from gateway.errors import ConfigError

if TYPE_CHECKING:
    from gateway.audit.events import ClientAction


def cmd_clients(args: argparse.Namespace) -> int:
    # (imported here: `gateway --help` and the other commands do not need them)
    from gateway.audit.events import client_changed
    from gateway.auth.registry import ClientRegistry
    from gateway.workspace import actor, admin_event

    settings = settings_of(args)
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
            admin_event(settings, client_changed("client.add", client.client_id, actor()))
            print_out(f"client_id:     {client.client_id}")
            if secret is not None:
                print_out(f"client_secret: {secret}")
            print_out(f"auth methods:  {' '.join(client.auth_methods)}")
            print_out(f"scopes:        {' '.join(client.scopes)}")
            if secret is not None:
                print_out("The secret is shown once and stored only as a salted scrypt hash.")
        elif args.action == "list":
            for client in registry.all():
                created = dt.datetime.fromtimestamp(client.created_ms / 1000, dt.UTC)
                state = (
                    "retired" if client.retired else "disabled" if client.disabled else "enabled"
                )
                granted = " ".join(client.scopes)
                methods = ",".join(client.auth_methods)
                print_out(
                    f"{client.client_id}\t{state}\t{granted}\t{methods}\t{created:%Y-%m-%dT%H:%M:%SZ}"
                )
        elif args.action == "rotate-secret":
            secret = registry.rotate_secret(args.client_id)
            admin_event(settings, client_changed("client.rotate_secret", args.client_id, actor()))
            print_out(f"client_secret: {secret}")
            print_out(
                "The old secret no longer works, and every token the client held has been "
                "revoked: give it the new secret, then it asks for new tokens."
            )
        elif args.action == "retire":
            registry.retire(args.client_id)
            admin_event(settings, client_changed("client.retire", args.client_id, actor()))
            print_out(
                f"client {args.client_id} retired for good: its credentials are destroyed and its "
                "tokens stop working; it cannot be enabled again and its id cannot be registered "
                "again. Its audit entries stay in the log and verify as before."
            )
        else:
            disable = args.action == "disable"
            registry.set_disabled(args.client_id, disable)
            action: ClientAction = "client.disable" if disable else "client.enable"
            admin_event(settings, client_changed(action, args.client_id, actor()))
            print_out(f"client {args.client_id} {'disabled' if disable else 'enabled'}")
    finally:
        registry.close()
    return 0


def add_commands(sub: Subparsers, home: argparse.ArgumentParser) -> None:
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
    helps = {
        "disable": "disable a client (its tokens stop at once; `enable` undoes it)",
        "enable": "enable a disabled client",
        "rotate-secret": "give a client a new secret (printed once); revokes its tokens",
        "retire": "retire a client for good (irreversible); its audit trail stays",
    }
    for action, text in helps.items():
        c = csub.add_parser(action, parents=[home], help=text)
        c.add_argument("client_id")
    p.set_defaults(func=cmd_clients)
