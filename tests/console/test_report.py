"""`gateway audit report`: one self-contained HTML file, built only from a verified log, whose
figures match counts taken independently from the raw entries of a known workload."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import re
import shutil
import sqlite3
from collections import Counter
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.cli import main as gateway_main
from gateway.settings import Settings
from tests.conftest import BASE, Demo
from tests.console.browser import launch_chromium
from tests.console.report_workload import HOSTILE, install_clock, raw_entries, run_workload

if TYPE_CHECKING:
    from playwright.sync_api import Browser


class Tables(HTMLParser):
    """The text of every table cell, by table id; every tag and attribute seen."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.lists: dict[str, list[str]] = {}
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self._table: str | None = None
        self._list: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))
        ident = dict(attrs).get("id")
        if tag == "table" and ident:
            self._table = ident
            self.tables[ident] = []
        elif tag == "ul" and ident:
            self._list = ident
            self.lists[ident] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag in ("td", "th", "li"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._table = None
        elif tag == "ul":
            self._list = None
        elif tag in ("td", "th") and self._table and self._cell is not None:
            self.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "li" and self._list and self._cell is not None:
            self.lists[self._list].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def parse(html: str) -> Tables:
    tables = Tables()
    tables.feed(html)
    return tables


def number(text: str) -> int:
    return int(text.replace(",", ""))


@pytest.fixture(scope="module")
def worked(
    template_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Demo, dt.datetime]:
    """One workspace with the known workload (the tests only read it): built once per module."""
    home = tmp_path_factory.mktemp("report") / "ws"
    shutil.copytree(template_home, home, symlinks=True)
    creds = json.loads((home / "demo-client.json").read_text())
    demo = Demo(Settings(home=home, public_url=BASE), creds["client_id"], creds["client_secret"])
    with pytest.MonkeyPatch.context() as patch:
        clock, day = install_clock(patch)
        with TestClient(create_app(demo.settings), base_url=BASE) as client:
            run_workload(client, demo, clock, day)
        clock.at(day + dt.timedelta(days=1, hours=16))
        assert gateway_main(["keys", "rotate", "audit", "--home", str(demo.home)]) == 0
    return demo, day


def report(demo: Demo, tmp_path: Path, *args: str) -> str:
    tmp_path.mkdir(exist_ok=True)
    out = tmp_path / "report.html"
    code = gateway_main(["audit", "report", "--home", str(demo.home), "--out", str(out), *args])
    assert code == 0
    return out.read_text("utf-8")


def test_report_figures_match_the_raw_entries(
    worked: tuple[Demo, dt.datetime], tmp_path: Path
) -> None:
    """Promise 6 (every call is in the log) made readable: rows by client and dataset and
    refusals by reason equal counts taken straight from the raw entries."""
    demo, _ = worked
    html = report(demo, tmp_path)
    page = parse(html)
    entries = raw_entries(demo.home)
    calls = [e for e in entries if e["kind"] == "http"]

    expected_rows: Counter[tuple[str, str, str]] = Counter()
    expected_calls: Counter[tuple[str, str, str]] = Counter()
    for e in calls:
        if e.get("client") and e.get("dataset"):
            key = (e["client"], e["dataset"], e.get("purpose") or "-")
            expected_calls[key] += 1
            if e["decision"] == "allow":
                expected_rows[key] += e["rows"]
    shown = {(r[0], r[1], r[2]): (number(r[3]), number(r[7])) for r in page.tables["pairs"][1:]}
    assert shown == {k: (expected_calls[k], expected_rows[k]) for k in expected_calls}
    assert shown["demo", "residents", "statistics"] == (8, 5 * 20 + 3 * 10)
    assert shown["analyst", "residents", "statistics"] == (3, 20)

    refused = Counter(e["reason"] for e in calls if e["decision"] in ("deny", "error"))
    table = {r[0]: number(r[1]) for r in page.tables["refusal-table"][1:]}
    assert table == dict(refused)
    assert table["unauthenticated"] == 3
    assert table["quota_exceeded"] == 2
    assert f"<b>{len(calls):,}</b><span>calls</span>" in html
    released = sum(e["rows"] for e in calls if e["decision"] == "allow" and e.get("dataset"))
    assert f"<b>{released:,}</b><span>rows released</span>" in html


def test_report_anomalies(worked: tuple[Demo, dt.datetime], tmp_path: Path) -> None:
    """The spike, the night calls, first accesses, the exhausted quota and the key rotation are
    each listed; a period starting on day 2 drops day 1's findings."""
    demo, day = worked
    page = parse(report(demo, tmp_path))
    assert len(page.lists["finding-spike"]) == 1
    assert "40 calls in one hour" in page.lists["finding-spike"][0]
    assert page.lists["finding-night"] == [page.lists["finding-night"][0]]
    assert "demo: 3 call(s)" in page.lists["finding-night"][0]
    firsts = page.lists["finding-first_access"]
    assert [f.split(": ", 1)[1].split(" (entry")[0] for f in firsts] == [
        "demo read residents for the first time",
        "demo read enterprise_registry for the first time",
        "analyst read residents for the first time",
    ]
    assert "analyst: 2 call(s) refused" in page.lists["finding-quota"][0]
    assert "finding-halt" not in page.lists

    since = (day + dt.timedelta(days=1)).strftime("%Y-%m-%d")
    later = parse(report(demo, tmp_path / "later", "--since", since))
    assert "finding-night" not in later.lists
    assert len(later.lists["finding-first_access"]) == 1


def test_report_is_self_contained_and_escapes_log_text(
    worked: tuple[Demo, dt.datetime], tmp_path: Path
) -> None:
    """No script, no external reference: no http(s) URL outside text, no src or href but
    data:; text from the log (a rejected policy's error) is escaped, never markup."""
    demo, _ = worked
    html = report(demo, tmp_path)
    page = parse(html)
    assert not [
        t
        for t, _ in page.tags
        if t in ("script", "iframe", "object", "embed", "link") and t != "link"
    ]
    for tag, attrs in page.tags:
        for name, value in attrs:
            assert not (value or "").lower().lstrip().startswith(("http:", "https:", "//")), tag
            if name in ("src", "href"):
                assert (value or "").startswith("data:"), (tag, name, value)
    assert "<script" not in html.lower()
    assert HOSTILE not in html
    assert "&lt;/pre&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in html  # the actor, as text
    assert "policy.rejected" in html
    # The reload's diff, from the kept policy sets: the grant that gained a client.
    assert '<span class="add">+    clients: [demo, analyst]</span>' in html
    assert '<span class="del">-    clients: [demo]</span>' in html
    assert not re.search(r"url\(|@import", html)
    csp = next(
        dict(a)["content"]
        for t, a in page.tags
        if t == "meta" and dict(a).get("http-equiv") == "Content-Security-Policy"
    )
    assert csp is not None
    assert "default-src 'none'" in csp


@pytest.fixture
def chromium() -> Iterator[Browser]:
    yield from launch_chromium()


def test_report_renders_offline_in_chromium(
    worked: tuple[Demo, dt.datetime], tmp_path: Path, chromium: Browser
) -> None:
    """Opened from disk with every network request blocked, the report renders whole (its
    charts and tables are there) and the browser attempted no request but the file itself."""
    demo, _ = worked
    report(demo, tmp_path)
    page = chromium.new_page(viewport={"width": 1200, "height": 900})
    attempted: list[str] = []
    problems: list[str] = []
    page.on("request", lambda r: attempted.append(r.url))
    page.on(
        "console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None
    )
    page.route(
        "**/*",
        lambda route: (
            route.continue_() if route.request.url.startswith("file://") else route.abort()
        ),
    )
    url = (tmp_path / "report.html").as_uri()
    page.goto(url)
    assert attempted == [url]
    assert not problems, problems  # no CSP violation: the inline stylesheet's hash matches
    assert page.locator("svg.chart").count() >= 3
    assert page.locator("svg.chart rect").count() > 0
    assert page.locator("#pairs tr").count() == 4  # a header and three (client, dataset) pairs
    # The stylesheet applied (a CSP mismatch would leave the header unstyled).
    background = page.eval_on_selector("header.top", "e => getComputedStyle(e).backgroundColor")
    assert background == "rgb(29, 38, 48)"
    page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    page.close()


def test_no_report_from_a_log_that_does_not_verify(demo: Demo, tmp_path: Path) -> None:
    """Promise 6's other half: a report is never built from a tampered log; the command says
    which entry failed and writes nothing."""
    with TestClient(create_app(demo.settings), base_url=BASE) as client:
        assert client.get("/v1/datasets").status_code == 401
        assert client.get("/healthz").status_code == 200
    (refused,) = [e for e in raw_entries(demo.home) if e.get("status") == 401]
    with sqlite3.connect(demo.home / "audit" / "log.sqlite3") as conn:
        conn.execute(
            "UPDATE entries SET line = replace(line, ?, ?) WHERE idx = ?",
            ('"status":401', '"status":200', refused["idx"]),
        )
    out = tmp_path / "report.html"
    errors = io.StringIO()
    with contextlib.redirect_stderr(errors):
        code = gateway_main(["audit", "report", "--home", str(demo.home), "--out", str(out)])
    assert code == 1
    assert f"entry {refused['idx']} INVALID" in errors.getvalue()
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "２０２６-12-01"], "is not a time"),
        (["--since", "2026-12-02", "--until", "2026-12-01"], "later than --since"),
        (["--tz", "Mars/Olympus"], "unknown time zone"),
        (["--tz", "../../etc/passwd"], "unknown time zone"),
        (["--bundle", "nowhere"], "needs --key"),
    ],
)
def test_report_options_are_checked(
    demo: Demo, tmp_path: Path, args: list[str], message: str
) -> None:
    """Bad periods, time zones and bundles get a message naming what to fix, and no file."""
    out = tmp_path / "report.html"
    errors = io.StringIO()
    with contextlib.redirect_stderr(errors):
        code = gateway_main(["audit", "report", "--home", str(demo.home), "--out", str(out), *args])
    assert code in (1, 2)
    assert message in errors.getvalue()
    assert not out.exists()


def test_report_never_overwrites(demo: Demo, tmp_path: Path) -> None:
    """An existing file is left alone."""
    out = tmp_path / "report.html"
    out.write_text("kept")
    errors = io.StringIO()
    with contextlib.redirect_stderr(errors):
        code = gateway_main(["audit", "report", "--home", str(demo.home), "--out", str(out)])
    assert code == 1
    assert "exists" in errors.getvalue()
    assert out.read_text() == "kept"


def test_halts_are_reported_now_and_after_resume(
    demo: Demo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A halted log is reported as halted; `gateway audit resume` records who resumed and the
    halt it cleared, so a later report still lists the halt."""
    with sqlite3.connect(demo.home / "audit" / "log.sqlite3") as conn:
        conn.execute("INSERT INTO meta (key, value) VALUES ('halted', 'write failed: disk full')")
    page = parse(report(demo, tmp_path / "during"))
    assert page.lists["finding-halt"] == ["the log is halted now: write failed: disk full"]
    assert gateway_main(["audit", "resume", "--home", str(demo.home)]) == 0
    capsys.readouterr()
    (finding,) = parse(report(demo, tmp_path / "after")).lists["finding-halt"]
    assert "audit.resume by" in finding
    assert "(it cleared: write failed: disk full)" in finding
    resumed = [e for e in raw_entries(demo.home) if e.get("action") == "audit.resume"]
    assert [e["halt"] for e in resumed] == ["write failed: disk full"]
