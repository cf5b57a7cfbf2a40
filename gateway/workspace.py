"""`gateway init`: create a workspace's keys, certificates and (with --demo) a demo setup.

Idempotent: an existing key, certificate, data file, policy file or client is never replaced.
"""

from __future__ import annotations

import getpass
import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from gateway.audit.events import Event, client_changed
from gateway.audit.signing import generate_keypair, load_signer
from gateway.audit.store import AuditLog
from gateway.auth.keys import generate_token_key
from gateway.auth.registry import ClientRegistry
from gateway.demo import POLICY_DIR
from gateway.fsutil import PRIVATE_DIR, exposed, private_dir, write_new
from gateway.settings import Settings, Workspace
from gateway.tls import ensure_dev_ca, ensure_server_cert

DEMO_CLIENT = "demo"


@dataclass
class InitReport:
    created: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def actor() -> str:
    """The operating-system user running an admin command (recorded in admin entries)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def admin_event(settings: Settings, event: Event) -> int:
    """Append an admin event (audit/events.py) to the audit log; returns its index."""
    ws = settings.workspace
    log = AuditLog(settings.audit_database, load_signer(ws.audit_key))
    try:
        appended = log.append(event)
        return appended.idx
    finally:
        log.close()


def init_workspace(
    settings: Settings, *, demo: bool, rows: int | None = None, seed: int | None = None
) -> InitReport:
    """Keys, certificates and (with `demo`) the demo data, policies and client; `rows` and
    `seed` default to gateway/data/demo.py's DEFAULT_ROWS and DEFAULT_SEED."""
    # (imported here: admin commands import this module for admin_event, and the demo data
    # generator loads pandas)
    from gateway.data.demo import DEFAULT_ROWS, DEFAULT_SEED, write_demo_data

    rows = DEFAULT_ROWS if rows is None else rows
    seed = DEFAULT_SEED if seed is None else seed
    ws = settings.workspace
    report = InitReport()

    def track(created: bool, what: str) -> None:
        (report.created if created else report.kept).append(what)

    for directory in (ws.policies, ws.keys, ws.data, ws.audit, ws.state):
        private_dir(directory)  # 0700 whatever the umask (files: 0600, see gateway/fsutil.py)
    ws.keys.chmod(PRIVATE_DIR)
    track(generate_keypair(ws.audit_key, ws.audit_pub), "audit signing key (Ed25519)")
    track(generate_token_key(ws.token_key), "token signing key (ES256)")
    track(
        write_new(ws.pseudonym_secret, secrets.token_hex(32).encode() + b"\n"),
        "pseudonymization secret",
    )
    track(ensure_dev_ca(ws.ca_cert, ws.ca_key), "development CA")
    track(
        ensure_server_cert(ws.server_cert, ws.server_key, ws.ca_cert, ws.ca_key),
        "server certificate (127.0.0.1, ::1, localhost)",
    )
    AuditLog(settings.audit_database, load_signer(ws.audit_key)).close()  # fixes the origin
    if not demo:
        return report

    written = write_demo_data(ws.data, rows, seed)
    track(bool(written), f"demo datasets ({rows} rows each, seed {seed})")
    if not any(ws.policies.glob("*.yaml")):
        _copy_private(POLICY_DIR, ws.policies)
        track(True, "demo policies and their tests")
    else:
        track(False, "policies")

    registry = ClientRegistry(settings.registry_database)
    try:
        if registry.get(DEMO_CLIENT) is None:
            _client, secret = registry.add(DEMO_CLIENT)
            admin_event(settings, client_changed("client.add", DEMO_CLIENT, actor()))
            credentials = {
                "client_id": DEMO_CLIENT,
                "client_secret": secret,
                "token_url": f"{settings.base_url}/oauth/token",
                "base_url": settings.base_url,
                "ca_cert": str(ws.ca_cert),
                "scope": "datasets:read",
            }
            ws.demo_client.unlink(missing_ok=True)
            write_new(ws.demo_client, (json.dumps(credentials, indent=2) + "\n").encode())
            track(True, f"demo client {DEMO_CLIENT!r} (credentials in {ws.demo_client.name})")
        else:
            track(False, f"demo client {DEMO_CLIENT!r}")
            if not ws.demo_client.exists():
                report.notes.append(
                    f"{ws.demo_client.name} is missing and the demo client exists; its secret is "
                    "not stored anywhere. Register a new client with `gateway clients add`."
                )
    finally:
        registry.close()
    return report


def exposure_warning(ws: Workspace) -> str | None:
    """One line naming the workspace files with data, keys, state or a client secret that other
    users of the machine can access (made by older versions, a copy or an admin), or None."""
    found = exposed([ws.data, ws.keys, ws.audit, ws.state, ws.demo_client])
    if not found:
        return None
    names = [str(p.relative_to(ws.home)) for p in found[:3]] + (["..."] if len(found) > 3 else [])
    return (
        f"{len(found)} workspace file(s) holding data, keys or state are open to other users "
        f"({', '.join(names)}); run `chmod -R go= {ws.home}` to make them private"
    )


def _copy_private(source: Path, target: Path) -> None:
    """Copy the demo policy tree (policies, tests, hierarchies) as private files; a copy would
    keep the package's modes (0644), a new file gets the workspace's (0600)."""
    for path in sorted(source.rglob("*")):
        if path.is_file() and path.suffix in (".yaml", ".csv"):
            write_new(target / path.relative_to(source), path.read_bytes())
