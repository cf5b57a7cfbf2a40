"""Issue 3 promises on the OAuth server: client authentication (secrets, private_key_jwt with a
replay cache), revocation and introspection, token key rotation, scopes, rate limits and quotas;
every refusal audited with its reason and a hash of what was presented."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest
from authlib.oauth2.rfc7523.assertion import private_key_jwt_sign
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey
from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.audit.entry import decode_entry
from gateway.audit.reader import read_entries
from gateway.auth.keys import STATE_FILE, rotate
from gateway.auth.registry import ClientRegistry
from gateway.auth.tokens import token_sha256
from tests.conftest import BASE, Demo, client_with, token_for
from tests.doubles import FakeClock

BOTH_STORES = True  # tests using `demo` run on both stores: SQLite and PostgreSQL

TOKEN_URL = f"{BASE}/oauth/token"


def last_entry(demo: Demo) -> dict[str, Any]:
    _, stored = read_entries(demo.settings.audit_database)
    return decode_entry(list(stored)[-1].line)


def registry(demo: Demo) -> ClientRegistry:
    return ClientRegistry(demo.settings.registry_database)


def add_client(demo: Demo, name: str, **kwargs: Any) -> str | None:
    reg = registry(demo)
    try:
        _, secret = reg.add(name, **kwargs)
    finally:
        reg.close()
    return secret


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- private_key_jwt (RFC 7523) -------------------------------------------------------------


@pytest.fixture
def jwt_client(demo: Demo) -> ECKey:
    """A client registered with a public JWKS; returns its private key."""
    key = ECKey.generate_key("P-256")
    key.ensure_kid()
    add_client(demo, "keyed", jwks={"keys": [key.as_dict(private=False)]})
    return key


def assertion(
    key: Any,
    *,
    client_id: str = "keyed",
    audience: str = TOKEN_URL,
    alg: str = "ES256",
    claims: dict[str, Any] | None = None,
) -> str:
    token: str = private_key_jwt_sign(key, client_id, audience, claims=claims, alg=alg)
    return token


def jwt_token_request(client: TestClient, signed: str, client_id: str = "keyed") -> Any:
    return client.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": signed,
        },
    )


def test_private_key_jwt_issues_a_token(client: TestClient, jwt_client: ECKey) -> None:
    """A client holding its registered key gets a token (authlib's own assertion signer)."""
    response = jwt_token_request(client, assertion(jwt_client))
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    assert client.get("/v1/datasets", headers=bearer(token)).status_code == 200


def test_replayed_assertion_is_refused_and_audited(
    client: TestClient, demo: Demo, jwt_client: ECKey
) -> None:
    """RFC 7523 3: an assertion's jti is accepted once; the replay is 401 and logged."""
    signed = assertion(jwt_client)
    assert jwt_token_request(client, signed).status_code == 200
    replay = jwt_token_request(client, signed)
    assert replay.status_code == 400  # RFC 6749 5.2: 401 only when an Authorization header was used
    assert replay.json()["error"] == "invalid_client"
    entry = last_entry(demo)
    assert entry["reason"] == "invalid_client"
    assert entry["route"] == "/oauth/token"


@pytest.mark.parametrize(
    "attack", ["wrong_audience", "other_key", "hs256_with_public_key", "long_lived"]
)
def test_bad_assertions_are_refused(client: TestClient, jwt_client: ECKey, attack: str) -> None:
    """Assertions for another audience, by another key, HMAC-signed with the public key, or valid
    for too long are refused."""
    if attack == "wrong_audience":
        signed = assertion(jwt_client, audience="https://elsewhere.example/token")
    elif attack == "other_key":
        signed = assertion(ECKey.generate_key("P-256"))
    elif attack == "long_lived":
        signed = assertion(jwt_client, claims={"exp": int(time.time()) + 7200})
    else:
        public = OctKey.import_key(json.dumps(jwt_client.as_dict(private=False)).encode())
        now = int(time.time())
        signed = jwt.encode(
            {"alg": "HS256"},
            {"iss": "keyed", "sub": "keyed", "aud": TOKEN_URL, "exp": now + 60, "jti": "x"},
            public,
            algorithms=["HS256"],
        )
    refused = jwt_token_request(client, signed)
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_client"


def test_jwt_client_cannot_use_a_secret(client: TestClient, jwt_client: ECKey) -> None:
    """A private_key_jwt client has no secret to guess."""
    response = client.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=("keyed", "")
    )
    assert response.status_code == 401


# --- client secrets --------------------------------------------------------------------------


def test_secret_of_another_client_and_malformed_basic(client: TestClient, demo: Demo) -> None:
    """Another client's secret, or a Basic header that is not base64, get 401 invalid_client."""
    other = add_client(demo, "other")
    assert other is not None
    wrong = client.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=("demo", other)
    )
    assert wrong.status_code == 401
    garbage = client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": "Basic %%%not-base64%%%"},
    )
    assert garbage.status_code == 401
    assert last_entry(demo)["reason"] == "invalid_client"


def test_rotate_secret(client: TestClient, demo: Demo) -> None:
    """After rotate-secret the old secret fails and the new one works."""
    reg = registry(demo)
    new = reg.rotate_secret("demo")
    reg.close()
    old = client.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=("demo", demo.client_secret)
    )
    assert old.status_code == 401
    assert token_for(client, "demo", new)


def test_rotate_secret_revokes_tokens_issued_before(
    client: TestClient, demo: Demo, token: str
) -> None:
    """Promise 9: after rotate-secret, a token obtained with the old secret stops working at
    once (introspection calls it inactive); a token obtained with the new secret works."""
    assert client.get("/v1/datasets", headers=bearer(token)).status_code == 200
    reg = registry(demo)
    new = reg.rotate_secret("demo")
    reg.close()
    assert client.get("/v1/datasets", headers=bearer(token)).status_code == 401
    assert last_entry(demo)["reason"] == "token_revoked"
    fresh = token_for(client, "demo", new)
    assert client.get("/v1/datasets", headers=bearer(fresh)).status_code == 200
    seen = client.post("/oauth/introspect", data={"token": token}, auth=("demo", new))
    assert seen.json() == {"active": False}


def test_retired_client_is_gone_for_good(client: TestClient, demo: Demo, token: str) -> None:
    """A retired client's tokens stop at once, it gets no new token with its old secret, it
    cannot be enabled or given a new secret, and its id cannot be registered again."""
    from gateway.errors import ConfigError

    reg = registry(demo)
    reg.retire("demo")
    assert client.get("/v1/datasets", headers=bearer(token)).status_code == 401
    refused = client.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, auth=("demo", demo.client_secret)
    )
    assert refused.status_code == 401
    retired = reg.get("demo")
    assert retired is not None
    assert retired.retired
    assert retired.disabled
    assert not retired.check_secret(demo.client_secret)
    with pytest.raises(ConfigError, match="retired"):
        reg.set_disabled("demo", False)
    with pytest.raises(ConfigError, match="retired"):
        reg.rotate_secret("demo")
    with pytest.raises(ConfigError, match="retired"):
        reg.retire("demo")
    with pytest.raises(ConfigError, match="already exists"):
        reg.add("demo")
    reg.close()


def test_registry_made_before_tokens_after_is_upgraded(tmp_path: Path) -> None:
    """A registry created before the cut-off column existed gains it on open; clients stay."""
    import sqlite3

    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE clients (client_id TEXT PRIMARY KEY, secret_hash TEXT NOT NULL,"
            " scopes TEXT NOT NULL, disabled INTEGER NOT NULL DEFAULT 0,"
            " created_ms INTEGER NOT NULL, jwks TEXT, rate_per_min INTEGER, rows_per_day INTEGER)"
        )
        conn.execute(
            "INSERT INTO clients (client_id, secret_hash, scopes, created_ms)"
            " VALUES ('old', '', 'datasets:read', 0)"
        )
    reg = ClientRegistry(path)
    old = reg.get("old")
    assert old is not None
    assert (old.tokens_after, old.retired) == (None, False)
    reg.retire("old")
    retired = reg.get("old")
    assert retired is not None
    assert retired.retired
    reg.close()
    ClientRegistry(path).close()  # opening again finds the column in place


# --- revocation and introspection ------------------------------------------------------------


def test_revoked_token_stops_at_once_and_after_restart(
    client: TestClient, demo: Demo, token: str
) -> None:
    """RFC 7009: a client revokes its token; it fails at once, and still after a restart."""
    auth = (demo.client_id, demo.client_secret)
    assert client.get("/v1/datasets", headers=bearer(token)).status_code == 200
    assert client.post("/oauth/revoke", data={"token": token}, auth=auth).status_code == 200
    refused = client.get("/v1/datasets", headers=bearer(token))
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]
    entry = last_entry(demo)
    assert entry["token_sha256"] == token_sha256(token)
    assert entry["reason"] == "token_revoked"
    with TestClient(create_app(demo.settings), base_url=BASE) as restarted:
        assert restarted.get("/v1/datasets", headers=bearer(token)).status_code == 401


def test_cannot_revoke_another_clients_token(client: TestClient, demo: Demo, token: str) -> None:
    """RFC 7009 2.2: revoking someone else's token answers 200 and changes nothing."""
    secret = add_client(demo, "meddler")
    assert secret is not None
    assert (
        client.post("/oauth/revoke", data={"token": token}, auth=("meddler", secret)).status_code
        == 200
    )
    assert client.get("/v1/datasets", headers=bearer(token)).status_code == 200


def test_introspection(client: TestClient, demo: Demo, token: str) -> None:
    """RFC 7662: own token active with its claims; other client's token inactive unless admin;
    revoked token inactive."""
    auth = (demo.client_id, demo.client_secret)
    own = client.post("/oauth/introspect", data={"token": token}, auth=auth).json()
    assert own["active"] is True
    assert own["client_id"] == "demo"
    assert own["scope"] == "datasets:read"
    stranger = add_client(demo, "stranger")
    admin = add_client(demo, "overseer", scopes=("admin",))
    assert stranger is not None
    assert admin is not None
    assert client.post(
        "/oauth/introspect", data={"token": token}, auth=("stranger", stranger)
    ).json() == {"active": False}
    assert (
        client.post("/oauth/introspect", data={"token": token}, auth=("overseer", admin)).json()[
            "active"
        ]
        is True
    )
    client.post("/oauth/revoke", data={"token": token}, auth=auth)
    assert client.post("/oauth/introspect", data={"token": token}, auth=auth).json() == {
        "active": False
    }
    assert client.post("/oauth/introspect", data={"token": "garbage"}, auth=auth).json() == {
        "active": False
    }


def test_metadata_lists_every_endpoint(client: TestClient) -> None:
    """RFC 8414 metadata names the token, revocation and introspection endpoints and methods."""
    meta = client.get("/.well-known/oauth-authorization-server").json()
    assert meta["issuer"] == BASE
    assert meta["revocation_endpoint"] == f"{BASE}/oauth/revoke"
    assert meta["introspection_endpoint"] == f"{BASE}/oauth/introspect"
    assert "private_key_jwt" in meta["token_endpoint_auth_methods_supported"]
    assert "none" not in meta["token_endpoint_auth_signing_alg_values_supported"]


# --- hostile bearer tokens -------------------------------------------------------------------


def test_oversized_authorization_header_is_refused_and_audited(
    client: TestClient, demo: Demo
) -> None:
    """An Authorization header over 8 KB is a 400, logged with its hash."""
    response = client.get("/v1/datasets", headers={"Authorization": "Bearer " + "a" * 9000})
    assert response.status_code == 400
    entry = last_entry(demo)
    assert entry["status"] == 400
    assert entry["token_sha256"] == token_sha256("a" * 9000)


def test_tampered_payload_and_unknown_kid(client: TestClient, demo: Demo, token: str) -> None:
    """A token whose payload was edited, or one naming a kid we never published, is 401."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["scope"] = "datasets:read audit:read admin"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert (
        client.get("/v1/datasets", headers=bearer(f"{header}.{forged}.{signature}")).status_code
        == 401
    )
    stranger = ECKey.generate_key("P-256")
    now = int(time.time())
    unknown = jwt.encode(
        {"alg": "ES256", "typ": "at+jwt", "kid": "not-ours"},
        {**claims, "iat": now, "exp": now + 60},
        stranger,
        algorithms=["ES256"],
    )
    assert client.get("/v1/datasets", headers=bearer(unknown)).status_code == 401


def test_not_yet_valid_token(client: TestClient, demo: Demo) -> None:
    """A token whose nbf is in the future (beyond the leeway) is refused."""
    key = ECKey.import_key((demo.home / "keys" / "token-es256.key").read_bytes())
    key.ensure_kid()
    now = int(time.time())
    claims = {
        "iss": BASE,
        "aud": f"{BASE}/v1",
        "sub": "demo",
        "client_id": "demo",
        "jti": "n1",
        "scope": "datasets:read",
        "iat": now,
        "exp": now + 600,
        "nbf": now + 300,
    }
    early = jwt.encode(
        {"alg": "ES256", "typ": "at+jwt", "kid": key.kid}, claims, key, algorithms=["ES256"]
    )
    assert client.get("/v1/datasets", headers=bearer(early)).status_code == 401


def test_insufficient_scope_is_403_by_the_book(client: TestClient, demo: Demo) -> None:
    """RFC 6750 3.1: a token without the endpoint family's scope gets 403 insufficient_scope."""
    secret = add_client(demo, "auditor", scopes=("audit:read",))
    assert secret is not None
    auditor = token_for(client, "auditor", secret)
    response = client.get("/v1/datasets", headers=bearer(auditor))
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]
    assert last_entry(demo)["reason"] == "scope_missing"


# --- rate limits and quotas ------------------------------------------------------------------


def test_rate_limit_answers_429_with_headers(demo: Demo, clock: FakeClock) -> None:
    """Past its per-minute rate a client gets 429 with Retry-After and RateLimit-* headers; a
    new calendar minute starts a new window."""
    secret = add_client(demo, "busy", rate_per_min=3)
    assert secret is not None
    with client_with(demo, clock) as client:  # at the start of a minute: one window for all
        busy = token_for(client, "busy", secret)
        clock.advance(10)
        statuses = [client.get("/v1/datasets", headers=bearer(busy)) for _ in range(4)]
        assert [r.status_code for r in statuses] == [200, 200, 200, 429]
        assert statuses[0].headers["ratelimit-limit"] == "3"
        assert statuses[0].headers["ratelimit-remaining"] == "2"
        limited = statuses[3]
        assert int(limited.headers["retry-after"]) > 0
        assert limited.headers["retry-after"] == "50"  # the rest of this calendar minute
        assert limited.headers["ratelimit-remaining"] == "0"
        assert last_entry(demo)["reason"] == "quota_exceeded"
        clock.advance(50)
        assert client.get("/v1/datasets", headers=bearer(busy)).status_code == 200


def test_daily_row_quota_never_releases_a_partial_page(client: TestClient, demo: Demo) -> None:
    """A page that would pass the daily row quota is refused whole; a smaller one still fits."""
    secret = add_client(demo, "thrifty", rows_per_day=30)
    assert secret is not None
    reg = registry(demo)
    reg.close()
    grant_file = demo.home / "policies" / "residents.yaml"
    grant_file.write_text(
        grant_file.read_text().replace("clients: [demo]", "clients: [demo, thrifty]")
    )
    with TestClient(create_app(demo.settings), base_url=BASE) as fresh:
        thrifty = token_for(fresh, "thrifty", secret)
        first = fresh.get(
            "/v1/datasets/residents/rows?purpose=statistics&_size=20", headers=bearer(thrifty)
        )
        assert first.status_code == 200
        refused = fresh.get(
            "/v1/datasets/residents/rows?purpose=statistics&_size=20", headers=bearer(thrifty)
        )
        assert refused.status_code == 429
        assert "rows" not in refused.json()
        assert (
            fresh.get(
                "/v1/datasets/residents/rows?purpose=statistics&_size=10", headers=bearer(thrifty)
            ).status_code
            == 200
        )


# --- token key rotation ----------------------------------------------------------------------


def test_token_key_rotation(demo: Demo, clock: FakeClock) -> None:
    """The next key is published before it signs; the old key keeps validating its tokens until
    they expire, then leaves the JWKS."""
    with client_with(demo, clock) as client:
        token = token_for(client, demo.client_id, demo.client_secret)
        keys_dir = demo.home / "keys"
        first_kid = client.get("/.well-known/jwks.json").json()["keys"][0]["kid"]
        step, next_kid = rotate(keys_dir)
        assert step == "published"
        clock.advance(1.1)  # gateways look at the key state file at most once a second
        published = {k["kid"] for k in client.get("/.well-known/jwks.json").json()["keys"]}
        assert published == {first_kid, next_kid}
        still_old = token_for(client, demo.client_id, demo.client_secret)
        assert (
            json.loads(base64.urlsafe_b64decode(still_old.split(".")[0] + "=="))["kid"] == first_kid
        )
        step, active = rotate(
            keys_dir, force=True
        )  # at once: the JWKS cache window is tested below
        assert (step, active) == ("activated", next_kid)
        clock.advance(1.1)
        fresh = token_for(client, demo.client_id, demo.client_secret)
        assert json.loads(base64.urlsafe_b64decode(fresh.split(".")[0] + "=="))["kid"] == next_kid
        assert not (keys_dir / "token-es256.key").exists()  # the retired private key is gone
        assert client.get("/v1/datasets", headers=bearer(token)).status_code == 200  # old token ok
        # Pretend the retirement happened long ago: every old token has expired by now.
        state = json.loads((keys_dir / STATE_FILE).read_text())
        for entry in state["keys"]:
            if entry["state"] == "retired":
                entry["retired_at"] = 0
        (keys_dir / STATE_FILE).write_text(json.dumps(state))
        clock.advance(1.1)
        assert {k["kid"] for k in client.get("/.well-known/jwks.json").json()["keys"]} == {next_kid}
        assert client.get("/v1/datasets", headers=bearer(token)).status_code == 401
        assert client.get("/v1/datasets", headers=bearer(fresh)).status_code == 200


def test_second_rotation_step_waits_for_jwks_caches(demo: Demo) -> None:
    """Promise 9 (no token signed by a key verifiers cannot know): activating the next token
    key within the JWKS cache lifetime of its publication is refused, nothing changes, and the
    message says when to run it again; after the window, or with force, it proceeds."""
    from gateway.auth.keys import JWKS_MAX_AGE, read_state
    from gateway.errors import ConfigError

    keys_dir = demo.home / "keys"
    published_at = 1_800_000_000.0
    step, next_kid = rotate(keys_dir, now=published_at)
    assert step == "published"
    before = (keys_dir / STATE_FILE).read_bytes()
    for elapsed in (0, 1, JWKS_MAX_AGE - 1):
        with pytest.raises(ConfigError, match=r"published \d+ s ago.*again in \d+ s.*--force"):
            rotate(keys_dir, now=published_at + elapsed)
        assert (keys_dir / STATE_FILE).read_bytes() == before  # refused: nothing changed
    assert [e["state"] for e in read_state(keys_dir)] == ["active", "next"]
    step, active = rotate(keys_dir, now=published_at + JWKS_MAX_AGE)
    assert (step, active) == ("activated", next_kid)
    step, newer = rotate(keys_dir, now=published_at + JWKS_MAX_AGE + 1)
    assert step == "published"
    step, forced = rotate(keys_dir, force=True, now=published_at + JWKS_MAX_AGE + 2)
    assert (step, forced) == ("activated", newer)


@pytest.mark.parametrize("stamp", ['"soon"', "true", "null", "[1]"])
def test_hostile_publication_time_is_refused_or_ignored(demo: Demo, stamp: str) -> None:
    """A state file whose publication time is not a number is refused with the file named
    (null counts as a state file written before publication times were recorded)."""
    from gateway.errors import ConfigError

    keys_dir = demo.home / "keys"
    rotate(keys_dir)
    state = json.loads((keys_dir / STATE_FILE).read_text())
    state["keys"][-1]["published_at"] = json.loads(stamp)
    (keys_dir / STATE_FILE).write_text(json.dumps(state))
    if stamp == "null":
        assert rotate(keys_dir)[0] == "activated"
        return
    with pytest.raises(ConfigError, match="published_at"):
        rotate(keys_dir)


def test_registry_rejects_private_jwks(tmp_path: Path) -> None:
    """A JWKS with private key material is refused at registration."""
    from gateway.errors import ConfigError

    reg = ClientRegistry(tmp_path / "r.sqlite3")
    key = ECKey.generate_key("P-256")
    with pytest.raises(ConfigError, match="private"):
        reg.add("leaky", jwks={"keys": [key.as_dict(private=True)]})
    reg.close()
