"""Promise 9: access tokens are checked strictly (pinned algorithm, typ, iss, aud, exp, iat, jti,
client), with 60 s of leeway and nothing more."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey
from starlette.testclient import TestClient

from tests.conftest import BASE, Demo


def signing_key(demo: Demo) -> ECKey:
    key = ECKey.import_key((demo.home / "keys" / "token-es256.key").read_bytes())
    key.ensure_kid()
    return key


def claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": BASE,
        "aud": f"{BASE}/v1",
        "sub": "demo",
        "client_id": "demo",
        "scope": "datasets:read",
        "iat": now,
        "exp": now + 600,
        "jti": "t-" + str(now),
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def mint(key: Any, header: dict[str, Any] | None = None, **changes: Any) -> str:
    head = {"alg": "ES256", "typ": "at+jwt", "kid": getattr(key, "kid", None)}
    head.update(header or {})
    head = {k: v for k, v in head.items() if v is not None}
    return jwt.encode(head, claims(**changes), key, algorithms=[str(head["alg"])])


def status(client: TestClient, token: str) -> int:
    return client.get("/v1/datasets", headers={"Authorization": f"Bearer {token}"}).status_code


def test_well_formed_token_is_accepted(client: TestClient, demo: Demo) -> None:
    """A token minted exactly like the gateway's own is accepted (the harness itself is sound)."""
    assert status(client, mint(signing_key(demo))) == 200


def test_leeway_is_sixty_seconds(client: TestClient, demo: Demo) -> None:
    """Expired 30 s ago passes (clock skew); expired 120 s ago does not."""
    now = int(time.time())
    key = signing_key(demo)
    assert status(client, mint(key, exp=now - 30, iat=now - 630)) == 200
    assert status(client, mint(key, exp=now - 120, iat=now - 720)) == 401


@pytest.mark.parametrize(
    "changes",
    [
        {"aud": "https://elsewhere.example/v1"},
        {"aud": BASE},
        {"iss": "https://evil.example"},
        {"jti": None},
        {"exp": None},
        {"iat": None},
        {"client_id": None},
        {"client_id": "nobody", "sub": "nobody"},
        {"iat": int(time.time()) + 3600, "exp": int(time.time()) + 4000},
    ],
)
def test_claim_violations_are_rejected(
    client: TestClient, demo: Demo, changes: dict[str, Any]
) -> None:
    """Wrong aud or iss, a missing required claim, an unknown client or a future iat: 401."""
    assert status(client, mint(signing_key(demo), **changes)) == 401


def test_wrong_typ_is_rejected(client: TestClient, demo: Demo) -> None:
    """RFC 9068: a JWT that is not typed at+jwt (say, an ID token) is not an access token."""
    assert status(client, mint(signing_key(demo), header={"typ": "JWT"})) == 401


def test_foreign_key_is_rejected(client: TestClient, demo: Demo) -> None:
    """A token signed by another key, even one claiming the gateway's kid, is rejected."""
    forger = ECKey.generate_key("P-256")
    assert status(client, mint(forger, header={"kid": signing_key(demo).kid})) == 401


def test_algorithm_confusion_is_rejected(client: TestClient, demo: Demo) -> None:
    """HS256 keyed with the published public key, and alg=none, are both refused."""
    public_jwk = json.dumps(signing_key(demo).as_dict(private=False)).encode()
    hmac_key = OctKey.import_key(public_jwk)
    forged = jwt.encode({"alg": "HS256", "typ": "at+jwt"}, claims(), hmac_key, algorithms=["HS256"])
    assert status(client, forged) == 401

    def b64(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    unsigned = f"{b64({'alg': 'none', 'typ': 'at+jwt'})}.{b64(claims())}."
    assert status(client, unsigned) == 401


def test_token_without_data_scope_is_403(client: TestClient, demo: Demo) -> None:
    """A valid token lacking the datasets:read scope is refused with 403."""
    assert status(client, mint(signing_key(demo), scope="audit:read")) == 403
