"""Auditors and admins get answers from the verified log (issue 17): every figure of
`gateway audit query`, `gateway usage`, `/v1/admin/usage` and `/v1/audit/entries` equals the
count computed independently from the raw entries of a known workload; a tampered log gets no
answer (promise 6: the log is the record, and only a verified record is read)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.audit.canonical import canonical_json
from gateway.audit.query import LogNotVerified, load_verified, make_filters, parse_time
from gateway.audit.usage import usage
from gateway.auth.registry import ClientRegistry
from gateway.cli import main
from tests.conftest import BASE, token_for
from tests.workload import Workload, raw_entries, run


def http(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in entries if e["kind"] == "http"]


# --- the workload left what it should ---------------------------------------------------------


def test_entries_record_purpose_and_the_dataset_of_rate_limited_calls(workload: Workload) -> None:
    """Rate-limited calls name the dataset they asked for; a stated purpose is recorded when the
    policy declares it and as "(undeclared)" otherwise (it is caller input)."""
    entries = http(raw_entries(workload.settings))
    limited = [e for e in entries if e["status"] == 429]
    assert limited
    assert {(e["client"], e["dataset"], e["purpose"]) for e in limited} >= {
        ("acme", "residents", "statistics")
    }
    purposes = {e["purpose"] for e in entries if e["route"] == "/v1/datasets/{dataset_id}/rows"}
    assert {"statistics", "planning", "research", "(undeclared)", None} <= purposes
    assert not any("13812345678" in json.dumps(e) for e in entries)


# --- gateway audit query ----------------------------------------------------------------------


def test_query_json_matches_raw_filtering(
    workload: Workload, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every filter selects exactly the entries a plain loop over the raw entries selects."""
    home = str(workload.home)
    raw = raw_entries(workload.settings)
    cases: list[tuple[list[str], Any]] = [
        (["--client", "acme"], lambda e: e.get("client") == "acme"),
        (["--dataset", "residents"], lambda e: e.get("dataset") == "residents"),
        (["--purpose", "planning"], lambda e: e.get("purpose") == "planning"),
        (["--decision", "deny"], lambda e: e.get("decision") == "deny"),
        (["--reason", "quota_exceeded"], lambda e: e.get("reason") == "quota_exceeded"),
        (["--route", "/v1/datasets"], lambda e: e.get("route") == "/v1/datasets"),
        (["--kind", "admin"], lambda e: e["kind"] == "admin"),
        (
            ["--client", "demo", "--client", "acme", "--decision", "allow"],
            lambda e: e.get("client") in ("demo", "acme") and e.get("decision") == "allow",
        ),
    ]
    for options, keep in cases:
        code, out, err = run(capsys, "audit", "query", "--home", home, "--format", "json", *options)
        assert code == 0, err
        body = json.loads(out)
        assert [e["idx"] for e in body["entries"]] == [e["idx"] for e in raw if keep(e)], options
        assert body["verification"]["entries"] == len(raw)
        assert "verified" in err
    # By time: from the middle entry's time, and before it.
    middle = raw[len(raw) // 2]["ts"]
    iso = dt.datetime.fromtimestamp(middle / 1000, dt.UTC).isoformat(timespec="milliseconds")
    for option, keep in (
        ("--since", lambda e: e["ts"] >= middle),
        ("--until", lambda e: e["ts"] < middle),
    ):
        code, out, _ = run(
            capsys, "audit", "query", "--home", home, "--format", "json", option, iso
        )
        assert [e["idx"] for e in json.loads(out)["entries"]] == [e["idx"] for e in raw if keep(e)]


def test_query_counts_rows_per_client_in_the_last_hour(
    workload: Workload, capsys: pytest.CaptureFixture[str]
) -> None:
    """ "Which clients read residents in the last hour and how many rows each": the grouped
    answer equals sums over the raw entries."""
    raw = http(raw_entries(workload.settings))
    expected: Counter[str] = Counter()
    calls: Counter[str] = Counter()
    for e in raw:
        if e["dataset"] == "residents" and e["decision"] == "allow":
            expected[e["client"]] += e["rows"]
            calls[e["client"]] += 1
    code, out, _ = run(
        capsys, "audit", "query", "--home", str(workload.home), "--since", "1h",
        "--dataset", "residents", "--decision", "allow", "--count-by", "client", "--format", "csv",
    )  # fmt: skip
    assert code == 0
    got = list(csv.DictReader(io.StringIO(out)))
    assert {r["client"]: int(r["rows"]) for r in got} == dict(expected)
    assert {r["client"]: int(r["calls"]) for r in got} == dict(calls)
    assert expected["demo"] == 100  # 50 + 30 for statistics, 20 for planning


def test_refusals_by_reason_table_and_csv(
    workload: Workload, capsys: pytest.CaptureFixture[str]
) -> None:
    """ "Which calls were refused and why": the table and the CSV list every refusal."""
    raw = http(raw_entries(workload.settings))
    refused = [e for e in raw if e["decision"] == "deny"]
    home = str(workload.home)
    code, out, _ = run(
        capsys, "audit", "query", "--home", home, "--decision", "deny", "--format", "csv"
    )
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [int(r["idx"]) for r in rows] == [e["idx"] for e in refused]
    assert [r["reason"] for r in rows] == [e["reason"] for e in refused]
    code, out, _ = run(
        capsys, "audit", "query", "--home", home, "--decision", "deny", "--count-by", "reason"
    )
    assert code == 0
    lines = out.splitlines()[1:]
    assert {line.split()[0]: int(line.split()[1]) for line in lines} == dict(
        Counter(e["reason"] for e in refused)
    )


def test_query_a_bundle_needs_a_key_and_gives_the_same_answer(
    workload: Workload, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The same query over an exported bundle, verified with the auditor's key, gives the same
    entries; without --key it refuses."""
    home = str(workload.home)
    bundle = tmp_path / "bundle"
    assert run(capsys, "audit", "export", "--home", home, "--out", str(bundle))[0] == 0
    key = str(workload.settings.workspace.audit_pub)
    code, out, _ = run(
        capsys, "audit", "query", "--home", home, "--client", "acme", "--format", "json"
    )
    live = json.loads(out)["entries"]
    code, out, err = run(
        capsys, "audit", "query", "--bundle", str(bundle), "--key", key, "--client", "acme",
        "--format", "json",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["entries"] == live
    assert f"bundle {bundle}" in err
    code, _, err = run(capsys, "audit", "query", "--bundle", str(bundle))
    assert code == 1
    assert "--key" in err


def tamper(workload: Workload, idx: int) -> None:
    conn = sqlite3.connect(workload.settings.workspace.audit_db)
    with conn:
        conn.execute(
            "UPDATE entries SET line = replace(line, '\"rows\":50', '\"rows\":5') WHERE idx = ?",
            (idx,),
        )
    conn.close()


def test_tampered_log_gets_no_answer(
    workload: Workload, capsys: pytest.CaptureFixture[str]
) -> None:
    """Hostile: one altered entry (fewer rows claimed) makes query, usage, history and the
    usage endpoint refuse, naming the entry; no figure is printed."""
    raw = raw_entries(workload.settings)
    target = next(e["idx"] for e in raw if e.get("rows") == 50)
    tamper(workload, target)
    home = str(workload.home)
    for argv in (
        ("audit", "query", "--home", home),
        ("usage", "--home", home),
        ("usage", "--home", home, "--format", "csv"),
        ("policy", "history", "--home", home),
        ("audit", "explain", str(target), "--home", home),
    ):
        code, out, err = run(capsys, *argv)
        assert code == 1, argv
        assert out == ""
        assert f"entry {target} INVALID" in err
        assert "no answer is given from an unverified log" in err
    with pytest.raises(LogNotVerified):
        load_verified(
            workload.settings.audit_database, workload.settings.workspace.audit_public_keys
        )
    with TestClient(create_app(workload.settings), base_url=BASE) as client:
        registry = ClientRegistry(workload.settings.registry_database)
        _, secret = registry.add("billing", scopes=("audit:read",))
        registry.close()
        assert secret is not None
        token = token_for(client, "billing", secret)
        response = client.get("/v1/admin/usage", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 500
    assert response.json()["type"].endswith("audit-log-invalid")
    assert f"entry {target} INVALID" in response.json()["detail"]


# --- usage ------------------------------------------------------------------------------------


def independent_usage(raw: list[dict[str, Any]]) -> dict[tuple[Any, ...], dict[str, Any]]:
    table: dict[tuple[Any, ...], dict[str, Any]] = {}
    client_day_rows: Counter[tuple[Any, ...]] = Counter()
    for e in http(raw):
        day = dt.datetime.fromtimestamp(e["ts"] / 1000, dt.UTC).strftime("%Y-%m-%d")
        key = (day, e["client"], e["dataset"], e["purpose"])
        row = table.setdefault(key, {"calls": 0, "rows": 0, "refusals": Counter(), "errors": 0})
        row["calls"] += 1
        if e["decision"] == "allow" and e["dataset"] is not None:  # dataset rows only
            row["rows"] += e["rows"]
            client_day_rows[(day, e["client"])] += e["rows"]
        elif e["decision"] == "deny":
            row["refusals"][e["reason"]] += 1
        elif e["decision"] == "error":
            row["errors"] += 1
    for (day, client, _, _), row in table.items():
        row["quota_used"] = client_day_rows[(day, client)]
    return table


def test_usage_matches_independent_counts(
    workload: Workload, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Usage per client x dataset x purpose x day (calls, rows, refusals by reason, quota use)
    equals the independent count; the CSV for billing says the same, and a bundle holder
    re-derives identical figures."""
    raw = raw_entries(workload.settings)
    expected = independent_usage(raw)
    home = str(workload.home)
    code, out, err = run(capsys, "usage", "--home", home, "--format", "json")
    assert code == 0, err
    body = json.loads(out)
    got = {(r["day"], r["client"], r["dataset"], r["purpose"]): r for r in body["usage"]}
    assert set(got) == set(expected)
    for key, row in expected.items():
        assert got[key]["calls"] == row["calls"], key
        assert got[key]["rows"] == row["rows"], key
        assert got[key]["refusals_by_reason"] == dict(row["refusals"]), key
        assert got[key]["refusals"] == sum(row["refusals"].values()), key
        assert got[key]["errors"] == row["errors"], key
        assert got[key]["quota_used"] == row["quota_used"], key
    assert body["totals"]["calls"] == len(http(raw))
    # A page of audit entries counts what it returned in `rows`, but releases no dataset rows.
    audit_pages = [e for e in raw if e.get("route") == "/v1/audit/entries"]
    assert audit_pages
    assert audit_pages[0]["rows"] > 0
    assert all(r["rows"] == 0 for r in body["usage"] if r["client"] == "auditor")
    code, out, _ = run(capsys, "usage", "--home", home, "--format", "csv")
    billed = list(csv.DictReader(io.StringIO(out)))
    assert sum(int(r["rows"]) for r in billed) == sum(r["rows"] for r in expected.values())
    assert len(billed) == len(expected)
    # Re-derived from a bundle with the same code path: the same figures (limits aside).
    bundle = tmp_path / "bundle"
    run(capsys, "audit", "export", "--home", home, "--out", str(bundle))
    pub = str(workload.settings.workspace.audit_pub)
    code, out, _ = run(capsys, "usage", "--bundle", str(bundle), "--key", pub, "--format", "json")
    from_bundle = json.loads(out)["usage"]
    assert [{**r, "quota_limit": None} for r in body["usage"]] == from_bundle


def test_usage_endpoint_scopes_and_figures(workload: Workload) -> None:
    """GET /v1/admin/usage answers admin and audit:read clients with the same figures as the
    library; a data client gets 403; CSV is offered for billing."""
    raw = raw_entries(workload.settings)
    registry = ClientRegistry(workload.settings.registry_database)
    _, admin_secret = registry.add("ops2", scopes=("admin",))
    _, reader_secret = registry.add("reader", scopes=("audit:read",))
    registry.close()
    assert admin_secret is not None
    assert reader_secret is not None
    with TestClient(create_app(workload.settings), base_url=BASE) as client:
        demo_token = token_for(client, "demo", _demo_secret(workload))
        denied = client.get("/v1/admin/usage", headers={"Authorization": f"Bearer {demo_token}"})
        assert denied.status_code == 403
        for client_id, secret in (("ops2", admin_secret), ("reader", reader_secret)):
            token = token_for(client, client_id, secret)
            response = client.get(
                "/v1/admin/usage?client=demo", headers={"Authorization": f"Bearer {token}"}
            )
            assert response.status_code == 200, response.text
            rows = response.json()["usage"]
            demo_rows = sum(
                e["rows"]
                for e in http(raw)
                if e["client"] == "demo" and e["decision"] == "allow" and e["dataset"]
            )
            assert sum(r["rows"] for r in rows) == demo_rows
            assert {r["client"] for r in rows} == {"demo"}
        as_csv = client.get(
            "/v1/admin/usage?format=csv", headers={"Authorization": f"Bearer {token}"}
        )
        assert as_csv.headers["content-type"].startswith("text/csv")
        assert as_csv.text.startswith("day,client,dataset,purpose,calls")
        bad = client.get(
            "/v1/admin/usage?since=%C2%B2h", headers={"Authorization": f"Bearer {token}"}
        )
        assert bad.status_code == 400


def _demo_secret(workload: Workload) -> str:
    creds = json.loads((workload.home / "demo-client.json").read_text())
    secret: str = creds["client_secret"]
    return secret


def test_usage_library_quota_limits_come_from_the_registry() -> None:
    """quota_used sums a client's rows of one UTC day over datasets; the limit is given."""
    day = int(dt.datetime(2026, 12, 1, 10, tzinfo=dt.UTC).timestamp() * 1000)
    entries = [
        {"kind": "http", "idx": 0, "ts": day, "client": "a", "dataset": "x", "purpose": "p",
         "decision": "allow", "rows": 7},
        {"kind": "http", "idx": 1, "ts": day + 1, "client": "a", "dataset": "y", "purpose": "p",
         "decision": "allow", "rows": 5},
        {"kind": "http", "idx": 2, "ts": day + 86_400_000, "client": "a", "dataset": "y",
         "purpose": "p", "decision": "deny", "reason": "quota_exceeded", "rows": 0},
    ]  # fmt: skip
    rows = usage(entries, {"a": 10})
    assert [(r.day, r.dataset, r.rows, r.quota_used, r.quota_limit) for r in rows] == [
        ("2026-12-01", "x", 7, 12, 10),
        ("2026-12-01", "y", 5, 12, 10),
        ("2026-12-02", "y", 0, 0, 10),
    ]
    assert rows[2].refusals_by_reason == {"quota_exceeded": 1}


# --- /v1/audit/entries -----------------------------------------------------------------------


def test_entries_endpoint_filters_objects_and_keyset_cursor(workload: Workload) -> None:
    """Filters as in the query command; entries are JSON objects whose canonical form is the
    signed line; pages follow the Link rel="next" cursor to exactly the filtered entries."""
    raw = raw_entries(workload.settings)
    _, stored_lines = _lines(workload)
    registry = ClientRegistry(workload.settings.registry_database)
    _, secret = registry.add("reader", scopes=("audit:read",))
    registry.close()
    assert secret is not None
    with TestClient(create_app(workload.settings), base_url=BASE) as client:
        token = token_for(client, "reader", secret)
        headers = {"Authorization": f"Bearer {token}"}
        url: str | None = "/v1/audit/entries?client=demo&client=acme&limit=3"
        seen: list[dict[str, Any]] = []
        pages = 0
        while url is not None:
            response = client.get(url, headers=headers)
            assert response.status_code == 200, response.text
            body = response.json()
            seen += body["entries"]
            pages += 1
            link = response.headers.get("link")
            if body["next"] is None:
                assert link is None
                url = None
            else:
                assert link is not None
                assert link.endswith('>; rel="next"')
                url = link[1 : link.index(">")]
        expected = [e["idx"] for e in raw if e.get("client") in ("demo", "acme")]
        assert [e["idx"] for e in seen] == expected
        assert pages >= len(expected) // 3
        for item in seen:
            assert isinstance(item["entry"], dict)
            assert canonical_json(item["entry"]) == stored_lines[item["idx"]]
        since = raw[5]["ts"]
        iso = dt.datetime.fromtimestamp(since / 1000, dt.UTC).isoformat(timespec="milliseconds")
        body = client.get(
            "/v1/audit/entries", params={"since": iso, "decision": "deny", "limit": 1000},
            headers=headers,
        ).json()  # fmt: skip
        assert [e["idx"] for e in body["entries"]] == [
            e["idx"] for e in raw if e["ts"] >= since and e.get("decision") == "deny"
        ]
        for query in (
            "limit=0",
            "limit=1001",
            "cursor=-1",
            "since=yesterday",
            "kind=1&kind=2&bogus=1",
            "cursor=%C2%B2",
        ):
            assert client.get(f"/v1/audit/entries?{query}", headers=headers).status_code == 400, (
                query
            )


def _lines(workload: Workload) -> tuple[str, dict[int, bytes]]:
    from gateway.audit.reader import read_entries

    origin, stored = read_entries(workload.settings.audit_database)
    return origin, {e.idx: e.line for e in stored}


# --- times ------------------------------------------------------------------------------------


def test_parse_time_forms_and_hostile_input() -> None:
    """ISO 8601 (UTC without an offset) and relative times parse; Unicode digits, huge numbers
    and anything else are refused with a message naming the forms."""
    now = 1_800_000_000_000
    assert parse_time("1h", now) == now - 3_600_000
    assert parse_time("2d", now) == now - 2 * 86_400_000
    assert parse_time("2026-12-01", now) == int(
        dt.datetime(2026, 12, 1, tzinfo=dt.UTC).timestamp() * 1000
    )
    assert parse_time("2026-12-01T08:00+08:00", now) == int(
        dt.datetime(2026, 12, 1, tzinfo=dt.UTC).timestamp() * 1000
    )
    for bad in (
        "",
        "1",
        "h",
        "²h",
        "١h",
        "1y",
        "99999999999h",
        "-1h",
        " 1h",
        "2026-13-01",
        "x" * 10_000,
    ):
        with pytest.raises(ValueError, match="ISO 8601"):
            parse_time(bad, now)
    with pytest.raises(ValueError, match="later"):
        make_filters({}, since="1h", until="2h", now_ms=now)
    with pytest.raises(ValueError, match="unknown filter"):
        make_filters({"bogus": ["x"]})


def test_entries_endpoint_survives_a_line_that_is_not_json(workload: Workload) -> None:
    """Hostile: a stored line replaced by bytes that are not UTF-8 is served as `entry: null`
    with `invalid` to an unfiltered reader, left out of filtered answers, and never a 500."""
    conn = sqlite3.connect(workload.settings.workspace.audit_db)
    with conn:
        conn.execute("UPDATE entries SET line = CAST(? AS TEXT) WHERE idx = 3", (b"\xff\xfe{",))
    conn.close()
    registry = ClientRegistry(workload.settings.registry_database)
    _, secret = registry.add("reader", scopes=("audit:read",))
    registry.close()
    assert secret is not None
    with TestClient(create_app(workload.settings), base_url=BASE) as client:
        headers = {"Authorization": f"Bearer {token_for(client, 'reader', secret)}"}
        plain = client.get("/v1/audit/entries?from=2&to=5", headers=headers)
        assert plain.status_code == 200
        assert [(e["idx"], e["entry"] is None) for e in plain.json()["entries"]] == [
            (2, False),
            (3, True),
            (4, False),
        ]
        assert "invalid" in plain.json()["entries"][1]
        filtered = client.get("/v1/audit/entries?from=2&to=5&kind=http", headers=headers)
        assert filtered.status_code == 200
        assert 3 not in [e["idx"] for e in filtered.json()["entries"]]
        since = client.get("/v1/audit/entries?since=2020-01-01&limit=1000", headers=headers)
        assert since.status_code == 200


def test_query_refuses_hostile_options(
    workload: Workload, capsys: pytest.CaptureFixture[str]
) -> None:
    """Hostile CLI input: an unknown --count-by field, a huge or Unicode-digit time, too many
    values, an entry index that is no number and a bundle that is not one get a clear error
    (exit 1 or 2), never a traceback or an answer."""
    home = str(workload.home)
    pub = str(workload.settings.workspace.audit_pub)
    cases = [
        (["audit", "query", "--count-by", "client,secret"], "count by one or more of"),
        (["audit", "query", "--since", "١h"], "ISO 8601"),
        (["audit", "query", "--since", "9" * 400 + "h"], "ISO 8601"),
        (["audit", "query", *[w for i in range(65) for w in ("--client", str(i))]], "at most 64"),
        (["audit", "query", "--until", "1h", "--since", "2026-01-01T00:00:00+99:00"], "ISO 8601"),
        (["usage", "--bundle", home], "--key"),
        (["audit", "query", "--bundle", home, "--key", "nope.pub"], "does not exist"),
        (["audit", "query", "--bundle", home, "--key", pub], "not an audit bundle"),
    ]
    for argv, message in cases:
        code, out, err = run(capsys, *argv, "--home", home)
        assert code == 1, (argv, err)
        assert out == ""
        assert message in err, (argv, err)
    with pytest.raises(SystemExit) as exit_info:
        main(["audit", "explain", "²", "--home", home])
    assert exit_info.value.code == 2
    assert "not an entry index" in capsys.readouterr().err
