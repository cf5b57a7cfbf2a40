"""Row filters from policy grants, evaluated as vectorized boolean masks over source columns.
Built from parsed, typed conditions only: nothing is ever handed to DataFrame.query or eval."""

from __future__ import annotations

import pandas as pd

from gateway.model.grant import Condition, RowFilter


def row_mask(frame: pd.DataFrame, row_filter: RowFilter) -> pd.Series:
    """True for the rows the filter keeps."""
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
    column = frame[item.column]
    value = item.value
    op = item.op
    if op == "is_null":
        return column.isna()
    if op == "not_null":
        return column.notna()
    if op == "in":
        return column.isin(list(value)).fillna(False).astype(bool)
    if op == "not_in":
        return (~column.isin(list(value))).fillna(False).astype(bool) & column.notna()
    if op == "startswith":
        return column.astype("string").str.startswith(str(value)).fillna(False).astype(bool)
    # Nulls never satisfy a comparison (SQL semantics): a filter cannot leak unknown rows.
    if op == "eq":
        result = column == value
    elif op == "ne":
        result = column != value
    elif op == "lt":
        result = column < value
    elif op == "lte":
        result = column <= value
    elif op == "gt":
        result = column > value
    elif op == "gte":
        result = column >= value
    else:
        raise ValueError(f"unknown operator {op!r}")
    kept: pd.Series = result.fillna(False).astype(bool) & column.notna()
    return kept
