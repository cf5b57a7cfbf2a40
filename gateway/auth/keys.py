"""Token signing keys and their rotation.

`keys/token-keys.json` lists the keys and their state; without it the single key
`keys/token-es256.key` is active. Rotation takes two steps (`gateway keys rotate token`, twice):

1. a **next** key is created and published in the JWKS, but does not sign yet, so resource
   servers and clients caching the JWKS learn it in advance;
2. the next key becomes **active** and signs; the previous one is **retired**: its private key is
   deleted, its public key stays in the JWKS and keeps validating until every token it signed
   has expired (token lifetime + leeway after retirement), then it is dropped.

Running gateways notice a changed state file at their next token operation.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cryptography.hazmat.primitives import serialization
from joserfc.jwk import ECKey, KeyParameters, KeySet, OctKey, OKPKey, RSAKey

from gateway.errors import ConfigError
from gateway.fsutil import replace_private, write_new

ALGORITHM = "ES256"
JWKS_MAX_AGE = 300  # seconds others may cache /.well-known/jwks.json (its Cache-Control)
STATE_FILE = "token-keys.json"
DEFAULT_KEY = "token-es256.key"


@dataclass(frozen=True)
class TokenKeys:
    signing: KeySet  # exactly one private key: authlib then always signs with it and sets `kid`
    public: KeySet  # active, next and not-yet-expired retired keys

    @property
    def jwks(self) -> dict[str, Any]:
        return dict(self.public.as_dict(private=False))

    @property
    def active_kid(self) -> str:
        return str(self.signing.keys[0].kid)


def _params(kid: str) -> KeyParameters:
    return {"use": "sig", "alg": ALGORITHM, "kid": kid}


def _load(path: Path, *, private: bool) -> ECKey:
    try:
        pem = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"token key {path} is missing; run `gateway init`") from None
    key = ECKey.import_key(pem)
    key.ensure_kid()
    kid = str(key.kid)
    if private:
        return ECKey.import_key(pem, _params(kid))
    return ECKey.import_key(key.as_dict(private=False), _params(kid))


def read_state(keys_dir: Path) -> list[dict[str, Any]]:
    path = keys_dir / STATE_FILE
    if not path.exists():
        return [{"file": DEFAULT_KEY, "state": "active"}]
    try:
        state = json.loads(path.read_text())
        entries = state["keys"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path} is not a valid token key state file: {exc}") from exc
    if [e.get("state") for e in entries].count("active") != 1:
        raise ConfigError(f"{path} must list exactly one active token key")
    return list(entries)


def write_state(keys_dir: Path, entries: list[dict[str, Any]]) -> None:
    path = keys_dir / STATE_FILE
    # atomic: running gateways see the old or the new state, never half
    replace_private(path, (json.dumps({"keys": entries}, indent=2) + "\n").encode())


def load_token_keys(
    keys_dir: Path, *, ttl: int, leeway: int, now: float | None = None
) -> TokenKeys:
    now = time.time() if now is None else now
    signing: ECKey | None = None
    public: list[OctKey | RSAKey | ECKey | OKPKey] = []
    for entry in read_state(keys_dir):
        state = entry.get("state")
        if state == "retired" and now > float(entry.get("retired_at", 0)) + ttl + leeway:
            continue  # every token it signed has expired
        key = _load(keys_dir / entry["file"], private=state == "active")
        if state == "active":
            signing = key
            public.append(ECKey.import_key(key.as_dict(private=False), _params(str(key.kid))))
        else:
            public.append(key)
    if signing is None:
        raise ConfigError("no active token signing key")
    return TokenKeys(KeySet([signing]), KeySet(public))


class TokenKeyring:
    """The current token keys, reloaded when the state file changes (cheap stat per use)."""

    def __init__(self, keys_dir: Path, *, ttl: int, leeway: int) -> None:
        self._dir = keys_dir
        self._ttl = ttl
        self._leeway = leeway
        self._lock = threading.Lock()
        self._stamp: tuple[float, int] | None = None
        self._keys = load_token_keys(keys_dir, ttl=ttl, leeway=leeway)
        self._loaded = time.time()
        self._stamp = self._state_stamp()
        self._checked = 0.0

    def _state_stamp(self) -> tuple[float, int] | None:
        try:
            stat = (self._dir / STATE_FILE).stat()
        except FileNotFoundError:
            return None
        return stat.st_mtime, stat.st_size

    def current(self) -> TokenKeys:
        now = time.monotonic()
        if now - self._checked < 1.0:  # look at the state file at most once a second
            return self._keys
        self._checked = now
        stamp = self._state_stamp()
        # Reload on a changed state file, and once a minute so expired retired keys drop out.
        if stamp != self._stamp or time.time() - self._loaded > 60:
            with self._lock:
                self._keys = load_token_keys(self._dir, ttl=self._ttl, leeway=self._leeway)
                self._stamp = stamp
                self._loaded = time.time()
        return self._keys


def generate_token_key(path: Path) -> bool:
    """Create an ES256 token-signing key unless it exists."""
    if path.exists():
        return False
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return write_new(path, pem)


def _published_ago(entry: dict[str, Any], now: float) -> float | None:
    """Seconds since the next key was published (None for state files that do not say)."""
    published = entry.get("published_at")
    if published is None:
        return None
    if isinstance(published, bool) or not isinstance(published, int | float):
        raise ConfigError(f"{STATE_FILE}: published_at of key {entry.get('kid')!r} is no time")
    return now - float(published)


def rotate(
    keys_dir: Path, *, force: bool = False, now: float | None = None
) -> tuple[Literal["published", "activated"], str]:
    """One rotation step. Returns (what happened, kid): ("published", next kid) or
    ("activated", new active kid). Activation within JWKS_MAX_AGE of publication is refused
    unless forced: a verifier holding a cached JWKS would not know the new key yet."""
    now = time.time() if now is None else now
    entries = read_state(keys_dir)
    for entry in entries:
        if "kid" not in entry:
            entry["kid"] = str(_load(keys_dir / entry["file"], private=False).kid)
    upcoming = [e for e in entries if e["state"] == "next"]
    if not upcoming:
        staging = keys_dir / "token-es256.next.tmp"
        staging.unlink(missing_ok=True)
        generate_token_key(staging)
        kid = str(_load(staging, private=False).kid)
        staging.rename(keys_dir / f"token-es256.{kid}.key")
        entries.append(
            {
                "kid": kid,
                "file": f"token-es256.{kid}.key",
                "state": "next",
                "published_at": int(now),
            }
        )
        write_state(keys_dir, entries)
        return "published", kid
    (nxt,) = upcoming
    ago = _published_ago(nxt, now)
    if not force and ago is not None and ago < JWKS_MAX_AGE:
        wait = int(JWKS_MAX_AGE - ago) + 1
        raise ConfigError(
            f"the next token key {nxt['kid']} was published {int(ago)} s ago; the JWKS may be "
            f"cached for {JWKS_MAX_AGE} s, so verifiers may not know it yet. Run this again in "
            f"{wait} s, or now with --force (tokens it signs may be refused until caches refresh)"
        )
    retired_files = []
    for entry in entries:
        if entry["state"] == "active":
            # Keep only the public half of a retired key; nothing may sign with it again.
            old = keys_dir / entry["file"]
            public_file = f"token-es256.{entry['kid']}.pub"
            pem = _load(old, private=False).as_pem(private=False)
            replace_private(keys_dir / public_file, pem)
            entry.update(state="retired", retired_at=int(now), file=public_file)
            retired_files.append(old)
    nxt["state"] = "active"
    write_state(keys_dir, entries)  # one atomic switch: never zero or two active keys
    for old in retired_files:
        old.unlink()
    return "activated", str(nxt["kid"])
