"""Access tokens: RFC 9068 JWTs signed with ES256, and their strict validation.

Validation pins the algorithm (ES256), requires `typ` at+jwt, exact `iss` and `aud`, `exp`,
`iat`, `jti`, `client_id`, allows 60 s of clock leeway, and rejects tokens of unknown or disabled
clients at once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeyParameters, KeySet

from gateway.auth.registry import ClientRegistry
from gateway.errors import ConfigError, Unauthorized
from gateway.fsutil import write_new

ALGORITHM = "ES256"
TOKEN_TYPE = "at+jwt"  # noqa: S105 - a media type, not a password


@dataclass(frozen=True)
class Principal:
    """An authenticated caller, as proven by a valid access token."""

    client_id: str
    scopes: frozenset[str]
    jti: str
    expires: int
    token_sha256: str  # the log records this, never the token


def generate_token_key(path: Path) -> bool:
    """Create the ES256 token-signing key unless it exists."""
    if path.exists():
        return False
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return write_new(path, pem)


@dataclass(frozen=True)
class TokenKeys:
    signing: KeySet  # exactly one private key: authlib then always signs with it and sets `kid`
    public: KeySet

    @property
    def jwks(self) -> dict[str, Any]:
        return dict(self.public.as_dict(private=False))


def load_token_keys(path: Path) -> TokenKeys:
    try:
        pem = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"token signing key {path} is missing; run `gateway init`") from None
    key = ECKey.import_key(pem)
    key.ensure_kid()
    params: KeyParameters = {"use": "sig", "alg": ALGORITHM, "kid": str(key.kid)}
    private = ECKey.import_key(pem, params)
    public = ECKey.import_key(key.as_dict(private=False), params)
    return TokenKeys(KeySet([private]), KeySet([public]))


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


class AccessTokenValidator:
    def __init__(
        self, keys: TokenKeys, *, issuer: str, audience: str, leeway: int, registry: ClientRegistry
    ) -> None:
        self._keys = keys.public
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway
        self._registry = registry

    def authenticate(self, authorization: str | None) -> Principal:
        """Principal for an `Authorization: Bearer <token>` header; raise Unauthorized otherwise."""
        if not authorization:
            raise Unauthorized("this endpoint needs an access token", error=None)
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized(
                "use `Authorization: Bearer <access token>`", error="invalid_request"
            )
        return self.validate(token)

    def validate(self, token: str) -> Principal:
        invalid = Unauthorized("the access token is invalid or expired; request a new one")
        try:
            decoded = jwt.decode(token, self._keys, algorithms=[ALGORITHM])
        except (JoseError, ValueError, TypeError) as exc:
            raise invalid from exc
        if decoded.header.get("typ") != TOKEN_TYPE:  # RFC 9068 4: reject other token types
            raise invalid
        registry = jwt.JWTClaimsRegistry(
            leeway=self._leeway,
            iss={"essential": True, "value": self._issuer},
            aud={"essential": True, "value": self._audience},
            exp={"essential": True},
            iat={"essential": True},
            jti={"essential": True},
            client_id={"essential": True},
            sub={"essential": True},
        )
        claims = decoded.claims
        try:
            registry.validate(claims)
        except JoseError as exc:
            raise invalid from exc
        client_id = claims["client_id"]
        scope = claims.get("scope") or ""
        if not isinstance(client_id, str) or not isinstance(scope, str):
            raise invalid
        client = self._registry.get(client_id)
        if client is None or client.disabled:
            raise invalid
        return Principal(
            client_id,
            frozenset(scope.split()),
            str(claims["jti"]),
            int(claims["exp"]),
            token_sha256(token),
        )
