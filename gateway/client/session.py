"""One authenticated HTTPS session with the gateway: tokens, retries, errors and receipts.

Tokens come from authlib's httpx client (the client credentials grant, with a client secret or
a private key, RFC 7523 `private_key_jwt`). authlib fetches a new token by itself when the one
it holds is within `leeway` seconds of expiry, so a long download never meets an expired token;
a token that stops working before then (revoked, the client's secret rotated) gets one fresh
fetch and one more try. 429 and 503 answers are tried again after their `Retry-After`
(`gateway.client.retry`). With audit keys, every answer's `Audit-Receipt` is checked; a receipt
by a key the client does not know yet is checked after following the log's signed key
rotations from the keys it was given (`gateway.audit.rotation`).

A session is not thread-safe: give each thread its own client.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from authlib.integrations.httpx_client import OAuth2Client, OAuthError
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from joserfc.jwk import ECKey, OKPKey, RSAKey

from gateway.audit.receipt import parse_receipt, verify_receipt
from gateway.audit.rotation import follow_rotations
from gateway.audit.signing import key_id
from gateway.audit.verify import load_keys
from gateway.client.errors import ClientError, ProblemError, ReceiptError
from gateway.client.retry import RetryPolicy, delay

Params = Sequence[tuple[str, str]]
ReceiptFields = dict[str, str | int | bytes]
_CURVE_ALGS = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}


class Response(Protocol):
    """What the session reads of an httpx (or httpx2) response."""

    status_code: int
    headers: Mapping[str, str]
    url: Any

    @property
    def content(self) -> bytes: ...

    def read(self) -> bytes: ...

    def iter_bytes(self) -> Iterator[bytes]: ...


def load_private_key(source: str | Path | bytes) -> tuple[Any, str]:
    """A PEM private key (a path or its bytes) as a joserfc key, with the JWS algorithm it signs
    with (EC P-256 ES256, Ed25519 EdDSA, RSA RS256)."""
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    for kind in (ECKey, OKPKey, RSAKey):
        try:
            key: Any = kind.import_key(data)
        except (ValueError, TypeError):
            continue
        if not key.is_private:
            raise ClientError("the key for private_key_jwt is a public key; give the private key")
        if isinstance(key, ECKey):
            curve = str(key.curve_name)
            if curve not in _CURVE_ALGS:
                raise ClientError(f"EC keys on {curve} are not supported; use P-256")
            return key, _CURVE_ALGS[curve]
        if isinstance(key, OKPKey):
            return key, "EdDSA"
        return key, "RS256"
    raise ClientError(
        "could not read the private key: give a PEM file of an EC, Ed25519 or RSA key"
    )


def trusted_keys(keys: Iterable[str | Path | Ed25519PublicKey]) -> dict[str, Ed25519PublicKey]:
    """Audit public keys by key id, from PEM files or key objects."""
    trusted: dict[str, Ed25519PublicKey] = {}
    for item in keys:
        if isinstance(item, Ed25519PublicKey):
            trusted[key_id(item)] = item
        else:
            trusted.update(load_keys([item]))
    if not trusted:
        raise ClientError("receipt checks need at least one audit public key")
    return trusted


def _problem(response: Response) -> dict[str, object]:
    try:
        body = json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        body = None
    if isinstance(body, dict):
        return body
    return {
        "title": f"HTTP {response.status_code}",
        "detail": response.content[:200].decode(errors="replace"),
    }


class Session:
    """Authenticated GETs against one gateway, with retries and receipt checks."""

    def __init__(
        self,
        base_url: str,
        client_id: str,
        *,
        client_secret: str | None,
        private_key: str | Path | bytes | None,
        verify: ssl.SSLContext | bool,
        scope: str | None,
        token_url: str | None,
        retry: RetryPolicy,
        leeway: int,
        timeout: float,
        audit_keys: Iterable[str | Path | Ed25519PublicKey] | None,
        sleep: Callable[[float], None],
    ) -> None:
        if (client_secret is None) == (private_key is None):
            raise ClientError("give either client_secret or private_key (not both, not neither)")
        self.base_url = base_url.rstrip("/")
        self.token_url = token_url or f"{self.base_url}/oauth/token"
        self.retry = retry
        self.keys = trusted_keys(audit_keys) if audit_keys is not None else None
        self.last_receipt: ReceiptFields | None = None
        self._followed: set[str] = set()  # key ids looked up in the log's rotations already
        self._sleep = sleep
        common: dict[str, Any] = {
            "scope": scope,
            "verify": verify,
            "timeout": timeout,
            "leeway": leeway,
            "token_endpoint": self.token_url,
            "grant_type": "client_credentials",  # authlib re-fetches with it before expiry
        }
        if private_key is not None:
            key, alg = load_private_key(private_key)
            self.http: Any = OAuth2Client(
                client_id,
                key,
                token_endpoint_auth_method="private_key_jwt",  # noqa: S106 - a method name
                **common,
            )
            self.http.register_client_auth_method(PrivateKeyJWT(self.token_url, alg=alg))
        else:
            self.http = OAuth2Client(
                client_id,
                client_secret,
                token_endpoint_auth_method="client_secret_basic",  # noqa: S106 - a method name
                **common,
            )

    @property
    def token(self) -> Mapping[str, Any]:
        """The token in use (fetched on first use)."""
        if not self.http.token:
            self.fetch_token()
        token: Mapping[str, Any] = self.http.token
        return token

    def fetch_token(self) -> None:
        try:
            self.http.fetch_token(self.token_url, grant_type="client_credentials")
        except OAuthError as exc:
            raise ProblemError(
                400,
                {"error": exc.error, "error_description": exc.description},
                self.token_url,
            ) from None

    def close(self) -> None:
        self.http.close()

    def check_receipt(self, response: Response) -> ReceiptFields | None:
        """The receipt's fields; verified against the audit keys when the session has them."""
        header = response.headers.get("audit-receipt")
        if header is None:
            if self.keys is not None:
                raise ReceiptError(f"the answer from {response.url} carries no Audit-Receipt")
            return None
        try:
            if self.keys is None:
                return parse_receipt(header)
            kid = parse_receipt(header).get("kid")
            if isinstance(kid, str) and kid not in self.keys and kid not in self._followed:
                self._followed.add(kid)
                self._follow_rotations()
            return verify_receipt(header, self.keys)
        except ValueError as exc:
            raise ReceiptError(f"{exc} (answer from {response.url})") from None

    def _follow_rotations(self) -> None:
        """Trust keys the audit key was rotated to, from the log's own rotation entries signed
        by keys already trusted (`GET /v1/audit/keys`, public; gateway.audit.rotation)."""
        assert self.keys is not None  # noqa: S101 - only called with keys
        answer = self.http.request("GET", f"{self.base_url}/v1/audit/keys", withhold_token=True)
        if answer.status_code != 200:
            return  # an older gateway: the receipt stays unverified and says which key
        try:
            document = json.loads(answer.content)
        except ValueError:
            raise ValueError("the gateway's /v1/audit/keys answer is not JSON") from None
        if not isinstance(document, dict):
            raise ValueError("the gateway's /v1/audit/keys answer is not a JSON object")
        self.keys = follow_rotations(self.keys, document)

    @contextmanager
    def open(self, url: str, params: Params = ()) -> Iterator[Response]:
        """GET `url` (absolute, or a path under the gateway), streamed: the body is read by the
        caller. Errors raise ProblemError after the retries allowed; receipts are checked."""
        target = (
            url if url.startswith("https://") or url.startswith("http://") else self.base_url + url
        )
        if not self.http.token:
            self.fetch_token()
        attempt, refreshed = 0, False
        while True:
            attempt += 1
            wait: float | None = None
            query = list(params) or None  # an empty list would drop the query of a next link
            with self.http.stream("GET", target, params=query) as response:
                if response.status_code == 401 and not refreshed:
                    response.read()
                    refreshed = True
                    attempt -= 1
                else:
                    if response.status_code >= 400:
                        response.read()
                        problem = _problem(response)
                        kind = problem.get("type")
                        wait = delay(
                            self.retry,
                            response.status_code,
                            response.headers,
                            attempt,
                            kind if isinstance(kind, str) else None,
                        )
                        if wait is None:
                            self.last_receipt = self.check_receipt(response)
                            raise ProblemError(
                                response.status_code,
                                problem,
                                str(response.url),
                                dict(response.headers),
                            )
                    else:
                        self.last_receipt = self.check_receipt(response)
                        yield response
                        return
            if wait is None:  # a 401 on the first try: the token stopped working; fetch anew
                self.fetch_token()
            else:
                self._sleep(wait)

    def get(self, url: str, params: Params = ()) -> Response:
        """GET with the whole body read."""
        with self.open(url, params) as response:
            response.read()
            return response
