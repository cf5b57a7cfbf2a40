"""Issue 13 item 5, measured: a transform whose output gives the real value back counts as keep.

The review (h6, D2) released exact monthly incomes through `generalize width: 2` / `width: 10`
(every income is a multiple of 10, so each bin held one income) and `perturb laplace scale: 1`
(rounding to the nearest 10 undid the noise), with `equal_to_source` reporting 0 %. The view
builder now measures, per released column derived from a real value, the share of rows whose
real value an outsider recovers from the released value and the column's observed domain, shows
it as `recoverable`, and withholds a 重要 column above RAW_SHARE like a `keep`.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from gateway.app import create_app
from gateway.model.floors import RAW_SHARE
from gateway.model.grant import TransformSpec
from gateway.privacy.kanon import PrivacyUnreachable
from gateway.privacy.recover import EXACT, NEAREST, WINDOW, Recovery, recovered
from tests.conftest import BASE, Demo, token_for
from tests.privacy.test_privacy_claims import one_grant, write_policy

ROWS = "/v1/datasets/residents/rows"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize(
    ("column", "advice"),
    [
        ("monthly_income: {transform: generalize, width: 2}", "widen the bins"),
        ("monthly_income: {transform: generalize, width: 10}", "widen the bins"),
        ("monthly_income: {transform: perturb, noise: laplace, scale: 1}", "raise scale"),
    ],
)
def test_a_nearly_raw_important_column_is_withheld_like_keep(
    demo: Demo, column: str, advice: str
) -> None:
    """Item 5: bins that hold one real income each, or noise that rounding undoes, release the
    raw 重要 income: the view is withheld, justified or not, and the message says what to
    change."""
    why = ", justification: 研究需要精确的月收入数据"
    directory = write_policy(demo.home, f"      {column[:-1]}{why}}}\n")
    policy, grant, view_of = one_grant(demo, directory)
    with pytest.raises(PrivacyUnreachable, match="give the real value back") as caught:
        view_of(policy.datasets["residents"], grant, "demo")
    assert "重要" in str(caught.value)
    assert advice in str(caught.value)


def test_a_justification_no_longer_releases_an_important_column_equal_to_the_source(
    demo: Demo,
) -> None:
    """Item 5 (review D2, p08): `round: 2` on incomes that are multiples of 10 changes nothing;
    with a justification it used to be released. A 重要 column never leaves as keep."""
    why = "研究需要精确的月收入数据"
    directory = write_policy(
        demo.home, f"      monthly_income: {{transform: perturb, round: 2, justification: {why}}}\n"
    )
    policy, grant, view_of = one_grant(demo, directory)
    with pytest.raises(PrivacyUnreachable, match="equal the source values") as caught:
        view_of(policy.datasets["residents"], grant, "demo")
    assert "justified or not" in str(caught.value)
    assert "raise round" in str(caught.value)


@pytest.mark.parametrize(
    "column",
    [
        "monthly_income: {transform: generalize, width: 2000}",
        "monthly_income: {transform: perturb, noise: laplace, scale: 200}",
        "birth_date: {transform: date_shift, subject: id_card, max_days: 30}",
    ],
)
def test_recoverable_share_is_reported_beside_equal_to_source(demo: Demo, column: str) -> None:
    """Item 5: every released column derived from a real value has its recoverable share in
    the description, next to equal_to_source; transforms that change enough are released."""
    directory = write_policy(
        demo.home,
        "      id_card: {transform: synthesize, kind: id_card}\n" + f"      {column}\n",
    )
    policy, grant, view_of = one_grant(demo, directory)
    view = view_of(policy.datasets["residents"], grant, "demo")
    assert view.risk is not None
    described = view.risk.describe()
    name = column.split(":")[0]
    recoverable = described["recoverable"]
    equal = described["equal_to_source"]
    assert isinstance(recoverable, dict)
    assert isinstance(equal, dict)
    assert set(recoverable) == {name}
    assert 0.0 <= recoverable[name] <= RAW_SHARE
    assert name in equal


def test_tokens_are_not_measured_as_recoverable(demo: Demo) -> None:
    """Item 5: per-person tokens carry no real attribute; they have no recoverable figure."""
    directory = write_policy(
        demo.home,
        "      id_card: {transform: synthesize, kind: id_card}\n"
        "      mobile: {transform: pseudonymize, format: mobile}\n"
        "      monthly_income: {transform: generalize, width: 5000}\n",
    )
    policy, grant, view_of = one_grant(demo, directory)
    view = view_of(policy.datasets["residents"], grant, "demo")
    assert view.risk is not None
    assert dict(view.risk.recoverable_share).keys() == {"monthly_income"}


def test_a_nearly_raw_release_answers_503_privacy_unreachable(demo: Demo) -> None:
    """Item 5 over HTTP: the statistics grant with income bins one income wide releases no row;
    the caller gets the 503 problem type of a view whose claims do not hold."""
    path = demo.home / "policies" / "residents.yaml"
    text = path.read_text(encoding="utf-8")
    line = "      monthly_income: {transform: generalize, width: 2000}\n"
    assert text.count(line) == 1
    path.write_text(text.replace(line, line.replace("2000", "10")), encoding="utf-8")
    with TestClient(create_app(demo.settings), base_url=BASE) as fresh:
        good = token_for(fresh, demo.client_id, demo.client_secret)
        response = fresh.get(f"{ROWS}?purpose=statistics", headers=bearer(good))
    assert response.status_code == 503
    assert "rows" not in response.json()
    assert response.json()["type"].endswith("privacy-unreachable")
    assert "widen the bins" in response.json()["detail"]


# The measure against its definition: for every row, the released value's consistent set
# intersected with the column's distinct source values has exactly one member, the real one.

DOMAIN = st.lists(st.integers(0, 400), min_size=1, max_size=60)


@settings(max_examples=60, deadline=None)
@given(values=DOMAIN, step=st.integers(1, 20), width=st.integers(1, 60))
def test_exact_recovery_matches_the_consistent_set(
    values: list[int], step: int, width: int
) -> None:
    """Bins of `width` over values that are multiples of `step`: a row is recovered exactly
    when its bin holds one distinct source value."""
    real = pd.Series([v * step for v in values])
    lows = (real // width) * width
    released = lows.astype(str) + "-" + (lows + width - 1).astype(str)
    got = recovered(released, real, Recovery(EXACT))
    domain = set(real)
    expected = [sum(1 for d in domain if lo <= d < lo + width) == 1 for lo in lows]
    assert got.tolist() == expected


@settings(max_examples=60, deadline=None)
@given(values=DOMAIN, step=st.integers(1, 20), noise=st.lists(st.integers(-30, 30), min_size=60))
def test_nearest_recovery_matches_snapping_to_the_domain(
    values: list[int], step: int, noise: list[int]
) -> None:
    """Noise: a row is recovered when the source value nearest its released value is unique
    and is its own value."""
    real = pd.Series([v * step for v in values])
    released = real + pd.Series(noise[: len(real)])
    got = recovered(released, real, Recovery(NEAREST))
    domain = sorted(set(real))
    expected = []
    for r, v in zip(released, real, strict=True):
        best = min(abs(r - d) for d in domain)
        nearest = [d for d in domain if abs(r - d) == best]
        expected.append(nearest == [v])
    assert got.tolist() == expected


@settings(max_examples=60, deadline=None)
@given(
    days=st.lists(st.integers(0, 2000), min_size=1, max_size=60),
    shifts=st.lists(st.integers(-9, 9), min_size=60),
    window=st.integers(1, 9),
)
def test_window_recovery_matches_the_dates_within_the_shift(
    days: list[int], shifts: list[int], window: int
) -> None:
    """A date shifted by at most `window` days: recovered when one source date lies within the
    window around the released date."""
    start = date(2000, 1, 1)
    shift = [max(-window, min(window, s)) for s in shifts[: len(days)]]
    real = pd.Series([(start + timedelta(d)).isoformat() for d in days])
    released = pd.Series(
        [(start + timedelta(d + s)).isoformat() for d, s in zip(days, shift, strict=True)]
    )
    got = recovered(released, real, Recovery(WINDOW, window))
    domain = set(days)
    expected = [
        sum(1 for x in domain if abs(x - (d + s)) <= window) == 1
        for d, s in zip(days, shift, strict=True)
    ]
    assert got.tolist() == expected


def test_nulls_recover_nothing() -> None:
    """A suppressed (null) value gives nothing back, whatever the domain."""
    real = pd.Series([10, 10, 20])
    released = pd.Series([None, None, None], dtype="string")
    assert not recovered(released, real, Recovery(EXACT)).any()
    assert not recovered(released, real, Recovery(NEAREST)).any()


def test_recovery_of_lists_derived_columns_only() -> None:
    """Tokens, suppressed and dropped columns are not measured; noise and shifts are read back
    by snapping and by their window."""
    from gateway.privacy.recover import recovery_of

    columns = (
        ("a", TransformSpec("synthesize", (("kind", "id_card"),))),
        ("b", TransformSpec("pseudonymize")),
        ("c", TransformSpec("suppress")),
        ("d", TransformSpec("perturb", (("noise", "laplace"), ("scale", 5)))),
        ("e", TransformSpec("date_shift", (("max_days", 9), ("subject", "a")))),
        ("f", TransformSpec("mask", (("first", 3),))),
        ("g", TransformSpec("perturb", (("round", 10),))),
    )
    found = recovery_of(columns)
    assert found == {
        "d": Recovery(NEAREST),
        "e": Recovery(WINDOW, 9),
        "f": Recovery(EXACT),
        "g": Recovery(EXACT),
    }
    assert np.isclose(RAW_SHARE, 0.5)


def test_labels_among_noisy_numbers_are_read_as_labels() -> None:
    """Hostile mix: the model recoded some noisy incomes to labels and suppressed others to
    `*`; numbers are snapped, labels count by the rows released as them, empty input is 0."""
    real = pd.Series([100, 200, 300, 300, 400, 500])
    released = pd.Series(["101", "*", "*", "290-310", "290-310", "1e9"], dtype="string")
    got = recovered(released, real, Recovery(NEAREST)).tolist()
    # 101 snaps to 100; `*` covers 200 and 300; "290-310" holds 300 and 400 here (a label
    # counts what was released as it); 1e9 snaps to 500, the largest value.
    assert got == [True, False, False, False, False, True]
    empty = pd.Series([], dtype="string")
    assert recovered(empty, pd.Series([], dtype="Int64"), Recovery(EXACT)).tolist() == []
