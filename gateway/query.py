"""Row queries on a released view, Datasette style: column selection, filters, sorting, keyset
pagination. Parsed from request parameters into typed values first; applied as vectorized
pandas operations on RELEASED values only (promise 3), in the filter language policy row
filters use too (gateway/filterlang.py). Knows nothing of HTTP."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gateway.errors import BadRequest
from gateway.integers import parse_int
from gateway.model.filterlang import UnknownOperator, mask, operator

if TYPE_CHECKING:
    import pandas as pd

RESERVED = (
    "_size",
    "_next",
    "_col",
    "_nocol",
    "_sort",
    "_sort_desc",
    "_extra",
    "_format",
    "purpose",
)
MAX_IN = 200
MAX_VALUE = 1000


@dataclass(frozen=True)
class Filter:
    column: str
    op: str
    value: Any


@dataclass(frozen=True)
class Query:
    columns: tuple[str, ...]  # released columns to return, in order
    filters: tuple[Filter, ...] = ()
    sort: str | None = None
    descending: bool = False
    size: int = 100
    cursor: str | None = None
    count: bool = False
    fingerprint: str = field(default="")  # identifies filters + sort (cursors are bound to it)


def _one(params: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = params.get(name, ())
    if len(values) > 1:
        raise BadRequest(f"give {name} once", parameter=name)
    return values[0] if values else None


def _typed(value: str, dtype: str, parameter: str) -> Any:
    if len(value) > MAX_VALUE:
        raise BadRequest(f"{parameter} is longer than {MAX_VALUE} characters", parameter=parameter)
    if dtype == "integer":
        # (the message never repeats the value: it may be a guess at a personal value)
        return parse_int(value, parameter, minimum=None)
    return value


def parse_query(
    params: Mapping[str, Sequence[str]],
    column_types: Mapping[str, str],
    *,
    max_size: int,
    default_size: int,
) -> Query:
    """Validate every parameter; a parameter that names no released column is a 400."""
    released = list(column_types)
    filters: list[Filter] = []
    for name, values in params.items():
        if name in RESERVED:
            continue
        if name.startswith("_"):
            raise BadRequest(f"unsupported parameter {name!r}", parameter=name)
        column, _, op = name.partition("__")
        if column not in column_types:
            # Same answer for a column that does not exist and one that is not released.
            raise BadRequest(f"{column!r} is not a column of this view", parameter=name)
        try:
            op = operator(op or "exact").name  # any spelling; the canonical name from here on
        except UnknownOperator as exc:
            raise BadRequest(str(exc), parameter=name) from None
        for raw in values:
            filters.append(_filter(column, op, raw, column_types[column], name))
    columns = list(released)
    chosen = params.get("_col", ())
    if chosen:
        unknown = [c for c in chosen if c not in column_types]
        if unknown:
            raise BadRequest(f"{unknown[0]!r} is not a column of this view", parameter="_col")
        columns = [c for c in released if c in chosen]
    for dropped in params.get("_nocol", ()):
        if dropped not in column_types:
            raise BadRequest(f"{dropped!r} is not a column of this view", parameter="_nocol")
        columns = [c for c in columns if c != dropped]
    sort, desc = _one(params, "_sort"), _one(params, "_sort_desc")
    if sort and desc:
        raise BadRequest("give _sort or _sort_desc, not both", parameter="_sort")
    key = sort or desc
    if key is not None and key not in column_types:
        raise BadRequest(
            f"cannot sort by {key!r}: not a column of this view",
            parameter="_sort" if sort else "_sort_desc",
        )
    size = default_size
    raw_size = _one(params, "_size")
    if raw_size is not None:
        size = parse_int(raw_size, "_size", minimum=1, maximum=max_size)
    extra = params.get("_extra", ())
    if any(e != "count" for e in extra):
        raise BadRequest("_extra supports only count", parameter="_extra")
    fingerprint = hashlib.sha256(
        json.dumps(
            [[f.column, f.op, f.value] for f in filters] + [key, bool(desc)],
            default=list,
            ensure_ascii=False,
        ).encode()
    ).hexdigest()[:32]
    return Query(
        tuple(columns),
        tuple(filters),
        key,
        bool(desc),
        size,
        _one(params, "_next"),
        bool(extra),
        fingerprint,
    )


def _filter(column: str, op: str, raw: str, dtype: str, parameter: str) -> Filter:
    definition = operator(op)
    if definition.takes == "flag":
        if raw not in ("0", "1", "true", "false"):
            raise BadRequest(f"{parameter} takes 1 or 0", parameter=parameter)
        return Filter(column, op, raw in ("1", "true"))
    if definition.text_only and dtype == "integer":
        raise BadRequest(f"{op} applies to text columns", parameter=parameter)
    if definition.takes == "list":
        items = [item for item in raw.split(",")] if raw else []
        if not items or len(items) > MAX_IN:
            raise BadRequest(
                f"{parameter} takes 1 to {MAX_IN} comma-separated values", parameter=parameter
            )
        return Filter(column, op, tuple(_typed(i, dtype, parameter) for i in items))
    return Filter(column, op, _typed(raw, dtype, parameter))


def apply(frame: pd.DataFrame, query: Query) -> pd.DataFrame:
    """Filters, then order (stable; ties by row id), on the released view. Adds `_rid`."""
    import numpy as np

    result = frame.assign(_rid=np.arange(len(frame), dtype=np.int64))
    for item in query.filters:
        result = result[mask(result[item.column], item.op, item.value).to_numpy()]
    if query.sort is not None:
        result = result.sort_values(
            [query.sort, "_rid"],
            ascending=[not query.descending, True],
            na_position="last",
            kind="mergesort",
        )
    return result


# --- keyset cursors ---------------------------------------------------------------------------


class Cursors:
    """Opaque, signed keyset cursors, bound to one view and one query."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _tag(self, body: bytes) -> bytes:
        return hmac.new(self._key, body, hashlib.sha256).digest()[:16]

    def encode(self, view: str, query: Query, sort_value: Any, rid: int) -> str:
        import numpy as np
        import pandas as pd

        if isinstance(sort_value, np.generic):
            sort_value = sort_value.item()
        if sort_value is pd.NA or (isinstance(sort_value, float) and np.isnan(sort_value)):
            sort_value = None
        body = json.dumps(
            [view, query.fingerprint, sort_value, int(rid)],
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()
        return base64.urlsafe_b64encode(body + self._tag(body)).decode().rstrip("=")

    def decode(self, token: str, view: str, query: Query) -> tuple[Any, int]:
        invalid = BadRequest(
            "_next is not a cursor for this view and query; start from the first page",
            parameter="_next",
        )
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            raise invalid from None
        body, tag = raw[:-16], raw[-16:]
        if len(raw) < 17 or not hmac.compare_digest(tag, self._tag(body)):
            raise invalid
        try:
            bound_view, bound_query, sort_value, rid = json.loads(body)
        except (ValueError, TypeError):
            raise invalid from None
        if bound_view != view or bound_query != query.fingerprint:
            raise invalid
        return sort_value, int(rid)


def after(ordered: pd.DataFrame, query: Query, sort_value: Any, rid: int) -> pd.DataFrame:
    """Rows strictly after (sort value, rid) in the query's order (keyset pagination)."""
    rids = ordered["_rid"]
    if query.sort is None:
        return ordered[(rids > rid).to_numpy()]
    column = ordered[query.sort]
    if sort_value is None:  # nulls sort last: continue among the nulls
        keep = column.isna() & (rids > rid)
    else:
        beyond = (column < sort_value) if query.descending else (column > sort_value)
        same = (column == sort_value) & (rids > rid)
        keep = beyond.fillna(False).astype(bool) | same.fillna(False).astype(bool) | column.isna()
    return ordered[keep.to_numpy()]
