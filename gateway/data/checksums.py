"""Check characters of Chinese identifiers, computed by our own code (vectorized with NumPy).

- 公民身份号码 (GB 11643-1999): ISO 7064 MOD 11-2 over 17 digits.
- 统一社会信用代码 (GB 32100-2015): weighted mod 31 over 17 characters; its organisation-code
  part (positions 9-17) carries its own GB 11714 mod 11 check character.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

# Plain tuples, made arrays where they are used: NumPy is imported at the first check, not when
# a serving process starts.
ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK = "10X98765432"

CREDIT_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"  # 31 characters: no I, O, S, V, Z
CREDIT_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)


def id_check_digits(first17: npt.NDArray[np.int64]) -> npt.NDArray[np.str_]:
    """Check characters for an (n, 17) array of 身份证号 digits."""
    import numpy as np

    remainder = (first17 @ np.array(ID_WEIGHTS, dtype=np.int64)) % 11
    result: npt.NDArray[np.str_] = np.array(list(ID_CHECK))[remainder]
    return result


def id_card_valid(value: str) -> bool:
    """True if `value` is 18 characters whose last one is the GB 11643 check character."""
    import numpy as np

    if len(value) != 18 or not (value[:17].isascii() and value[:17].isdigit()):  # not "²"
        return False
    digits = np.array([[int(c) for c in value[:17]]], dtype=np.int64)
    return bool(id_check_digits(digits)[0] == value[17].upper())


def org_code_check(first8: npt.NDArray[np.int64]) -> npt.NDArray[np.str_]:
    """GB 11714 check characters for an (n, 8) array of organisation-code character values."""
    import numpy as np

    c = 11 - (first8 @ np.array(ORG_WEIGHTS, dtype=np.int64)) % 11
    out = np.where(c == 10, "X", np.where(c == 11, "0", c.astype(str)))
    result: npt.NDArray[np.str_] = out.astype(str)
    return result


def credit_check_chars(first17: npt.NDArray[np.int64]) -> npt.NDArray[np.str_]:
    """GB 32100 check characters for an (n, 17) array of character values (0..30)."""
    import numpy as np

    c = (31 - (first17 @ np.array(CREDIT_WEIGHTS, dtype=np.int64)) % 31) % 31
    result: npt.NDArray[np.str_] = np.array(list(CREDIT_CHARSET))[c]
    return result


def credit_code_valid(value: str) -> bool:
    """True if `value` is an 18-character 统一社会信用代码 with a correct check character."""
    import numpy as np

    if len(value) != 18 or any(ch not in CREDIT_CHARSET for ch in value):
        return False
    values = np.array([[CREDIT_CHARSET.index(ch) for ch in value[:17]]], dtype=np.int64)
    return bool(credit_check_chars(values)[0] == value[17])
