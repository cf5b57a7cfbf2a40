"""Privacy claims over what one client actually holds (issue 13 review, D1/D3/D5): per-person
tokens do not link a client's views across grants unless a justified wider scope says so; when
they do, `policy check` and the status report the joined release; columns declared not
identifying are counted in the figures over every released column; a row filter never selects
by the sensitive attribute it is meant to hide."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.auth.registry import ClientRegistry
from gateway.cli import main
from gateway.data.realvalues import RealValues
from gateway.data.sources import SourceCache
from gateway.model.grant import Grant, Limits, TransformSpec
from gateway.model.policyset import PolicySet
from gateway.policy.check import PolicyError
from gateway.policy.files import load_policies
from gateway.privacy.assess import Assessment, assess
from gateway.privacy.linkage import joined, linking_tokens
from gateway.privacy.transforms import CATALOGUE, TransformContext
from gateway.privacy.views import ViewCache, avoids_real_values
from gateway.runtime.services import figures_maker, read_secret, view_maker
from tests.conftest import BASE, Demo, token_for

TOKENS = {"pseudonymize", "synthesize", "suppress"}
WHY = "justification: 两个用途需要按人关联分析"


def edit_residents(home: Path, *edits: tuple[str, str]) -> Path:
    """The demo residents policy with `edits` applied (each must match), in place."""
    path = home / "policies" / "residents.yaml"
    text = path.read_text(encoding="utf-8")
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new)
    path.write_text(text, encoding="utf-8")
    return path


def assessed(demo: Demo) -> tuple[PolicySet, dict[str, Assessment], Any]:
    policy = load_policies(demo.settings.workspace.policies, demo.home)
    sources, views = SourceCache(demo.settings.workspace), ViewCache()
    frames_of = view_maker(demo.settings, sources, views, policy)
    found = assess(policy, figures_maker(demo.settings, sources, views, policy), frames_of)
    return policy, {a.grant: a for a in found}, frames_of


def outsider_join(
    policy: PolicySet, stats: pd.DataFrame, planning: pd.DataFrame, token: str
) -> pd.Series:
    """Class sizes of the two views joined on `token` (tokens unique in each view), grouped by
    every released column that is not a per-person token and carries a value: counted without
    the gateway's code."""
    grants = {g.id: dict(g.columns) for g in policy.grants}
    parts = []
    for name, frame, grant in (
        ("s", stats, "demo-residents"),
        ("p", planning, "demo-residents-planning"),
    ):
        once = frame[~frame[token].duplicated(keep=False)]
        kept = [
            c for c in once.columns if grants[grant][c].name not in TOKENS and once[c].notna().any()
        ]
        parts.append(once.set_index(token)[kept].add_prefix(f"{name}."))
    together = parts[0].join(parts[1], how="inner")
    return together.groupby(list(together.columns), dropna=False).size()


STATS_ID = (
    "id_card: {transform: synthesize, kind: id_card}"
    "   # a token per client and grant, never a real ID"
)
PLAN_ID = "      id_card: {transform: synthesize, kind: id_card}\n"


# Synthetic 身份证号: 24 region codes x 21,900 birth days x 1,000 sequence numbers.
ID_CARD_SPACE = 24 * 365 * 60 * 1000


def test_demo_client_cannot_join_its_residents_views_on_a_token(demo: Demo) -> None:
    """Promise 5 (scoped tokens): no person gets the same synthetic 身份证号 in the demo
    client's statistics and planning views, so the two k-anonymous views cannot be joined
    person by person, and `policy check` finds no linked pair. Two different people may draw
    the same value by chance (two views of ~2,000 rows in a space of 5.3e8 values: one shared
    value in ~0.6 % of workspaces, seen once in CI); such a match joins strangers, and there
    are never more than chance allows (3 or more: ~4e-8), where unscoped tokens would share
    every kept person's."""
    policy = load_policies(demo.settings.workspace.policies, demo.home)
    sources = SourceCache(demo.settings.workspace)
    frames_of = view_maker(demo.settings, sources, ViewCache(), policy)
    residents = policy.datasets["residents"]
    grants = {g.id: g for g in policy.grants}
    stats = frames_of(residents, grants["demo-residents"], "demo")
    planning = frames_of(residents, grants["demo-residents-planning"], "demo")
    # Person by person: each source row's token in either scope, made as a view makes it.
    source = sources.load(residents).frame["id_card"]
    secret, real = read_secret(demo.settings), RealValues(sources)
    tokens = []
    for grant_id in ("demo-residents", "demo-residents-planning"):
        grant = grants[grant_id]
        version = real.version(policy) if avoids_real_values(grant) else ""
        ctx = TransformContext(
            secret, "demo", grant.id, taken=partial(real.of, policy), real_values=version
        )
        spec = dict(grant.columns)["id_card"]
        tokens.append(CATALOGUE[spec.name].apply(source, dict(spec.options), ctx))
    assert set(stats["id_card"]) <= set(tokens[0])  # the tokens the views released
    assert set(planning["id_card"]) <= set(tokens[1])
    assert not (tokens[0].to_numpy() == tokens[1].to_numpy()).any()  # nobody's token is shared
    shared = set(stats["id_card"]) & set(planning["id_card"])
    assert len(shared) <= 2, len(shared)  # chance only
    assert outsider_join(policy, stats, planning, "id_card").sum() <= len(shared)
    _, found, _ = assessed(demo)
    assert all(not a.linked for a in found.values())


@settings(max_examples=25, deadline=None)
@given(
    values=st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=20, unique=True),
    transform=st.sampled_from(
        [
            ("pseudonymize", {}),
            ("synthesize", {"kind": "id_card"}),
            ("synthesize", {"kind": "name"}),
        ]
    ),
)
def test_tokens_are_keyed_per_client_and_grant_by_default(
    values: list[str], transform: tuple[str, dict[str, str]]
) -> None:
    """Promise 5: without `scope`, one client and grant always get the same token for a value;
    another grant of that client, or another client of that grant, never gets the same one
    (so neither can join on it); `scope: client` and `scope: grant` keep their wider links."""
    name, params = transform
    series = pd.Series(values, dtype="string")

    def tokens(client: str, grant: str, **extra: str) -> list[str]:
        ctx = TransformContext(b"k" * 32, client, grant)
        return list(CATALOGUE[name].apply(series, {**params, **extra}, ctx))

    mine = tokens("alpha", "g1")
    assert mine == tokens("alpha", "g1")
    for other in (tokens("alpha", "g2"), tokens("beta", "g1")):
        if name == "synthesize" and params["kind"] == "name":
            # Names come from a pool: equal draws happen by chance, not for every value.
            assert sum(a == b for a, b in zip(mine, other, strict=True)) < max(2, len(mine) // 2)
        else:
            assert not set(mine) & set(other)
    assert tokens("alpha", "g1", scope="client") == tokens("alpha", "g2", scope="client")
    assert tokens("alpha", "g1", scope="grant") == tokens("beta", "g1", scope="grant")


@pytest.mark.parametrize("scope", ["client", "shared"])
def test_a_linking_token_scope_needs_a_justification(demo: Demo, scope: str) -> None:
    """Promise 5: a token keyed across grants (`scope: client` or `shared`) links a client's
    views; without a written justification it is refused at load with file:line."""
    edit_residents(
        demo.home, (STATS_ID, f"id_card: {{transform: synthesize, kind: id_card, scope: {scope}}}")
    )
    with pytest.raises(PolicyError) as refused:
        load_policies(demo.settings.workspace.policies, demo.home)
    (problem,) = refused.value.problems
    assert problem.file == "residents.yaml"
    assert problem.line == 42
    assert problem.key == "grants.0.columns.id_card.scope"
    assert "justification" in problem.message
    # Punctuation and blanks are no justification either (and the column is the 核心 id_card,
    # so only the scope is in question: synthesize is its one allowed transform).
    edit_residents(demo.home, (f"scope: {scope}}}", f"scope: {scope}, justification: '—— 。'}}"))
    with pytest.raises(PolicyError) as refused:
        load_policies(demo.settings.workspace.policies, demo.home)
    assert any(p.key == "grants.0.columns.id_card.scope" for p in refused.value.problems)
    edit_residents(demo.home, ("justification: '—— 。'", "justification: 按人关联统计"))
    load_policies(demo.settings.workspace.policies, demo.home)


def link_both(home: Path) -> None:
    """Both residents views key their synthetic 身份证号 per client (justified)."""
    linked = "id_card: {transform: synthesize, kind: id_card, scope: client, " + WHY + "}"
    edit_residents(home, (STATS_ID, linked), (PLAN_ID, f"      {linked}\n"))


def test_policy_check_reports_the_joined_release_of_linked_views(
    demo: Demo, capsys: pytest.CaptureFixture[str]
) -> None:
    """Promise 4 over what one client holds: when two of its grants share a linking token, the
    joined release's figures are the outsider's count over every column of both views, and a
    join that singles people out is warned about in `policy check`."""
    link_both(demo.home)
    policy, found, frames_of = assessed(demo)
    residents = policy.datasets["residents"]
    grants = {g.id: g for g in policy.grants}
    stats = frames_of(residents, grants["demo-residents"], "demo")
    planning = frames_of(residents, grants["demo-residents-planning"], "demo")
    sizes = outsider_join(policy, stats, planning, "id_card")
    (link,) = found["demo-residents-planning"].linked
    assert link["token"] == "id_card"
    assert link["client"] == "demo"
    assert link["rows"] == int(sizes.sum()) > 0
    assert link["classes"] == len(sizes)
    assert link["rows_in_unique_classes"] == int((sizes == 1).sum()) > 0
    assert link["smallest_class"] == int(sizes.min())
    (warning,) = [w for w in found["demo-residents-planning"].warnings if "join" in w]
    assert "'demo-residents' and 'demo-residents-planning'" in warning
    assert "below k=5" in warning
    assert main(["policy", "check", "--home", str(demo.home)]) == 0
    out = capsys.readouterr().out
    assert "joined demo-residents + demo-residents-planning on id_card" in out
    assert "keys residents.id_card with scope: client" in out
    client, secret = admin_client(demo)
    with client:
        admin = token_for(client, "admin", secret)
        status = client.get("/v1/admin/status", headers={"Authorization": f"Bearer {admin}"})
    (view,) = [v for v in status.json()["views"] if v["grant"] == "demo-residents-planning"]
    assert view["linked"] == [link]
    assert warning in view["warnings"]


DECLARED = (
    (
        "      district: keep\n",
        "      district: {transform: keep, not_identifying: 区县是公开的行政区划}\n",
    ),
    (
        "      employer_credit_code: {transform: mask, preset: credit_code}\n",
        "      employer_credit_code: {transform: keep, not_identifying: 单位代码是公开登记信息}\n",
    ),
)


def admin_client(demo: Demo) -> tuple[TestClient, str]:
    registry = ClientRegistry(demo.settings.registry_database)
    _, secret = registry.add("admin", scopes=("admin",))
    registry.close()
    assert secret is not None
    client = TestClient(create_app(demo.settings), base_url=BASE)
    return client, secret


def test_figures_count_the_columns_declared_not_identifying(
    demo: Demo, capsys: pytest.CaptureFixture[str]
) -> None:
    """Promise 4: `not_identifying` leaves a column out of the model, never out of the figures
    over every released column (description, check, status): they are the outsider's count over
    all of them, and `policy check` names the declared columns when they single people out."""
    edit_residents(demo.home, *DECLARED)
    policy, found, frames_of = assessed(demo)
    grant = next(g for g in policy.grants if g.id == "demo-residents")
    frame = frames_of(policy.datasets["residents"], grant, "demo")
    everything = ["gender", "age", "province", "city", "district", "employer_credit_code"]
    sizes = frame.groupby(everything, dropna=False).size()
    assert int((sizes == 1).sum()) > 0  # the declared columns do identify people here
    stats = found["demo-residents"]
    assert stats.risk is not None
    spread = stats.risk["released_columns"]
    assert isinstance(spread, dict)
    assert spread["columns"] == everything
    assert spread["rows_in_unique_classes"] == int((sizes == 1).sum())
    assert spread["smallest_class"] == int(sizes.min())
    assert spread["classes"] == len(sizes)
    (warning,) = [w for w in stats.warnings if "not identifying" in w]
    assert "district, employer_credit_code" in warning
    assert "below k=5" in warning
    assert main(["policy", "check", "--home", str(demo.home)]) == 0
    assert "over every released column (gender, age" in capsys.readouterr().out
    client, secret = admin_client(demo)
    with client:
        admin = token_for(client, "admin", secret)
        status = client.get("/v1/admin/status", headers={"Authorization": f"Bearer {admin}"})
        (view,) = [v for v in status.json()["views"] if v["grant"] == "demo-residents"]
        assert view["risk"]["released_columns"] == spread
        user = token_for(client, demo.client_id, demo.client_secret)
        described = client.get(
            "/v1/datasets/residents?purpose=statistics",
            headers={"Authorization": f"Bearer {user}"},
        ).json()
    assert _find(described, "released_columns") == spread


def _find(body: Any, key: str) -> Any:
    """The first value under `key` anywhere in a JSON body."""
    if isinstance(body, dict):
        if key in body:
            return body[key]
        body = list(body.values())
    if isinstance(body, list):
        for item in body:
            found = _find(item, key)
            if found is not None:
                return found
    return None


def test_a_row_filter_on_the_sensitive_attribute_is_refused(demo: Demo) -> None:
    """Promise 4 (l-diversity): selecting rows by the sensitive attribute (`monthly_income gte
    30000`) tells every recipient each released person's income range; refused at load with
    file:line, also nested in `any:`."""
    edit_residents(
        demo.home,
        (
            "      - {column: age, op: lte, value: 65}\n",
            "      - {column: age, op: lte, value: 65}\n"
            "      - any:\n"
            "        - {column: monthly_income, op: gte, value: 30000}\n"
            "        - {column: gender, op: eq, value: 男}\n",
        ),
    )
    with pytest.raises(PolicyError) as refused:
        load_policies(demo.settings.workspace.policies, demo.home)
    (problem,) = refused.value.problems
    assert (problem.file, problem.line) == ("residents.yaml", 34)
    assert problem.key == "grants.0.row_filter.2.any.0.column"
    assert "sensitive attribute" in problem.message


def test_a_row_filter_on_a_protected_column_is_warned(demo: Demo) -> None:
    """Promise 2: a row filter over a 核心 or 重要 column the view does not release as is
    discloses that condition for every released person; the policy set says so (check,
    status) and names the file and line of the grant."""
    before = load_policies(demo.settings.workspace.policies, demo.home)
    assert not [w for w in before.warnings if "row filter" in w]  # age is 一般
    edit_residents(
        demo.home,
        (
            "      - {column: age, op: lte, value: 65}\n",
            "      - {column: age, op: lte, value: 65}\n"
            "      - {column: birth_date, op: gte, value: '1970-01-01'}\n",
        ),
    )
    policy = load_policies(demo.settings.workspace.policies, demo.home)
    (warning,) = [w for w in policy.warnings if "row filter" in w]
    assert warning.startswith("residents.yaml:25: grant 'demo-residents'")
    assert "'birth_date' (重要)" in warning


def _grant(grant_id: str, *columns: tuple[str, TransformSpec]) -> Grant:
    return Grant(grant_id, "d", frozenset({"c"}), frozenset({"p"}), columns, Limits(), "f", 1)


def _token(name: str, **params: Any) -> TransformSpec:
    return TransformSpec(name, tuple(sorted(params.items())))


def test_only_tokens_keyed_across_grants_link_two_views() -> None:
    """Promise 5: the default and `grant` scopes never link two grants; `client` and `shared`
    do when transform and shape agree; hex pseudonyms of other lengths link on their prefix."""
    why = {"justification": "两个用途需要按人关联"}
    for scope in (None, "recipient", "grant"):
        extra = {} if scope is None else {"scope": scope}
        a = _grant("a", ("id", _token("synthesize", kind="id_card", **extra)))
        b = _grant("b", ("id", _token("synthesize", kind="id_card", **extra)))
        assert linking_tokens(a, b) == ()
    a = _grant("a", ("id", _token("synthesize", kind="id_card", scope="client", **why)))
    b = _grant("b", ("id", _token("synthesize", kind="id_card", scope="client")))
    assert linking_tokens(a, b) == (("id", None),)
    b = _grant("b", ("id", _token("synthesize", kind="id_card", scope="shared", **why)))
    assert linking_tokens(a, b) == ()  # other keys: nothing in common
    a = _grant("a", ("id", _token("pseudonymize", scope="shared", length=32, **why)))
    b = _grant("b", ("id", _token("pseudonymize", scope="shared", **why)))
    assert linking_tokens(a, b) == (("id", 20),)


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.integers(0, 15), st.sampled_from("xy"), st.integers(0, 2)),
        min_size=0,
        max_size=40,
    ),
    others=st.lists(st.tuples(st.integers(0, 15), st.sampled_from("uvw")), max_size=40),
)
def test_joined_figures_are_an_outsiders_count(
    rows: list[tuple[int, str, int]], others: list[tuple[int, str]]
) -> None:
    """Promise 4 over what one client holds: the joined release's figures equal a plain pandas
    merge on the token (tokens held once in each view) grouped by every column of both."""
    first = pd.DataFrame(
        {
            "id": [f"{t:02d}" + "f" * 30 for t, _, _ in rows],
            "g": [g for _, g, _ in rows],
            "n": [n for _, _, n in rows],
        }
    )
    second = pd.DataFrame(
        {"id": [f"{t:02d}" + "f" * 18 for t, _ in others], "c": [c for _, c in others]}
    )
    first, second = first.astype({"id": "string"}), second.astype({"id": "string"})
    found = joined(("a", first, ["g", "n"]), ("b", second, ["c"]), "id", 20)
    left = first.assign(id=first["id"].str[:20])
    left = left[~left["id"].duplicated(keep=False)]
    right = second[~second["id"].duplicated(keep=False)]
    merged = left.merge(right, on="id")
    assert found["rows"] == len(merged)
    if len(merged):
        sizes = merged.groupby(["g", "n", "c"]).size()
        assert found["classes"] == len(sizes)
        assert found["rows_in_unique_classes"] == int(sizes[sizes == 1].sum())
        assert found["smallest_class"] == int(sizes.min())
