"""`gateway keys rotate audit|token`."""

from __future__ import annotations

import argparse

from gateway.auth.keys import JWKS_MAX_AGE
from gateway.cli.common import Subparsers, print_out, settings_of


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    # (imported here: `gateway --help` and the other commands do not need them)
    from gateway.audit.events import token_key_rotated
    from gateway.audit.signing import generate_keypair, load_signer
    from gateway.audit.store import AuditLog
    from gateway.auth.keys import rotate as rotate_token_key
    from gateway.workspace import actor as _actor
    from gateway.workspace import admin_event

    settings = settings_of(args)
    ws = settings.workspace
    if args.which == "token":
        step, kid = rotate_token_key(ws.keys, force=args.force)
        admin_event(settings, token_key_rotated(step, kid, _actor()))
        if step == "published":
            print_out(f"next token key {kid} is published in the JWKS but does not sign yet.")
            print_out(
                f"Once clients and resource servers have refreshed the JWKS (it is cached up to "
                f"{JWKS_MAX_AGE} s), run `gateway keys rotate token` again to make it sign; "
                "sooner, it refuses unless given --force."
            )
        else:
            print_out(
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
    print_out(
        f"audit key rotated: {old.kid} -> {new.kid} (rotation entry {idx}, signed by the old key;"
    )
    print_out(
        "checkpoint signed by both). Running gateways switch to the new key at their next append."
    )
    print_out(
        f"Give auditors the new public key {ws.audit_pub}; keep the old one for earlier entries."
    )
    return 0


def add_commands(sub: Subparsers, home: argparse.ArgumentParser) -> None:
    p = sub.add_parser("keys", help="key management")
    ksub = p.add_subparsers(dest="action", required=True)
    c = ksub.add_parser("rotate", parents=[home], help="rotate a signing key")
    c.add_argument("which", choices=["audit", "token"], help="which key")
    c.add_argument(
        "--force",
        action="store_true",
        help=f"token: make the next key sign even within {JWKS_MAX_AGE} s of its publication "
        "(verifiers with a cached JWKS may refuse its tokens until they refresh)",
    )
    c.set_defaults(func=cmd_keys_rotate)
