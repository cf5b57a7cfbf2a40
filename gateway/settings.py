"""One frozen settings object, read once. The only module that reads the environment."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, get_args, get_type_hints

from gateway.errors import ConfigError
from gateway.store.config import databases
from gateway.store.db import Database

_PREFIX = "GATEWAY_"
# The policy watcher's interval: below 0.05 s a worker spends its time scanning the directory;
# above an hour an edit waits too long to go live (SIGHUP still reloads at once).
MIN_POLL_SECONDS = 0.05
MAX_POLL_SECONDS = 3600.0
# Who writes a worker's audit entries on SQLite (Settings.audit_writer).
AUDIT_WRITERS = ("process", "thread")
_DECIMAL = re.compile(r"[0-9]{1,6}(\.[0-9]{1,6})?")


@dataclass(frozen=True)
class Workspace:
    """Where a gateway keeps its policies, keys, data, state and audit log."""

    home: Path

    @property
    def policies(self) -> Path:
        return self.home / "policies"

    @property
    def keys(self) -> Path:
        return self.home / "keys"

    @property
    def data(self) -> Path:
        return self.home / "data"

    @property
    def audit(self) -> Path:
        return self.home / "audit"

    @property
    def state(self) -> Path:
        return self.home / "state"

    @property
    def audit_public_keys(self) -> list[Path]:
        """The current audit public key and every earlier (rotated) one."""
        return [self.audit_pub, *sorted(self.keys.glob("audit-ed25519.*.pub"))]

    @property
    def policy_sets(self) -> Path:
        """Every policy set that went live, content-addressed (gateway/policy/history.py)."""
        return self.state / "policy-sets"

    @property
    def audit_db(self) -> Path:
        return self.audit / "log.sqlite3"

    @property
    def registry_db(self) -> Path:
        return self.state / "registry.sqlite3"

    @property
    def audit_key(self) -> Path:
        return self.keys / "audit-ed25519.key"

    @property
    def audit_pub(self) -> Path:
        return self.keys / "audit-ed25519.pub"

    @property
    def token_key(self) -> Path:
        return self.keys / "token-es256.key"

    @property
    def pseudonym_secret(self) -> Path:
        return self.keys / "pseudonym.secret"

    @property
    def ca_cert(self) -> Path:
        return self.keys / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.keys / "ca.key"

    @property
    def server_cert(self) -> Path:
        return self.keys / "server.crt"

    @property
    def server_key(self) -> Path:
        return self.keys / "server.key"

    @property
    def issuers(self) -> Path:
        return self.home / "issuers.yaml"

    @property
    def demo_client(self) -> Path:
        return self.home / "demo-client.json"


@dataclass(frozen=True)
class Settings:
    """Everything the gateway needs to know at start-up. Built once, passed down explicitly.

    Each setting is listed once, here: its field gives the name, type and default, and the
    variable GATEWAY_<NAME> (`to_env` and `from_env` walk these fields)."""

    home: Path = field(default_factory=Path.cwd)
    host: str = "127.0.0.1"
    port: int = 8443
    workers: int = 1
    insecure_http: bool = False
    public_url: str | None = None
    token_ttl: int = 600
    token_leeway: int = 60
    audit_busy_timeout_ms: int = 10_000
    max_page_size: int = 1000
    checkpoint_every: int = 1000  # sign a checkpoint after this many new entries ...
    checkpoint_seconds: int = 10  # ... or this many seconds after the newest entry
    rate_per_minute: int = 600  # default per-client request rate (a client may set its own)
    max_inflight: int = 16  # concurrent requests per client and worker
    trace_seconds: int = 300  # wall-clock limit of `gateway trace` (refused past it, exit 2)
    store: str = ""  # "" (workspace SQLite files), sqlite:///DIR, or postgresql://...
    # Failed client authentications at the OAuth endpoints, counted in the shared store across
    # workers and hosts: past either limit within a window, 429 with Retry-After (gateway/auth).
    auth_fail_per_client: int = 10  # per presented client id (registered or not) and window
    auth_fail_per_address: int = 50  # per source address (IPv6: per /64) and window
    auth_fail_window: int = 300  # seconds (fixed windows)
    auth_hash_threads: int = 2  # concurrent secret checks (scrypt) per worker process
    # The console and usage endpoint verify only new entries between full verifications of the
    # whole log, done at most this many seconds apart (gateway/audit/incremental.py).
    audit_full_verify_seconds: int = 600
    # A request (line, headers and body) must arrive whole within this many seconds of the
    # connection opening or of the previous response (slowloris; gateway/api/protocol.py).
    request_seconds: float = 10.0
    # How often each worker looks at the policy directory for edited files (SIGHUP: at once).
    policy_poll_seconds: float = 2.0
    # Who encodes, signs and commits the audit entries of a worker's calls on SQLite: a writer
    # process of its own ("process": off the event loop's GIL, ~32-52 % less CPU per call in
    # the serving process) or a thread in the worker ("thread": one process fewer per worker,
    # for hosts that count processes; PostgreSQL always uses the thread).
    audit_writer: str = "process"

    def __post_init__(self) -> None:
        poll = self.policy_poll_seconds
        if not (MIN_POLL_SECONDS <= poll <= MAX_POLL_SECONDS):  # also false for NaN
            raise ConfigError(
                f"{_PREFIX}POLICY_POLL_SECONDS must be between {MIN_POLL_SECONDS} and "
                f"{MAX_POLL_SECONDS:.0f} seconds (it is {poll}); the default is 2"
            )
        for name in (
            "auth_fail_per_client",
            "auth_fail_per_address",
            "auth_fail_window",
            "auth_hash_threads",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(
                    f"{_PREFIX}{name.upper()} must be at least 1 (it is {getattr(self, name)})"
                )
        if self.audit_writer not in AUDIT_WRITERS:
            raise ConfigError(
                f"{_PREFIX}AUDIT_WRITER must be one of {', '.join(AUDIT_WRITERS)} "
                f"(it is {self.audit_writer!r}); the default is process"
            )
        if not 0 < self.request_seconds <= 3600:  # (also refuses nan)
            raise ConfigError(
                f"{_PREFIX}REQUEST_SECONDS must be above 0 and at most 3600 seconds "
                f"(it is {self.request_seconds})"
            )

    @property
    def workspace(self) -> Workspace:
        return Workspace(self.home)

    @property
    def audit_database(self) -> Database:
        return self._databases()[0]

    @property
    def registry_database(self) -> Database:
        return self._databases()[1]

    def _databases(self) -> tuple[Database, Database]:
        ws = self.workspace
        return databases(self.store, ws.audit_db, ws.registry_db, self.audit_busy_timeout_ms)

    @property
    def base_url(self) -> str:
        """The public URL clients use; also the token issuer."""
        if self.public_url:
            return self.public_url.rstrip("/")
        scheme = "http" if self.insecure_http else "https"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    @property
    def issuer(self) -> str:
        return self.base_url

    @property
    def audience(self) -> str:
        """The `aud` every access token must carry: this gateway's data API."""
        return f"{self.base_url}/v1"

    def with_overrides(self, **changes: Any) -> Settings:
        """Apply command-line flags; `None` means "not given" and keeps the current value."""
        given = {k: v for k, v in changes.items() if v is not None}
        if "home" in given:
            given["home"] = Path(given["home"]).expanduser().resolve()
        return replace(self, **given)

    def to_env(self) -> dict[str, str]:
        """Environment that makes `from_env` rebuild these settings (for worker processes)."""
        env: dict[str, str] = {}
        for name, kind in _kinds().items():
            value = getattr(self, name)
            if value is None:
                continue  # an unset optional (public_url)
            text = ("1" if value else "0") if kind is bool else str(value)
            env[_PREFIX + _env_name(name)] = text
        return env

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read `GATEWAY_*` variables (GATEWAY_HOME or GATEWAY_HOME_DIR for the workspace): one
        per field above, named after it; an unset or empty variable keeps the default."""
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(_PREFIX + name)
            return value if value not in (None, "") else None

        values: dict[str, Any] = {}
        for name, kind in _kinds().items():
            raw = get(_env_name(name)) or (get("HOME") if name == "home" else None)
            if raw is None:
                continue
            if kind is Path:
                values[name] = Path(raw).expanduser().resolve()
            elif kind is bool:
                values[name] = raw.lower() in ("1", "true", "yes")
            elif kind is int:
                try:
                    values[name] = int(raw)
                except ValueError:
                    raise ConfigError(
                        f"{_PREFIX}{_env_name(name)}={raw!r} is not an integer; "
                        "set it to a whole number"
                    ) from None
            elif kind is float:
                values[name] = _decimal(_env_name(name), raw)
            else:
                values[name] = raw
        values.setdefault("home", Path.cwd().resolve())
        return cls(**values)


def _decimal(name: str, raw: str) -> float:
    """A plain ASCII decimal such as `2` or `0.25`: `float()` would also take `nan`, `1e3`,
    `1_0` and Unicode digits."""
    if not _DECIMAL.fullmatch(raw):
        raise ConfigError(
            f"{_PREFIX}{name}={raw!r} is not a number of seconds; write it like 2 or 0.25"
        )
    return float(raw)


def _env_name(field_name: str) -> str:
    """The variable of a setting, without the prefix (`home` is HOME_DIR: HOME is taken)."""
    return "HOME_DIR" if field_name == "home" else field_name.upper()


def _kinds() -> dict[str, type]:
    """Each setting's name and the type its variable is read as (optional types: the inner)."""
    hints = get_type_hints(Settings)
    kinds: dict[str, type] = {}
    for item in fields(Settings):
        hint = hints[item.name]
        inner = [arg for arg in get_args(hint) if arg is not type(None)]
        kinds[item.name] = inner[0] if inner else hint
    return kinds
