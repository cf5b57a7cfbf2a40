"""Issue 14, item 6 (and the Basic-credentials part of item 5): the OAuth endpoints against
guessers. Failed client authentication is throttled per client id and per source address across
workers (429 + Retry-After, audited); an unknown client id costs the same work and gets the
same answer as a wrong secret; secret hashing cannot starve the event loop; and no bytes in the
credentials or the form make a 500."""

from __future__ import annotations

import base64
import dataclasses
import json
import threading
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from joserfc.jwk import ECKey
from starlette.testclient import TestClient

import gateway.auth.registry as registry_module
from gateway.app import create_app
from gateway.audit.entry import decode_entry
from gateway.audit.reader import read_entries
from gateway.auth.credentials import ASSERTION_TYPE
from gateway.auth.limits import address_key
from gateway.auth.registry import ClientRegistry
from gateway.errors import ConfigError
from gateway.settings import Settings
from tests.conftest import BASE, Demo, services_of
from tests.kdf import PRODUCTION_N

BOTH_STORES = True  # tests using `demo` run on SQLite and on PostgreSQL
FORM = "application/x-www-form-urlencoded"
GRANT = {"grant_type": "client_credentials"}
Reply = Any  # a TestClient response (Starlette's TestClient brings its own httpx)
PER_CALL = {"audit-receipt", "x-request-id"}  # differ on every call by design


def entries(demo: Demo) -> list[dict[str, Any]]:
    _, stored = read_entries(demo.settings.audit_database)
    return [decode_entry(e.line) for e in stored]


def configured(demo: Demo, **overrides: Any) -> Settings:
    return dataclasses.replace(demo.settings, **overrides)


def add_client(demo: Demo, name: str, **kwargs: Any) -> str:
    reg = ClientRegistry(demo.settings.registry_database)
    try:
        _, secret = reg.add(name, **kwargs)
    finally:
        reg.close()
    assert secret is not None or "jwks" in kwargs
    return secret or ""


class Derivations:
    """Wraps the one scrypt call of the registry: counts it, and can hold it at a gate."""

    def __init__(self, real: Any, gated: bool = False) -> None:
        self._real = real
        self._lock = threading.Lock()
        self.calls = 0
        self.running = 0
        self.most = 0
        self.gate = threading.Event()
        if not gated:
            self.gate.set()

    def __call__(self, *args: Any) -> bytes:
        with self._lock:
            self.calls += 1
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            self.gate.wait(timeout=60)
            result: bytes = self._real(*args)
            return result
        finally:
            with self._lock:
                self.running -= 1


@pytest.fixture
def derivations(monkeypatch: pytest.MonkeyPatch) -> Derivations:
    counting = Derivations(registry_module.derive)
    monkeypatch.setattr(registry_module, "derive", counting)
    return counting


def test_the_unknown_client_hash_is_a_stored_secret_of_the_same_cost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An unknown client id is checked against DUMMY_HASH (written out, so that no process pays
    a scrypt at import): it is what hash_secret makes, with the cost parameters of every stored
    secret, and it matches no secret but its own."""
    monkeypatch.setattr(registry_module, "_N", PRODUCTION_N)  # the tests hash cheaper (kdf.py)
    computed = registry_module.hash_secret("not-a-client", salt=b"\x00" * 16)
    assert computed == registry_module.DUMMY_HASH
    stored = registry_module.hash_secret("any secret")
    assert registry_module.DUMMY_HASH.split("$")[:2] == stored.split("$")[:2]
    assert not registry_module.check_secret("any secret", registry_module.DUMMY_HASH)


def post_basic(client: TestClient, client_id: str, secret: str) -> Reply:
    return client.post("/oauth/token", data=GRANT, auth=(client_id, secret))


# --- throttling ------------------------------------------------------------------------------


def test_wrong_secrets_get_429_with_retry_after_and_are_audited(
    demo: Demo, derivations: Derivations
) -> None:
    """Issue 14.6, promise 6: past the per-client-id limit of failed authentications, 429 with
    Retry-After and an RFC 6749 error body, one audit entry per call (reason auth_throttled),
    and no secret is hashed any more, not even the right one."""
    settings = configured(demo, auth_fail_per_client=3, auth_fail_per_address=100)
    with TestClient(create_app(settings), base_url=BASE) as client:
        before = len(entries(demo))
        statuses = [post_basic(client, demo.client_id, "wrong").status_code for _ in range(3)]
        assert statuses == [401, 401, 401]
        assert derivations.calls == 3
        limited = post_basic(client, demo.client_id, "wrong")
        right = post_basic(client, demo.client_id, demo.client_secret)
        assert derivations.calls == 3  # refused before any hashing
        for response in (limited, right):
            assert response.status_code == 429
            assert 0 < int(response.headers["retry-after"]) <= settings.auth_fail_window
            assert response.headers["content-type"] == "application/json"
            assert response.headers["cache-control"] == "no-store"
            body = response.json()
            assert body["error"] == "temporarily_unavailable"
            assert "retry in" in body["error_description"]
        log = entries(demo)
        assert len(log) == before + 5
        assert [e["reason"] for e in log[-2:]] == ["auth_throttled", "auth_throttled"]
        assert all(e["status"] == 429 and e["decision"] == "deny" for e in log[-2:])
        assert all(e["client"] is None and e["route"] == "/oauth/token" for e in log[-2:])
        # Another client from the same address is not affected by this id's limit.
        other = add_client(demo, "bystander")
        assert post_basic(client, "bystander", other).status_code == 200


def test_address_limit_covers_many_client_ids_and_other_endpoints(demo: Demo) -> None:
    """Issue 14.6: failures are also counted per source address, whatever id is presented and
    at every endpoint that authenticates clients (token, revoke, introspect); another address
    is not affected."""
    settings = configured(demo, auth_fail_per_client=100, auth_fail_per_address=3)
    app = create_app(settings)
    with TestClient(app, base_url=BASE, client=("203.0.113.7", 4000)) as attacker:
        assert post_basic(attacker, "guess-one", "x").status_code == 401
        assert (
            attacker.post("/oauth/revoke", data={"token": "t"}, auth=("guess-two", "x")).status_code
            == 401
        )
        assert (
            attacker.post(
                "/oauth/introspect", data={"token": "t"}, auth=("guess-3", "x")
            ).status_code
            == 401
        )
        refused = attacker.post("/oauth/revoke", data={"token": "t"}, auth=("guess-4", "x"))
        assert refused.status_code == 429
        assert "address" in refused.json()["error_description"]
        assert post_basic(attacker, demo.client_id, demo.client_secret).status_code == 429
        bystander = TestClient(app, base_url=BASE, client=("198.51.100.9", 4000))
        assert post_basic(bystander, demo.client_id, demo.client_secret).status_code == 200
    assert entries(demo)[-1]["reason"] == "token_issued"


def test_failures_are_counted_across_workers(demo: Demo) -> None:
    """Issue 14.6: two gateways on one store (two workers; on PostgreSQL, two hosts) share
    the failure counts: failures split between them add up to one limit."""
    settings = configured(demo, auth_fail_per_client=4, auth_fail_per_address=100)
    with (
        TestClient(create_app(settings), base_url=BASE) as one,
        TestClient(create_app(settings), base_url=BASE) as two,
    ):
        for worker in (one, two, one, two):
            assert post_basic(worker, "shared-target", "wrong").status_code == 401
        assert post_basic(one, "shared-target", "wrong").status_code == 429
        assert post_basic(two, "shared-target", "wrong").status_code == 429


def test_address_key_groups_ipv6_by_64() -> None:
    """Issue 14.6: an IPv6 caller is counted per /64 (its usual allocation), IPv4 per address,
    an IPv4-mapped address as its IPv4 address."""
    assert address_key("2001:db8:1:2::5") == address_key("2001:db8:1:2:ffff::1")
    assert address_key("2001:db8:1:2::5") != address_key("2001:db8:1:3::5")
    assert address_key("192.0.2.1") != address_key("192.0.2.2")
    assert address_key("::ffff:192.0.2.1") == address_key("192.0.2.1")
    assert address_key(None) == "unknown"
    assert address_key("testclient") == "peer:testclient"


def test_throttle_settings_come_from_the_environment() -> None:
    """Issue 14.6: the limits are settings (GATEWAY_AUTH_*), passed on to worker processes, and
    a limit below 1 is refused with the variable's name."""
    env = {
        "GATEWAY_AUTH_FAIL_PER_CLIENT": "7",
        "GATEWAY_AUTH_FAIL_PER_ADDRESS": "70",
        "GATEWAY_AUTH_FAIL_WINDOW": "120",
        "GATEWAY_AUTH_HASH_THREADS": "3",
    }
    read = Settings.from_env(env)
    assert (read.auth_fail_per_client, read.auth_fail_per_address) == (7, 70)
    assert (read.auth_fail_window, read.auth_hash_threads) == (120, 3)
    assert Settings.from_env(read.to_env()) == read
    defaults = Settings()
    assert (defaults.auth_fail_per_client, defaults.auth_fail_per_address) == (10, 50)
    assert (defaults.auth_fail_window, defaults.auth_hash_threads) == (300, 2)
    with pytest.raises(ConfigError, match="GATEWAY_AUTH_HASH_THREADS"):
        Settings.from_env({"GATEWAY_AUTH_HASH_THREADS": "0"})


# --- no client id oracle ---------------------------------------------------------------------


def comparable(response: Reply) -> tuple[int, bytes, list[tuple[str, str]]]:
    headers = sorted((k, v) for k, v in response.headers.items() if k not in PER_CALL)
    return response.status_code, response.content, headers


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_unknown_id_answers_exactly_like_a_wrong_secret(
    demo: Demo, derivations: Derivations, method: str
) -> None:
    """Issue 14.6: an unknown, a disabled and a malformed client id get the same status, body and
    headers as a wrong secret for a registered client (only the per-call receipt and request id
    differ), after the same work: exactly one scrypt run each."""
    add_client(demo, "sleeper")
    reg = ClientRegistry(demo.settings.registry_database)
    reg.set_disabled("sleeper", True)
    reg.close()
    with TestClient(create_app(demo.settings), base_url=BASE) as client:

        def attempt(client_id: str) -> Reply:
            before = derivations.calls
            if method == "client_secret_basic":
                response = post_basic(client, client_id, "not-the-secret")
            else:
                response = client.post(
                    "/oauth/token",
                    data={**GRANT, "client_id": client_id, "client_secret": "not-the-secret"},
                )
            assert derivations.calls == before + 1, client_id
            return response

        known = attempt(demo.client_id)
        assert known.json()["error"] == "invalid_client"
        # RFC 6749 5.2: 401 with a Basic challenge for header credentials, 400 for form ones.
        if method == "client_secret_basic":
            assert known.status_code == 401
            assert known.headers["www-authenticate"].startswith("Basic ")
        else:
            assert known.status_code == 400
            assert "www-authenticate" not in known.headers
        for other in ("no-such-client", "sleeper", "Not A Valid Id\x00"):
            assert comparable(attempt(other)) == comparable(known), other


def test_assertion_for_unknown_id_answers_like_a_wrong_key(demo: Demo) -> None:
    """Issue 14.6: a client assertion naming an unknown id, a secret-based client, or signed by
    the wrong key for a registered private_key_jwt client: one and the same answer."""
    from authlib.oauth2.rfc7523.assertion import private_key_jwt_sign

    key = ECKey.generate_key("P-256")
    key.ensure_kid()
    add_client(demo, "keyed", jwks={"keys": [key.as_dict(private=False)]})
    stranger = ECKey.generate_key("P-256")
    stranger.ensure_kid()
    with TestClient(create_app(demo.settings), base_url=BASE) as client:

        def attempt(client_id: str) -> Reply:
            signed = private_key_jwt_sign(stranger, client_id, f"{BASE}/oauth/token", alg="ES256")
            return client.post(
                "/oauth/token",
                data={**GRANT, "client_assertion_type": ASSERTION_TYPE, "client_assertion": signed},
            )

        wrong_key = attempt("keyed")
        assert wrong_key.status_code == 400
        assert wrong_key.json()["error"] == "invalid_client"
        for other in ("no-such-client", demo.client_id):
            assert comparable(attempt(other)) == comparable(wrong_key), other


# --- the event loop --------------------------------------------------------------------------


def test_guessers_queue_for_hashing_and_healthz_still_answers(demo: Demo) -> None:
    """Issue 14.6: while many token requests with wrong secrets are in flight, at most
    auth_hash_threads secrets are hashed at once (the rest queue among themselves), and
    /healthz is answered before any of them completes."""
    settings = configured(
        demo, auth_hash_threads=2, auth_fail_per_client=1000, auth_fail_per_address=1000
    )
    gate = Derivations(registry_module.derive, gated=True)
    app = create_app(settings)
    guessers = 8
    done: list[int] = []

    async def main() -> int:
        transport = httpx.ASGITransport(app=app)
        async with (
            httpx.AsyncClient(transport=transport, base_url=BASE) as http,
            anyio.create_task_group() as tasks,
        ):

            async def guess(n: int) -> None:
                # Half guess the registered id, half unknown ones: both are hashed.
                guessed = demo.client_id if n % 2 else f"guesser-{n}"
                response = await http.post("/oauth/token", data=GRANT, auth=(guessed, f"x{n}"))
                done.append(response.status_code)

            for n in range(guessers):
                tasks.start_soon(guess, n)
            with anyio.fail_after(60):
                while gate.running < 2:  # two hashing slots taken, the rest waiting
                    await anyio.sleep(0.01)
            health = await http.get("/healthz")
            assert done == []  # every guesser is still in flight
            assert gate.most == 2
            gate.gate.set()
        return health.status_code

    original = registry_module.derive
    registry_module.derive = gate  # type: ignore[assignment]
    try:
        status = anyio.run(main)
    finally:
        registry_module.derive = original
        gate.gate.set()
        services_of(TestClient(app)).close()
    assert status == 200
    assert done == [401] * guessers
    assert gate.calls == guessers
    assert gate.most <= 2


# --- hostile credentials and forms: 4xx, never 5xx, always audited ---------------------------


def b64(raw: bytes) -> bytes:
    return base64.b64encode(raw)


HOSTILE_HEADERS = {
    "non_utf8": b"Basic " + b64(b"\xff\xfe\xfd:secret"),
    "non_utf8_secret": b"Basic " + b64(b"demo:\xc3\x28"),
    "latin1_header": b"Basic \xe9\xe9\xe9",
    "invalid_base64": b"Basic %%%not-base64%%%",
    "missing_colon": b"Basic " + b64(b"demo-without-secret"),
    "empty_secret": b"Basic " + b64(b"demo:"),
    "bad_percent_escape": b"Basic " + b64(b"%ff%fe:secret"),
    "nul_in_id": b"Basic " + b64(b"de\x00mo:secret"),
    "huge": b"Basic " + b64(b"demo:" + b"s" * 6000),
    "bearer_scheme": b"Bearer abc.def.ghi",
    "scheme_only": b"Basic",
}


@pytest.mark.parametrize("case", sorted(HOSTILE_HEADERS))
def test_hostile_basic_credentials_are_invalid_client(
    client: TestClient, demo: Demo, case: str
) -> None:
    """Issue 14.5, promise 10: Basic credentials that are not UTF-8, not base64, without a colon,
    huge, or of another scheme get 401 invalid_client (RFC 6749 5.2, with a Basic challenge),
    never a 500, and one audit entry."""
    before = len(entries(demo))
    response = client.post(
        "/oauth/token",
        content=b"grant_type=client_credentials",
        headers={b"Authorization": HOSTILE_HEADERS[case], b"Content-Type": FORM.encode()},
    )
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"].startswith("Basic ")
    log = entries(demo)
    assert len(log) == before + 1
    assert (log[-1]["status"], log[-1]["reason"]) == (401, "invalid_client")


def test_deeply_nested_assertion_is_invalid_client(client: TestClient, demo: Demo) -> None:
    """Issue 14.5, promise 10: a client assertion whose claims nest thousands of levels deep
    (what a JSON parser answers with RecursionError) is 400 invalid_client, not a 500."""
    nested = base64.urlsafe_b64encode(b"[" * 5000 + b"]" * 5000).rstrip(b"=").decode()
    header = base64.urlsafe_b64encode(b'{"alg":"ES256"}').rstrip(b"=").decode()
    for assertion in (f"{header}.{nested}.c2ln", f"{nested}.{header}.c2ln"):
        response = client.post(
            "/oauth/token",
            data={**GRANT, "client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion},
        )
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "invalid_client"
    assert entries(demo)[-1]["reason"] == "invalid_client"


def test_two_authorization_headers_or_two_methods_are_invalid_request(
    client: TestClient, demo: Demo
) -> None:
    """Issue 14.10, RFC 6749 2.3/3.2: two Authorization headers, HTTP Basic plus form
    credentials, or a repeated parameter are 400 invalid_request, not first-one-wins."""
    basic = "Basic " + base64.b64encode(f"{demo.client_id}:{demo.client_secret}".encode()).decode()
    twice = client.post(
        "/oauth/token",
        content=b"grant_type=client_credentials",
        headers=[("Authorization", basic), ("Authorization", basic), ("Content-Type", FORM)],
    )
    both = client.post(
        "/oauth/token",
        data={**GRANT, "client_secret": demo.client_secret},
        auth=(demo.client_id, demo.client_secret),
    )
    repeated = client.post(
        "/oauth/token",
        content=b"grant_type=client_credentials&grant_type=client_credentials",
        headers={"Authorization": basic, "Content-Type": FORM},
    )
    for response in (twice, both, repeated):
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "invalid_request"
    assert entries(demo)[-1]["reason"] == "invalid_request"


@pytest.fixture
def fuzz_client(demo: Demo, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """A gateway whose throttle stays out of the way, with a cheap stand-in for scrypt (the
    property is about parsing; test_unknown_id_answers_exactly_like_a_wrong_secret covers the
    real hash)."""
    monkeypatch.setattr(
        registry_module, "derive", lambda secret, salt, n, r, p, dklen: bytes(dklen)
    )
    settings = configured(demo, auth_fail_per_client=10**6, auth_fail_per_address=10**6)
    with TestClient(create_app(settings), base_url=BASE) as client:
        yield client


def assert_clean_refusal(response: Reply) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    body = response.json()
    assert "error" in body or response.headers["content-type"] == "application/problem+json"


FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
header_bytes = st.binary(max_size=400).filter(lambda b: b"\r" not in b and b"\n" not in b)


@FUZZ
@given(raw=header_bytes, wrap=st.sampled_from(["raw", "basic", "basic_b64"]))
def test_fuzz_authorization_header(fuzz_client: TestClient, raw: bytes, wrap: str) -> None:
    """Issue 14.5, promise 10: any bytes in the Authorization header of a token request (raw,
    after "Basic ", or base64-encoded as the credentials): a 4xx, never a 5xx."""
    value = {"raw": raw, "basic": b"Basic " + raw, "basic_b64": b"Basic " + b64(raw)}[wrap]
    response = fuzz_client.post(
        "/oauth/token",
        content=b"grant_type=client_credentials",
        headers={b"Authorization": value, b"Content-Type": FORM.encode()},
    )
    assert_clean_refusal(response)


@FUZZ
@given(body=st.binary(max_size=600))
def test_fuzz_form_body(fuzz_client: TestClient, body: bytes) -> None:
    """Issue 14.5, promise 10: any bytes as the form body of the token endpoint: 4xx, not 5xx."""
    assert_clean_refusal(
        fuzz_client.post("/oauth/token", content=body, headers={"Content-Type": FORM})
    )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
fields = st.dictionaries(
    st.sampled_from(
        [
            "grant_type",
            "client_id",
            "client_secret",
            "client_assertion",
            "client_assertion_type",
            "scope",
            "token",
        ]
    ),
    st.text(max_size=60),
    max_size=5,
)


def segment(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


@FUZZ
@given(
    form=fields,
    header=st.dictionaries(
        st.sampled_from(["alg", "kid", "typ", "crit", "jwk"]), json_values, max_size=3
    ),
    claims=st.dictionaries(
        st.sampled_from(["iss", "sub", "aud", "exp", "jti", "nbf"]), json_values, max_size=5
    ),
    endpoint=st.sampled_from(["/oauth/token", "/oauth/revoke", "/oauth/introspect"]),
)
def test_fuzz_form_fields_and_assertions(
    fuzz_client: TestClient,
    form: dict[str, str],
    header: dict[str, Any],
    claims: dict[str, Any],
    endpoint: str,
) -> None:
    """Issue 14.5, promise 10: any text in the credential fields, and client assertions with any
    JSON header and claims, at every endpoint that authenticates clients: 4xx, never 5xx."""
    assertion = f"{segment(header)}.{segment(claims)}.c2ln"
    data = {**form, "client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion}
    for variant in (form, data):
        assert_clean_refusal(fuzz_client.post(endpoint, data=variant))
