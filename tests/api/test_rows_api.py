"""Issue 7: the rows API. Pagination is stable and complete, filters and sorting see released
values only, every format round-trips Chinese text, CSV cells cannot run as formulas."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from tests.conftest import Demo

BOTH_STORES = True  # tests using `demo` run on both stores: SQLite and PostgreSQL

ROWS = "/v1/datasets/residents/rows?purpose=statistics"
ENTERPRISES = "/v1/datasets/enterprise_registry/rows?purpose=market-analysis"
PLANNING = "/v1/datasets/residents/rows?purpose=planning"


def get(client: TestClient, token: str, url: str, **headers: str) -> Any:
    return client.get(url, headers={"Authorization": f"Bearer {token}", **headers})


def walk(client: TestClient, token: str, url: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    cursor = None
    for _ in range(1000):
        page = get(client, token, url + (f"&_next={cursor}" if cursor else "")).json()
        rows.extend(page["rows"])
        cursor = page["next"]
        if cursor is None:
            return rows
    raise AssertionError("pagination did not end")


@pytest.mark.store_independent
def test_walking_next_returns_every_row_once(client: TestClient, token: str) -> None:
    """Default order, ascending and descending sort with many ties: every row exactly once."""
    total = get(client, token, f"{ENTERPRISES}&_size=1&_extra=count").json()["view"]["count"]
    for order in ("", "&_sort=industry", "&_sort_desc=registered_capital"):
        rows = walk(client, token, f"{ENTERPRISES}&_size=173{order}")
        codes = [r["credit_code"] for r in rows]
        assert len(codes) == total
        assert len(set(codes)) == total
    same = walk(client, token, f"{ENTERPRISES}&_size=500")
    again = walk(client, token, f"{ENTERPRISES}&_size=500")
    assert same == again  # stable


@pytest.mark.store_independent
def test_sort_order_is_correct(client: TestClient, token: str) -> None:
    """_sort and _sort_desc order the released values."""
    asc = [
        r["registered_capital"]
        for r in get(client, token, f"{ENTERPRISES}&_size=300&_sort=registered_capital").json()[
            "rows"
        ]
    ]
    assert asc == sorted(asc)
    desc = [r["age"] for r in get(client, token, f"{ROWS}&_size=300&_sort_desc=age").json()["rows"]]
    assert desc == sorted(desc, reverse=True)


@pytest.mark.store_independent
def test_filters_match_released_values(client: TestClient, token: str) -> None:
    """Every operator keeps exactly the rows whose RELEASED values match (checked against the
    whole view fetched without filters)."""
    people = pd.DataFrame(walk(client, token, f"{ROWS}&_size=500"))
    firms = pd.DataFrame(walk(client, token, f"{ENTERPRISES}&_size=1000"))
    planned = pd.DataFrame(walk(client, token, f"{PLANNING}&_size=500"))
    # Released labels taken from the views themselves, so no case matches nothing by accident.
    band = str(people["monthly_income"].iloc[0])  # a generalized income band, e.g. "4000-5999"
    code = str(people["employer_credit_code"].iloc[0])  # a masked code, e.g. "91**************"
    ages = sorted(people["age"].unique())[:2]  # generalized age labels, e.g. "0-49", "25-49"
    cases = {
        (ROWS, "gender=女"): people["gender"] == "女",
        (ROWS, f"age__in={','.join(ages)}"): people["age"].isin(ages),
        (ROWS, "district__in=朝阳区,天河区"): people["district"].isin(["朝阳区", "天河区"]),
        (ROWS, "district__not=朝阳区"): people["district"] != "朝阳区",
        (ROWS, f"monthly_income__startswith={band.split('-')[0]}-"): people[
            "monthly_income"
        ].str.startswith(band.split("-")[0] + "-"),
        (ROWS, "age__contains=-4"): people["age"].str.contains("-4", regex=False),
        (ROWS, f"employer_credit_code__exact={code}"): people["employer_credit_code"] == code,
        (ROWS, f"monthly_income__not={band}"): people["monthly_income"] != band,
        (ENTERPRISES, "registered_capital__gt=1000"): firms["registered_capital"] > 1000,
        (ENTERPRISES, "registered_capital__lte=100"): firms["registered_capital"] <= 100,
        (ENTERPRISES, "founded__gte=2020-01-01"): firms["founded"] >= "2020-01-01",
        (ENTERPRISES, "founded__lt=2000-01-01"): firms["founded"] < "2000-01-01",
        (ENTERPRISES, "legal_rep_name__exact=王*"): firms["legal_rep_name"] == "王*",
        (ENTERPRISES, "legal_rep_mobile__startswith=138"): firms["legal_rep_mobile"].str.startswith(
            "138"
        ),
        (ENTERPRISES, "company_name__contains=科技"): firms["company_name"].str.contains("科技"),
        (PLANNING, "mobile__startswith=13"): planned["mobile"].str.startswith("13"),
        (PLANNING, "employer_credit_code__isnull=1"): planned["employer_credit_code"].isna(),
        (PLANNING, "employer_credit_code__isnull=0"): planned["employer_credit_code"].notna(),
    }
    for (url, query), expected in cases.items():
        body = get(client, token, f"{url}&{query}&_size=500&_extra=count").json()
        assert body["view"]["count"] == int(expected.sum()), query
        if not query.endswith("isnull=0"):  # suppressed: no row has a value
            assert expected.any(), query  # the case selects something


@pytest.mark.store_independent
def test_filters_cannot_find_raw_values(client: TestClient, demo: Demo, token: str) -> None:
    """Promise 3: filtering a masked, generalized, pseudonymized or synthetic column by a raw
    value finds nothing."""
    raw = pd.read_csv(demo.home / "data" / "residents.csv", dtype=str)
    adults = raw[raw["age"].astype(int).between(18, 65)].head(3)
    exact = {
        ROWS: ("id_card", "employer_credit_code", "age", "monthly_income"),
        PLANNING: ("name", "id_card", "mobile"),  # synthetic and format-preserving values
    }
    prefix = {ROWS: ("employer_credit_code",)}  # masked: the raw prefix is not what is released
    for _, person in adults.iterrows():
        for url, columns in exact.items():
            for column in columns:
                body = get(client, token, f"{url}&{column}={person[column]}&_extra=count").json()
                assert body["view"]["count"] == 0, (url, column)
        for url, columns in prefix.items():
            for column in columns:
                body = get(
                    client, token, f"{url}&{column}__startswith={person[column][:8]}&_extra=count"
                ).json()
                assert body["rows"] == [], (url, column)
    enterprises = pd.read_csv(demo.home / "data" / "enterprise_registry.csv", dtype=str)
    for _, firm in enterprises.head(3).iterrows():
        for column in ("legal_rep_id_card", "legal_rep_name", "legal_rep_mobile"):
            body = get(client, token, f"{ENTERPRISES}&{column}={firm[column]}&_extra=count").json()
            assert body["view"]["count"] == 0, column
        body = get(
            client,
            token,
            f"{ENTERPRISES}&legal_rep_mobile__startswith={firm['legal_rep_mobile'][:8]}"
            "&_extra=count",
        ).json()
        assert body["rows"] == []


@pytest.mark.store_independent
def test_cursor_is_bound_to_its_query_and_view(client: TestClient, demo: Demo, token: str) -> None:
    """A cursor from one query, or a tampered one, is a 400 elsewhere."""
    page = get(client, token, f"{ROWS}&_size=5&_sort=age").json()
    cursor = page["next"]
    assert get(client, token, f"{ROWS}&_size=5&_sort=age&_next={cursor}").status_code == 200
    other = get(client, token, f"{ROWS}&_size=5&_sort=district&_next={cursor}")
    assert other.status_code == 400
    assert other.json()["parameter"] == "_next"
    flipped = cursor[:-2] + ("A" if cursor[-2] != "A" else "B") + cursor[-1]
    assert get(client, token, f"{ROWS}&_size=5&_sort=age&_next={flipped}").status_code == 400
    assert get(client, token, f"{ENTERPRISES}&_size=5&_next={cursor}").status_code == 400


@pytest.mark.store_independent
def test_column_selection(client: TestClient, token: str) -> None:
    """_col picks released columns (in view order); _nocol removes some."""
    only = get(client, token, f"{ROWS}&_size=2&_col=monthly_income&_col=gender").json()
    assert list(only["rows"][0]) == ["gender", "monthly_income"]
    without = get(client, token, f"{ROWS}&_size=2&_nocol=employer_credit_code").json()
    assert "employer_credit_code" not in without["rows"][0]
    assert "gender" in without["rows"][0]
    released = without["view"]["columns"]
    assert list(without["rows"][0]) == [c for c in released if c != "employer_credit_code"]


@pytest.mark.store_independent
def test_formats_round_trip_chinese(client: TestClient, token: str) -> None:
    """JSON, CSV and NDJSON carry the same rows with Chinese intact; by _format or Accept."""
    as_json = get(client, token, f"{ROWS}&_size=20&_sort=id_card").json()["rows"]
    as_csv = get(client, token, f"{ROWS}&_size=20&_sort=id_card&_format=csv")
    assert as_csv.headers["content-type"].startswith("text/csv")
    parsed = list(csv.DictReader(io.StringIO(as_csv.content.decode("utf-8"))))
    assert parsed == as_json  # every column of the statistics view is text
    ndjson = get(client, token, f"{ROWS}&_size=20&_sort=id_card", Accept="application/x-ndjson")
    assert ndjson.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in ndjson.content.decode("utf-8").splitlines()]
    assert lines == as_json
    assert any("市" in r["city"] for r in lines)
    assert any(r["district"].endswith("区") for r in lines)
    assert {r["gender"] for r in lines} <= {"男", "女"}


def test_csv_injection_is_neutralized() -> None:
    """Cells starting with = + - @ tab or CR get a leading apostrophe; numbers stay numbers."""
    from gateway.api.render import render

    page = pd.DataFrame(
        {
            "text": pd.array(
                ['=HYPERLINK("x")', "+1", "-2", "@SUM(A1)", "\tx", "ok", None], dtype="string"
            ),
            "n": pd.array([-1, 2, 3, 4, 5, 6, 7], dtype="Int64"),
        }
    )
    body = render(page, "csv", {}, None).decode()
    rows = list(csv.reader(io.StringIO(body)))
    assert [r[0] for r in rows[1:]] == [
        '\'=HYPERLINK("x")',
        "'+1",
        "'-2",
        "'@SUM(A1)",
        "'\tx",
        "ok",
        "",
    ]
    assert rows[1][1] == "-1"


@pytest.mark.store_independent
@settings(
    max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None
)
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "_size",
                "_sort",
                "_sort_desc",
                "_col",
                "_nocol",
                "_next",
                "_extra",
                "_format",
                "age__gt",
                "age",
                "district__in",
                "name__startswith",
                "mobile__isnull",
                "x",
                "_x",
            ]
        ),
        st.text(max_size=40),
        max_size=4,
    )
)
def test_hostile_parameters_never_500(
    client: TestClient, token: str, params: dict[str, str]
) -> None:
    """Promise 10: any combination of parameter values gets 200 or a 4xx problem, never a 5xx."""
    response = client.get(ROWS, params=params, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code < 500, (params, response.text)
    if response.status_code >= 400:
        assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.store_independent
@pytest.mark.parametrize("size", [1_001, 5_000])
def test_oversized_inputs_get_4xx(client: TestClient, token: str, size: int) -> None:
    """A very long filter value or query string is refused with a 4xx."""
    response = get(client, token, f"{ROWS}&name={'王' * size}")
    assert 400 <= response.status_code < 500


def test_size_limits_are_4xx_and_audited(client: TestClient, demo: Demo, token: str) -> None:
    """Query strings over 8 KB get 414, header fields over 16 KB 431, bodies over 64 KB 413;
    each refusal is logged."""
    from gateway.audit.entry import decode_entry
    from gateway.audit.reader import read_entries

    long_query = client.get(
        f"{ROWS}&name={'a' * 9000}", headers={"Authorization": f"Bearer {token}"}
    )
    assert long_query.status_code == 414
    big_header = client.get(
        ROWS, headers={"Authorization": f"Bearer {token}", "X-Filler": "x" * 17000}
    )
    assert big_header.status_code == 431
    big_body = client.post(
        "/oauth/token",
        content=b"grant_type=client_credentials&x=" + b"y" * 70000,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert big_body.status_code == 413
    _, stored = read_entries(demo.settings.audit_database)
    tail = [decode_entry(e.line) for e in stored][-3:]
    assert [e["status"] for e in tail] == [414, 431, 413]
    assert all(e["reason"] == "too_large" for e in tail)


@pytest.mark.store_independent
def test_catalog_reports_update_time_and_released_rows(client: TestClient, token: str) -> None:
    """The catalog names each dataset's update time and the row count of the released view."""
    listing = get(client, token, "/v1/datasets").json()["datasets"]
    residents = next(d for d in listing if d["id"] == "residents")
    grant = next(g for g in residents["grants"] if g["id"] == "demo-residents")
    described = get(client, token, "/v1/datasets/residents?purpose=statistics").json()
    assert grant["rows"] == described["rows"] > 0
    assert residents["updated"] == described["updated"]
    assert residents["updated"].endswith("+00:00")
    assert grant["purposes"] == ["statistics"]


def test_readyz_and_metrics(client: TestClient, token: str) -> None:
    """/readyz checks keys, policies and the audit log; /metrics counts requests, latency,
    audit appends and denials, with no client ids or tokens in it."""
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert set(ready.json()["checks"]) == {"keys", "policies", "audit"}
    get(client, token, f"{ROWS}&_size=1")
    get(client, token, "/v1/datasets/residents/rows?purpose=marketing")
    text = client.get("/metrics").text
    assert 'route="/v1/datasets/{dataset_id}/rows",status="200"' in text
    assert "gateway_denials_total{" in text
    assert 'reason="purpose_not_allowed"' in text
    assert "gateway_audit_append_seconds_count" in text
    assert "demo" not in text
    assert token not in text


def test_readyz_fails_when_the_log_is_halted(client: TestClient) -> None:
    """A halted audit log makes /readyz answer 503, naming the reason."""
    from gateway.api.health import _readiness
    from tests.conftest import services_of

    svc = services_of(client)
    assert _readiness(svc)["audit"] == "ok"
    svc.audit_log._halt("test halt")
    assert _readiness(svc)["audit"].startswith("halted: test halt")
    response = client.get("/readyz")
    assert response.status_code == 503  # and no entry can record the call either
