"""Synthetic replacements of the same kind as the value (name, 身份证号, mobile, address,
company, 统一社会信用代码, email), deterministic per (secret, scope, value): one person keeps one
fake identity inside a scope. Check characters are valid; a synthetic value never equals the
real one. Built from keyed integers with vectorized NumPy/pandas, never per-row faker calls."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd
from faker.providers.address.zh_CN import Provider as AddressProvider
from faker.providers.company.zh_CN import Provider as CompanyProvider
from faker.providers.person.zh_CN import Provider as PersonProvider

from gateway.data.checksums import (
    CREDIT_CHARSET,
    credit_check_chars,
    id_check_digits,
    org_code_check,
)
from gateway.data.demo import MOBILE_PREFIXES, REGIONS

KINDS = ("name", "id_card", "mobile", "address", "company", "credit_code", "email")
# Codes no real person can hold: GB/T 2260 assigns no region code starting with 00 (foreign
# permanent residents' numbers start with 9, Hong Kong, Macao and Taiwan residents' with 8), and
# no Chinese mobile number starts with 11 (subscriber numbers start with 13 to 19).
UNASSIGNED = ("id_card", "mobile")
_UNASSIGNED_REGION = "00"
_UNASSIGNED_MOBILE = "11"

_SURNAMES = np.array(list(PersonProvider.last_names.keys()))
_GIVEN = np.array([g for g in PersonProvider.first_names if len(g) == 1])
_CODES = np.array([r[0] for r in REGIONS])
_PLACES = np.array([r[1] + (r[2] if r[2] != r[1] else "") + r[3] for r in REGIONS])
_CITIES = np.array([r[2].removesuffix("市") for r in REGIONS])
_STREETS = np.array(
    [c + s for c in AddressProvider.cities for s in AddressProvider.street_suffixes]
)
_PREFIXES = np.array(CompanyProvider.company_prefixes)
_SUFFIXES = np.array(CompanyProvider.company_suffixes)
_MOBILES = np.array(MOBILE_PREFIXES)


def _pick(pool: npt.NDArray[np.str_], word: npt.NDArray[np.uint64]) -> pd.Series:
    return pd.Series(pool[(word % np.uint64(len(pool))).astype(np.int64)])


def _digits(word: npt.NDArray[np.uint64], width: int) -> npt.NDArray[np.int64]:
    powers = np.uint64(10) ** np.arange(width - 1, -1, -1, dtype=np.uint64)
    return ((word[:, None] // powers) % np.uint64(10)).astype(np.int64)


def _join(digits: npt.NDArray[np.int64]) -> pd.Series:
    text = digits.astype(np.uint8) + ord("0")
    return pd.Series(text.view(f"S{digits.shape[1]}").ravel()).str.decode("ascii")


def generate(kind: str, words: npt.NDArray[np.uint64], codes: str = "valid") -> pd.Series:
    """Synthetic values of `kind` from an (n, 2) array of keyed words; with `codes="unassigned"`,
    身份证号 and mobile numbers use codes no real person holds (see UNASSIGNED)."""
    a, b = words[:, 0], words[:, 1]
    n = len(a)
    fake = codes == "unassigned"
    if kind == "name":
        two = (b >> np.uint64(7)) % np.uint64(10) < np.uint64(6)
        second = _pick(_GIVEN, b >> np.uint64(17))
        return (
            _pick(_SURNAMES, a)
            + _pick(_GIVEN, a >> np.uint64(20))
            + second.where(pd.Series(two), "")
        )
    if kind == "mobile":
        if fake:
            return _UNASSIGNED_MOBILE + _join(_digits(b, 9))
        return _pick(_MOBILES, a) + _join(_digits(b, 8))
    if kind == "id_card":
        days = (a >> np.uint64(8)) % np.uint64(365 * 60)
        birth = np.datetime64("1950-01-01") + days.astype("timedelta64[D]")
        stamp = pd.Series(np.datetime_as_string(birth, unit="D")).str.replace("-", "", regex=False)
        region = _UNASSIGNED_REGION + _join(_digits(a, 4)) if fake else _pick(_CODES, a)
        first17 = region + stamp + _join(_digits(b, 3))
        digits = np.frombuffer("".join(first17).encode("ascii"), dtype=np.uint8).reshape(
            n, 17
        ) - ord("0")
        return first17 + pd.Series(id_check_digits(digits.astype(np.int64)))
    if kind == "address":
        number = ((b % np.uint64(398)) + np.uint64(1)).astype(str)
        return _pick(_PLACES, a) + _pick(_STREETS, a >> np.uint64(24)) + pd.Series(number) + "号"
    if kind == "company":
        return _pick(_CITIES, a) + _pick(_PREFIXES, a >> np.uint64(16)) + _pick(_SUFFIXES, b)
    if kind == "credit_code":
        org8 = _digits(b, 8)
        first17 = "91" + _pick(_CODES, a) + _join(org8) + pd.Series(org_code_check(org8))
        charset = np.frombuffer(CREDIT_CHARSET.encode("ascii"), dtype=np.uint8)
        raw = np.frombuffer("".join(first17).encode("ascii"), dtype=np.uint8).reshape(n, 17)
        values = np.searchsorted(charset, raw).astype(np.int64)
        return first17 + pd.Series(credit_check_chars(values))
    if kind == "email":
        local = pd.Series(np.char.mod("%012x", (a >> np.uint64(16)).astype(np.uint64)))
        return "u" + local + "@example.cn"
    raise ValueError(f"unknown synthetic kind {kind!r}")
