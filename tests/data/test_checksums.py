"""Identifier check characters (GB 11643, GB 32100), against published examples and properties."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from gateway.data.checksums import (
    CREDIT_CHARSET,
    credit_check_chars,
    credit_code_valid,
    id_card_valid,
    id_check_digits,
)


def test_id_card_standard_example() -> None:
    """GB 11643's own example number validates; a changed digit does not."""
    assert id_card_valid("11010519491231002X")
    assert not id_card_valid("11010519491231002Y")
    assert not id_card_valid("11010519491231003X")


def test_credit_code_published_example() -> None:
    """A published 统一社会信用代码 validates; a changed character does not."""
    assert credit_code_valid("91350100M000100Y43")
    assert not credit_code_valid("91350100M000100Y44")
    assert not credit_code_valid("91350100M000100Y4")  # too short


@given(st.lists(st.integers(0, 9), min_size=17, max_size=17), st.integers(0, 16), st.integers(1, 9))
def test_id_check_catches_every_single_digit_change(
    digits: list[int], pos: int, delta: int
) -> None:
    """MOD 11-2 detects any single changed digit."""
    first17 = np.array([digits], dtype=np.int64)
    check = str(id_check_digits(first17)[0])
    good = "".join(map(str, digits)) + check
    assert id_card_valid(good)
    changed = list(digits)
    changed[pos] = (changed[pos] + delta) % 10
    assert not id_card_valid("".join(map(str, changed)) + check)


@given(st.lists(st.integers(0, 30), min_size=17, max_size=17))
def test_credit_check_character_always_in_charset(values: list[int]) -> None:
    """The GB 32100 check character is always one of the 31 allowed characters."""
    check = str(credit_check_chars(np.array([values], dtype=np.int64))[0])
    code = "".join(CREDIT_CHARSET[v] for v in values) + check
    assert credit_code_valid(code)
