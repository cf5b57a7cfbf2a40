"""Randomization (GB/T 37964 随机化): keyed numeric noise or rounding, and date shifting with one
offset per subject. Keyed by (secret, scope, record or subject), so repeated queries return the
same released values and noise cannot be averaged away.

Noise is drawn per record, not per value: keyed over a digest of the whole source row and the
column's name. Keyed over the value alone, everyone with the same income got the same noise,
and the release was a keyed substitution code: one known (person, income) pair decoded everyone
else with that income (issue 13, review D6)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from gateway.privacy.keyed import keyed_words, uniform

if TYPE_CHECKING:
    import pandas as pd


def perturb(
    series: pd.Series,
    params: Mapping[str, Any],
    key: bytes,
    records: pd.DataFrame | None = None,
) -> pd.Series:
    """`round: N` (nearest multiple of N) or `noise: laplace` with `scale`, drawn per record:
    `records` are the source rows of `series` (same index); without them, each value with its
    position in the series is the record."""
    import numpy as np
    import pandas as pd

    values = pd.to_numeric(series, errors="coerce").astype("float64")
    if "round" in params:
        step = float(params["round"])
        out = (values / step).round() * step
    else:
        column = str(series.name).encode()
        words, _ = keyed_words(record_digests(series, records), key + b"\x00" + column, 1)
        u = uniform(words[:, 0]) - 0.5
        noise = -float(params["scale"]) * np.sign(u) * np.log1p(-2 * np.abs(u))  # Laplace(0, b)
        out = values + noise
    return out.round().astype("Int64").where(values.notna(), pd.NA)


def record_digests(series: pd.Series, records: pd.DataFrame | None) -> pd.Series:
    """Per row, a hex digest of its whole source record (the series and its index when there
    are no records): what keys per-record noise. The same record gets the same digest, in any
    row order; pandas' row hash (SipHash over every column, 64 bits) is only a record's name,
    the keyed HMAC over it is what the outsider cannot compute."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    if records is None:
        hashed = pd.util.hash_pandas_object(series, index=True)
    else:
        hashed = pd.util.hash_pandas_object(records.loc[series.index], index=False)
    raw = np.ascontiguousarray(hashed.to_numpy(dtype=np.uint64)).view(np.uint8).reshape(-1, 8)
    digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    hexed = np.ascontiguousarray(np.stack([digits[raw >> 4], digits[raw & 15]], axis=-1))
    # 16 hex digits per row, laid out as one Arrow string array (no Python string per row).
    offsets = np.arange(0, 16 * (len(raw) + 1), 16, dtype=np.int64)
    text = pa.LargeStringArray.from_buffers(
        len(raw), pa.py_buffer(offsets), pa.py_buffer(hexed.reshape(-1))
    )
    return pd.Series(pd.arrays.ArrowStringArray(text), index=series.index)


def date_shift(
    series: pd.Series, subjects: pd.Series, params: Mapping[str, Any], key: bytes
) -> pd.Series:
    """Shift every date of one subject by the same number of days, in [-max_days, max_days]."""
    import numpy as np
    import pandas as pd

    words, _ = keyed_words(subjects, key, 1)
    span = 2 * int(params.get("max_days", 30)) + 1
    offsets = (words[:, 0] % np.uint64(span)).astype(np.int64) - int(params.get("max_days", 30))
    moments = pd.to_datetime(series, errors="coerce")
    shifted = moments + pd.to_timedelta(offsets, unit="D")
    return iso_days(shifted).where(moments.notna(), pd.NA)


def iso_days(moments: pd.Series) -> pd.Series:
    """`moments.dt.strftime("%Y-%m-%d")` as a string Series (NaT: null), formatted by NumPy in
    one pass instead of one Python call per row (the calendar day where it was recorded)."""
    import numpy as np
    import pandas as pd

    if getattr(moments.dt, "tz", None) is not None:
        moments = moments.dt.tz_localize(None)
    days = np.asarray(moments.to_numpy()).astype("datetime64[D]")
    codes, distinct = pd.factorize(days.view(np.int64))  # a million rows, a few thousand days
    shown = np.datetime_as_string(np.asarray(distinct, dtype=np.int64).view("datetime64[D]"))
    text = pd.Series(pd.array(shown, dtype="string").take(codes), index=moments.index)
    return text.where(moments.notna(), pd.NA)
