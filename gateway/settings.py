"""One frozen settings object, read once. The only module that reads the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from gateway.errors import ConfigError
from gateway.store.config import databases
from gateway.store.db import Database

_PREFIX = "GATEWAY_"


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
    """Everything the gateway needs to know at start-up. Built once, passed down explicitly."""

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

    def __post_init__(self) -> None:
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
        env = {
            "HOME_DIR": str(self.home),
            "HOST": self.host,
            "PORT": str(self.port),
            "WORKERS": str(self.workers),
            "INSECURE_HTTP": "1" if self.insecure_http else "0",
            "TOKEN_TTL": str(self.token_ttl),
            "TOKEN_LEEWAY": str(self.token_leeway),
            "AUDIT_BUSY_TIMEOUT_MS": str(self.audit_busy_timeout_ms),
            "MAX_PAGE_SIZE": str(self.max_page_size),
            "CHECKPOINT_EVERY": str(self.checkpoint_every),
            "CHECKPOINT_SECONDS": str(self.checkpoint_seconds),
            "RATE_PER_MINUTE": str(self.rate_per_minute),
            "MAX_INFLIGHT": str(self.max_inflight),
            "TRACE_SECONDS": str(self.trace_seconds),
            "STORE": self.store,
            "AUTH_FAIL_PER_CLIENT": str(self.auth_fail_per_client),
            "AUTH_FAIL_PER_ADDRESS": str(self.auth_fail_per_address),
            "AUTH_FAIL_WINDOW": str(self.auth_fail_window),
            "AUTH_HASH_THREADS": str(self.auth_hash_threads),
        }
        if self.public_url:
            env["PUBLIC_URL"] = self.public_url
        return {_PREFIX + k: v for k, v in env.items()}

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read `GATEWAY_*` variables (GATEWAY_HOME or GATEWAY_HOME_DIR for the workspace)."""
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(_PREFIX + name)
            return value if value not in (None, "") else None

        def integer(name: str, default: int) -> int:
            raw = get(name)
            if raw is None:
                return default
            try:
                return int(raw)
            except ValueError:
                raise ConfigError(
                    f"{_PREFIX}{name}={raw!r} is not an integer; set it to a whole number"
                ) from None

        home = get("HOME_DIR") or get("HOME")
        return cls(
            home=Path(home).expanduser().resolve() if home else Path.cwd().resolve(),
            host=get("HOST") or cls.host,
            port=integer("PORT", cls.port),
            workers=integer("WORKERS", cls.workers),
            insecure_http=(get("INSECURE_HTTP") or "0").lower() in ("1", "true", "yes"),
            public_url=get("PUBLIC_URL"),
            token_ttl=integer("TOKEN_TTL", cls.token_ttl),
            token_leeway=integer("TOKEN_LEEWAY", cls.token_leeway),
            audit_busy_timeout_ms=integer("AUDIT_BUSY_TIMEOUT_MS", cls.audit_busy_timeout_ms),
            max_page_size=integer("MAX_PAGE_SIZE", cls.max_page_size),
            checkpoint_every=integer("CHECKPOINT_EVERY", cls.checkpoint_every),
            checkpoint_seconds=integer("CHECKPOINT_SECONDS", cls.checkpoint_seconds),
            rate_per_minute=integer("RATE_PER_MINUTE", cls.rate_per_minute),
            max_inflight=integer("MAX_INFLIGHT", cls.max_inflight),
            trace_seconds=integer("TRACE_SECONDS", cls.trace_seconds),
            store=get("STORE") or "",
            auth_fail_per_client=integer("AUTH_FAIL_PER_CLIENT", cls.auth_fail_per_client),
            auth_fail_per_address=integer("AUTH_FAIL_PER_ADDRESS", cls.auth_fail_per_address),
            auth_fail_window=integer("AUTH_FAIL_WINDOW", cls.auth_fail_window),
            auth_hash_threads=integer("AUTH_HASH_THREADS", cls.auth_hash_threads),
        )
