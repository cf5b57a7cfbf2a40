"""Synthetic replacements of the same kind as the value (name, 身份证号, mobile, address,
company, 统一社会信用代码, email), deterministic per (secret, scope, value): one person keeps one
fake identity inside a scope. Check characters are valid; a synthetic value never equals the
real one. Built from keyed integers with vectorized NumPy/pandas, never per-row faker calls."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

from gateway.data import ascii
from gateway.data.checksums import (
    CREDIT_CHARSET,
    credit_check_chars,
    id_check_digits,
    org_code_check,
)
from gateway.data.demo import MOBILE_PREFIXES, REGIONS
from gateway.data.words import faker_words

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pandas as pd
    import pyarrow as pa

KINDS = ("name", "id_card", "mobile", "address", "company", "credit_code", "email")
# Codes no real person can hold: GB/T 2260 assigns no region code starting with 00 (foreign
# permanent residents' numbers start with 9, Hong Kong, Macao and Taiwan residents' with 8), and
# no Chinese mobile number starts with 11 (subscriber numbers start with 13 to 19).
UNASSIGNED = ("id_card", "mobile")
_UNASSIGNED_REGION = "00"
_UNASSIGNED_MOBILE = "11"

Ints: TypeAlias = "npt.NDArray[np.int64]"


@dataclass(frozen=True)
class _Tables:
    """Region and mobile-prefix tables as arrays (gateway/data/demo.py holds them as tuples)."""

    codes: npt.NDArray[np.str_]  # region codes
    places: npt.NDArray[np.str_]  # province + city + district
    cities: npt.NDArray[np.str_]
    mobiles: npt.NDArray[np.str_]  # mobile prefixes
    code_bytes: ascii.Bytes
    mobile_bytes: ascii.Bytes
    credit_values: Ints  # byte -> its value in the credit-code charset
    empty: pa.Scalar  # "" as a large_string scalar


@functools.cache
def _tables() -> _Tables:
    """Built at the first synthetic value, not at import: NumPy and Arrow load then, not when a
    serving process starts (tests/cli/test_startup.py)."""
    import numpy as np
    import pyarrow as pa

    codes = np.array([r[0] for r in REGIONS])
    mobiles = np.array(MOBILE_PREFIXES)
    credit_values = np.zeros(256, dtype=np.int64)
    credit_values[np.frombuffer(CREDIT_CHARSET.encode("ascii"), dtype=np.uint8)] = np.arange(31)
    return _Tables(
        codes=codes,
        places=np.array([r[1] + (r[2] if r[2] != r[1] else "") + r[3] for r in REGIONS]),
        cities=np.array([r[2].removesuffix("市") for r in REGIONS]),
        mobiles=mobiles,
        code_bytes=ascii.pool(list(codes)),
        mobile_bytes=ascii.pool(list(mobiles)),
        credit_values=credit_values,
        empty=pa.scalar("", pa.large_string()),
    )


@dataclass(frozen=True)
class _Pools:
    """The pools synthesize derives from Faker's lists (gateway/data/words.py)."""

    given: npt.NDArray[np.str_]  # one-character given names
    streets: npt.NDArray[np.str_]  # every city joined with every street suffix


@functools.cache
def _pools() -> _Pools:
    """Built at the first synthetic value (gateway/data/words.py says why not at import)."""
    import numpy as np

    faker = faker_words()
    return _Pools(
        given=np.array([g for g in faker.given if len(g) == 1]),
        streets=np.array([c + s for c in faker.cities for s in faker.street_suffixes]),
    )


def _index(pool: npt.NDArray[np.generic], word: npt.NDArray[np.uint64]) -> Ints:
    import numpy as np

    return (word % np.uint64(len(pool))).astype(np.int64)


def _pick(pool: npt.NDArray[np.str_], word: npt.NDArray[np.uint64]) -> pa.Array:
    """A word of `pool` per keyed word, as an Arrow array (joined by Arrow kernels)."""
    import pyarrow as pa

    return pa.array(pool, type=pa.large_string()).take(pa.array(_index(pool, word)))


def _digits(word: npt.NDArray[np.uint64], width: int) -> Ints:
    import numpy as np

    powers = np.uint64(10) ** np.arange(width - 1, -1, -1, dtype=np.uint64)
    return ((word[:, None] // powers) % np.uint64(10)).astype(np.int64)


def _joined(*parts: pa.Array | str) -> pd.Series:
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    texts = [pa.scalar(p, pa.large_string()) if isinstance(p, str) else p for p in parts]
    joined = pc.binary_join_element_wise(*texts, _tables().empty)
    return pd.Series(joined, dtype="str")


def _stamps(days: npt.NDArray[np.uint64]) -> ascii.Bytes:
    """YYYYMMDD of 1950-01-01 + days, formatted once per distinct day."""
    import numpy as np
    import pandas as pd

    codes, distinct = pd.factorize(days.astype(np.int64))
    birth = np.datetime64("1950-01-01") + np.asarray(distinct).astype("timedelta64[D]")
    shown = np.datetime_as_string(birth, unit="D").astype("S10")
    table = np.frombuffer(shown.tobytes(), dtype=np.uint8).reshape(len(distinct), 10)
    picked: ascii.Bytes = table[:, [0, 1, 2, 3, 5, 6, 8, 9]][codes]
    return picked


def _id_card(a: npt.NDArray[np.uint64], b: npt.NDArray[np.uint64], fake: bool) -> pd.Series:
    import numpy as np

    if fake:
        head = np.broadcast_to(ascii.pool([_UNASSIGNED_REGION]), (len(a), 2))
        region = np.hstack([head, ascii.digits(a, 4)])
    else:
        region = _tables().code_bytes[_index(_tables().codes, a)]
    first17 = np.hstack(
        [region, _stamps((a >> np.uint64(8)) % np.uint64(365 * 60)), ascii.digits(b, 3)]
    )
    check = ascii.chars(id_check_digits((first17 - ord("0")).astype(np.int64)))
    return ascii.text(np.hstack([first17, check[:, None]]))


def _credit_code(a: npt.NDArray[np.uint64], b: npt.NDArray[np.uint64]) -> pd.Series:
    import numpy as np

    org8 = _digits(b, 8)
    organisation = (org8 + ord("0")).astype(np.uint8)
    org_check = ascii.chars(org_code_check(org8))[:, None]
    head = np.broadcast_to(ascii.pool(["91"]), (len(a), 2))  # 9: market regulator; 1: enterprise
    tables = _tables()
    first17 = np.hstack([head, tables.code_bytes[_index(tables.codes, a)], organisation, org_check])
    values = tables.credit_values[first17]  # every byte is in the charset (digits, "X")
    check = ascii.chars(credit_check_chars(values))
    return ascii.text(np.hstack([first17, check[:, None]]))


def generate(kind: str, words: npt.NDArray[np.uint64], codes: str = "valid") -> pd.Series:
    """Synthetic values of `kind` from an (n, 2) array of keyed words; with `codes="unassigned"`,
    身份证号 and mobile numbers use codes no real person holds (see UNASSIGNED)."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    a, b = words[:, 0], words[:, 1]
    fake = codes == "unassigned"
    if kind == "name":
        two = (b >> np.uint64(7)) % np.uint64(10) < np.uint64(6)
        second = pc.if_else(
            pa.array(two), _pick(_pools().given, b >> np.uint64(17)), _tables().empty
        )
        return _joined(
            _pick(faker_words().surnames, a), _pick(_pools().given, a >> np.uint64(20)), second
        )
    if kind == "mobile":
        if fake:
            prefix = np.broadcast_to(ascii.pool([_UNASSIGNED_MOBILE]), (len(a), 2))
            return ascii.text(np.hstack([prefix, ascii.digits(b, 9)]))
        return ascii.text(
            np.hstack([_tables().mobile_bytes[_index(_tables().mobiles, a)], ascii.digits(b, 8)])
        )
    if kind == "id_card":
        return _id_card(a, b, fake)
    if kind == "address":
        number = pa.array((b % np.uint64(398)) + np.uint64(1)).cast(pa.large_string())
        return _joined(
            _pick(_tables().places, a), _pick(_pools().streets, a >> np.uint64(24)), number, "号"
        )
    if kind == "company":
        return _joined(
            _pick(_tables().cities, a),
            _pick(faker_words().company_prefixes, a >> np.uint64(16)),
            _pick(faker_words().company_suffixes, b),
        )
    if kind == "credit_code":
        return _credit_code(a, b)
    if kind == "email":
        local = pd.Series(np.char.mod("%012x", (a >> np.uint64(16)).astype(np.uint64)))
        return "u" + local + "@example.cn"
    raise ValueError(f"unknown synthetic kind {kind!r}")
