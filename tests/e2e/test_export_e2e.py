"""End to end over real TLS with two worker processes (`gateway serve --workers 2`) and a real
OAuth client: the streamed export and its signed receipt, and the privacy budget of private
aggregates spent exactly once across the workers."""

from __future__ import annotations

import io
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pandas as pd
import pytest

from gateway.audit.entry import decode_entry
from gateway.audit.reader import read_entries
from gateway.audit.receipt import verify_receipt
from tests.conftest import audit_keys
from tests.servers import gateway, home, initialized, oauth_client, start_server

# the end-to-end fixtures: `gateway init --demo` once, a copy of it per test
__all__ = ["home", "initialized"]

pytestmark = pytest.mark.e2e


def test_export_and_budget_across_two_workers(home: Path) -> None:
    """Promise 6 for a streamed export (a verifiable receipt, one entry naming every row) and
    the DP budget spent exactly once when 24 queries race over two worker processes."""
    server = start_server(home, "--workers", "2")
    try:
        creds = json.loads((home / "demo-client.json").read_text())
        api = oauth_client(server, creds["client_id"], creds["client_secret"])
        token = api.token["access_token"]
        api.close()
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(verify=server.ca, timeout=60, headers=headers) as http:
            url = f"{server.base}/v1/datasets/residents/export?purpose=statistics&format=csv"
            with http.stream("GET", url) as response:
                assert response.status_code == 200
                body = response.read()
            assert verify_receipt(response.headers["audit-receipt"], audit_keys(home))
        frame = pd.read_csv(io.BytesIO(body), dtype=str)
        assert len(frame) == int(response.headers["export-rows"]) > 0

        aggregate = f"{server.base}/v1/datasets/residents/aggregate?purpose=planning"

        def ask(i: int) -> int:
            group_by = ("gender", "province", "province,gender")[i % 3]
            with httpx.Client(verify=server.ca, timeout=60, headers=headers) as http:
                return http.get(f"{aggregate}&group_by={group_by}").status_code

        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(ask, range(24)))
    finally:
        server.stop()
    # The demo planning grant: epsilon 0.25 per query, 2 per day: exactly 8 answers.
    assert statuses.count(200) == 8
    assert statuses.count(429) == 16
    _, stored = read_entries(home / "audit" / "log.sqlite3")
    entries = [decode_entry(e.line) for e in stored]
    exports = [e for e in entries if e.get("export") == "csv"]
    assert len(exports) == 1
    assert exports[0]["rows"] == len(frame)
    spent = [e["dp"] for e in entries if "dp" in e and e["dp"]["spent"] == "yes"]
    assert sorted(d["epsilon_remaining"] for d in spent) == [
        "0", "0.25", "0.5", "0.75", "1", "1.25", "1.5", "1.75"
    ]  # fmt: skip
    verified = gateway("audit", "verify", home=home)
    assert verified.returncode == 0, verified.stdout
