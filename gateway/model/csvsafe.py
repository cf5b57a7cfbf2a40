"""CSV cells a spreadsheet would run as a formula (OWASP CSV injection, CWE-1236): one rule for
every CSV the project writes (the rows endpoint, the export, audit answers, the Python client).
A text cell starting with one of FORMULA_STARTS gets a leading apostrophe."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # (imported when used: the audit answers import this module for its rule)
    import pandas as pd

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_FORMULA = r"^[=+\-@\t\r]"  # FORMULA_STARTS as a regular expression


def neutralize(frame: pd.DataFrame) -> pd.DataFrame:
    """Prefix text cells that start like a formula with an apostrophe (vectorized per column)."""
    import pandas as pd

    out = frame.copy()
    for name in out.columns:
        column = out[name]
        if pd.api.types.is_string_dtype(column) or column.dtype == object:
            text = column.astype("string")
            risky = text.str.contains(_FORMULA, regex=True).fillna(False).astype(bool)
            if risky.any():
                out[name] = text.where(~risky, "'" + text)
    return out
