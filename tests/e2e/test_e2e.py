"""End to end, as a user runs it: `gateway init --demo`, `gateway serve` over real TLS, a real
OAuth client (authlib's httpx client) trusting the generated CA, then `gateway audit verify`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pandas as pd
import pytest
from authlib.integrations.httpx_client import OAuth2Client

from gateway.audit.entry import decode_entry
from gateway.audit.reader import read_entries
from gateway.audit.receipt import verify_receipt
from gateway.data.checksums import id_card_valid
from tests.conftest import audit_keys
from tests.paths import REPO
from tests.servers import (
    Server,
    free_port,
    gateway,
    home,
    initialized,
    oauth_client,
    server,
    start_server,
)

# the end-to-end fixtures: `gateway init --demo` once, a copy of it per test, `gateway serve` on TLS
__all__ = ["home", "initialized", "server"]

pytestmark = pytest.mark.e2e


def entry_count(home: Path) -> int:
    _, entries = read_entries(home / "audit" / "log.sqlite3")
    return sum(1 for _ in entries)


def test_walking_skeleton_over_tls(home: Path, server: Server) -> None:
    """Token -> datasets -> masked rows over HTTPS; 401 and 404 audited; the log verifies, and a
    flipped byte in the log file makes verification fail at that entry's index."""
    creds = json.loads((home / "demo-client.json").read_text())
    assert (home / "demo-client.json").stat().st_mode & 0o777 == 0o600
    api = oauth_client(server, creds["client_id"], creds["client_secret"])

    listing = api.get(f"{server.base}/v1/datasets")
    assert listing.status_code == 200
    assert {d["id"] for d in listing.json()["datasets"]} == {"enterprise_registry", "residents"}
    assert verify_receipt(listing.headers["audit-receipt"], audit_keys(home))

    rows = api.get(
        f"{server.base}/v1/datasets/enterprise_registry/rows",
        params={"_size": 25, "purpose": "market-analysis"},
    )
    assert rows.status_code == 200
    released = pd.DataFrame(rows.json()["rows"])
    source = pd.read_csv(home / "data" / "enterprise_registry.csv", dtype=str)
    # Released rows come in a keyed order; join them to the source on the public credit code.
    joined = released.merge(source, on="credit_code", suffixes=("", "_raw"))
    assert len(joined) == 25
    for masked, real in zip(
        joined["legal_rep_mobile"], joined["legal_rep_mobile_raw"], strict=True
    ):
        assert masked != real
        assert masked == real[:3] + "*" * (len(real) - 3)  # mask first: 3, the carrier only
    # A 身份证号 is 核心: it leaves only as a synthetic, valid-looking number, never the real one.
    for synthetic, real in zip(
        joined["legal_rep_id_card"], joined["legal_rep_id_card_raw"], strict=True
    ):
        assert synthetic != real
        assert id_card_valid(synthetic)
    assert not set(joined["legal_rep_id_card"]) & set(source["legal_rep_id_card"])

    before = entry_count(home)
    bad = httpx.post(
        f"{server.base}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(creds["client_id"], "wrong"),
        verify=server.ca,
    )
    assert bad.status_code == 401
    assert entry_count(home) == before + 1

    api.close()
    added = gateway("clients", "add", "outsider", home=home)
    secret = next(
        line.split()[-1] for line in added.stdout.splitlines() if line.startswith("client_secret")
    )
    outsider = oauth_client(server, "outsider", secret)
    denied = outsider.get(f"{server.base}/v1/datasets/residents/rows")
    unknown = outsider.get(f"{server.base}/v1/datasets/does_not_exist/rows")
    assert denied.status_code == unknown.status_code == 404
    assert denied.json()["detail"] == unknown.json()["detail"]
    outsider.close()

    server.stop()
    verified = gateway("audit", "verify", home=home)
    assert verified.returncode == 0
    assert verified.stdout.startswith("OK:")

    # Flip one byte of entry 3 inside the SQLite file itself.
    log_file = home / "audit" / "log.sqlite3"
    _, entries = read_entries(log_file)
    target = next(e for e in entries if e.idx == 3)
    assert decode_entry(target.line)["idx"] == 3
    data = bytearray(log_file.read_bytes())
    at = data.find(target.line)
    assert at >= 0
    while at >= 0:
        data[at + len(target.line) // 2] ^= 0x01
        at = data.find(target.line, at + 1)
    log_file.write_bytes(bytes(data))
    tampered = gateway("audit", "verify", home=home, check=False)
    assert tampered.returncode == 1
    assert "entry 3 INVALID" in tampered.stdout


def test_two_workers_share_one_chain(home: Path) -> None:
    """With --workers 2, concurrent calls get exactly one entry each, in one verifiable chain."""
    server = start_server(home, "--workers", "2")
    try:
        creds = json.loads((home / "demo-client.json").read_text())
        api = oauth_client(server, creds["client_id"], creds["client_secret"])
        token = api.token["access_token"]
        api.close()
        before = entry_count(home)
        paths = [
            "/healthz",
            "/v1/datasets",
            "/v1/datasets/residents/rows?purpose=statistics&_size=5",
            "/v1/datasets/x",
        ] * 15

        def call(path: str) -> int:
            with httpx.Client(verify=server.ca, timeout=30) as http:
                headers = {"Authorization": f"Bearer {token}"}
                return http.get(server.base + path, headers=headers).status_code

        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(call, paths))
        assert statuses.count(200) == 45
        assert statuses.count(404) == 15
        assert entry_count(home) == before + len(paths)
    finally:
        server.stop()
    verified = gateway("audit", "verify", home=home)
    assert verified.returncode == 0, verified.stdout


def test_invalid_policy_stops_start_up_with_file_and_line(home: Path) -> None:
    """Promise 8: an invalid policy file stops `gateway serve` with file:line and the problem."""
    policy = home / "policies" / "residents.yaml"
    text = policy.read_text()
    target = "transform: mask, preset: credit_code"
    line = text[: text.index(target)].count("\n") + 1
    policy.write_text(text.replace(target, "transform: maks"))
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--home", str(home), "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ},
    )
    assert result.returncode == 1
    assert f"residents.yaml:{line}:" in result.stderr
    assert "unknown transform 'maks'" in result.stderr


def test_kill_9_under_load_loses_no_delivered_call(home: Path) -> None:
    """Promise 6 under a crash: kill -9 during load; the log still verifies and holds every call
    whose response (and receipt) was delivered."""
    import threading

    from gateway.audit.reader import read_log
    from gateway.audit.receipt import parse_receipt

    server = start_server(home, "--workers", "2")
    receipts: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(verify=server.ca, timeout=10) as http:
            while not stop.is_set():
                try:
                    response = http.get(f"{server.base}/v1/datasets")
                except httpx.HTTPError:
                    return  # the server is gone
                with lock:
                    receipts.append(response.headers["audit-receipt"])

    threads = [threading.Thread(target=load) for _ in range(8)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60
    while len(receipts) < 60 and time.monotonic() < deadline:  # under load: calls delivered
        time.sleep(0.05)
    os.killpg(server.process.pid, signal.SIGKILL)
    server.process.wait(10)
    stop.set()
    for thread in threads:
        thread.join(15)
    assert len(receipts) > 50

    verified = gateway("audit", "verify", home=home, check=False)
    assert verified.returncode == 0, verified.stdout
    contents = read_log(home / "audit" / "log.sqlite3")
    leaves = {e.idx: e.line for e in contents.entries}
    from gateway.audit.entry import leaf_hash

    for header in receipts:
        fields = parse_receipt(header)
        assert leaf_hash(leaves[int(fields["idx"])]) == fields["leaf"]


def test_developer_receipt_example_runs(home: Path) -> None:
    """The Python example of docs/audit.md runs as written: receipt -> checkpoint -> proof."""
    import re

    doc = (REPO / "docs" / "audit.md").read_text()
    example = re.search(r"```python\n(.*?)```", doc, flags=re.S)
    assert example is not None
    server = start_server(home, env={"GATEWAY_CHECKPOINT_SECONDS": "1"})
    try:
        env = {
            **os.environ,
            "GW": server.base,
            "CA": str(home / "keys" / "ca.crt"),
            "AUDIT_PUB": str(home / "keys" / "audit-ed25519.pub"),
        }
        result = subprocess.run(
            [sys.executable, "-c", example.group(1)],
            cwd=home,
            env=env,
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
    finally:
        server.stop()
    assert result.returncode == 0, result.stderr
    assert "is in the signed tree of size" in result.stdout
    assert (home / "checkpoint.note").read_text().startswith("public-data-gateway/")


def test_oauth_across_two_workers(home: Path, tmp_path: Path) -> None:
    """Over TLS with --workers 2: authlib's client authenticates with private_key_jwt; a revoked
    token fails on every worker at once; a rate limit is exact across workers."""
    from authlib.oauth2.rfc7523 import PrivateKeyJWT
    from joserfc.jwk import ECKey

    key = ECKey.generate_key("P-256")
    key.ensure_kid()
    jwks = tmp_path / "client-jwks.json"
    jwks.write_text(json.dumps({"keys": [key.as_dict(private=False)]}))
    server = start_server(home, "--workers", "2")
    try:
        token_url = f"{server.base}/oauth/token"

        def token_of(client_id: str) -> str:
            api = OAuth2Client(
                client_id, key, token_endpoint_auth_method="private_key_jwt", verify=server.ca
            )
            api.register_client_auth_method(PrivateKeyJWT(token_url, alg="ES256"))
            token: str = api.fetch_token(token_url, grant_type="client_credentials")["access_token"]
            api.close()
            return token

        def call(token: str) -> int:
            with httpx.Client(verify=server.ca, timeout=30) as http:
                return http.get(
                    f"{server.base}/v1/datasets", headers={"Authorization": f"Bearer {token}"}
                ).status_code

        # Rate windows are calendar minutes: the 30 calls must fall in one. Rather than waiting
        # for a fresh minute, a run that straddles two is done again with a new client.
        for attempt in range(3):
            client_id = f"keyed-{attempt}"
            gateway(
                "clients", "add", client_id, "--jwks", str(jwks), "--rate-limit", "20", home=home
            )
            token = token_of(client_id)
            minute = time.time() // 60
            with ThreadPoolExecutor(6) as pool:
                statuses = list(pool.map(call, [token] * 30))
            if time.time() // 60 == minute:
                break
        else:
            raise AssertionError("three runs in a row each straddled two calendar minutes")
        assert statuses.count(200) == 20  # exactly the per-minute rate, across both workers
        assert statuses.count(429) == 10

        creds = json.loads((home / "demo-client.json").read_text())
        demo = oauth_client(server, creds["client_id"], creds["client_secret"])
        demo_token = demo.token["access_token"]
        demo.close()
        with httpx.Client(verify=server.ca, timeout=30) as http:
            revoked = http.post(
                f"{server.base}/oauth/revoke",
                data={"token": demo_token},
                auth=(creds["client_id"], creds["client_secret"]),
            )
        assert revoked.status_code == 200

        def after_revoke(_: int) -> int:
            with httpx.Client(
                verify=server.ca, timeout=30
            ) as http:  # new connections: both workers
                return http.get(
                    f"{server.base}/v1/datasets", headers={"Authorization": f"Bearer {demo_token}"}
                ).status_code

        with ThreadPoolExecutor(6) as pool:
            assert set(pool.map(after_revoke, range(20))) == {401}
    finally:
        server.stop()
    assert gateway("audit", "verify", home=home).returncode == 0


def test_auth_doc_examples_run(home: Path, tmp_path: Path) -> None:
    """Both Python examples of docs/auth.md run as written against a live TLS server."""
    import re

    from joserfc.jwk import ECKey

    doc = (REPO / "docs" / "auth.md").read_text()
    secret_example, key_example = re.findall(r"```python\n(.*?)```", doc, flags=re.S)
    key = ECKey.generate_key("P-256")
    key.ensure_kid()
    (tmp_path / "client.pem").write_bytes(key.as_pem(private=True))
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [key.as_dict(private=False)]}))
    gateway("clients", "add", "keyed", "--jwks", str(tmp_path / "jwks.json"), home=home)
    creds = json.loads((home / "demo-client.json").read_text())
    server = start_server(home)
    try:
        base_env = {**os.environ, "GW": server.base, "CA": str(home / "keys" / "ca.crt")}
        runs = [
            (
                secret_example,
                {"CLIENT_ID": creds["client_id"], "CLIENT_SECRET": creds["client_secret"]},
            ),
            (key_example, {"CLIENT_ID": "keyed", "CLIENT_KEY": str(tmp_path / "client.pem")}),
        ]
        outputs = []
        for code, extra in runs:
            result = subprocess.run(
                [sys.executable, "-c", code],
                env={**base_env, **extra},
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert result.returncode == 0, result.stderr
            outputs.append(result.stdout)
    finally:
        server.stop()
    assert "enterprise_registry" in outputs[0]
    assert "token expires in 600 s" in outputs[1]


def test_policy_edit_under_two_workers(home: Path) -> None:
    """Under --workers 2: a bad edit leaves the old set serving in both workers (status shows the
    error); a good edit goes live in both; each is logged exactly once."""
    from gateway.audit.entry import decode_entry as decode

    added = gateway("clients", "add", "root-admin", "--scope", "admin", home=home)
    lines = added.stdout.splitlines()
    secret = next(line.split()[-1] for line in lines if line.startswith("client_secret"))
    # Each worker looks for edits every 0.2 s here (the shipped default, 2 s, is a setting).
    server = start_server(home, "--workers", "2", env={"GATEWAY_POLICY_POLL_SECONDS": "0.2"})
    try:
        admin = oauth_client(server, "root-admin", secret).token["access_token"]

        def statuses() -> dict[int, dict[str, object]]:
            seen: dict[int, dict[str, object]] = {}
            for _ in range(80):
                with httpx.Client(verify=server.ca, timeout=10) as http:  # a new connection each
                    body = http.get(
                        f"{server.base}/v1/admin/status",
                        headers={"Authorization": f"Bearer {admin}"},
                    ).json()
                seen[int(body["worker"])] = body["policy"]
                if len(seen) == 2:
                    break
            return seen

        def settled(
            done: Callable[[dict[int, dict[str, object]]], bool],
        ) -> dict[int, dict[str, object]]:
            # Each worker notices an edit within 0.2 s; under load it may take longer. Poll
            # until both workers show the outcome (a generous deadline, not a timing check).
            deadline = time.monotonic() + 90
            while True:
                seen = statuses()
                if (len(seen) == 2 and done(seen)) or time.monotonic() > deadline:
                    return seen
                time.sleep(0.1)

        before = statuses()
        assert len(before) == 2
        (original,) = {s["active"] for s in before.values()}
        policy = home / "policies" / "residents.yaml"
        good_text = policy.read_text()
        assert "transform: mask, preset: credit_code" in good_text
        policy.write_text(
            good_text.replace("transform: mask, preset: credit_code", "transform: maks")
        )
        bad = settled(lambda seen: all(s["last_error"] for s in seen.values()))
        assert len(bad) == 2
        assert {s["active"] for s in bad.values()} == {original}
        assert all("maks" in str(s["last_error"]) for s in bad.values())
        policy.write_text(good_text.replace("rows_per_request: 500", "rows_per_request: 300"))
        good = settled(lambda seen: all(s["active"] != original for s in seen.values()))
        assert len(good) == 2
        (new_hash,) = {s["active"] for s in good.values()}
        assert new_hash != original
        assert all(s["last_error"] is None for s in good.values())
    finally:
        server.stop()
    _, stored = read_entries(home / "audit" / "log.sqlite3")
    events = [decode(e.line) for e in stored]
    reloads = [e for e in events if e.get("action") == "policy.reload"]
    rejected = [e for e in events if e.get("action") == "policy.rejected"]
    # The set the two workers started with went live once, logged once (by one of them).
    started = [e for e in reloads if e.get("trigger") == "start"]
    assert len(started) == 1
    assert started[0]["new"] == original
    reloads = [e for e in reloads if e.get("trigger") != "start"]
    assert len(reloads) == 1
    assert (reloads[0]["old"], reloads[0]["new"]) == (original, new_hash)
    assert len(rejected) == 1
