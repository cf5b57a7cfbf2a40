"""Row filters from policy grants, evaluated as vectorized boolean masks over source columns,
in the filter language API queries use too (gateway/filterlang.py). Built from parsed, typed
conditions only: nothing is ever handed to DataFrame.query or eval."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.model.filterlang import mask
from gateway.model.grant import Condition, RowFilter

if TYPE_CHECKING:
    import pandas as pd


def row_mask(frame: pd.DataFrame, row_filter: RowFilter) -> pd.Series:
    """True for the rows the filter keeps."""
    import pandas as pd

    parts = [_item(frame, item) for item in row_filter.items]
    if not parts:
        return pd.Series(True, index=frame.index)
    result = parts[0]
    for part in parts[1:]:
        result = (result & part) if row_filter.mode == "all" else (result | part)
    return result


def _item(frame: pd.DataFrame, item: Condition | RowFilter) -> pd.Series:
    if isinstance(item, RowFilter):
        return row_mask(frame, item)
    return mask(frame[item.column], item.op, item.value)
