"""Promises 2 and 5 on the transforms themselves: masks never release a raw value, pseudonyms are
keyed and scoped, and no transform mutates its input."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gateway.policy.model import ColumnType
from gateway.privacy.transforms import CATALOGUE, TransformContext, validate

CTX = TransformContext(secret=b"s" * 32, client_id="alpha", grant_id="g1")
values = st.lists(st.one_of(st.none(), st.text(min_size=0, max_size=30)), min_size=1, max_size=40)


def apply(name: str, series: pd.Series, ctx: TransformContext = CTX, **params: object) -> pd.Series:
    return CATALOGUE[name].apply(series, params, ctx)


@settings(max_examples=200)
@given(values, st.sampled_from(["id_card", "mobile", "bank_card", "credit_code", "chinese_name"]))
@example(["000000*0"], "id_card")  # the hidden character was already "*"
@example(["张*"], "chinese_name")
def test_mask_never_releases_a_nonempty_value_raw(items: list[str | None], preset: str) -> None:
    """Promise 2: a masked non-empty value never equals its raw value, and nulls stay null."""
    series = pd.Series(items, dtype="string")
    masked = apply("mask", series, preset=preset)
    for raw, out in zip(series, masked, strict=True):
        if raw is pd.NA:
            assert out is pd.NA
        elif raw:
            assert out != raw or set(raw) == {"*"}


@given(values, st.integers(0, 5), st.integers(0, 5))
def test_mask_keeps_length_and_the_named_ends(
    items: list[str | None], first: int, last: int
) -> None:
    """Generic first/last masking keeps the length; short values are hidden entirely."""
    series = pd.Series(items, dtype="string")
    masked = apply("mask", series, first=first, last=last)
    for raw, out in zip(series, masked, strict=True):
        if raw is pd.NA:
            continue
        assert len(out) == len(raw)
        if len(raw) > first + last:
            assert out[:first] == raw[:first]
            assert out[len(out) - last :] == raw[len(raw) - last :]
        else:
            assert out == "*" * len(raw)


@given(values)
def test_transforms_do_not_mutate_their_input(items: list[str | None]) -> None:
    """Transforms are pure: the input series is unchanged afterwards."""
    series = pd.Series(items, dtype="string")
    snapshot = series.copy()
    apply("mask", series, preset="mobile")
    apply("pseudonymize", series)
    apply("keep", series)
    pd.testing.assert_series_equal(series, snapshot)


@given(st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=30, unique=True))
def test_pseudonyms_deterministic_in_scope_and_distinct_across_clients(items: list[str]) -> None:
    """Promise 5: same client, same pseudonym; another client gets unrelated pseudonyms."""
    series = pd.Series(items, dtype="string")
    alpha = apply("pseudonymize", series)
    again = apply("pseudonymize", series)
    beta = apply("pseudonymize", series, TransformContext(CTX.secret, "beta", "g1"))
    assert alpha.tolist() == again.tolist()
    assert not set(alpha) & set(beta)
    assert not set(alpha) & set(items)
    assert alpha.nunique() == len(items)  # 80-bit pseudonyms: no collisions at this size


def test_pseudonym_scopes() -> None:
    """scope=shared is the same for all clients; scope=grant follows the grant, not the client."""
    series = pd.Series(["110105194912310029"], dtype="string")
    other_client = TransformContext(CTX.secret, "beta", "g1")
    other_grant = TransformContext(CTX.secret, "alpha", "g2")
    shared = [apply("pseudonymize", series, c, scope="shared")[0] for c in (CTX, other_client)]
    assert shared[0] == shared[1]
    grant = [
        apply("pseudonymize", series, c, scope="grant") for c in (CTX, other_client, other_grant)
    ]
    assert grant[0][0] == grant[1][0] != grant[2][0]


def test_pseudonyms_depend_on_the_secret() -> None:
    """Without the workspace secret the mapping cannot be recomputed."""
    series = pd.Series(["13812345678"], dtype="string")
    other = TransformContext(b"t" * 32, CTX.client_id, CTX.grant_id)
    assert apply("pseudonymize", series)[0] != apply("pseudonymize", series, other)[0]


def test_presets() -> None:
    """Each mask preset gives the documented shape."""
    cases = {
        "id_card": ("11010519491231002X", "110105***********X"),
        "mobile": ("13812345678", "138****5678"),
        "bank_card": ("6222020200112233445", "622202*********3445"),
        "credit_code": ("91350100M000100Y43", "91350100**********"),
        "chinese_name": ("欧阳娜娜", "欧阳**"),
        "email": ("zhang.san@example.com", "z***@example.com"),
        "address": ("广东省广州市天河区天河路385号", "广东省广州市天河区****"),
    }
    for preset, (raw, expected) in cases.items():
        assert apply("mask", pd.Series([raw], dtype="string"), preset=preset)[0] == expected, preset


@pytest.mark.parametrize(
    ("name", "params", "ctype", "message"),
    [
        ("mask", {}, ColumnType.STRING, "needs a preset or first/last"),
        ("mask", {"preset": "mobile", "first": 1}, ColumnType.STRING, "not both"),
        ("mask", {"preset": "mobile"}, ColumnType.INTEGER, "applies to"),
        ("mask", {"first": True}, ColumnType.STRING, "must be a int"),
        ("mask", {"first": 1, "char": "**"}, ColumnType.STRING, "exactly one character"),
        ("pseudonymize", {"scope": "world"}, ColumnType.STRING, "not one of"),
        ("explode", {}, ColumnType.STRING, "unknown transform"),
    ],
)
def test_parameter_validation(
    name: str, params: dict[str, object], ctype: ColumnType, message: str
) -> None:
    """Parameters that do not fit the transform or the column type are rejected with a reason."""
    problems = validate(name, params, ctype)
    assert any(message in text for _, text in problems), problems
