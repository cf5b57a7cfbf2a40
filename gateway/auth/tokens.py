"""Access tokens: validation of our RFC 9068 JWTs and of tokens from trusted external issuers.

Our tokens: ES256 pinned, `typ` at+jwt, exact `iss` and `aud`, `exp`, `iat`, `jti`, `client_id`,
60 s clock leeway. External tokens: the issuer's pinned algorithms, `typ` and audience, the
client named by the configured claim. Either way the client must be registered and enabled, the
`jti` must not be revoked, and the scopes are those the token carries that the client is
registered for.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jwt import ClaimsOption

from gateway.auth.issuers import IssuerConfig, IssuerKeys
from gateway.auth.keys import ALGORITHM, TokenKeyring
from gateway.auth.registry import Client, ClientRegistry
from gateway.errors import BadRequest, ClientDisabled, ConfigError, TokenRevoked, Unauthorized

TOKEN_TYPE = "at+jwt"  # noqa: S105 - a media type, not a password
MAX_AUTHORIZATION = 8192  # bytes; longer Authorization headers are refused outright
_CACHE_MAX = 10_000


@dataclass(frozen=True)
class Principal:
    """An authenticated caller, as proven by a valid access token."""

    client_id: str
    scopes: frozenset[str]
    jti: str
    expires: int
    token_sha256: str  # the log records this, never the token
    issuer: str
    rate_per_min: int | None = None  # the client's own limits, if set
    rows_per_day: int | None = None


INVALID = "the access token is invalid, expired or revoked; request a new one"


def _invalid() -> Unauthorized:
    return Unauthorized(INVALID)


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def _peek(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims, unverified: only to choose the issuer whose keys then verify them."""
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError("not a compact JWS")

    def part(text: str) -> dict[str, Any]:
        value = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        if not isinstance(value, dict):
            raise ValueError("not a JSON object")
        return value

    return part(parts[0]), part(parts[1])


@dataclass(frozen=True)
class _Rules:
    keys: KeySet
    algorithms: tuple[str, ...]
    typ: str
    audience: str
    client_claim: str
    external: bool


class AccessTokenValidator:
    def __init__(
        self,
        keyring: TokenKeyring,
        *,
        issuer: str,
        audience: str,
        leeway: int,
        registry: ClientRegistry,
        external: list[IssuerKeys] | None = None,
    ) -> None:
        self._keyring = keyring
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway
        self._registry = registry
        self._external = {e.config.issuer: e for e in external or []}
        # token SHA-256 -> (header, verified claims, client id, the key set that verified it);
        # bounded, cleared when full
        self._verified: dict[str, tuple[dict[str, Any], dict[str, Any], str, KeySet]] = {}
        # token SHA-256 -> (the client record it was admitted with, the principal); cleared
        # with `_verified`
        self._principals: dict[str, tuple[Client, Principal]] = {}

    def authenticate(self, authorization: str | None) -> Principal:
        """Principal for an `Authorization: Bearer <token>` header; raise Unauthorized otherwise."""
        if not authorization:
            raise Unauthorized("this endpoint needs an access token", error=None)
        if len(authorization) > MAX_AUTHORIZATION:
            raise BadRequest(f"the Authorization header is longer than {MAX_AUTHORIZATION} bytes")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized(
                "use `Authorization: Bearer <access token>`", error="invalid_request"
            )
        return self.validate(token)

    def _rules(self, header: dict[str, Any], claims: dict[str, Any]) -> _Rules:
        iss = claims.get("iss")
        if iss == self._issuer:
            return _Rules(
                self._keyring.current().public,
                (ALGORITHM,),
                TOKEN_TYPE,
                self._audience,
                "client_id",
                external=False,
            )
        issuer = self._external.get(iss) if isinstance(iss, str) else None
        if issuer is None:
            raise ValueError("untrusted issuer")
        config: IssuerConfig = issuer.config
        kid = header.get("kid")
        keys = issuer.keys_for(kid if isinstance(kid, str) else None)
        if keys is None:
            raise ValueError("issuer keys unavailable")
        return _Rules(
            keys, config.algorithms, config.typ, config.audience, config.client_claim, external=True
        )

    def _keys_now(self, header: dict[str, Any], claims: dict[str, Any]) -> KeySet:
        """The key set that would verify a token with these (verified) header and claims now."""
        if claims.get("iss") == self._issuer:
            return self._keyring.current().public  # (what `_rules` gives, without building it)
        return self._rules(header, claims).keys

    def validate(self, token: str, *, check_revoked: bool = True) -> Principal:
        digest = token_sha256(token)
        cached = self._verified.get(digest)
        if cached is not None:
            # The same bytes were verified before: if the keys that would verify them now are
            # still the ones that did (none rotated or reloaded since), the signature and claims
            # hold as they did. Expiry, the client's state and the deny-list can change: they
            # are checked on every call (`_admit`).
            try:
                keys = self._keys_now(cached[0], cached[1])
            except (JoseError, ValueError, TypeError, ConfigError, RecursionError) as exc:
                raise _invalid() from exc
            if cached[3] is keys:
                return self._admit(cached[1], cached[2], check_revoked, digest)
        invalid = _invalid()
        try:
            header, unverified = _peek(token)
            rules = self._rules(header, unverified)
        except (JoseError, ValueError, TypeError, ConfigError, RecursionError) as exc:
            raise invalid from exc
        try:
            decoded = jwt.decode(token, rules.keys, algorithms=list(rules.algorithms))
        except (JoseError, ValueError, TypeError, ConfigError, RecursionError) as exc:
            raise invalid from exc
        if decoded.header.get("typ") != rules.typ:  # RFC 9068 4: reject other token types
            raise invalid
        claims = decoded.claims
        options: dict[str, ClaimsOption] = {
            "iss": {"essential": True, "value": str(unverified.get("iss"))},
            "aud": {"essential": True, "value": rules.audience},
            "exp": {"essential": True},
            "iat": {"essential": True},
            "jti": {"essential": True},
            rules.client_claim: {"essential": True},
        }
        registry = jwt.JWTClaimsRegistry(None, self._leeway, **options)
        try:
            registry.validate(claims)
        except JoseError as exc:
            raise invalid from exc
        client_id, scope = claims.get(rules.client_claim), claims.get("scope") or ""
        if not isinstance(client_id, str) or not isinstance(scope, str):
            raise invalid
        if len(self._verified) >= _CACHE_MAX:
            self._verified.clear()
            self._principals.clear()
        self._verified[digest] = (dict(decoded.header), claims, client_id, rules.keys)
        return self._admit(claims, client_id, check_revoked, digest)

    def _admit(
        self, claims: dict[str, Any], client_id: str, check_revoked: bool, digest: str
    ) -> Principal:
        """Admit a verified token now: not expired, its client known and enabled, issued after
        the client's last secret rotation, not revoked. Checked on every call."""
        if int(claims["exp"]) + self._leeway < time.time():
            raise _invalid()
        client = self._registry.get(client_id)
        if client is None:
            raise _invalid()
        if client.disabled:
            raise ClientDisabled(INVALID)
        if client.tokens_after is not None and int(claims["iat"]) <= client.tokens_after:
            raise TokenRevoked(INVALID)  # issued before the secret was rotated
        jti = str(claims["jti"])
        if check_revoked and self._registry.is_revoked(jti):
            raise TokenRevoked(INVALID)
        # The principal depends only on the claims and the client record: the same record (the
        # registry's cached object) gives the same principal.
        known = self._principals.get(digest)
        if known is not None and known[0] is client:
            return known[1]
        principal = self._principal(claims, client_id, client, jti, digest)
        self._principals[digest] = (client, principal)
        return principal

    @staticmethod
    def _principal(
        claims: dict[str, Any], client_id: str, client: Client, jti: str, digest: str
    ) -> Principal:
        scope = claims.get("scope") or ""
        scopes = frozenset(scope.split()) & frozenset(client.scopes)
        return Principal(
            client_id,
            scopes,
            jti,
            int(claims["exp"]),
            digest,
            str(claims["iss"]),
            client.rate_per_min,
            client.rows_per_day,
        )
