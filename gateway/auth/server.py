"""The OAuth 2.0 authorization server: an authlib AuthorizationServer for Starlette with the
client credentials grant, RFC 9068 JWT access tokens, client authentication by secret
(basic/post) or private_key_jwt (RFC 7523), revocation (RFC 7009) and introspection (RFC 7662).

authlib has no Starlette server integration; this mirrors authlib's Flask one. The caller reads
the body first and passes Starlette's own `headers` object (a plain dict would break the
case-insensitive lookup authlib's Basic authentication relies on).

Client authentication is hardened against guessing (issue 14, item 6):
- the credentials are parsed once, strictly (gateway/auth/credentials.py): malformed ones are
  `invalid_client`, never a decoding error;
- an unknown, disabled or malformed client id is answered exactly like a wrong secret, after the
  same work: one scrypt run (against a dummy hash with the same parameters), one store lookup,
  the same status, body and headers;
- failed authentications are throttled per presented client id and per source address in the
  shared store (`AuthThrottle`): past a limit, 429 with Retry-After before anything is hashed;
- the caller runs the hashing in a bounded pool of threads (`hash_limiter`), so guessers queue
  among themselves and cannot starve the event loop.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
from authlib.oauth2 import AuthorizationServer, OAuth2Error, OAuth2Request
from authlib.oauth2.rfc6749 import ClientMixin, InvalidClientError, OAuth2Payload, TokenMixin
from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet

from gateway.auth.credentials import Presented, present
from gateway.auth.keys import ALGORITHM, TokenKeyring
from gateway.auth.limits import AuthThrottle, Throttled
from gateway.auth.registry import CLIENT_ID, JWT_METHOD, SECRET_METHODS, Client, ClientRegistry
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
    """An already-read HTTP request in the shape authlib expects, with its client credentials
    parsed (`presented`) and the unit its source address is counted in (`address`)."""

    def __init__(
        self,
        method: str,
        uri: str,
        headers: Mapping[str, str],
        form: list[tuple[str, str]],
        *,
        authorization: list[str] | None = None,
        address: str = "unknown",
    ) -> None:
        super().__init__(method=method, uri=uri, headers=headers)
        self.payload = _Payload(form)
        self._form = dict(form)
        if authorization is None:  # (the caller should pass every value: two are refused)
            value = headers.get("Authorization")
            authorization = [value] if value is not None else []
        self.presented: Presented = present(authorization, form)
        self.address = address
        self.authenticated: str | None = None  # set once a client has authenticated

    @property
    def args(self) -> dict[str, str]:
        return {}

    @property
    def form(self) -> dict[str, str]:
        return self._form


@dataclass
class _OAuthClient(ClientMixin):  # type: ignore[misc]
    """A registered, enabled client; or (known=False) a stand-in for an id that is unknown,
    disabled or malformed, which goes through the same steps and never authenticates."""

    client: Client
    registry: ClientRegistry = field(repr=False)
    known: bool = True

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
        # Exactly one scrypt run whatever the client (a stand-in checks the dummy hash).
        return self.client.check_secret(client_secret) and self.known

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return (
            self.known
            and endpoint in ("token", "revocation", "introspection")
            and method in self.client.auth_methods
        )

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "client_credentials"


class _ClientCredentials(ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS


def _secret_method(name: str) -> Callable[[Callable[[str], _OAuthClient], TokenRequest], Any]:
    """client_secret_basic / client_secret_post on the strictly parsed credentials (authlib's
    own versions decode the header themselves, and skip the hash for unknown ids)."""

    def authenticate(
        query_client: Callable[[str], _OAuthClient], request: TokenRequest
    ) -> _OAuthClient | None:
        presented = request.presented
        if presented.method != name or not presented.client_id or not presented.secret:
            return None
        client = query_client(presented.client_id)
        return client if client.check_client_secret(presented.secret) else None

    return authenticate


class AuthThrottledError(OAuth2Error):  # type: ignore[misc]
    """429 for a caller past its failed-authentication limit. RFC 6749 defines no code for
    it; `temporarily_unavailable` (registered for the authorization endpoint) says what it is,
    and OAuth clients read `error` and the status."""

    error = "temporarily_unavailable"
    status_code = 429

    def __init__(self, throttled: Throttled) -> None:
        super().__init__(
            description=(
                f"too many failed client authentications for this {throttled.scope}; "
                f"retry in {throttled.retry_after} s"
            )
        )
        self.retry_after = throttled.retry_after

    def get_headers(self) -> list[tuple[str, str]]:
        return [*super().get_headers(), ("Retry-After", str(self.retry_after))]


class _PrivateKeyJWT(JWTBearerClientAssertion):  # type: ignore[misc]
    """RFC 7523 client authentication with the client's registered public JWKS."""

    CLIENT_AUTH_METHOD = JWT_METHOD

    def __init__(self, registry: ClientRegistry, audiences: list[str]) -> None:
        super().__init__(validate_jti=True, leeway=60)
        self._registry = registry
        self._audiences = audiences
        # Unknown, disabled and secret-based clients are checked against a key nobody holds (its
        # private half is dropped here), so that they fail like a wrong signature does.
        nobody = ECKey.generate_key("P-256")
        self._nobody = KeySet([ECKey.import_key(nobody.as_dict(private=False))])

    def get_audiences(self) -> list[str]:
        return self._audiences

    def resolve_client_public_key(self, client: _OAuthClient) -> KeySet:
        if not client.known or not client.client.jwks:
            return self._nobody
        return KeySet.import_key_set(client.client.jwks)  # type: ignore[arg-type]

    def process_assertion_claims(self, assertion: str, resolve_key: Any) -> Any:
        # authlib's version pins no algorithm; pin asymmetric ones here. Every failure before
        # the signature is verified gets the same answer, whatever the client.
        try:
            token = jwt.decode(assertion, resolve_key, algorithms=ASSERTION_ALGORITHMS)
        except (JoseError, ValueError, TypeError, KeyError) as exc:
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


@dataclass(frozen=True)
class Outcome:
    """What an OAuth endpoint answers, and what the audit entry records about it."""

    status: int
    body: dict[str, Any]
    headers: list[tuple[str, str]]
    client_id: str | None  # the authenticated client, None unless authentication succeeded
    reason: str | None  # the refusal's reason code (None on success)


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
        throttle: AuthThrottle,
        hash_threads: int,
    ) -> None:
        super().__init__(scopes_supported=None)
        self._registry = registry
        self.throttle = throttle
        # Secret checks (scrypt, ~0.1 s of CPU each) run in at most this many threads per
        # process; further token requests wait their turn without holding the event loop.
        self.hash_limiter = anyio.CapacityLimiter(hash_threads)
        self.register_grant(_ClientCredentials)
        self.register_token_generator("default", _TokenGenerator(keyring, issuer, audience, ttl))
        token_url = f"{issuer}/oauth/token"
        for method in SECRET_METHODS:
            self.register_client_auth_method(method, _secret_method(method))
        self.register_client_auth_method(JWT_METHOD, _PrivateKeyJWT(registry, [token_url, issuer]))
        self.register_endpoint(_Revocation(validator, registry))
        self.register_endpoint(_Introspection(validator, registry))

    def query_client(self, client_id: str) -> _OAuthClient:
        """The client, or a stand-in that fails the same way (never None: authlib would answer
        an unknown id at once, without the work a known one costs)."""
        client = self._registry.get(client_id) if CLIENT_ID.fullmatch(client_id) else None
        if client is None or client.disabled:
            # A malformed id is never looked up: it cannot exist, and a store may refuse its
            # bytes (PostgreSQL rejects NUL).
            stand_in = Client(client_id, (), True, 0, "")
            return _OAuthClient(stand_in, self._registry, known=False)
        return _OAuthClient(client, self._registry)

    def authenticate_client(
        self, request: TokenRequest, methods: list[str], endpoint: str = "token"
    ) -> _OAuthClient:
        try:
            client: _OAuthClient = super().authenticate_client(request, methods, endpoint)
        except InvalidClientError as error:
            # RFC 6749 5.2: 401 (with a Basic challenge) when the Authorization header was used,
            # 400 otherwise; the same whichever way the authentication failed.
            error.status_code = 401 if request.presented.header else 400
            raise
        if not client.known:  # cannot happen (stand-ins fail every check); never let one pass
            raise InvalidClientError(status_code=401 if request.presented.header else 400)
        request.authenticated = client.get_client_id()
        return client

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

    def screen(self, request: TokenRequest) -> Outcome | None:
        """The answer for a caller that is throttled or presents malformed credentials, or None
        to go on. Cheap (store reads, no hashing): run it before waiting for a hashing slot."""
        presented = request.presented
        throttled = self.throttle.check(presented.client_id, request.address)
        if throttled is not None:
            status, body, headers = AuthThrottledError(throttled)()
            return Outcome(status, dict(body), list(headers), None, "auth_throttled")
        if presented.problem is None:
            return None
        if presented.error == "invalid_client":
            self.throttle.failed(presented.client_id, request.address)
            error: OAuth2Error = InvalidClientError(
                description=presented.problem, status_code=401 if presented.header else 400
            )
        else:
            error = OAuth2Error(error=presented.error, description=presented.problem)
        status, body, headers = error()
        return Outcome(status, dict(body), list(headers), None, presented.error)

    def issue(self, request: TokenRequest) -> Outcome:
        """Run the token endpoint (in a hashing slot: see `hash_limiter`)."""
        return self._run(self.create_token_response, request)

    def endpoint(self, name: str, request: TokenRequest) -> Outcome:
        """Run the revocation or introspection endpoint (in a hashing slot)."""
        return self._run(lambda r: self.create_endpoint_response(name, r), request)

    def _run(self, call: Callable[[TokenRequest], Any], request: TokenRequest) -> Outcome:
        # Checked again now that this request holds a slot: guessers that queued meanwhile are
        # refused here, so a limit is passed by at most the number of slots.
        refused = self.screen(request)
        if refused is not None:
            return refused
        status, body, headers = call(request)
        body = dict(body)
        error = body.get("error")
        if request.authenticated is None and error == "invalid_client":
            self.throttle.failed(request.presented.client_id, request.address)
        reason = None if status == 200 else str(error or "invalid_request")
        return Outcome(status, body, list(headers), request.authenticated, reason)
