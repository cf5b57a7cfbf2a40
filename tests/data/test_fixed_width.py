"""The vectorized builders behind the demo data and synthetic identifiers say what a plain
per-value reading says: byte matrices round-trip to text, the Arrow CSV writer gives pandas'
bytes (or defers to pandas), and synthetic 身份证号, mobile numbers and 统一社会信用代码 are the
documented function of their keyed words, with valid check characters."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.data import ascii, demo
from gateway.data.checksums import CREDIT_CHARSET, credit_code_valid, id_card_valid
from gateway.data.demo import MOBILE_PREFIXES, REGIONS, csv_bytes
from gateway.privacy import synthesize

TEXT = st.one_of(
    st.none(),
    st.text(alphabet=st.sampled_from([*'ab,"\n\r 朝阳区x\x00', "é"]), max_size=6),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(TEXT, st.one_of(st.none(), st.integers(-(2**40), 2**40))), max_size=12))
def test_csv_bytes_are_pandas_bytes(rows: list[tuple[str | None, int | None]]) -> None:
    """Demo files: Arrow writes them only when the bytes are exactly pandas' to_csv bytes
    (no value needing quotes); commas, quotes and line breaks go through pandas."""
    frame = pd.DataFrame(
        {
            "text": pd.array([r[0] for r in rows], dtype="str"),
            "number": pd.array([r[1] for r in rows], dtype="Int64"),
        }
    )
    assert csv_bytes(frame) == frame.to_csv(index=False, lineterminator="\n").encode("utf-8")


def test_csv_bytes_leave_floats_and_odd_headers_to_pandas() -> None:
    """A float column (formatted differently by Arrow) or a header needing quotes: pandas."""
    floats = pd.DataFrame({"x": [1.0, 2.5]})
    assert csv_bytes(floats) == b"x\n1.0\n2.5\n"
    odd = pd.DataFrame({"a,b": [1]})
    assert csv_bytes(odd) == b'"a,b"\n1\n'


@given(st.lists(st.text(alphabet="0123456789AX", min_size=5, max_size=5), max_size=20))
def test_byte_matrices_round_trip(words: list[str]) -> None:
    """text(text_rows(column)) is the column, for values of one width."""
    column = pd.Series(words, dtype="str")
    matrix = ascii.text_rows(column, 5)
    assert matrix.shape == (len(words), 5)
    assert ascii.text(matrix).tolist() == words


@pytest.mark.parametrize(
    "values", [["12345", "1234"], ["12345", None], ["1234é"]], ids=["width", "null", "wide"]
)
def test_byte_matrices_refuse_other_widths_and_nulls(values: list[str | None]) -> None:
    """A value of another byte width, or a null, is refused rather than misread."""
    with pytest.raises(ValueError, match="5 bytes"):
        ascii.text_rows(pd.Series(values, dtype="str"), 5)


def test_pools_hold_ascii_words_of_one_width() -> None:
    with pytest.raises(ValueError, match="one width"):
        ascii.pool(["ab", "abc"])
    with pytest.raises(ValueError, match="one width"):
        ascii.pool(["ab", "é"])


def _digits(word: int, width: int) -> str:
    return str(word % 10**width).zfill(width)


def reference(kind: str, a: int, b: int, codes: str) -> str:
    """The synthetic value of `kind` for keyed words (a, b), one value at a time."""
    fake = codes == "unassigned"
    if kind == "mobile":
        return (
            "11" + _digits(b, 9)
            if fake
            else MOBILE_PREFIXES[a % len(MOBILE_PREFIXES)] + _digits(b, 8)
        )
    if kind == "id_card":
        birth = dt.date(1950, 1, 1) + dt.timedelta(days=(a >> 8) % (365 * 60))
        region = "00" + _digits(a, 4) if fake else REGIONS[a % len(REGIONS)][0]
        first17 = region + birth.strftime("%Y%m%d") + _digits(b, 3)
        weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
        check = "10X98765432"[sum(int(c) * w for c, w in zip(first17, weights, strict=True)) % 11]
        return first17 + check
    org8 = _digits(b, 8)
    org = 11 - sum(int(c) * w for c, w in zip(org8, [3, 7, 9, 10, 5, 8, 4, 2], strict=True)) % 11
    first17 = "91" + REGIONS[a % len(REGIONS)][0] + org8 + {10: "X", 11: "0"}.get(org, str(org))
    weights = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]
    total = sum(CREDIT_CHARSET.index(c) * w for c, w in zip(first17, weights, strict=True))
    return first17 + CREDIT_CHARSET[(31 - total % 31) % 31]


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1)), max_size=30),
    st.sampled_from(["valid", "unassigned"]),
)
def test_synthetic_identifiers_are_their_documented_function(
    words: list[tuple[int, int]], codes: str
) -> None:
    """Promise 5 (deterministic per keyed word): the vectorized 身份证号, mobile number and
    统一社会信用代码 equal the per-value construction, and their check characters hold."""
    array = np.array(words, dtype=np.uint64).reshape(len(words), 2)
    for kind in ("mobile", "id_card", "credit_code"):
        made = synthesize.generate(kind, array, codes).tolist()
        expected = [reference(kind, a, b, codes) for a, b in words]
        assert made == expected, kind
    assert all(id_card_valid(v) for v in synthesize.generate("id_card", array, codes))
    assert all(credit_code_valid(v) for v in synthesize.generate("credit_code", array, codes))


def test_demo_tables_of_no_rows_have_their_columns() -> None:
    """`rows=0` gives the empty tables with every column (no identifier builder trips on it)."""
    assert list(demo.residents(0).columns) == list(demo.residents(3).columns)
    assert demo.residents(0).empty
    assert list(demo.enterprise_registry(0).columns) == list(demo.enterprise_registry(3).columns)
    assert demo.enterprise_registry(0).empty
