"""Released views as Arrow tables, for the export: built once per (view, columns), shared by the
threads of one worker (a small LRU), so a repeated export costs only slicing and writing.

The CSV flavour has every text cell that a spreadsheet would run as a formula (starting with =,
+, -, @, tab or carriage return) prefixed with an apostrophe, as the rows endpoint does
(OWASP CSV injection guidance), computed column by column in Arrow."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING

from gateway.model.csvsafe import FORMULA_STARTS

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa


def neutralized(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """A text column with formula-like cells prefixed by an apostrophe (others unchanged)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        return column
    first = pc.utf8_slice_codeunits(column, 0, 1)
    risky = pc.fill_null(pc.is_in(first, value_set=pa.array(FORMULA_STARTS, column.type)), False)
    if not pc.any(risky).as_py():
        return column
    quoted = pc.binary_join_element_wise(
        pa.scalar("'", column.type), column, pa.scalar("", column.type)
    )
    result: pa.ChunkedArray = pc.if_else(risky, quoted, column)
    return result


def to_arrow(frame: pd.DataFrame, *, csv: bool) -> pa.Table:
    import pyarrow as pa

    table = pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None)
    if not csv:
        return table
    return pa.table([neutralized(c) for c in table.columns], names=table.column_names)


class ReleasedTables:
    def __init__(self, capacity: int = 4) -> None:
        self._capacity = capacity
        self._lock = threading.Lock()
        self._tables: OrderedDict[tuple[str, tuple[str, ...], bool], pa.Table] = OrderedDict()

    def get(self, key: str, frame: pd.DataFrame, columns: list[str], *, csv: bool) -> pa.Table:
        """The view `frame` (identified by `key`) as an Arrow table of `columns`."""
        name = (key, tuple(columns), csv)
        with self._lock:
            found = self._tables.get(name)
            if found is not None:
                self._tables.move_to_end(name)
                return found
        table = to_arrow(frame[columns], csv=csv)
        with self._lock:
            self._tables[name] = table
            while len(self._tables) > self._capacity:
                self._tables.popitem(last=False)
        return table
