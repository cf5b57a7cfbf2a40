"""Promises 2 and 5 on the transforms themselves: masks never release a raw value, pseudonyms are
keyed and scoped, and no transform mutates its input."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gateway.model.dataset import ColumnType
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
@example(["0*000"], 1, 3)  # the hidden character was already "*": hidden entirely (promise 2)
def test_mask_keeps_length_and_the_named_ends(
    items: list[str | None], first: int, last: int
) -> None:
    """Generic first/last masking keeps the length; short values, and values whose hidden part
    is already mask characters (the mask would release them raw), are hidden entirely."""
    series = pd.Series(items, dtype="string")
    masked = apply("mask", series, first=first, last=last)
    for raw, out in zip(series, masked, strict=True):
        if raw is pd.NA:
            continue
        assert len(out) == len(raw)
        hidden = raw[first : len(raw) - last]
        if len(raw) > first + last and set(hidden) == {"*"}:
            assert out == "*" * len(raw)
        elif len(raw) > first + last:
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


# --- the rest of the catalogue -------------------------------------------------------------

from gateway.data.checksums import credit_code_valid, id_card_valid  # noqa: E402
from gateway.data.demo import residents as demo_residents  # noqa: E402

PEOPLE = demo_residents(300)
OTHER = TransformContext(secret=b"s" * 32, client_id="beta", grant_id="g1")


@pytest.mark.parametrize(
    ("kind", "column", "check"),
    [
        ("name", "name", lambda v: 2 <= len(v) <= 4),
        ("id_card", "id_card", id_card_valid),
        ("mobile", "mobile", lambda v: len(v) == 11 and v.isdigit() and v[0] == "1"),
        ("address", "address", lambda v: v.endswith("号") and "市" in v),
        ("company", "name", lambda v: "公司" in v),
        ("credit_code", "employer_credit_code", credit_code_valid),
        ("email", "name", lambda v: v.endswith("@example.cn")),
    ],
)
def test_synthesize_keeps_the_kind_never_the_value(kind: str, column: str, check: Any) -> None:
    """Synthetic values have the right format and valid check characters, never equal the real
    value, are stable within a scope and differ across clients."""
    raw = PEOPLE[column].astype("string")
    fake = apply("synthesize", raw, kind=kind)
    assert fake.map(check).all(), fake.head().tolist()
    assert not (fake == raw).any()
    assert fake.tolist() == apply("synthesize", raw, kind=kind).tolist()
    other = apply("synthesize", raw, OTHER, kind=kind)
    assert (fake != other).mean() > 0.9
    same_person = raw.duplicated(keep=False)
    if same_person.any():  # one person keeps one fake identity
        grouped = (
            pd.DataFrame({"raw": raw, "fake": fake})[same_person].groupby("raw")["fake"].nunique()
        )
        assert (grouped == 1).all()


@given(st.lists(st.from_regex(r"1[3-9]\d{9}", fullmatch=True), min_size=1, max_size=30))
def test_format_preserving_pseudonyms(mobiles: list[str]) -> None:
    """pseudonymize with format: mobile gives valid-looking numbers that are never the real one."""
    series = pd.Series(mobiles, dtype="string")
    out = apply("pseudonymize", series, format="mobile")
    assert out.str.fullmatch(r"1\d{10}").all()
    assert not (out == series).any()
    ids = apply("pseudonymize", PEOPLE["id_card"].astype("string"), format="id_card")
    assert ids.map(id_card_valid).all()
    assert not (ids == PEOPLE["id_card"]).any()


def test_generalize_presets_and_bins() -> None:
    """Numeric bins and tail coding, dates, 身份证号 and addresses generalize as documented."""
    ages = pd.Series([5, 17, 34, 90, None], dtype="Int64")
    assert apply("generalize", ages, width=10).tolist() == ["0-9", "10-19", "30-39", "90-99", pd.NA]
    assert apply("generalize", ages, bins=[18, 35, 60]).tolist() == [
        "<18",
        "<18",
        "18-34",
        ">=60",
        pd.NA,
    ]
    assert apply("generalize", ages, width=10, bottom=18, top=80).tolist() == [
        "<18",
        "<18",
        "30-39",
        ">=80",
        pd.NA,
    ]
    dates = pd.Series(["1968-12-30", "2001-04-02"], dtype="string")
    assert apply("generalize", dates, to="quarter").tolist() == ["1968-Q4", "2001-Q2"]
    assert apply("generalize", dates, to="month").tolist() == ["1968-12", "2001-04"]
    ids = pd.Series(["110105196812304553"], dtype="string")
    assert apply("generalize", ids, preset="id_card", level="province", birth="year").tolist() == [
        "110000 1968"
    ]
    places = pd.Series(["广东省广州市越秀区荆门街117号", "北京市朝阳区北镇街176号"], dtype="string")
    assert apply("generalize", places, preset="address", level="city").tolist() == [
        "广东省广州市",
        "北京市",
    ]
    assert apply("generalize", places, preset="address", level="district").tolist() == [
        "广东省广州市越秀区",
        "北京市朝阳区",
    ]


def test_perturb_and_date_shift_are_keyed() -> None:
    """Noise is deterministic per value and scope (it cannot be averaged away by asking again);
    rounding is exact; a subject's dates all move by the same offset."""
    income = PEOPLE["monthly_income"].astype("Int64")
    noisy = apply("perturb", income, noise="laplace", scale=200)
    assert noisy.tolist() == apply("perturb", income, noise="laplace", scale=200).tolist()
    assert (noisy != income).mean() > 0.9
    assert abs(float((noisy - income).mean())) < 100  # centred noise
    assert (apply("perturb", income, round=1000) % 1000 == 0).all()
    frame = pd.DataFrame(
        {"who": ["a", "a", "b"], "when": ["2020-01-10", "2020-03-01", "2020-01-10"]}
    )
    ctx = TransformContext(CTX.secret, CTX.client_id, CTX.grant_id, source=frame)
    shifted = pd.to_datetime(
        apply("date_shift", frame["when"].astype("string"), ctx, subject="who", max_days=30)
    )
    offsets = (shifted - pd.to_datetime(frame["when"])).dt.days
    assert offsets[0] == offsets[1]
    assert abs(offsets[0]) <= 30


def test_suppress_releases_nulls_only() -> None:
    """suppress keeps the column but releases no value."""
    assert apply("suppress", PEOPLE["mobile"]).isna().all()


@pytest.mark.parametrize(
    ("name", "params", "ctype", "message"),
    [
        ("generalize", {}, ColumnType.INTEGER, "needs width or bins"),
        ("generalize", {"bins": [30, 18]}, ColumnType.INTEGER, "increasing list"),
        ("generalize", {"width": 5}, ColumnType.DATE, "needs to:"),
        ("generalize", {"preset": "mobile"}, ColumnType.STRING, "not one of"),
        ("synthesize", {}, ColumnType.STRING, "needs the parameter 'kind'"),
        ("synthesize", {"kind": "name"}, ColumnType.INTEGER, "applies to"),
        ("perturb", {"noise": "laplace"}, ColumnType.INTEGER, "needs a scale"),
        ("perturb", {"round": 10, "noise": "laplace", "scale": 3}, ColumnType.INTEGER, "not both"),
        ("date_shift", {}, ColumnType.DATE, "needs the parameter 'subject'"),
        (
            "pseudonymize",
            {"format": "mobile", "length": 20},
            ColumnType.STRING,
            "format: token only",
        ),
    ],
)
def test_catalogue_parameter_validation(
    name: str, params: dict[str, object], ctype: ColumnType, message: str
) -> None:
    """Every transform rejects parameters that do not fit it or the column type."""
    assert any(message in text for _, text in validate(name, params, ctype)), validate(
        name, params, ctype
    )


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("pseudonymize", {}),
        ("pseudonymize", {"format": "mobile"}),
        ("synthesize", {"kind": "name"}),
        ("mask", {"preset": "chinese_name"}),
    ],
)
def test_columns_in_several_arrow_chunks(name: str, params: dict[str, Any]) -> None:
    """Large reads hold a column in several Arrow chunks; every keyed transform takes them and
    gives the same result as for the same values in one chunk."""
    import pyarrow as pa

    chunks: list[list[str | None]] = [
        ["张伟", "13812345678", None],
        ["李娜", "张伟", "13812345678"],
    ]
    chunked = pd.Series(pd.arrays.ArrowExtensionArray(pa.chunked_array(chunks, pa.string())))
    flat = pd.Series([v for chunk in chunks for v in chunk], dtype="string")
    ctx = TransformContext(b"k" * 32, "client-a", "grant-a")
    got = CATALOGUE[name].apply(chunked, params, ctx)
    assert got.tolist() == CATALOGUE[name].apply(flat, params, ctx).tolist()
    assert got.isna().tolist() == flat.isna().tolist()


@given(st.binary(max_size=100), st.lists(st.text(max_size=30), max_size=20))
def test_batched_hmac_is_exactly_hmac_sha256(key: bytes, values: list[str]) -> None:
    """The batched HMAC used for pseudonyms is RFC 2104 HMAC-SHA256, for any key length."""
    import hashlib
    import hmac

    from gateway.privacy.keyed import hmac_sha256_many

    expected = [hmac.new(key, v.encode(), hashlib.sha256).digest() for v in values]
    assert hmac_sha256_many(key, values) == expected
