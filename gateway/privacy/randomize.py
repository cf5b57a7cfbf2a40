"""Randomization (GB/T 37964 随机化): keyed numeric noise or rounding, and date shifting with one
offset per subject. Keyed by (secret, scope, value or subject), so repeated queries return the
same released values and noise cannot be averaged away."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from gateway.privacy.keyed import keyed_words, uniform


def perturb(series: pd.Series, params: Mapping[str, Any], key: bytes) -> pd.Series:
    """`round: N` (nearest multiple of N) or `noise: laplace` with `scale`."""
    values = pd.to_numeric(series, errors="coerce").astype("float64")
    if "round" in params:
        step = float(params["round"])
        out = (values / step).round() * step
    else:
        words, _ = keyed_words(series, key, 1)
        u = uniform(words[:, 0]) - 0.5
        noise = -float(params["scale"]) * np.sign(u) * np.log1p(-2 * np.abs(u))  # Laplace(0, b)
        out = values + noise
    return out.round().astype("Int64").where(values.notna(), pd.NA)


def date_shift(
    series: pd.Series, subjects: pd.Series, params: Mapping[str, Any], key: bytes
) -> pd.Series:
    """Shift every date of one subject by the same number of days, in [-max_days, max_days]."""
    words, _ = keyed_words(subjects, key, 1)
    span = 2 * int(params.get("max_days", 30)) + 1
    offsets = (words[:, 0] % np.uint64(span)).astype(np.int64) - int(params.get("max_days", 30))
    moments = pd.to_datetime(series, errors="coerce")
    shifted = moments + pd.to_timedelta(offsets, unit="D")
    return iso_days(shifted).where(moments.notna(), pd.NA)


def iso_days(moments: pd.Series) -> pd.Series:
    """`moments.dt.strftime("%Y-%m-%d")` as a string Series (NaT: null), formatted by NumPy in
    one pass instead of one Python call per row (the calendar day where it was recorded)."""
    if getattr(moments.dt, "tz", None) is not None:
        moments = moments.dt.tz_localize(None)
    days = np.asarray(moments.to_numpy()).astype("datetime64[D]")
    codes, distinct = pd.factorize(days.view(np.int64))  # a million rows, a few thousand days
    shown = np.datetime_as_string(np.asarray(distinct, dtype=np.int64).view("datetime64[D]"))
    text = pd.Series(pd.array(shown, dtype="string").take(codes), index=moments.index)
    return text.where(moments.notna(), pd.NA)
