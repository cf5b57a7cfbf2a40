"""Paging in every format: each rows page, JSON, CSV or NDJSON, names the next one in an RFC 8288
`Link: <...>; rel="next"` header carrying the same query with the cursor, and following the
links returns every row of the view exactly once (promise 4: a response is a subset of one
released view, and paging never releases a row twice or skips one)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from gateway.api.paging import next_url
from tests.api.test_api import bearer
from tests.servers import Server, home, initialized, oauth_client, server

# the end-to-end fixtures: `gateway init --demo` once, a copy of it per test, `gateway serve` on TLS
__all__ = ["home", "initialized", "server"]

REGISTRY = "/v1/datasets/enterprise_registry/rows"
PURPOSE = "purpose=market-analysis"


def _walk(client: TestClient, token: str, url: str) -> tuple[list[str], int]:
    """Follow Link headers from `url` to the last page: the credit codes of all CSV rows."""
    codes: list[str] = []
    pages = 0
    while url:
        response = client.get(url, headers={**bearer(token), "Accept": "text/csv"})
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/csv")
        table = list(csv.DictReader(io.StringIO(response.text)))
        codes += [row["credit_code"] for row in table]
        pages += 1
        link = response.links.get("next")
        url = link["url"] if link else ""
        if url:
            assert url.startswith(REGISTRY + "?")  # an absolute path, on this endpoint
    return codes, pages


def test_following_link_headers_downloads_a_whole_csv_once(client: TestClient, token: str) -> None:
    """A client that follows `rel="next"` through a CSV download gets every row of the released
    view exactly once (the register's credit code is unique)."""
    first = client.get(f"{REGISTRY}?{PURPOSE}&_size=1&_extra=count", headers=bearer(token))
    total = first.json()["view"]["total_rows"]
    assert total > 300
    codes, pages = _walk(client, token, f"{REGISTRY}?{PURPOSE}&_size=173")
    assert len(codes) == total
    assert len(set(codes)) == total
    assert pages == -(-total // 173)


def test_link_keeps_the_query_and_filters(client: TestClient, token: str) -> None:
    """The link carries the same filters, columns and order; walking it gives the filtered rows,
    as many as `_extra=count` says, in the sorted order."""
    query = f"{PURPOSE}&province__in=广东省,浙江省&_sort_desc=registered_capital&_col=credit_code"
    counted = client.get(f"{REGISTRY}?{query}&_extra=count&_size=1", headers=bearer(token))
    expected = counted.json()["view"]["count"]
    codes, _ = _walk(client, token, f"{REGISTRY}?{query}&_size=40")
    assert len(codes) == len(set(codes)) == expected > 40
    page = client.get(f"{REGISTRY}?{query}&_size=40", headers=bearer(token))
    target = urlsplit(page.links["next"]["url"])
    params = parse_qsl(target.query)
    assert params[:-1] == parse_qsl(f"{query}&_size=40")
    assert params[-1] == ("_next", page.json()["next"])


def test_every_format_carries_the_link_and_the_last_page_none(
    client: TestClient, token: str
) -> None:
    """JSON keeps `next` in its body and names the same cursor in Link; NDJSON and CSV carry it
    in Link only; the last page has no Link and `next` null."""
    url = f"{REGISTRY}?{PURPOSE}&_size=5"
    page = client.get(url, headers=bearer(token))
    cursor = page.json()["next"]
    assert cursor
    assert page.links["next"]["url"].endswith(f"&_next={cursor}")
    for fmt in ("csv", "ndjson"):
        other = client.get(f"{url}&_format={fmt}", headers=bearer(token))
        assert other.links["next"]["url"] == f"{REGISTRY}?{PURPOSE}&_size=5&_format={fmt}" + (
            f"&_next={cursor}"
        )
    last = client.get(f"{REGISTRY}?{PURPOSE}&_size=1000", headers=bearer(token))
    while last.json()["next"] is not None:
        assert last.links["next"]["url"].endswith(f"&_next={last.json()['next']}")
        last = client.get(last.links["next"]["url"], headers=bearer(token))
    assert "link" not in last.headers
    ndjson = client.get(f"{REGISTRY}?{PURPOSE}&_size=5&_format=ndjson", headers=bearer(token))
    assert len([json.loads(line) for line in ndjson.text.splitlines()]) == 5


@pytest.mark.e2e
def test_csv_download_by_link_headers_over_tls(home: Path, server: Server) -> None:
    """Over real TLS with a real OAuth client: following `Link` through a CSV download of the
    register (its grant has no row filter) yields every source credit code exactly once."""
    creds = json.loads((home / "demo-client.json").read_text())
    api = oauth_client(server, creds["client_id"], creds["client_secret"])
    url: str | None = f"{server.base}{REGISTRY}?{PURPOSE}&_size=300&_format=csv"
    header: list[str] = []
    codes: list[str] = []
    while url:
        page = api.get(url)
        assert page.status_code == 200, page.text
        table = list(csv.reader(io.StringIO(page.text)))
        header = header or table[0]
        assert table[0] == header
        codes += [row[header.index("credit_code")] for row in table[1:]]
        link = page.links.get("next")
        url = f"{server.base}{link['url']}" if link else None
    source = pd.read_csv(home / "data" / "enterprise_registry.csv", dtype=str)
    assert sorted(codes) == sorted(source["credit_code"])
    assert len(set(codes)) == len(codes)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.text(max_size=8), st.text(max_size=8)), max_size=6),
    st.text(alphabet="abcXYZ019-_", min_size=1, max_size=40),
)
def test_link_target_is_inert_whatever_the_query_held(
    params: list[tuple[str, str]], cursor: str
) -> None:
    """Hostile input (promise 10): whatever the query held (CR, LF, `>`, `;`, quotes, any
    Unicode), the link target is plain ASCII that cannot end the header value or the target,
    and decodes to the same parameters with `_next` last."""
    target = next_url("/v1/datasets/x/rows", params, cursor)
    assert target.isascii()
    assert not set(target) & set('\r\n <>";,\\')
    decoded = parse_qsl(urlsplit(target).query, keep_blank_values=True)
    assert decoded == [p for p in params if p[0] != "_next"] + [("_next", cursor)]
