"""Leak tracing (issue 9): per-client fingerprints, row records in audit entries, the command."""

from __future__ import annotations

import base64
import functools
import importlib.util
import io
import json
import re
import shutil
import zlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from gateway.audit.reader import read_entries
from gateway.audit.rowset import decode_rows, encode_rows
from gateway.cli import main
from gateway.data.checksums import credit_code_valid, id_card_valid
from gateway.data.sources import SourceCache
from gateway.model.dataset import Classification, Column, ColumnType, Dataset
from gateway.model.grant import Fingerprint, Grant, Limits, PrivacyModel, TransformSpec, derived_qis
from gateway.model.policyset import PolicySet
from gateway.policy.check import PolicyError
from gateway.policy.files import load_policies
from gateway.privacy.fingerprint import apply_fingerprint, carriers
from gateway.privacy.kanon import PrivacyUnreachable
from gateway.privacy.transforms import CATALOGUE, TransformContext
from gateway.privacy.views import materialize
from gateway.settings import Workspace
from gateway.trace import tracer
from gateway.trace.attribute import DECOY, Candidate, attribute
from gateway.trace.extract import ExtractError, canonical, read_extract
from tests.conftest import Demo

SECRET = bytes(range(32))
ROWS = "/v1/datasets/residents/rows?purpose=statistics"


def _policy(home: Path) -> PolicySet:
    return load_policies(home / "policies", home)


def _view(home: Path, grant_id: str, client: str, secret: bytes = SECRET, **changes: Any) -> Any:
    policy = _policy(home)
    grant = next(g for g in policy.grants if g.id == grant_id)
    grant = replace(grant, **changes)
    dataset = policy.datasets[grant.dataset]
    source = SourceCache(Workspace(home)).load(dataset)
    ctx = TransformContext(secret, client, grant.id)
    return materialize(source.frame, source.version, dataset, grant, policy.hash, ctx)


# --- fingerprints: k and l never lowered --------------------------------------------------------

_DATASET = Dataset(
    "people",
    "t",
    "t",
    "t",
    Path("people.csv"),
    (
        Column("gender", ColumnType.STRING, Classification.PERSONAL),
        Column("band", ColumnType.STRING, Classification.PERSONAL),
        Column("age", ColumnType.INTEGER, Classification.PERSONAL),
        Column("income", ColumnType.INTEGER, Classification.SENSITIVE),
        Column("address", ColumnType.STRING, Classification.PERSONAL),
    ),
    "t.yaml",
)


def _grant(sensitive: str | None, recoding: str = "full-domain") -> Grant:
    # The release floors are not what this test checks: every protected column is justified.
    why = ("justification", "测试数据：随机生成的表，不对应任何个人")
    columns = (
        ("gender", TransformSpec("keep")),
        ("band", TransformSpec("keep")),
        ("age", TransformSpec("perturb", (("noise", "laplace"), ("scale", 3), why))),
        ("income", TransformSpec("perturb", (("noise", "laplace"), ("scale", 50), why))),
        ("address", TransformSpec("mask", (("preset", "address"), why))),
    )
    # Every released column derived from a real value is a quasi-identifier (issue 13).
    qis = derived_qis(columns, (), sensitive)
    model = PrivacyModel(
        2, qis, 2 if sensitive else None, sensitive, max_suppression=0.5, recoding=recoding
    )
    return Grant(
        "g",
        "people",
        frozenset({"a"}),
        frozenset({"p"}),
        columns,
        Limits(),
        "t.yaml",
        1,
        privacy=model,
        fingerprint=Fingerprint(),
    )


def _k_and_l(frame: pd.DataFrame, qis: list[str], sensitive: str | None) -> tuple[int, int | None]:
    groups = frame.groupby(qis, dropna=False)
    k = int(groups.size().min())
    return k, int(groups[sensitive].nunique(dropna=False).min()) if sensitive else None


_ADDRESSES = ("北京市朝阳区建国路1号", "北京市海淀区中关村街5号", "杭州市西湖区文三路9号", "", "x")


@functools.cache
def _columns_of(n: int) -> st.SearchStrategy[dict[str, list[Any]]]:
    """The columns of an n-row table: one strategy per row count, built on its first draw and
    reused (one built per draw is a new object Hypothesis validates before drawing from it)."""
    return st.fixed_dictionaries(
        {
            "gender": st.lists(st.sampled_from(["男", "女"]), min_size=n, max_size=n),
            "band": st.lists(st.sampled_from(["20-29", "30-39", "*"]), min_size=n, max_size=n),
            "age": st.lists(st.integers(0, 120), min_size=n, max_size=n),
            "income": st.lists(st.one_of(st.none(), st.integers(0, 99999)), min_size=n, max_size=n),
            "address": st.lists(
                st.sampled_from(_ADDRESSES),
                min_size=n,
                max_size=n,
            ),
        }
    )


frames = st.integers(min_value=4, max_value=60).flatmap(_columns_of)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=frames,
    sensitive=st.sampled_from([None, "income", "address"]),
    recoding=st.sampled_from(["full-domain", "local"]),
    client=st.text(min_size=1, max_size=8),
)
def test_fingerprint_never_lowers_k_or_l(
    data: dict[str, list[Any]], sensitive: str | None, recoding: str, client: str
) -> None:
    """Promise 4: fingerprints are applied before the privacy model, so the view that leaves,
    marks included, meets k and l counted over every released quasi-identifier on its final
    rows (or nothing is released); the marks themselves stay small and format-preserving."""
    source = pd.DataFrame(data).astype(
        {"gender": "string", "band": "string", "age": "Int64", "income": "Int64"}
    )
    source["address"] = source["address"].astype("string")
    grant = _grant(sensitive, recoding)
    qis = list(grant.quasi_identifiers())
    assert grant.privacy is not None
    assert qis == list(grant.privacy.quasi_identifiers)
    ctx = TransformContext(SECRET, client, grant.id)
    try:
        view = materialize(source, "v", _DATASET, grant, "p", ctx)
    except PrivacyUnreachable:
        # Only when no recoding could meet l: every row in one class still lacks 2 values.
        assert sensitive is not None
        released = apply_fingerprint(
            _released(source, grant, ctx), source, _DATASET, grant, SECRET, client
        )
        assert released[sensitive].nunique(dropna=False) < 2
        return
    if not view.frame.empty:  # the outsider's count over everything released
        k, l_value = _k_and_l(view.frame, qis, sensitive)
        assert k >= 2
        assert l_value is None or l_value >= 2
    # The marks: exactly the carriers change (quasi-identifiers included), each by a bounded,
    # format-preserving step: integers by at most one unit, masks keep their head.
    released = _released(source, grant, ctx)
    marked = apply_fingerprint(released, source, _DATASET, grant, SECRET, client)
    marked_names = {c for c, _ in carriers(grant, _DATASET)}
    assert marked_names == {"age", "income", "address"}
    for name in released.columns:
        if name not in marked_names:
            pd.testing.assert_series_equal(marked[name], released[name])
    for name in ("age", "income"):
        moved = (marked[name] - released[name]).abs().dropna()
        assert (moved <= 1).all()
    original, changed = released["address"].fillna(""), marked["address"].fillna("")
    assert (original.str.rstrip("*") == changed.str.rstrip("*")).all()


def _released(source: pd.DataFrame, grant: Grant, ctx: TransformContext) -> pd.DataFrame:
    """The grant's transforms alone (no fingerprint, no model): what the marks start from."""
    released = {n: CATALOGUE[s.name].apply(source[n], s.options, ctx) for n, s in grant.columns}
    return pd.DataFrame(released, index=source.index)


@pytest.mark.parametrize(
    "grant_id", ["demo-residents", "demo-residents-planning", "demo-enterprise-research"]
)
def test_fingerprint_keeps_the_demo_views_privacy(template_home: Path, grant_id: str) -> None:
    """Promise 4 on the demo grants: marks come before the model, so the view that leaves meets
    k and l counted over every released quasi-identifier on its final rows; what is neither a
    carrier nor a quasi-identifier is the same with and without fingerprints."""
    marked = _view(template_home, grant_id, "demo")
    plain = _view(template_home, grant_id, "demo", fingerprint=Fingerprint(enabled=False))
    policy = _policy(template_home)
    grant = next(g for g in policy.grants if g.id == grant_id)
    model = grant.privacy
    assert model is not None
    qis = list(grant.quasi_identifiers())
    assert qis == list(model.quasi_identifiers)
    sensitive = model.sensitive if model.l is not None else None
    for view in (marked, plain):
        k, l_value = _k_and_l(view.frame, qis, sensitive)
        assert k >= model.k
        assert view.privacy is not None
        assert view.privacy.k >= model.k
        if model.l is not None:
            assert l_value is not None
            assert l_value >= model.l
    marked_columns = {c for c, _ in carriers(grant, policy.datasets[grant.dataset])}
    if not marked_columns:
        # Statistics releases no carrier (generalized, fixed-form masks, per-client synthetic
        # IDs): its view is the same with and without fingerprints.
        pd.testing.assert_frame_equal(marked.frame, plain.frame)
        return
    assert len(marked.frame) == len(plain.frame)
    for name in marked.frame.columns:
        if name not in marked_columns and name not in qis:
            pd.testing.assert_series_equal(marked.frame[name], plain.frame[name])
    # The marks survive the recoding in part (interval bounds are marked values).
    assert any(not marked.frame[c].equals(plain.frame[c]) for c in marked_columns)


def _traceable(home: Path, client: str, secret: bytes = SECRET) -> Any:
    """A test-local residents grant without a privacy model that releases one column of every
    carrier kind (masked address, shifted dates, noisy income) next to plain ones: the marks
    leave as computed, as on the register's model-free grant."""
    why = ("justification", "追溯测试：验证指纹不破坏格式")
    columns = (
        ("id_card", TransformSpec("synthesize", (("kind", "id_card"),))),
        ("gender", TransformSpec("keep", (why,))),
        ("age", TransformSpec("keep", (why,))),
        ("district", TransformSpec("keep")),
        ("birth_date", TransformSpec("date_shift", (("subject", "id_card"), ("max_days", 30)))),
        ("address", TransformSpec("mask", (("preset", "address"), why))),
        ("monthly_income", TransformSpec("perturb", (("noise", "laplace"), ("scale", 200)))),
    )
    return _view(home, "demo-residents", client, secret, privacy=None, columns=columns)


def test_fingerprint_never_breaks_formats_or_checksums(template_home: Path) -> None:
    """Formats and check characters survive: carriers are never checksummed columns, a masked
    address keeps its head, dates stay dates, rounded values stay multiples."""
    research = _view(template_home, "demo-enterprise-research", "demo").frame
    assert research["credit_code"].map(credit_code_valid).all()
    assert research["legal_rep_id_card"].map(id_card_valid).all()
    # Rounded capital is a carrier and a quasi-identifier: the model recodes it to intervals
    # whose bounds are released (marked) values, still multiples of 100.
    bounds = research["registered_capital"].dropna().str.findall(r"\d+").explode().dropna()
    assert len(bounds)
    assert (bounds.astype(int) % 100 == 0).all()
    planning = _view(template_home, "demo-residents-planning", "demo").frame
    # Shifted (and marked) dates recoded to intervals: every bound is a real calendar date.
    days = planning["birth_date"].dropna().str.split("/").explode()
    days = days[days != "*"]
    assert len(days)
    assert days.str.fullmatch(r"\d{4}-\d{2}-\d{2}").all()
    assert pd.to_datetime(days, format="%Y-%m-%d").notna().all()
    register = _view(template_home, "demo-enterprise-registry", "demo").frame
    assert register["credit_code"].map(credit_code_valid).all()
    assert register["legal_rep_mobile"].dropna().str.fullmatch(r"1\d{2}\*{8}").all()
    marked = _traceable(template_home, "demo").frame
    assert marked["address"].str.fullmatch(r".+?(区|县|旗)\*{4,6}").all()
    assert marked["address"].str.len().ne(marked["address"].str.rstrip("*").str.len() + 4).any()
    assert marked["birth_date"].dropna().str.fullmatch(r"\d{4}-\d{2}-\d{2}").all()
    assert pd.to_datetime(marked["birth_date"].dropna(), format="%Y-%m-%d").notna().all()
    assert marked["id_card"].map(id_card_valid).all()


def test_fingerprint_is_deterministic_per_recipient_and_differs_across_clients(
    template_home: Path,
) -> None:
    """Promise 5: the same (secret, grant, client) gives the same view; another client or
    another secret a different one."""
    first = _traceable(template_home, "alpha").frame
    again = _traceable(template_home, "alpha").frame
    other = _traceable(template_home, "beta").frame
    rekeyed = _traceable(template_home, "alpha", secret=bytes(32)).frame
    pd.testing.assert_frame_equal(first, again)
    assert (first["address"] != other["address"]).mean() > 0.5
    assert (first["address"] != rekeyed["address"]).mean() > 0.5
    for name in ("gender", "age", "district"):
        pd.testing.assert_series_equal(first[name], other[name])
    # The demo statistics view (no carrier): the same view again, other IDs for another client.
    stats = _view(template_home, "demo-residents", "alpha").frame
    pd.testing.assert_frame_equal(stats, _view(template_home, "demo-residents", "alpha").frame)
    others = _view(template_home, "demo-residents", "beta").frame
    assert (stats["id_card"] != others["id_card"]).all()


def test_fingerprint_off_and_kept_integers(tmp_path: Path, template_home: Path) -> None:
    """`fingerprint: off` releases unmarked views; `{keep: [...]}` opts a kept integer in; the
    loader refuses columns a fingerprint must not touch."""
    source = (template_home / "policies" / "enterprise_registry.yaml").read_text()
    home = tmp_path / "ws"
    (home / "policies").mkdir(parents=True)
    (home / "data").symlink_to(template_home / "data")
    shutil.copytree(template_home / "policies" / "hierarchies", home / "policies" / "hierarchies")
    opted = source.replace(
        "  - id: demo-enterprise-registry\n",
        "  - id: demo-enterprise-registry\n    fingerprint: {keep: [registered_capital]}\n",
    )
    (home / "policies" / "enterprise_registry.yaml").write_text(opted)
    plain = _view(template_home, "demo-enterprise-registry", "demo").frame
    marked = _view(home, "demo-enterprise-registry", "demo").frame
    moved = (marked["registered_capital"] - plain["registered_capital"]).abs()
    assert moved.max() == 1
    assert (moved == 0).any()
    off = source.replace(
        "  - id: demo-enterprise-research\n",
        "  - id: demo-enterprise-research\n    fingerprint: off\n",
    )
    (home / "policies" / "enterprise_registry.yaml").write_text(off)
    grant = next(g for g in _policy(home).grants if g.id == "demo-enterprise-research")
    assert grant.fingerprint.enabled is False
    for bad in ("{keep: [industry]}", "{keep: [company_name]}", "[1]", "{keep: [x], also: 1}"):
        text = source.replace(
            "  - id: demo-enterprise-registry\n",
            f"  - id: demo-enterprise-registry\n    fingerprint: {bad}\n",
        )
        (home / "policies" / "enterprise_registry.yaml").write_text(text)
        with pytest.raises(PolicyError, match="fingerprint"):
            _policy(home)


# --- row records ------------------------------------------------------------------------------


@given(st.lists(st.integers(0, 2**32 - 1), max_size=300))
def test_row_record_round_trips(positions: list[int]) -> None:
    """A row record decodes to exactly the distinct positions it was made of."""
    assert decode_rows(encode_rows(positions)).tolist() == sorted(set(positions))


@pytest.mark.parametrize(
    "record",
    [
        "not base64!",
        base64.b64encode(b"not zlib").decode(),
        base64.b64encode(zlib.compress(b"\x00\x00\x00\x01\x00\x00\x00\x00")).decode(),  # repeat
        base64.b64encode(zlib.compress(b"\x00\x00\x01")).decode(),  # not whole integers
        base64.b64encode(zlib.compress(bytes(4 * (1 << 20) + 4))).decode(),  # a zip bomb
        "ｆｕｌｌ",
    ],
)
def test_hostile_row_records_are_refused(record: str) -> None:
    """A malformed or oversized record is a ValueError, never a crash or a huge allocation."""
    with pytest.raises(ValueError, match="row record"):
        decode_rows(record)


# --- reading extracts -------------------------------------------------------------------------


def test_canonical_text_absorbs_reencodings() -> None:
    """Whitespace, case, full-width digits, thousands separators, `.0`, date spellings and the
    CSV formula guard do not change a cell's canonical text; nulls are one value."""
    raw = pd.Series(
        [" 1,234.0 ", "１２３４", "'-5", "2014/6/2", "2014年6月2日", " AbC ", None, "NULL"]
    )
    expected = ["1234", "1234", "-5", "2014-06-02", "2014-06-02", "abc", "\x00", "\x00"]
    assert canonical(raw).tolist() == expected


def test_extract_formats(tmp_path: Path) -> None:
    """CSV (also GB 18030, tab-separated), an API JSON page, a JSON array and NDJSON read alike."""
    frame = pd.DataFrame({"甲": ["北京市", "上海市"], "乙": [5615, -3]})
    (tmp_path / "a.csv").write_bytes(frame.to_csv(index=False, sep="\t").encode("gb18030"))
    page = {"rows": frame.to_dict(orient="records"), "view": {"grant": "g"}}
    (tmp_path / "b.json").write_text(json.dumps(page, ensure_ascii=False))
    (tmp_path / "c.json").write_text(json.dumps(page["rows"], ensure_ascii=False))
    (tmp_path / "d.ndjson").write_text(frame.to_json(orient="records", lines=True))
    for name in ("a.csv", "b.json", "c.json", "d.ndjson"):
        extract = read_extract(tmp_path / name)
        assert list(extract.frame.columns) == ["甲", "乙"], name
        assert canonical(extract.frame["乙"]).tolist() == ["5615", "-3"], name
    assert read_extract(tmp_path / "b.json").claimed == {"grant": "g"}


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("x.json", b'{"a": 1}', "array of objects"),
        ("x.json", b"[1, 2]", "JSON object"),
        ("x.json", b"[{", "not a JSON document"),
        ("x.ndjson", b'{"a": 1}\nnope\n', "line 2"),
        ("x.csv", b"\xff\xfe\xfa\x80\x81" * 3, "UTF-8"),
        ("x.xls", b"", ".xls"),
    ],
)
def test_hostile_extracts_get_a_clear_error(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    """A file that is no extract is refused with a message, never a traceback."""
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ExtractError, match=re.escape(message)):
        read_extract(tmp_path / name)


def test_xlsx_needs_openpyxl_or_says_so(tmp_path: Path) -> None:
    """Without openpyxl, a spreadsheet is refused with the fix; with it, the sheet is read."""
    path = tmp_path / "leak.xlsx"
    if importlib.util.find_spec("openpyxl") is None:
        path.write_bytes(b"PK")
        with pytest.raises(ExtractError, match="openpyxl"):
            read_extract(path)
        return
    pd.DataFrame({"a": ["x", "y"]}).to_excel(path, index=False)
    assert read_extract(path).frame["a"].tolist() == ["x", "y"]


# --- attribution and the command ----------------------------------------------------------------


def _candidates(home: Path, grant_id: str, clients: list[str]) -> list[Candidate]:
    found = []
    for client in clients:
        view = _view(home, grant_id, client)
        found.append(Candidate.of("residents", grant_id, client, view.key, view.ordered))
    return found


def test_no_false_attribution_for_foreign_or_uninformative_extracts(template_home: Path) -> None:
    """Rows from a view computed with another secret, random values, or columns that are the
    same for every recipient give "no attribution", never a name."""
    clients = ["a", "b", "c"]
    pool = _candidates(template_home, "demo-residents-planning", clients)
    foreign = _view(template_home, "demo-residents-planning", "a", secret=bytes(32)).ordered
    assert attribute(foreign.head(300), pool).named is None
    plain = foreign[["gender", "birth_date", "city", "id_card"]].head(300)
    assert attribute(plain, pool).named is None
    noise = pd.DataFrame({"x": np.arange(300).astype(str), "y": ["?"] * 300})
    result = attribute(noise, pool)
    assert result.named is None
    assert "no column" in result.reason
    mixed = pd.concat(
        [
            _view(template_home, "demo-residents-planning", "a").ordered.head(150),
            _view(template_home, "demo-residents-planning", "b").ordered.tail(150),
        ]
    )
    assert attribute(mixed, pool).named is None
    own = _view(template_home, "demo-residents-planning", "b").ordered.sample(200, random_state=3)
    named = attribute(own[["monthly_income", "gender", "city"]], pool).named
    assert named is not None
    assert named.client == "b"


def test_trace_names_the_client_and_lists_the_audit_entries(
    client: TestClient, demo: Demo, token: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A leaked CSV page, renamed and reordered, is traced to the demo client and its grant, and
    to the audit entries whose responses held those rows; the log still verifies."""
    auth = {"Authorization": f"Bearer {token}"}
    first = client.get(f"{ROWS}&_size=300&_format=csv", headers=auth)
    second = client.get(f"{ROWS}&_size=100&_sort=age", headers=auth)
    assert first.status_code == 200
    assert second.status_code == 200
    _, stored = read_entries(demo.settings.audit_database)
    entries = [json.loads(e.line) for e in stored]
    rows_entries = [e for e in entries if e.get("route") == "/v1/datasets/{dataset_id}/rows"]
    assert [len(decode_rows(e["row_ids"])) for e in rows_entries] == [300, 100]
    assert all(e["view"] == rows_entries[0]["view"] for e in rows_entries)
    leaked = pd.read_csv(io.StringIO(first.text), dtype=str).sample(frac=1, random_state=1)
    leaked = leaked[["id_card", "gender", "district", "age"]]
    leaked.columns = ["身份证号", "性别", "区县", "年龄"]
    leaked.to_csv(tmp_path / "leak.csv", index=False)
    home = str(demo.home)
    assert main(["trace", str(tmp_path / "leak.csv"), "--home", home, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["client"], report["grant"]) == ("demo", "demo-residents")
    assert report["confidence"] >= 0.999
    assert report["mapping"]["demo-residents"]["身份证号"] == "id_card"
    hits = {h["idx"]: h["leaked"] for h in report["entries"]}
    assert rows_entries[0]["idx"] in hits
    assert hits[rows_entries[0]["idx"]] >= 280
    # The same leak as a spreadsheet export (an auditor's usual file) is traced the same way.
    leaked.to_excel(tmp_path / "leak.xlsx", index=False)
    assert main(["trace", str(tmp_path / "leak.xlsx"), "--home", home, "--json"]) == 0
    from_sheet = json.loads(capsys.readouterr().out)
    assert (from_sheet["client"], from_sheet["grant"]) == ("demo", "demo-residents")
    assert main(["audit", "verify", "--home", home]) == 0


def test_trace_command_reports_no_attribution_and_bad_files(
    demo: Demo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit 3 and "NO ATTRIBUTION" for an extract nobody received; exit 2 for an unreadable one."""
    pd.DataFrame({"a": ["x"] * 50}).to_csv(tmp_path / "leak.csv", index=False)
    assert main(["trace", str(tmp_path / "leak.csv"), "--home", str(demo.home)]) == 3
    assert "NO ATTRIBUTION" in capsys.readouterr().out
    (tmp_path / "bad.json").write_text("{")
    assert main(["trace", str(tmp_path / "bad.json"), "--home", str(demo.home)]) == 2
    assert "not a JSON document" in capsys.readouterr().err


def test_chance_matches_are_never_attributed(
    demo: Demo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Hostile or accidental input: rows made up from values every recipient sees (gender and
    district drawn independently: every pair occurs in the view) match the only grant releasing
    those columns as well as they match a recipient that does not exist: "no attribution",
    never a name (exit 3)."""
    rng = np.random.default_rng(5)
    made_up = pd.DataFrame(
        {
            "性别": rng.choice(["男", "女"], 60),
            "区县": rng.choice(["朝阳区", "海淀区", "天河区", "越秀区"], 60),
        }
    )
    made_up.to_csv(tmp_path / "made-up.csv", index=False)
    code = main(["trace", str(tmp_path / "made-up.csv"), "--home", str(demo.home), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 3, report
    assert report["client"] is None


def test_no_attribution_without_the_decoy_baseline(
    demo: Demo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Never a wrong name: whether a view can be released depends on the recipient (marks come
    before the model), so when the decoy's view of a grant cannot be, the grant has no chance
    baseline and made-up rows of values every recipient sees are still "no attribution"."""
    real = materialize  # what the tracer calls (gateway.privacy.views.materialize)

    def unreachable_for_the_decoy(*args: Any) -> Any:
        if args[-1].client_id == DECOY:
            raise PrivacyUnreachable("k=5 cannot be met within the suppression limit")
        return real(*args)

    monkeypatch.setattr(tracer, "materialize", unreachable_for_the_decoy)
    rng = np.random.default_rng(5)
    made_up = pd.DataFrame(
        {
            "性别": rng.choice(["男", "女"], 60),
            "区县": rng.choice(["朝阳区", "海淀区", "天河区", "越秀区"], 60),
        }
    )
    made_up.to_csv(tmp_path / "made-up.csv", index=False)
    code = main(["trace", str(tmp_path / "made-up.csv"), "--home", str(demo.home), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 3, report
    assert report["client"] is None
    assert any("no baseline" in s for s in report["skipped"])


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("deep.json", b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        ("fake.xlsx", b"this is not a workbook", "not a readable .xlsx"),
        ("empty.xlsx", b"PK\x05\x06" + b"\x00" * 18, "not a readable .xlsx"),
    ],
)
def test_more_hostile_extracts_get_a_clear_error(
    tmp_path: Path, name: str, content: bytes, message: str
) -> None:
    """Deeply nested JSON and files that only claim to be workbooks: an error, never a crash."""
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ExtractError, match=message):
        read_extract(path)
