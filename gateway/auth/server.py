"""The OAuth 2.0 authorization server: an authlib AuthorizationServer for Starlette with the
client credentials grant, RFC 9068 JWT access tokens, client authentication by secret
(basic/post) or private_key_jwt (RFC 7523), revocation (RFC 7009) and introspection (RFC 7662).

authlib has no Starlette server integration; this mirrors authlib's Flask one. The caller reads
the body first and passes Starlette's own `headers` object (a plain dict would break the
case-insensitive lookup authlib's Basic authentication relies on).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from authlib.oauth2 import AuthorizationServer, OAuth2Request
from authlib.oauth2.rfc6749 import ClientMixin, OAuth2Payload, TokenMixin
from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from gateway.auth.keys import ALGORITHM, TokenKeyring
from gateway.auth.registry import JWT_METHOD, SECRET_METHODS, Client, ClientRegistry
from gateway.auth.tokens import AccessTokenValidator, Principal
from gateway.errors import Unauthorized

AUTH_METHODS = [*SECRET_METHODS, JWT_METHOD]
# Client assertions: asymmetric algorithms only, and short-lived (bounds the replay cache).
ASSERTION_ALGORITHMS = ["ES256", "ES384", "EdDSA", "RS256", "PS256"]
MAX_ASSERTION_LIFETIME = 3600


class _Payload(OAuth2Payload):  # type: ignore[misc]
    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._data = dict(pairs)
        self._datalist: defaultdict[str, list[str]] = defaultdict(list)
        for key, value in pairs:
            self._datalist[key].append(value)

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


class TokenRequest(OAuth2Request):  # type: ignore[misc]
    """An already-read HTTP request in the shape authlib expects."""

    def __init__(
        self, method: str, uri: str, headers: Mapping[str, str], form: list[tuple[str, str]]
    ) -> None:
        super().__init__(method=method, uri=uri, headers=headers)
        self.payload = _Payload(form)
        self._form = dict(form)

    @property
    def args(self) -> dict[str, str]:
        return {}

    @property
    def form(self) -> dict[str, str]:
        return self._form


@dataclass
class _OAuthClient(ClientMixin):  # type: ignore[misc]
    client: Client
    registry: ClientRegistry = field(repr=False)

    def get_client_id(self) -> str:
        return self.client.client_id

    def get_default_redirect_uri(self) -> None:
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        allowed = self.client.scopes
        if not scope:
            return " ".join(allowed)
        return " ".join(s for s in scope.split() if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        return self.client.check_secret(client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return (
            endpoint in ("token", "revocation", "introspection")
            and method in self.client.auth_methods
        )

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "client_credentials"


class _ClientCredentials(ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS


class _PrivateKeyJWT(JWTBearerClientAssertion):  # type: ignore[misc]
    """RFC 7523 client authentication with the client's registered public JWKS."""

    CLIENT_AUTH_METHOD = JWT_METHOD

    def __init__(self, registry: ClientRegistry, audiences: list[str]) -> None:
        super().__init__(validate_jti=True, leeway=60)
        self._registry = registry
        self._audiences = audiences

    def get_audiences(self) -> list[str]:
        return self._audiences

    def resolve_client_public_key(self, client: _OAuthClient) -> KeySet:
        if not client.client.jwks:
            from authlib.oauth2.rfc6749 import InvalidClientError

            raise InvalidClientError(description="this client authenticates with a secret")
        return KeySet.import_key_set(client.client.jwks)  # type: ignore[arg-type]

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> Any:
        # authlib's version pins no algorithm; pin asymmetric ones here.
        from authlib.oauth2.rfc6749 import InvalidClientError

        try:
            token = jwt.decode(assertion, resolve_key, algorithms=ASSERTION_ALGORITHMS)
        except JoseError as exc:
            raise InvalidClientError(description="the client assertion does not verify") from exc
        exp = token.claims.get("exp")
        if not isinstance(exp, int) or exp > time.time() + MAX_ASSERTION_LIFETIME:
            raise InvalidClientError(description="client assertions must expire within one hour")
        self.verify_claims(token.claims)
        return token.claims

    def validate_jti(self, claims: Mapping[str, Any], jti: str) -> bool:
        return self._registry.remember_assertion(
            str(claims.get("sub")), str(jti), int(claims["exp"])
        )


class _TokenGenerator(JWTBearerTokenGenerator):  # type: ignore[misc]
    def __init__(self, keyring: TokenKeyring, issuer: str, audience: str, ttl: int) -> None:
        # authlib's defaults (audience = client id, 10-day lifetime) are overridden here.
        super().__init__(issuer, alg=ALGORITHM, expires_generator=lambda client, grant_type: ttl)
        self._keyring = keyring
        self._audience = audience

    def get_jwks(self) -> Any:
        return self._keyring.current().signing

    def get_audiences(self, client: Any, user: Any, scope: Any) -> str:
        return self._audience


@dataclass
class _Token(TokenMixin):  # type: ignore[misc]
    """A validated access token, as authlib's revocation and introspection endpoints see it."""

    principal: Principal
    revoked: bool

    def check_client(self, client: _OAuthClient) -> bool:
        return bool(self.principal.client_id == client.get_client_id())

    def get_scope(self) -> str:
        return " ".join(sorted(self.principal.scopes))

    def get_expires_in(self) -> int:
        return max(0, self.principal.expires - int(time.time()))

    def is_expired(self) -> bool:
        return self.principal.expires <= time.time()

    def is_revoked(self) -> bool:
        return self.revoked


def _query(validator: AccessTokenValidator, registry: ClientRegistry, token: str) -> _Token | None:
    try:
        principal = validator.validate(token, check_revoked=False)
    except Unauthorized:
        return None
    return _Token(principal, registry.is_revoked(principal.jti))


class _OwnTokens:
    """What revocation and introspection share: our client auth methods, and token lookup."""

    CLIENT_AUTH_METHODS = AUTH_METHODS
    SUPPORTED_TOKEN_TYPES = ("access_token",)

    def __init__(self, validator: AccessTokenValidator, registry: ClientRegistry) -> None:
        super().__init__()
        self._validator = validator
        self._registry = registry

    def query_token(self, token_string: str, token_type_hint: str | None) -> _Token | None:
        return _query(self._validator, self._registry, token_string)


class _Revocation(_OwnTokens, RevocationEndpoint):  # type: ignore[misc]
    def authenticate_token(self, request: TokenRequest, client: _OAuthClient) -> _Token | None:
        # RFC 7009 2.2: a token of another client is not revoked, and the answer is still 200.
        self.check_params(request, client)
        token: _Token | None = self.query_token(request.form["token"], None)
        return token if token is not None and token.check_client(client) else None

    def revoke_token(self, token: _Token, request: TokenRequest) -> None:
        self._registry.revoke(
            token.principal.jti, token.principal.client_id, token.principal.expires
        )


class _Introspection(_OwnTokens, IntrospectionEndpoint):  # type: ignore[misc]
    def check_permission(self, token: _Token, client: _OAuthClient, request: TokenRequest) -> bool:
        # A client may introspect its own tokens; an admin client any token.
        return token.check_client(client) or "admin" in client.client.scopes

    def introspect_token(self, token: _Token) -> dict[str, Any]:
        p = token.principal
        return {
            "active": True,
            "client_id": p.client_id,
            "scope": token.get_scope(),
            "exp": p.expires,
            "iss": p.issuer,
            "jti": p.jti,
            "token_type": "Bearer",
        }


class TokenServer(AuthorizationServer):  # type: ignore[misc]
    def __init__(
        self,
        registry: ClientRegistry,
        keyring: TokenKeyring,
        validator: AccessTokenValidator,
        *,
        issuer: str,
        audience: str,
        ttl: int,
    ) -> None:
        super().__init__(scopes_supported=None)
        self._registry = registry
        self.register_grant(_ClientCredentials)
        self.register_token_generator("default", _TokenGenerator(keyring, issuer, audience, ttl))
        token_url = f"{issuer}/oauth/token"
        self.register_client_auth_method(JWT_METHOD, _PrivateKeyJWT(registry, [token_url, issuer]))
        self.register_endpoint(_Revocation(validator, registry))
        self.register_endpoint(_Introspection(validator, registry))

    def query_client(self, client_id: str) -> _OAuthClient | None:
        client = self._registry.get(client_id)
        if client is None or client.disabled:
            return None
        return _OAuthClient(client, self._registry)

    def save_token(self, token: dict[str, Any], request: TokenRequest) -> None:
        """Access tokens are self-contained JWTs; the audit log records their issuance."""

    def create_oauth2_request(self, request: TokenRequest) -> TokenRequest:
        return request

    def handle_response(
        self, status: int, body: Any, headers: list[tuple[str, str]]
    ) -> tuple[int, Any, list[tuple[str, str]]]:
        return status, body, headers

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """No signal receivers: what happened is read off the request afterwards."""

    def issue(
        self, request: TokenRequest
    ) -> tuple[int, dict[str, Any], list[tuple[str, str]], str | None]:
        """Run the token endpoint; returns status, body, headers and the authenticated client id."""
        return self._run(self.create_token_response, request)

    def endpoint(
        self, name: str, request: TokenRequest
    ) -> tuple[int, dict[str, Any], list[tuple[str, str]], str | None]:
        """Run the revocation or introspection endpoint."""
        return self._run(lambda r: self.create_endpoint_response(name, r), request)

    @staticmethod
    def _run(
        call: Any, request: TokenRequest
    ) -> tuple[int, dict[str, Any], list[tuple[str, str]], str | None]:
        status, body, headers = call(request)
        client = getattr(request, "client", None)
        client_id = client.get_client_id() if client is not None else None
        return status, dict(body), list(headers), client_id
