"""The console at /console in a real browser: `gateway serve` over HTTPS on a temporary
workspace, headless Chromium (Debian's package) signing in with an audit:read client, opening
every page, and checking each figure against counts taken from the raw log entries; the CSP
holds, no request leaves the origin, and every page view is one audit entry."""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from gateway.audit.entry import leaf_hash
from gateway.audit.reader import read_entries
from gateway.audit.receipt import verify_receipt
from tests.conftest import audit_keys
from tests.console.browser import launch_chromium, spki_pin
from tests.servers import Server, gateway, oauth_client, start_server

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Response

pytestmark = pytest.mark.e2e
PAGES = (
    ("status", "/console"),
    ("clients", "/console/clients"),
    ("grants", "/console/grants"),
    ("usage", "/console/usage"),
    ("refusals", "/console/refusals"),
    ("policy", "/console/policy"),
)


@dataclass
class Site:
    server: Server
    secrets: dict[str, str]

    @property
    def home(self) -> Path:
        return self.server.home


def add_client(home: Path, name: str, *options: str) -> str:
    added = gateway("clients", "add", name, *options, home=home)
    return next(
        line.split()[-1] for line in added.stdout.splitlines() if line.startswith("client_secret")
    )


def raw_log(home: Path) -> list[tuple[dict[str, Any], bytes]]:
    """Every entry, decoded straight from its stored line, with the line."""
    _, stored = read_entries(home / "audit" / "log.sqlite3")
    return [(json.loads(s.line), s.line) for s in stored]


def wait_for(home: Path, action: str, trigger: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if any(e.get("action") == action and e.get("trigger") == trigger for e, _ in raw_log(home)):
            return
        time.sleep(0.1)
    raise AssertionError(f"no {action} entry ({trigger}) within {seconds} s")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A served workspace with a known workload: pages read by two clients, refusals of four
    kinds, a quota run out, and a policy edit picked up while serving."""
    home = tmp_path_factory.mktemp("console") / "ws"
    gateway("init", "--demo", "--rows", "1000", home=home)
    creds = json.loads((home / "demo-client.json").read_text())
    secrets = {
        "demo": creds["client_secret"],
        "auditor": add_client(home, "auditor", "--scope", "audit:read"),
        "root-admin": add_client(home, "root-admin", "--scope", "admin"),
        "analyst": add_client(home, "analyst", "--rows-per-day", "30"),
    }
    # The edit below is picked up within 0.2 s (the shipped default, 2 s, is a setting).
    server = start_server(home, env={"GATEWAY_POLICY_POLL_SECONDS": "0.2"})
    try:
        demo = oauth_client(server, "demo", secrets["demo"])
        for size in (20, 20, 20, 10):
            page = demo.get(
                f"{server.base}/v1/datasets/residents/rows",
                params={"purpose": "statistics", "_size": size},
            )
            assert page.status_code == 200
        assert demo.get(f"{server.base}/v1/datasets/nope").status_code == 404
        with httpx.Client(verify=server.ca) as anonymous:
            for _ in range(3):
                assert anonymous.get(f"{server.base}/v1/datasets").status_code == 401
        policy = home / "policies" / "residents.yaml"
        policy.write_text(
            policy.read_text().replace("clients: [demo]", "clients: [demo, analyst]", 1)
        )
        wait_for(home, "policy.reload", "file change")
        analyst = oauth_client(server, "analyst", secrets["analyst"])
        for expected in (200, 429):
            page = analyst.get(
                f"{server.base}/v1/datasets/residents/rows",
                params={"purpose": "statistics", "_size": 20},
            )
            assert page.status_code == expected
        yield Site(server, secrets)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser(site: Site) -> Iterator[Browser]:
    # Chromium trusts the test server's own key (pinned), not every certificate.
    yield from launch_chromium(
        f"--ignore-certificate-errors-spki-list={spki_pin(site.home / 'keys' / 'server.crt')}"
    )


def receipt_idx(response: Response, home: Path) -> int:
    """The index of the response's own audit entry, from its verified Audit-Receipt."""
    receipt = verify_receipt(response.headers["audit-receipt"], audit_keys(home))
    idx = receipt["idx"]
    assert isinstance(idx, int)
    return idx


def cells(page: Page, table: str) -> list[list[str]]:
    rows = page.locator(f"table#{table} tr").all()
    return [[c.inner_text().strip() for c in row.locator("td").all()] for row in rows[1:]]


def n(text: str) -> int:
    return int(text.replace(",", ""))


def calls_before(home: Path, idx: int) -> list[dict[str, Any]]:
    return [e for e, _ in raw_log(home) if e["idx"] < idx and e["kind"] == "http"]


def check_status(page: Page, home: Path, idx: int) -> None:
    log = raw_log(home)
    assert n(page.inner_text("#size")) == idx  # the log's size when the page was drawn
    assert page.inner_text("#head") == leaf_hash(log[idx - 1][1]).hex()
    reloads = [e for e, _ in log if e.get("action") == "policy.reload" and e["idx"] < idx]
    assert page.inner_text("#policy-hash") == reloads[-1]["new"]


def check_clients(page: Page, home: Path, idx: int) -> None:
    calls = [e for e in calls_before(home, idx) if e.get("client")]
    shown = {row[0]: row for row in cells(page, "clients")}
    assert set(shown) == {"demo", "auditor", "root-admin", "analyst"}
    for client, row in shown.items():
        mine = [e for e in calls if e["client"] == client]
        rows = sum(e["rows"] for e in mine if e["decision"] == "allow" and e.get("dataset"))
        denied = sum(1 for e in mine if e["decision"] == "deny")
        failed = sum(1 for e in mine if e["decision"] == "error")
        shown_figures = (n(row[9]), n(row[10]), n(row[11]), n(row[12]))
        assert shown_figures == (len(mine), rows, denied, failed), client
    assert shown["analyst"][6] == "30"  # its own daily quota
    assert shown["analyst"][7] == "20"
    assert shown["analyst"][8] == "67 %"


def check_usage(page: Page, home: Path, idx: int) -> None:
    calls = calls_before(home, idx)
    assert n(page.inner_text("#total-calls")) == len(calls)
    assert n(page.inner_text("#total-rows")) == sum(
        e["rows"] for e in calls if e["decision"] == "allow" and e.get("dataset")
    )
    expected: Counter[tuple[str, str, str]] = Counter()
    for e in calls:
        if e.get("client") and e.get("dataset") and e["decision"] == "allow":
            expected[e["client"], e["dataset"], e.get("purpose") or "-"] += e["rows"]
    shown = {(r[0], r[1], r[2]): n(r[7]) for r in cells(page, "pairs")}
    assert shown == {k: v for k, v in expected.items()} | {k: 0 for k in shown if k not in expected}
    assert shown["demo", "residents", "statistics"] == 70
    assert shown["analyst", "residents", "statistics"] == 20


def check_refusals(page: Page, home: Path, idx: int) -> None:
    refused = [e for e in calls_before(home, idx) if e["decision"] in ("deny", "error")]
    assert n(page.inner_text("#refusal-total")) == len(refused)
    reasons = {r[0]: n(r[1]) for r in cells(page, "reasons")}
    assert reasons == dict(Counter(e["reason"] for e in refused))
    assert reasons["unauthenticated"] >= 3
    assert reasons["quota_exceeded"] == 1
    recent = cells(page, "recent")
    assert [n(r[0]) for r in recent] == sorted((e["idx"] for e in refused), reverse=True)[:100]


def check_grants(page: Page, home: Path, idx: int, views: list[dict[str, Any]]) -> None:
    for view in views:
        table = page.locator(f"#privacy-{view['grant']}")
        if view["model"]:
            model = view["model"]
            assert table.locator("td.k").inner_text() == f"{model['k_required']} / {model['k']}"
        if view["risk"]:
            assert table.locator("td.smallest").inner_text() == str(view["risk"]["smallest_class"])


def check_policy(page: Page, home: Path, idx: int) -> None:
    events = [
        e
        for e, _ in raw_log(home)
        if e["idx"] < idx and e.get("action") in ("policy.reload", "policy.rejected")
    ]
    assert page.locator("main h3.change").count() == len(events) >= 2  # start, then the edit
    assert "policy.reload" in page.inner_text("main")


def test_console_in_chromium(site: Site, browser: Browser, tmp_path: Path) -> None:
    """Sign in as an auditor, open every page: each figure matches the raw log, each page view
    is one audit entry naming the client, the CSP forbids scripts, no request leaves the
    origin, and signing out revokes the session's token."""
    base, home = site.server.base, site.home
    admin = oauth_client(site.server, "root-admin", site.secrets["root-admin"])
    views = admin.get(f"{base}/v1/admin/status").json()["views"]
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    requests: list[str] = []
    problems: list[str] = []
    page.on("request", lambda r: requests.append(f"{r.method} {r.url} {r.resource_type}"))
    page.on(
        "console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None
    )
    page.on("pageerror", lambda e: problems.append(str(e)))

    first = page.goto(f"{base}/console")
    assert first is not None
    assert first.status == 401
    page.screenshot(path=str(tmp_path / "sign-in.png"), full_page=True)
    page.fill("#client_id", "auditor")
    page.fill("#client_secret", site.secrets["auditor"])
    with page.expect_navigation() as landed:
        page.click("form.signin button[type=submit]")
    assert landed.value is not None
    assert landed.value.status == 200
    assert page.url == f"{base}/console"
    assert page.inner_text("#who") == "auditor"

    (cookie,) = context.cookies()
    assert cookie["name"] == "__Host-gateway-console"
    assert (cookie["httpOnly"], cookie["secure"], cookie["sameSite"]) == (True, True, "Strict")
    token_hash = hashlib.sha256(cookie["value"].encode()).hexdigest()

    checks = {
        "status": check_status,
        "clients": check_clients,
        "usage": check_usage,
        "refusals": check_refusals,
        "policy": check_policy,
    }
    viewed: list[tuple[int, str]] = []
    for name, path in PAGES:
        with page.expect_navigation() as navigation:
            page.click(f"header nav a[href='{path}']")
        response = navigation.value
        assert response is not None
        assert response.status == 200, name
        csp = response.headers["content-security-policy"]
        assert "default-src 'none'" in csp
        assert "unsafe-inline" not in csp
        assert "script" not in csp
        assert response.headers["x-frame-options"] == "DENY"
        idx = receipt_idx(response, home)
        viewed.append((idx, path))
        page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)
        if name == "grants":
            check_grants(page, home, idx, views)
        else:
            checks[name](page, home, idx)

    log = {e["idx"]: e for e, _ in raw_log(home)}
    for idx, path in viewed:  # promise 6: each page view is one entry, naming who viewed it
        entry = log[idx]
        assert (entry["route"], entry["client"], entry["decision"]) == (path, "auditor", "allow")
        assert entry["token_sha256"] == token_hash
    sign_in = [e for e in log.values() if e.get("route") == "/console/sign-in"]
    assert [(e["client"], e["decision"]) for e in sign_in] == [("auditor", "allow")]

    with page.expect_navigation():
        page.click("header form button[type=submit]")
    assert page.url == f"{base}/console/sign-in"
    assert context.cookies() == []
    revoked = httpx.get(
        f"{base}/v1/audit/entries",
        headers={"Authorization": f"Bearer {cookie['value']}"},
        verify=site.server.ca,
    )
    assert revoked.status_code == 401  # the session's token was revoked, not only forgotten

    # Only documents, only from this origin: no stylesheet, script, font or image request, and
    # one audit entry per request the browser sent.
    assert requests
    assert all(r.split()[1].startswith(f"{base}/console") for r in requests), requests
    assert {r.split()[2] for r in requests} == {"document"}
    console_entries = [
        e for e in raw_log(home) if str(e[0].get("route") or "").startswith("/console")
    ]
    assert len(console_entries) == len(requests)
    # No CSP violation, no script error, no other complaint than the first page's own 401.
    assert [p for p in problems if "status of 401" not in p] == [], problems
    context.close()


def test_console_refusals_are_audited(site: Site) -> None:
    """Hostile and mistaken sign-ins: cross-site posts, a data client, a wrong secret, a forged
    cookie and HEAD are refused, each audited, and no session cookie is set."""
    base, ca = site.server.base, site.server.ca
    before = len(raw_log(site.home))
    form = {"client_id": "auditor", "client_secret": site.secrets["auditor"]}
    with httpx.Client(verify=ca) as http:
        cross = http.post(
            f"{base}/console/sign-in", data=form, headers={"Sec-Fetch-Site": "cross-site"}
        )
        assert cross.status_code == 403
        assert "set-cookie" not in cross.headers
        foreign = http.post(
            f"{base}/console/sign-in", data=form, headers={"Origin": "https://evil.example"}
        )
        assert foreign.status_code == 403
        same = {"Sec-Fetch-Site": "same-origin"}
        data_only = http.post(
            f"{base}/console/sign-in",
            data={"client_id": "demo", "client_secret": site.secrets["demo"]},
            headers=same,
        )
        assert data_only.status_code == 403
        assert "set-cookie" not in data_only.headers
        wrong = http.post(
            f"{base}/console/sign-in",
            data={"client_id": "auditor", "client_secret": "x" * 40},
            headers=same,
        )
        assert wrong.status_code == 401
        assert "set-cookie" not in wrong.headers
        forged = http.get(
            f"{base}/console/clients", headers={"Cookie": "__Host-gateway-console=a.b.c"}
        )
        assert forged.status_code == 401
        assert "auditor" not in forged.text
        assert http.head(f"{base}/console").status_code == 405
        admin = http.post(
            f"{base}/console/sign-in",
            data={"client_id": "root-admin", "client_secret": site.secrets["root-admin"]},
            headers=same,
            follow_redirects=False,
        )
        assert admin.status_code == 303
        assert "__Host-gateway-console=" in admin.headers["set-cookie"]
    entries = [e for e, _ in raw_log(site.home)][before:]
    assert [(e["route"], e["decision"], e["reason"]) for e in entries] == [
        ("/console/sign-in", "deny", "cross_site"),
        ("/console/sign-in", "deny", "cross_site"),
        ("/console/sign-in", "deny", "scope_missing"),
        ("/console/sign-in", "deny", "invalid_client"),
        ("/console/clients", "deny", "unauthenticated"),
        (None, "deny", "method_not_allowed"),
        ("/console/sign-in", "allow", "signed_in"),
    ]
