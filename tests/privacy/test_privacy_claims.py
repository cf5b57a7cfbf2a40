"""Promise 4 over what actually leaves: every demo view is counted the way an outsider would
(group the whole released view by every released column derived from a real value), and
promise 2 over synthetic values (never equal to any real value in the workspace)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from gateway.data.sources import SourceCache
from gateway.model.dataset import Dataset
from gateway.model.grant import Grant
from gateway.model.policyset import PolicySet
from gateway.policy.files import load_policies
from gateway.privacy.kanon import PrivacyUnreachable
from gateway.privacy.views import View, ViewCache
from gateway.runtime.services import released_view_maker
from tests.conftest import Demo

ViewOf = Callable[[Dataset, Grant, str], View]
TOKENS = {"pseudonymize", "synthesize"}


def outsider_columns(grant: Grant, view: View) -> list[str]:
    """The columns an outsider would group by, found without the gateway's own QI logic: every
    released column that is not a per-person token, not all-null (suppressed), not the declared
    l-diversity sensitive attribute and not declared not identifying."""
    transforms = dict(grant.columns)
    sensitive = grant.privacy.sensitive if grant.privacy and grant.privacy.l else None
    declared = {name for name, _ in grant.not_identifying}
    return [
        name
        for name in view.frame.columns
        if transforms[name].name not in TOKENS
        and view.frame[name].notna().any()
        and name != sensitive
        and name not in declared
    ]


def demo_views(demo: Demo) -> tuple[PolicySet, list[tuple[Grant, View]]]:
    ws = demo.settings.workspace
    policy = load_policies(ws.policies, demo.home)
    view_of = released_view_maker(
        demo.settings, SourceCache(demo.settings.workspace), ViewCache(), policy
    )
    views = []
    for grant in policy.grants:
        dataset = policy.datasets[grant.dataset]
        views.append((grant, view_of(dataset, grant, sorted(grant.clients)[0])))
    return policy, views


def test_every_demo_model_holds_over_every_released_quasi_identifier(demo: Demo) -> None:
    """Promise 4: for every demo view with a model, the smallest class over every released
    non-token column is at least the declared k, no row is unique, l holds, and the gateway's
    own quasi-identifiers are exactly the outsider's columns."""
    _, views = demo_views(demo)
    checked = 0
    for grant, view in views:
        columns = outsider_columns(grant, view)
        assert list(grant.quasi_identifiers()) == columns, grant.id
        if grant.privacy is None:
            continue
        sizes = view.frame.groupby(columns, dropna=False).size()
        assert int(sizes.min()) >= grant.privacy.k, grant.id
        assert int((sizes == 1).sum()) == 0, grant.id
        assert view.risk is not None
        assert view.risk.smallest == int(sizes.min())
        assert view.risk.uniques == 0
        assert view.risk.highest == pytest.approx(1 / int(sizes.min()))
        assert view.risk.average == pytest.approx(len(sizes) / len(view.frame))
        if grant.privacy.l is not None and grant.privacy.sensitive is not None:
            distinct = view.frame.groupby(columns, dropna=False)[grant.privacy.sensitive]
            assert int(distinct.nunique(dropna=False).min()) >= grant.privacy.l
        checked += 1
    assert checked >= 3  # statistics, planning and enterprise research


def test_pycanon_agrees_on_every_demo_view(demo: Demo) -> None:
    """Promise 4, third-party check: pycanon measures k (and l) on each demo view over every
    released quasi-identifier and finds at least what the grant declares."""
    try:
        anonymity = importlib.import_module("pycanon.anonymity")
    except ImportError as exc:
        pytest.skip(f"pycanon not importable ({exc}); install with: pip install --no-deps pycanon")
    _, views = demo_views(demo)
    for grant, view in views:
        if grant.privacy is None:
            continue
        table = view.frame.reset_index(drop=True).astype(str)  # pycanon indexes by position
        qis = list(grant.quasi_identifiers())
        assert int(anonymity.k_anonymity(table, qis)) >= grant.privacy.k, grant.id
        if grant.privacy.l is not None and grant.privacy.sensitive is not None:
            measured = int(anonymity.l_diversity(table, qis, [grant.privacy.sensitive]))
            assert measured >= grant.privacy.l, grant.id


def test_no_synthetic_or_pseudonymized_value_equals_any_real_value(demo: Demo) -> None:
    """Promise 2: over the demo data, no synthetic or format-preserving value equals any value of
    any text column of any dataset in the workspace (not just its own row's)."""
    policy, views = demo_views(demo)
    sources = SourceCache(demo.settings.workspace)
    real: set[str] = set()
    for dataset in policy.datasets.values():
        frame = sources.load(dataset).frame
        for column in frame.columns:
            real.update(frame[column].dropna().astype(str))
    checked = 0
    for grant, view in views:
        for name, spec in grant.columns:
            if spec.name == "synthesize" or (
                spec.name == "pseudonymize" and spec.options.get("format", "token") != "token"
            ):
                released = set(view.frame[name].dropna().astype(str))
                assert not released & real, f"{grant.id}.{name}"
                checked += 1
    assert checked >= 6


def write_policy(home: Path, columns: str, privacy: str = "") -> Path:
    """A one-grant policy over the demo residents data, in a fresh policies directory."""
    directory = home / "policies-claims"
    directory.mkdir(exist_ok=True)
    schema = (home / "policies" / "residents.yaml").read_text(encoding="utf-8")
    head = schema[: schema.index("grants:")]
    (directory / "residents.yaml").write_text(
        head
        + "grants:\n  - id: g\n    clients: [demo]\n    purposes: [stats]\n"
        + privacy
        + "    columns:\n"
        + columns,
        encoding="utf-8",
    )
    return directory


def one_grant(demo: Demo, directory: Path) -> tuple[PolicySet, Grant, ViewOf]:
    """The policy set of a one-grant directory, its grant, and a view builder for it."""
    policy = load_policies(directory, demo.home)
    (grant,) = policy.grants
    view_of = released_view_maker(
        demo.settings, SourceCache(demo.settings.workspace), ViewCache(), policy
    )
    return policy, grant, view_of


def test_a_view_whose_model_cannot_hold_is_never_released(demo: Demo) -> None:
    """Promise 4: k=50 with no suppression allowed over an ID-like quasi-identifier cannot be
    met; building the view raises PrivacyUnreachable (the API answers 503
    privacy-unreachable), never a partial view."""
    directory = write_policy(
        demo.home,
        "      employer_credit_code: keep\n"
        "      gender: {transform: keep, justification: 按性别统计所需}\n",
        "    privacy: {k: 50, max_suppression: 0, recoding: full-domain}\n",
    )
    policy, grant, view_of = one_grant(demo, directory)
    big = view_of(policy.datasets["residents"], grant, "demo")
    # With `*` available the model holds by generalizing the code away entirely:
    assert set(big.frame["employer_credit_code"].unique()) == {"*"}
    sizes = big.frame.groupby(["employer_credit_code", "gender"]).size()
    assert int(sizes.min()) >= 50
    directory = write_policy(
        demo.home,
        "      gender: {transform: keep, justification: 按性别统计所需}\n",
        "    privacy: {k: 5000, max_suppression: 0}\n",
    )
    policy, grant, view_of = one_grant(demo, directory)
    with pytest.raises(PrivacyUnreachable):
        view_of(policy.datasets["residents"], grant, "demo")


def test_a_mask_that_shows_most_of_a_value_is_withheld_at_build_time(demo: Demo) -> None:
    """Promise 2, measured: a mask on a personal column of unknown length that leaves most
    characters visible counts as raw; without a justification the view is not released."""
    text = (demo.home / "policies" / "residents.yaml").read_text(encoding="utf-8")
    unlabeled = text.replace("kind: mobile,", "")  # the loader cannot know the length
    directory = demo.home / "policies-unlabeled"
    directory.mkdir()
    head = unlabeled[: unlabeled.index("grants:")]
    (directory / "residents.yaml").write_text(
        head
        + "grants:\n  - id: g\n    clients: [demo]\n    purposes: [stats]\n    columns:\n"
        + "      mobile: {transform: mask, first: 8}\n",
        encoding="utf-8",
    )
    policy, grant, view_of = one_grant(demo, directory)
    with pytest.raises(PrivacyUnreachable, match="nearly raw"):
        view_of(policy.datasets["residents"], grant, "demo")


def test_risk_is_reported_for_a_view_without_a_model(demo: Demo) -> None:
    """Promise 4: a view with no model still reports rows in unique classes and the highest
    and average prosecutor risk over its released quasi-identifiers."""
    _, views = demo_views(demo)
    (register,) = [v for g, v in views if g.id == "demo-enterprise-registry"]
    assert register.privacy is None
    assert register.risk is not None
    frame = register.frame
    qis = list(register.risk.quasi_identifiers)
    sizes = frame.groupby(qis, dropna=False).size()
    assert register.risk.uniques == int((sizes == 1).sum()) > 0
    assert register.risk.highest == 1.0


def test_synthetic_values_use_unassigned_codes_on_request() -> None:
    """Promise 2: `codes: unassigned` gives 身份证号 with region 00 and mobile numbers starting
    11: no real person holds them (GB/T 2260; China's numbering plan)."""
    from gateway.privacy.transforms import CATALOGUE, TransformContext

    series = pd.Series(["110105196904168982", "330102198710203971", None], dtype="string")
    ctx = TransformContext(b"k" * 32, "demo", "g")
    ids = CATALOGUE["synthesize"].apply(series, {"kind": "id_card", "codes": "unassigned"}, ctx)
    assert ids.dropna().str.startswith("00").all()
    assert ids.dropna().str.fullmatch(r"00\d{15}[\dX]").all()
    assert ids.isna().tolist() == [False, False, True]
    phones = CATALOGUE["synthesize"].apply(series, {"kind": "mobile", "codes": "unassigned"}, ctx)
    assert phones.dropna().str.fullmatch(r"11\d{9}").all()


def test_redraws_avoid_every_taken_value_deterministically() -> None:
    """Promise 2 and 5: when the first draw equals a real value of the workspace, the value is
    redrawn; the result avoids every taken value and is the same on every run."""
    from gateway.privacy.transforms import CATALOGUE, TransformContext

    series = pd.Series([f"1381234{i:04d}" for i in range(300)], dtype="string")
    plain = TransformContext(b"k" * 32, "demo", "g")
    first = CATALOGUE["synthesize"].apply(series, {"kind": "mobile"}, plain)
    taken = frozenset(first.iloc[:150].tolist())  # pretend half the draws are real numbers
    ctx = TransformContext(b"k" * 32, "demo", "g", taken=lambda kind: taken)
    again = CATALOGUE["synthesize"].apply(series, {"kind": "mobile"}, ctx)
    assert not set(again) & taken
    assert again.iloc[150:].tolist() == first.iloc[150:].tolist()  # untouched draws stay
    assert again.tolist() == CATALOGUE["synthesize"].apply(series, {"kind": "mobile"}, ctx).tolist()
