"""Issue 5: materialized views are computed once and kept on disk (Parquet), so a restart or
another worker serves the same bytes without recomputing; a tampered or foreign file is never
released as found; the released view reports information loss (NCP, discernibility)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from starlette.testclient import TestClient

import gateway.privacy.views as views_module
from gateway.app import create_app
from gateway.model.grant import PrivacyModel
from gateway.privacy.kanon import PrivacyReport, enforce, ncp
from gateway.privacy.viewstore import StoredView, ViewStore
from tests.conftest import BASE, Demo, token_for
from tests.paths import REPO

PAGES = [
    "/v1/datasets/residents/rows?purpose=statistics&_size=300",
    "/v1/datasets/residents/rows?purpose=statistics&_size=50&_sort=age&_extra=count",
    "/v1/datasets/enterprise_registry/rows?purpose=market-analysis&_size=200&_format=csv",
]


@pytest.fixture(autouse=True)
def no_stored_view(request: pytest.FixtureRequest) -> None:
    """These tests watch the view store fill: their workspace starts with no view stored (the
    shared template has the demo client's views stored: tests/conftest.py)."""
    if "demo" in request.fixturenames:
        demo: Demo = request.getfixturevalue("demo")
        shutil.rmtree(demo.home / "state" / "views")


def fetch_pages(demo: Demo) -> list[bytes]:
    with TestClient(create_app(demo.settings), base_url=BASE) as client:
        token = token_for(client, demo.client_id, demo.client_secret)
        pages = []
        for url in PAGES:
            response = client.get(url, headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 200, response.text
            pages.append(response.content)
        return pages


def stored_files(demo: Demo) -> list[Path]:
    return sorted((demo.home / "state" / "views").glob("*.parquet"))


def test_restart_serves_identical_bytes_without_recomputing(
    demo: Demo, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = fetch_pages(demo)
    files = stored_files(demo)
    assert len(files) == 2  # one per (dataset, grant, client)
    for path in files:
        assert path.stat().st_mode & 0o077 == 0  # private: only the gateway's user reads it

    def no_compute(*args: object, **kwargs: object) -> None:
        raise AssertionError("the view was recomputed although it is on disk")

    monkeypatch.setattr(views_module, "materialize", no_compute)
    assert fetch_pages(demo) == first


def test_tampered_file_is_recomputed_not_released(demo: Demo) -> None:
    first = fetch_pages(demo)
    for path in stored_files(demo):
        frame = pd.read_parquet(path)
        frame.iloc[:, 0] = frame.iloc[::-1, 0].to_numpy()  # a plausible, well-formed edit
        frame.to_parquet(path, index=False)
    assert fetch_pages(demo) == first  # the MAC failed: computed again, same result
    truncated = stored_files(demo)[0]
    truncated.write_bytes(truncated.read_bytes()[:100])
    assert fetch_pages(demo) == first


def test_a_new_secret_or_policy_never_reads_an_old_file(demo: Demo) -> None:
    fetch_pages(demo)
    before = set(stored_files(demo))
    secret = demo.settings.workspace.pseudonym_secret
    assert secret.exists()
    secret.chmod(0o600)
    secret.write_bytes(bytes(reversed(secret.read_bytes())))
    fetch_pages(demo)
    after = set(stored_files(demo))
    assert before < after  # new names: the old files are not even looked up
    policy = demo.home / "policies" / "residents.yaml"
    text = policy.read_text(encoding="utf-8")
    policy.unlink()  # the demo's policies may be links to the package's files
    policy.write_text(text.replace("[statistics]", "[statistics, census]", 1), encoding="utf-8")
    fetch_pages(demo)
    assert after < set(stored_files(demo))


def test_privacy_report_includes_information_loss(demo: Demo) -> None:
    with TestClient(create_app(demo.settings), base_url=BASE) as client:
        token = token_for(client, demo.client_id, demo.client_secret)
        body = client.get(PAGES[0], headers={"Authorization": f"Bearer {token}"}).json()
    privacy = body["view"]["privacy"]
    loss = privacy["information_loss"]
    assert 0.0 <= loss["ncp"] <= 1.0
    total = body["view"]["total_rows"] + privacy["suppressed_rows"]
    assert loss["discernibility"] >= total  # each released row costs at least its class (>= 1)


def test_ncp_and_discernibility_by_hand() -> None:
    """Generalizing one of two QIs to a label covering 2 of 4 values costs (2-1)/(4-1) per cell;
    a suppressed row costs 1 per QI; discernibility is sum of squares plus suppressed x n."""
    frame = pd.DataFrame(
        {
            "age": ["21", "22", "23", "24", "21", "22", "23", "99"],
            "sex": ["m", "m", "m", "m", "m", "m", "m", "f"],
        }
    )
    table = [{"21": "2x", "22": "2x", "23": "2y", "24": "2y", "99": "9x"}]
    model = PrivacyModel(
        k=2,
        quasi_identifiers=("age", "sex"),
        max_suppression=0.2,
        hierarchies=(("age", Path("age.csv")),),
        tables={"age": table},
    )
    released, report = enforce(frame, model)
    assert isinstance(report, PrivacyReport)
    assert report.suppressed == 1
    assert len(released) == 7
    domain = 5  # distinct ages in the source
    expected = (7 * (2 - 1) / (domain - 1) * (report.levels[0] == 1) + 1 * 2) / (8 * 2)
    assert report.ncp == pytest.approx(expected)
    sizes = released.groupby(["age", "sex"]).size()
    assert report.discernibility == int((sizes**2).sum()) + 1 * 8
    assert ncp(frame, frame.index, ("age", "sex"), (0, 0), {}) == 0.0
    assert ncp(frame, frame.index[:0], ("age", "sex"), (0, 0), {}) == 1.0
    rng = np.random.default_rng(1)
    assert 0 <= ncp(frame, frame.index[rng.random(8) < 0.5], ("age",), (1,), {"age": table}) <= 1


def test_new_code_never_reads_a_view_the_old_code_stored(
    demo: Demo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An upgrade that changes how views are computed (a transform, a privacy model) gets new
    view keys: files written by the old code are not served."""
    fetch_pages(demo)
    before = set(stored_files(demo))
    monkeypatch.setattr(views_module, "CODE_VERSION", "an-upgraded-release")
    fetch_pages(demo)
    assert before < set(stored_files(demo))


def test_the_code_version_covers_every_package_a_view_is_computed_with() -> None:
    """The same promise, kept as the code moves: every gateway package a module of
    gateway/privacy imports (synthetic identifiers in data/, token scopes in model/, ...) is
    hashed into CODE_VERSION, so a change there alone still gives new view keys."""
    import ast

    privacy = REPO / "gateway" / "privacy"
    imported: set[str] = set()
    for module in privacy.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            names = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            imported |= {n.split(".")[1] for n in names if n.startswith("gateway.")}
    packages = {p for p in imported if (REPO / "gateway" / p).is_dir()}
    assert {"privacy", "model", "data"} <= packages | {"privacy"}  # the test sees the imports
    covered = {f.relative_to(REPO / "gateway").parts[0] for f in views_module.view_code_files()}
    assert packages | {"privacy"} <= covered


def test_a_view_read_back_after_restart_is_kept_in_memory(
    demo: Demo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 15: after a restart a view is read from disk once, then served from memory (no
    re-reading, re-authenticating or re-permuting per request)."""
    first = fetch_pages(demo)  # computes the views and stores them
    loads: list[str] = []
    original_load = ViewStore.load

    def counting_load(self: ViewStore, key: str) -> StoredView | None:
        loads.append(key)
        return original_load(self, key)

    monkeypatch.setattr(ViewStore, "load", counting_load)
    with TestClient(create_app(demo.settings), base_url=BASE) as client:  # the restart
        token = token_for(client, demo.client_id, demo.client_secret)
        headers = {"Authorization": f"Bearer {token}"}
        for _ in range(3):
            pages = []
            for url in PAGES:
                response = client.get(url, headers=headers)
                assert response.status_code == 200, response.text
                pages.append(response.content)
            assert pages == first
    assert len(loads) == len(set(loads)) == 2  # each stored view read once, never again
