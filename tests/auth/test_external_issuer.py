"""Tokens from a trusted external identity provider: a second, in-process issuer serves its JWKS
over HTTP on loopback; the gateway accepts its tokens for registered clients only, with its
pinned algorithms and audience, and refreshes the JWKS on an unknown kid at most every 30 s."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.auth.issuers import load_issuers
from gateway.errors import ConfigError
from tests.conftest import BASE, Demo, services_of

IDP = "https://idp.agency.example/realms/open-data"


@dataclass
class FakeIdP:
    """An identity provider: RSA keys and a JWKS endpoint that counts its fetches."""

    keys: list[RSAKey] = field(default_factory=list)
    fetches: int = 0
    url: str = ""

    def add_key(self) -> RSAKey:
        key = RSAKey.generate_key(2048)
        key.ensure_kid()
        self.keys.append(key)
        return key

    def jwks(self) -> dict[str, Any]:
        return dict(KeySet(list(self.keys)).as_dict(private=False))

    def mint(self, key: RSAKey, **changes: Any) -> str:
        now = int(time.time())
        claims = {
            "iss": IDP,
            "aud": f"{BASE}/v1",
            "azp": "demo",
            "sub": "user-1",
            "scope": "datasets:read audit:read",
            "iat": now,
            "exp": now + 300,
            "jti": f"kc-{now}",
        }
        claims.update(changes)
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode(
            {"alg": "RS256", "typ": "JWT", "kid": key.kid}, claims, key, algorithms=["RS256"]
        )


@pytest.fixture
def idp() -> Iterator[FakeIdP]:
    state = FakeIdP()
    state.add_key()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.fetches += 1
            body = json.dumps(state.jwks()).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/certs"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def federated(demo: Demo, idp: FakeIdP) -> Iterator[TestClient]:
    (demo.home / "issuers.yaml").write_text(
        f"issuers:\n  - issuer: {IDP}\n    jwks_uri: {idp.url}\n    audience: {BASE}/v1\n"
        "    client_claim: azp\n    algorithms: [RS256]\n    typ: JWT\n"
    )
    with TestClient(create_app(demo.settings), base_url=BASE) as client:
        yield client


def status(client: TestClient, token: str) -> int:
    return client.get("/v1/datasets", headers={"Authorization": f"Bearer {token}"}).status_code


def test_external_token_is_accepted_for_a_registered_client(
    federated: TestClient, idp: FakeIdP
) -> None:
    """A token of the trusted issuer naming a registered client (claim azp) is accepted; its
    scopes are cut to the client's registered scopes."""
    token = idp.mint(idp.keys[0])
    assert status(federated, token) == 200
    # demo is registered for datasets:read only, so audit:read from the IdP does not count.
    assert (
        federated.get(
            "/v1/audit/entries?from=0&to=1", headers={"Authorization": f"Bearer {token}"}
        ).status_code
        == 403
    )


@pytest.mark.parametrize(
    "changes",
    [
        {"aud": "https://other.example/v1"},
        {"azp": "nobody"},
        {"azp": None},
        {"exp": int(time.time()) - 600},
        {"iss": "https://evil.example/realms/x"},
    ],
)
def test_external_token_violations(
    federated: TestClient, idp: FakeIdP, changes: dict[str, Any]
) -> None:
    """Wrong audience, unregistered or missing client, expired, or an untrusted issuer: 401."""
    assert status(federated, idp.mint(idp.keys[0], **changes)) == 401


def test_unpinned_algorithm_is_refused(federated: TestClient, idp: FakeIdP) -> None:
    """The issuer is pinned to RS256: a PS256 token from the same key is refused."""
    now = int(time.time())
    claims = {
        "iss": IDP,
        "aud": f"{BASE}/v1",
        "azp": "demo",
        "iat": now,
        "exp": now + 60,
        "jti": "p",
    }
    key = idp.keys[0]
    token = jwt.encode(
        {"alg": "PS256", "typ": "JWT", "kid": key.kid}, claims, key, algorithms=["PS256"]
    )
    assert status(federated, token) == 401


def test_unknown_kid_refreshes_at_most_every_30_seconds(
    federated: TestClient, idp: FakeIdP
) -> None:
    """A rotated IdP key is picked up on the first unknown kid after 30 s; a flood of unknown
    kids does not make the gateway hammer the IdP."""
    issuer_keys = services_of(federated).tokens._external[IDP]
    now = [1000.0]
    issuer_keys.clock = lambda: now[0]
    assert status(federated, idp.mint(idp.keys[0])) == 200
    fetched = idp.fetches
    rotated = idp.add_key()
    assert status(federated, idp.mint(rotated)) == 401  # unknown kid, but refreshed < 30 s ago
    assert idp.fetches == fetched
    now[0] += 31
    assert status(federated, idp.mint(rotated)) == 200  # one refresh finds the new key
    assert idp.fetches == fetched + 1
    stranger = RSAKey.generate_key(2048)
    stranger.ensure_kid()
    for _ in range(5):
        assert status(federated, idp.mint(stranger)) == 401
    assert idp.fetches == fetched + 1  # the flood caused no fetch
    now[0] += 31
    assert status(federated, idp.mint(stranger)) == 401
    assert idp.fetches == fetched + 2  # one more, after 30 s


def test_issuer_config_is_validated(tmp_path: Any) -> None:
    """Plain-HTTP JWKS off loopback, symmetric algorithms and unknown keys are refused."""
    cases = {
        "jwks_uri: http://idp.example/certs": "https",
        "jwks_uri: https://idp.example/certs\n    algorithms: [HS256]": "asymmetric",
        "jwks_uri: https://idp.example/certs\n    colour: blue": "unknown key",
    }
    for extra, message in cases.items():
        path = tmp_path / "issuers.yaml"
        path.write_text(f"issuers:\n  - issuer: {IDP}\n    audience: x\n    {extra}\n")
        with pytest.raises(ConfigError, match=message):
            load_issuers(path, tmp_path)
