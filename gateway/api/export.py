"""The streaming export: the whole released view (or the part the filters select) in one
response, as CSV, NDJSON or Parquet, rendered chunk by chunk so memory stays bounded however
large the view.

Everything that could refuse the call happens before the first byte: the policy decision, the
filters, the row quota (the whole export is counted at once), and the audit entry, which names
every row the export releases and is committed when the response starts (the audit middleware,
`ctx.stream`). If that entry cannot be written, the caller gets a 503 and no row.
"""

from __future__ import annotations

from collections.abc import Iterator

import anyio.to_thread
import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from gateway.api.common import caller
from gateway.api.datasets import _column_types, _load_view, decide, purpose_of
from gateway.api.render import neutralize
from gateway.errors import BadRequest
from gateway.query import Query, apply, parse_query
from gateway.trace.rowset import MAX_ROWS, encode_rows

CHUNK = 20_000  # rows rendered at a time: the memory an export holds beyond the view
EXPORT_FORMATS = {
    "csv": "text/csv; charset=utf-8",
    "ndjson": "application/x-ndjson",
    "parquet": "application/vnd.apache.parquet",
}
_NOT_HERE = ("_size", "_next", "_format", "_extra")  # paging has no meaning here


def export_format(params: dict[str, list[str]]) -> str:
    """The `format` parameter (csv when absent); removed from `params`."""
    given = params.pop("format", [])
    if len(given) > 1:
        raise BadRequest("give format once", parameter="format")
    fmt = given[0] if given else "csv"
    if fmt not in EXPORT_FORMATS:
        raise BadRequest(f"format must be one of {', '.join(EXPORT_FORMATS)}", parameter="format")
    return fmt


def selected_positions(ordered: pd.DataFrame, query: Query) -> npt.NDArray[np.int64]:
    """The positions (in the view's keyed order) of the rows the export releases, in output
    order. Only the filter and sort columns are copied to find them, never the whole view."""
    needed = list(dict.fromkeys([f.column for f in query.filters] + [query.sort or ""]))
    subset = ordered[[c for c in needed if c]]
    positions: npt.NDArray[np.int64] = apply(subset, query)["_rid"].to_numpy(dtype=np.int64)
    return positions


def _chunks(
    ordered: pd.DataFrame, positions: npt.NDArray[np.int64], columns: list[str]
) -> Iterator[pd.DataFrame]:
    for begin in range(0, len(positions), CHUNK):
        yield ordered.iloc[positions[begin : begin + CHUNK]][columns]


def csv_stream(frames: Iterator[pd.DataFrame], columns: list[str]) -> Iterator[bytes]:
    """RFC 4180 CSV (CRLF), cells that a spreadsheet would run as a formula neutralized as the
    rows endpoint does."""
    yield (pd.DataFrame(columns=columns).to_csv(index=False, lineterminator="\r\n")).encode()
    for frame in frames:
        text = neutralize(frame).to_csv(index=False, header=False, lineterminator="\r\n")
        yield text.encode("utf-8")


def ndjson_stream(frames: Iterator[pd.DataFrame]) -> Iterator[bytes]:
    for frame in frames:
        text = frame.to_json(orient="records", force_ascii=False, lines=True)
        yield (text if text.endswith("\n") else text + "\n").encode("utf-8")


class _Drain:
    """A write-only file for pyarrow that hands out what was written since the last drain
    (its position keeps counting, as the Parquet footer's offsets need)."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._position = 0
        self.closed = False

    def write(self, data: bytes) -> int:
        chunk = bytes(data)
        self._parts.append(chunk)
        self._position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        return None

    def close(self) -> None:
        self.closed = True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def drain(self) -> bytes:
        out, self._parts = b"".join(self._parts), []
        return out


def _arrow_schema(ordered: pd.DataFrame, columns: list[str], types: dict[str, str]) -> pa.Schema:
    """The file's schema from the released column types (not from the first chunk, whose
    values may all be null)."""
    fields = []
    for name in columns:
        kind = types.get(name, "string")
        if kind == "integer" and pd.api.types.is_integer_dtype(ordered[name].dtype):
            fields.append(pa.field(name, pa.int64()))
        elif pd.api.types.is_float_dtype(ordered[name].dtype):
            fields.append(pa.field(name, pa.float64()))
        else:
            fields.append(pa.field(name, pa.string()))
    return pa.schema(fields)


def parquet_stream(frames: Iterator[pd.DataFrame], schema: pa.Schema) -> Iterator[bytes]:
    """One Parquet row group per chunk; the footer last."""
    sink = _Drain()
    strings = [f.name for f in schema if f.type == pa.string()]
    with pq.ParquetWriter(sink, schema, compression="zstd") as writer:
        for frame in frames:
            typed = frame.astype({name: "string" for name in strings})
            writer.write_table(pa.Table.from_pandas(typed, schema=schema, preserve_index=False))
            yield sink.drain()
    yield sink.drain()


async def export(request: Request) -> Response:
    svc, ctx, principal = caller(request, "/v1/datasets/{id}/export")
    engine = svc.engine
    purpose = purpose_of(request)
    dataset, grant = decide(engine, ctx, principal, request.path_params["dataset_id"], purpose)
    params = {key: request.query_params.getlist(key) for key in request.query_params}
    fmt = export_format(params)
    for name in _NOT_HERE:
        if name in params:
            raise BadRequest(
                f"{name} has no meaning for an export (it sends every selected row)",
                parameter=name,
            )
    svc.limiter.grant_request(principal, grant)
    view = await _load_view(svc, engine, dataset, grant, principal)
    types = _column_types(view)
    query = parse_query(params, types, max_size=1, default_size=1)
    ordered = view.ordered
    positions = await anyio.to_thread.run_sync(selected_positions, ordered, query)
    if len(positions) > MAX_ROWS:
        raise BadRequest(
            f"an export holds at most {MAX_ROWS} rows and this one selects {len(positions)}; "
            "split it with filters",
            parameter="format",
        )
    svc.limiter.rows(principal, len(positions), grant)  # the whole export, before any byte
    columns = list(query.columns)
    ctx.transforms = view.transforms
    ctx.rows = len(positions)
    ctx.view, ctx.row_ids = view.key, encode_rows(positions)
    ctx.decision, ctx.reason = "allow", None
    ctx.stream = fmt
    frames = _chunks(ordered, positions, columns)
    body: Iterator[bytes]
    if fmt == "csv":
        body = csv_stream(frames, columns)
    elif fmt == "ndjson":
        body = ndjson_stream(frames)
    else:
        body = parquet_stream(frames, _arrow_schema(ordered, columns, types))
    extension = "ndjson" if fmt == "ndjson" else fmt
    return StreamingResponse(
        body,
        media_type=EXPORT_FORMATS[fmt],
        headers={
            "Content-Disposition": f'attachment; filename="{dataset.id}.{extension}"',
            "Export-Rows": str(len(positions)),
        },
    )
