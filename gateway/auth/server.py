"""The OAuth 2.0 token endpoint: an authlib AuthorizationServer for Starlette, client
credentials grant only, RFC 9068 JWT access tokens.

authlib has no Starlette server integration; this mirrors authlib's Flask one. The caller reads
the body first and passes Starlette's own `headers` object (a plain dict would break the
case-insensitive lookup authlib's Basic authentication relies on).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from authlib.oauth2 import AuthorizationServer, OAuth2Request
from authlib.oauth2.rfc6749 import ClientMixin, OAuth2Payload
from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant
from authlib.oauth2.rfc9068 import JWTBearerTokenGenerator

from gateway.auth.registry import Client, ClientRegistry
from gateway.auth.tokens import ALGORITHM, TokenKeys


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
        return endpoint == "token" and method in _ClientCredentials.TOKEN_ENDPOINT_AUTH_METHODS

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "client_credentials"


class _ClientCredentials(ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]  # noqa: RUF012


class _TokenGenerator(JWTBearerTokenGenerator):  # type: ignore[misc]
    def __init__(self, keys: TokenKeys, issuer: str, audience: str, ttl: int) -> None:
        # authlib's defaults (audience = client id, 10-day lifetime) are overridden here.
        super().__init__(issuer, alg=ALGORITHM, expires_generator=lambda client, grant_type: ttl)
        self._keys = keys
        self._audience = audience

    def get_jwks(self) -> Any:
        return self._keys.signing

    def get_audiences(self, client: Any, user: Any, scope: Any) -> str:
        return self._audience


class TokenServer(AuthorizationServer):  # type: ignore[misc]
    def __init__(
        self, registry: ClientRegistry, keys: TokenKeys, *, issuer: str, audience: str, ttl: int
    ) -> None:
        super().__init__(scopes_supported=None)
        self._registry = registry
        self.register_grant(_ClientCredentials)
        self.register_token_generator("default", _TokenGenerator(keys, issuer, audience, ttl))

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
        status, body, headers = self.create_token_response(request)
        client = getattr(request, "client", None)
        client_id = client.get_client_id() if client is not None else None
        return status, dict(body), list(headers), client_id
