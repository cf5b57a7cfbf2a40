"""Access tokens from trusted external identity providers (for example an agency's Keycloak).

`issuers.yaml` in the workspace:

    issuers:
      - issuer: https://idp.agency.example/realms/open-data   # exact `iss`
        jwks_uri: https://idp.agency.example/realms/open-data/protocol/openid-connect/certs
        # or: jwks_file: keys/idp-jwks.json
        audience: https://gateway.agency.example/v1          # exact `aud` expected
        client_claim: azp                                     # the claim naming our client id
        algorithms: [RS256, ES256]                            # pinned; default [RS256, ES256]
        typ: JWT                                              # expected `typ`; default at+jwt

The JWKS is fetched over HTTPS (plain HTTP only on loopback), cached, and refreshed when a token
names an unknown `kid`, at most once per 30 seconds per issuer.
"""

from __future__ import annotations

import ipaddress
import json
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from gateway.errors import ConfigError

REFRESH_INTERVAL = 30.0
_ALLOWED_ALGS = {
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
}
_KEYS = {"issuer", "jwks_uri", "jwks_file", "audience", "client_claim", "algorithms", "typ"}


@dataclass(frozen=True)
class IssuerConfig:
    issuer: str
    audience: str
    client_claim: str = "client_id"
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    typ: str = "at+jwt"
    jwks_uri: str | None = None
    jwks_file: Path | None = None


def _loopback(host: str | None) -> bool:
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def load_issuers(path: Path, home: Path) -> list[IssuerConfig]:
    """Read issuers.yaml (absent: no external issuers); raise ConfigError naming the problem."""
    if not path.exists():
        return []
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    items = raw.get("issuers") if isinstance(raw, dict) else None
    if not isinstance(items, list):
        raise ConfigError(f"{path}: expected a top-level `issuers:` list")
    configs = []
    for i, item in enumerate(items):
        where = f"{path}: issuers[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(f"{where}: must be a mapping")
        unknown = set(item) - _KEYS
        if unknown:
            raise ConfigError(
                f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_KEYS)}"
            )
        for required in ("issuer", "audience"):
            if not isinstance(item.get(required), str) or not item[required]:
                raise ConfigError(f"{where}: `{required}` is required")
        if bool(item.get("jwks_uri")) == bool(item.get("jwks_file")):
            raise ConfigError(f"{where}: give exactly one of `jwks_uri` and `jwks_file`")
        uri = item.get("jwks_uri")
        if uri:
            parsed = urllib.parse.urlparse(uri)
            if parsed.scheme != "https" and not (
                parsed.scheme == "http" and _loopback(parsed.hostname)
            ):
                raise ConfigError(f"{where}: jwks_uri must be https (http only on loopback)")
        algorithms = tuple(item.get("algorithms", ("RS256", "ES256")))
        if not algorithms or not set(algorithms) <= _ALLOWED_ALGS:
            raise ConfigError(
                f"{where}: algorithms must be asymmetric JWS algorithms, not {algorithms}"
            )
        configs.append(
            IssuerConfig(
                issuer=item["issuer"],
                audience=item["audience"],
                client_claim=str(item.get("client_claim", "client_id")),
                algorithms=algorithms,
                typ=str(item.get("typ", "at+jwt")),
                jwks_uri=uri,
                jwks_file=(home / item["jwks_file"]) if item.get("jwks_file") else None,
            )
        )
    return configs


def _fetch(uri: str) -> dict[str, Any]:
    # The scheme was checked when the configuration was loaded (https, or http on loopback).
    with urllib.request.urlopen(uri, timeout=5) as response:  # noqa: S310
        data: dict[str, Any] = json.loads(response.read(1_000_001))
    return data


class IssuerKeys:
    """The JWKS of one external issuer, cached, refreshed on an unknown kid (rate-limited)."""

    def __init__(
        self, config: IssuerConfig, fetch: Callable[[str], dict[str, Any]] = _fetch
    ) -> None:
        self.config = config
        self._fetch = fetch
        self._lock = threading.Lock()
        self._keys: KeySet | None = None
        self._fetched = 0.0
        self.fetches = 0
        self.clock: Callable[[], float] = time.monotonic

    def _load(self) -> KeySet:
        self.fetches += 1
        if self.config.jwks_file is not None:
            data = json.loads(self.config.jwks_file.read_text())
        else:
            assert self.config.jwks_uri is not None  # noqa: S101 - ensured by load_issuers
            data = self._fetch(self.config.jwks_uri)
        return KeySet.import_key_set(data)

    def keys_for(self, kid: str | None) -> KeySet | None:
        """The key set, refreshed first if `kid` is unknown and the last fetch is 30 s old."""
        with self._lock:
            now = self.clock()
            known = self._keys is not None and (kid is None or _has_kid(self._keys, kid))
            if not known and (self._keys is None or now - self._fetched >= REFRESH_INTERVAL):
                try:
                    self._keys = self._load()
                except (OSError, ValueError, JoseError) as exc:
                    # Keep serving with the keys we had; tokens with unknown kids fail meanwhile.
                    if self._keys is None:
                        self._fetched = now
                        raise ConfigError(
                            f"cannot load the JWKS of {self.config.issuer}: {exc}"
                        ) from exc
                self._fetched = now
            return self._keys


def _has_kid(keys: KeySet, kid: str) -> bool:
    return any(k.kid == kid for k in keys.keys)
