"""The streaming export (GET /v1/datasets/{id}/export): the whole released view in one response,
the same rows paging would give, one audit entry committed before the first byte (promise 6),
counted against the row quota, filters on released values only (promise 3)."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from starlette.testclient import TestClient

from gateway.api.export import CHUNK, csv_stream
from gateway.app import create_app
from gateway.audit.entry import decode_entry
from gateway.audit.reader import read_entries
from gateway.audit.rowset import decode_rows
from gateway.audit.schema import SEQUENCER
from gateway.runtime.released import to_arrow
from tests.conftest import BASE, Demo, services_of, token_for

EXPORT = "/v1/datasets/residents/export?purpose=statistics"
ROWS = "/v1/datasets/residents/rows?purpose=statistics"


def get(client: TestClient, token: str, url: str) -> Any:
    return client.get(url, headers={"Authorization": f"Bearer {token}"})


def paged(client: TestClient, token: str, query: str = "") -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor = None
    while True:
        url = f"{ROWS}&_size=500{query}" + (f"&_next={cursor}" if cursor else "")
        page = get(client, token, url).json()
        rows.extend(page["rows"])
        cursor = page["next"]
        if cursor is None:
            return rows


def parse(fmt: str, body: bytes) -> pd.DataFrame:
    if fmt == "csv":
        return pd.read_csv(io.BytesIO(body), dtype=str, keep_default_na=False)
    if fmt == "ndjson":
        return pd.DataFrame([json.loads(line) for line in body.decode().splitlines()])
    frame: pd.DataFrame = pq.read_table(io.BytesIO(body)).to_pandas()
    return frame


def last_entry(demo: Demo) -> dict[str, Any]:
    _, stored = read_entries(demo.settings.audit_database)
    entry: dict[str, Any] = [decode_entry(e.line) for e in stored][-1]
    return entry


@pytest.mark.parametrize("fmt", ["csv", "ndjson", "parquet"])
def test_export_holds_exactly_the_rows_paging_gives(
    client: TestClient, token: str, fmt: str
) -> None:
    """Every released row once, in the order paging gives, in each format."""
    expected = pd.DataFrame(paged(client, token))
    response = get(client, token, f"{EXPORT}&format={fmt}")
    assert response.status_code == 200, response.text
    got = parse(fmt, response.content)
    assert int(response.headers["export-rows"]) == len(expected) == len(got)
    assert list(got.columns) == list(expected.columns)
    assert got.astype(str).values.tolist() == expected.astype(str).values.tolist()


def test_filters_select_and_sort_on_released_values(client: TestClient, token: str) -> None:
    """Promise 3: the rows endpoint's filters and order, on released values."""
    query = "&gender__exact=女&_sort=age&_col=age&_col=gender"
    expected = pd.DataFrame(paged(client, token, query))
    got = parse("ndjson", get(client, token, f"{EXPORT}&format=ndjson{query}").content)
    assert len(got) == len(expected) > 0
    assert got.values.tolist() == expected.values.tolist()
    raw = get(client, token, f"{EXPORT}&id_card__exact=110101199001011234")
    assert raw.status_code == 200
    assert raw.content.count(b"\r\n") == 1  # the header only: raw values are never matched


def test_one_entry_records_every_row_released(client: TestClient, demo: Demo, token: str) -> None:
    """Promise 6: exactly one entry for the export, naming its view and every row it sent."""
    _, before = read_entries(demo.settings.audit_database)
    count = len(list(before))
    response = get(client, token, f"{EXPORT}&format=csv&gender__exact=男")
    assert response.status_code == 200
    _, after = read_entries(demo.settings.audit_database)
    entries = [decode_entry(e.line) for e in after][count:]
    assert len(entries) == 1
    entry = entries[0]
    released = int(response.headers["export-rows"])
    assert entry["route"] == "/v1/datasets/{dataset_id}/export"
    assert entry["export"] == "csv"
    assert entry["rows"] == released
    assert entry["resp_sha256"] is None  # committed before the body existed
    positions = decode_rows(entry["row_ids"])
    assert len(positions) == released
    view = services_of(client).views._views  # the view the entry names, for its positions
    (match,) = [v for v in view.values() if v.key == entry["view"]]
    assert set(match.ordered.iloc[positions]["gender"]) == {"男"}
    assert response.headers["audit-receipt"]


def test_unwritable_log_means_503_and_no_row(demo: Demo) -> None:
    """Promise 6: with the audit log unavailable the export answers 503 and sends no row."""
    settings = replace(demo.settings, audit_busy_timeout_ms=100)
    with TestClient(create_app(settings), base_url=BASE) as fresh:
        good = token_for(fresh, demo.client_id, demo.client_secret)
        blocker = settings.audit_database.connect()  # another writer holds the sequencer
        blocker.begin(SEQUENCER)
        try:
            responses = [get(fresh, good, f"{EXPORT}&format={f}") for f in ("csv", "parquet")]
        finally:
            blocker.rollback()
            blocker.close()
    for response in responses:
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"
        assert "audit-receipt" not in response.headers
        assert b"id_card" not in response.content
        assert b"PAR1" not in response.content


def test_export_counts_against_the_row_quota(demo: Demo, client: TestClient, token: str) -> None:
    """The whole export is reserved from the daily quota before any byte; past it, a 429 and
    no rows."""
    svc = services_of(client)
    full = int(get(client, token, f"{EXPORT}&format=csv").headers["export-rows"])
    assert full > 0
    grant = next(g for g in svc.engine.policy.grants if g.id == "demo-residents")
    left = (grant.limits.rows_per_day or 0) - full
    assert left > 0
    svc.registry.take(  # use up the rest of today's quota but for a few rows
        f"grows:{grant.id}:{demo.client_id}:{int(__import__('time').time() // 86400)}",
        left - 3,
        grant.limits.rows_per_day or 0,
        2**40,
    )
    refused = get(client, token, f"{EXPORT}&format=ndjson")
    assert refused.status_code == 429
    assert b"id_card" not in refused.content


@pytest.mark.parametrize(
    "query",
    [
        "&format=xml",
        "&format=csv&format=ndjson",
        "&_size=10",
        "&_next=abc",
        "&_format=json",
        "&no_such_column__exact=1",
        "&age__frobnicate=1",
        "&format=%EF%BC%91",
        "&format=" + "c" * 5000,
    ],
)
def test_hostile_parameters_get_4xx(client: TestClient, token: str, query: str) -> None:
    """Promise 10: a clear 4xx for each bad parameter, never a 500, never a partial release."""
    response = get(client, token, f"{EXPORT}{query}")
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"] == "application/problem+json"


def test_unknown_dataset_and_no_purpose_release_nothing(client: TestClient, token: str) -> None:
    """Promise 1: no grant, no data; the answer is the same as for a dataset that does not exist."""
    assert get(client, token, "/v1/datasets/nope/export?purpose=statistics").status_code == 404
    assert get(client, token, "/v1/datasets/residents/export").status_code == 400
    assert client.get(EXPORT).status_code == 401


def test_csv_export_neutralizes_formulas_in_every_chunk() -> None:
    """Cells starting like a spreadsheet formula carry a leading apostrophe, in every chunk."""
    cells = ["=cmd|' /C calc'!A0", "+1", "-2", "@SUM(A1)", "\tx", "plain"] * (CHUNK // 3)
    frame = pd.DataFrame({"v": pd.array(cells, dtype="string"), "n": range(len(cells))})
    table = to_arrow(frame, csv=True)
    body = b"".join(csv_stream(table, np.arange(len(cells)))).decode()
    values = pd.read_csv(io.StringIO(body), dtype=str, keep_default_na=False)
    assert list(values.columns) == ["v", "n"]
    assert len(values) == len(cells)
    assert len(cells) > CHUNK
    assert not values["v"].str.match(r"^[=+\-@\t]").any()
    assert (values["v"] == "plain").sum() == len(cells) // 6
    assert (values["v"] == "'=cmd|' /C calc'!A0").sum() == len(cells) // 6
    assert values["n"].astype(int).tolist() == list(range(len(cells)))
