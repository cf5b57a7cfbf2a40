"""How much of a real value an outsider reads back from a released one (issue 13, item 5).

For every released column derived from a real value, the share of rows whose real value an
outsider recovers from the released value and the column's observed domain (its distinct source
values): the released value's consistent set, intersected with the domain, has exactly one
member, and it is the row's own value.

- a value the release is a function of (keep, mask, generalize bins and hierarchy labels,
  `perturb round:`, and every label the privacy model writes): the consistent set of a released
  value is every source value released as it, so a released value recovers the real one when all
  rows released as it share one real value (`width: 10` on incomes that are multiples of 10: each
  bin holds one income);
- noise (`perturb noise:`): the released number snapped to the nearest domain value is the real
  one (Laplace noise of scale 1 on multiples of 10);
- a date shifted by at most `max_days`: the window of that many days either side of the released
  date holds one date of the domain.

Released values the model has turned into labels (intervals, `*`) are read as values of a
function. Counting from the released rows can only make a consistent set smaller than the
outsider's, never larger, so the figure errs towards "recoverable". Per-person tokens
(pseudonymize, synthesize) carry no real attribute and are not measured; nulls recover nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.model.grant import NOT_DERIVED, TransformSpec

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pandas as pd

EXACT, NEAREST, WINDOW = "exact", "nearest", "window"


@dataclass(frozen=True)
class Recovery:
    """How an outsider reads a column's real value back: EXACT (the release is a function of the
    value), NEAREST (noise: snap to the nearest domain value) or WINDOW (a date shifted by at
    most `days`)."""

    how: str = EXACT
    days: int = 0


def recovery_of(columns: Sequence[tuple[str, TransformSpec]]) -> dict[str, Recovery]:
    """Every released column (a grant's `columns`) derived from a real value, and how an
    outsider reads it back."""
    found: dict[str, Recovery] = {}
    for name, spec in columns:
        if spec.name in NOT_DERIVED:
            continue
        options = spec.options
        if spec.name == "perturb" and "noise" in options:
            found[name] = Recovery(NEAREST)
        elif spec.name == "date_shift":
            found[name] = Recovery(WINDOW, int(options.get("max_days", 30)))
        else:
            found[name] = Recovery(EXACT)
    return found


def recoverable_shares(
    frame: pd.DataFrame, raw: pd.DataFrame, recovery: Mapping[str, Recovery]
) -> tuple[tuple[str, float], ...]:
    """Per measured column of `frame` (rows aligned with `raw`, the source rows they come
    from), the share of rows whose real value an outsider recovers."""
    rows = len(frame)
    shares: list[tuple[str, float]] = []
    for name in frame.columns:
        how = recovery.get(str(name))
        if how is None or name not in raw.columns:
            continue
        if not rows:
            shares.append((str(name), 0.0))
            continue
        hits = recovered(frame[name], raw[name], how)
        shares.append((str(name), float(hits.sum()) / rows))
    return tuple(shares)


def recovered(released: pd.Series, real: pd.Series, how: Recovery) -> npt.NDArray[np.bool_]:
    """Per row, whether the outsider recovers the real value from the released one."""
    import numpy as np

    present = (released.notna() & real.notna()).to_numpy(dtype=bool)
    hits = np.zeros(len(released), dtype=bool)
    if how.how == NEAREST:
        read, point = _numbers(released), _numbers(real)
    elif how.how == WINDOW:
        read, point = _days(released, exact=True), _days(real)
    else:
        read = point = np.full(len(released), np.nan)
    as_point = present & ~np.isnan(read) & ~np.isnan(point)
    if as_point.any():
        values = np.unique(point[~np.isnan(point)])  # the column's observed domain
        window = float(how.days)
        hits[as_point] = _alone(values, read[as_point], point[as_point], window, how.how)
    labels = present & ~as_point  # functions of the value (and labels the model wrote)
    if labels.any():
        hits[labels] = _one_source_value(released[labels], real[labels])
    return hits


def _one_source_value(released: pd.Series, real: pd.Series) -> npt.NDArray[np.bool_]:
    """Per row, whether every row released as its value has the same real value."""
    import numpy as np
    import pandas as pd

    shown, _ = pd.factorize(released)
    truth, kinds = pd.factorize(real)
    pairs = np.unique(shown.astype(np.int64) * (len(kinds) + 1) + truth)
    distinct = np.bincount(pairs // (len(kinds) + 1), minlength=int(shown.max()) + 1)
    one: npt.NDArray[np.bool_] = distinct[shown] == 1
    return one


def _alone(
    domain: npt.NDArray[np.float64],
    read: npt.NDArray[np.float64],
    real: npt.NDArray[np.float64],
    days: float,
    how: str,
) -> npt.NDArray[np.bool_]:
    """NEAREST: the domain value nearest `read` (a unique nearest one) is `real`. WINDOW: the
    only domain value within `days` of `read` is `real`."""
    import numpy as np

    if how == WINDOW:
        first = np.searchsorted(domain, read - days, side="left")
        last = np.searchsorted(domain, read + days, side="right")
        inside: npt.NDArray[np.bool_] = ((last - first) == 1) & (np.abs(read - real) <= days)
        return inside
    right = np.clip(np.searchsorted(domain, read, side="left"), 0, len(domain) - 1)
    left = np.clip(right - 1, 0, len(domain) - 1)
    below, above = np.abs(read - domain[left]), np.abs(domain[right] - read)
    nearest = np.where(below <= above, domain[left], domain[right])
    tie = (below == above) & (domain[left] != domain[right])
    snapped: npt.NDArray[np.bool_] = (nearest == real) & ~tie
    return snapped


def _numbers(series: pd.Series) -> npt.NDArray[np.float64]:
    """The values as floats (NaN where a value is not a plain number, such as a label)."""
    import numpy as np
    import pandas as pd

    if pd.api.types.is_numeric_dtype(series.dtype):
        return np.asarray(series.astype("float64").to_numpy(dtype=np.float64, na_value=np.nan))
    return _per_distinct(series, lambda v: pd.to_numeric(v, errors="coerce").astype("float64"))


def _days(series: pd.Series, *, exact: bool = False) -> npt.NDArray[np.float64]:
    """Dates as day numbers (NaN where a value is not a date). `exact`: only YYYY-MM-DD counts
    (a month label "1969-04" is a label, not the 1st of April)."""
    import numpy as np
    import pandas as pd

    def parse(values: pd.Series) -> pd.Series:
        if exact:
            moments = pd.to_datetime(values, format="%Y-%m-%d", errors="coerce")
        else:
            moments = pd.to_datetime(values, errors="coerce")
        days = moments.to_numpy(dtype="datetime64[ns]").astype("datetime64[D]")
        out = days.astype(np.int64).astype(np.float64)
        out[np.isnat(days)] = np.nan
        return pd.Series(out)

    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        return np.asarray(parse(series).to_numpy(dtype=np.float64))
    return _per_distinct(series.astype("string"), parse)


def _per_distinct(
    series: pd.Series, parse: Callable[[pd.Series], pd.Series]
) -> npt.NDArray[np.float64]:
    """`parse` run once per distinct value (a million rows hold a few thousand incomes or days),
    spread back to the rows; nulls are NaN."""
    import numpy as np
    import pandas as pd

    codes, distinct = pd.factorize(series)
    parsed = np.asarray(parse(pd.Series(distinct)).to_numpy(dtype=np.float64, na_value=np.nan))
    out = np.full(len(series), np.nan)
    known = codes >= 0
    out[known] = parsed[codes[known]]
    return out
