"""The streaming export: the whole released view (or the part the filters select) in one
response, as CSV, NDJSON or Parquet, rendered chunk by chunk: the body is never held whole.
Beyond the view itself (already in memory), an export holds the positions of its rows (8 bytes
each), one chunk of output, and for CSV and Parquet the view as an Arrow table (shared with the
pandas view where columns are unchanged; cached per view, gateway/runtime/released.py).

Everything that could refuse the call happens before the first byte: the policy decision, the
filters, the row quota (the whole export is counted at once), and the audit entry, which names
every row the export releases and is committed when the response starts (the audit middleware,
`ctx.stream`). If that entry cannot be written, the caller gets a 503 and no row.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import TYPE_CHECKING

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from gateway.api.common import DATASETS_SCOPE, caller
from gateway.api.datasets import _column_types, _load_view, decide, purpose_of
from gateway.api.endpoints import Param, endpoint
from gateway.api.schemas import DATASET_ID, ROWS_PARAMS, STRING
from gateway.audit.rowset import MAX_ROWS, encode_rows
from gateway.errors import BadRequest
from gateway.model.decision import Verdict
from gateway.query import Query, apply, parse_query

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pandas as pd
    import pyarrow as pa

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
    import numpy as np

    needed = list(dict.fromkeys([f.column for f in query.filters] + [query.sort or ""]))
    subset = ordered[[c for c in needed if c]]
    positions: npt.NDArray[np.int64] = apply(subset, query)["_rid"].to_numpy(dtype=np.int64)
    return positions


def _slices(positions: npt.NDArray[np.int64]) -> Iterator[npt.NDArray[np.int64]]:
    for begin in range(0, len(positions), CHUNK):
        yield positions[begin : begin + CHUNK]


def csv_stream(table: pa.Table, positions: npt.NDArray[np.int64]) -> Iterator[bytes]:
    """RFC 4180 CSV (CRLF; the header as the rows endpoint writes it), from the view's CSV
    table (formula-like cells already neutralized), chunk by chunk."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.csv as pacsv

    header = pd.DataFrame(columns=table.column_names).to_csv(index=False, lineterminator="\r\n")
    yield header.encode("utf-8")
    options = pacsv.WriteOptions(include_header=False, eol="\r\n")
    for chunk in _slices(positions):
        sink = pa.BufferOutputStream()
        pacsv.write_csv(table.take(chunk), sink, options)
        yield sink.getvalue().to_pybytes()


def ndjson_stream(
    ordered: pd.DataFrame, positions: npt.NDArray[np.int64], columns: list[str]
) -> Iterator[bytes]:
    """One JSON object per line, rendered as the rows endpoint renders them."""
    for chunk in _slices(positions):
        text = ordered.iloc[chunk][columns].to_json(orient="records", force_ascii=False, lines=True)
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


def parquet_stream(table: pa.Table, positions: npt.NDArray[np.int64]) -> Iterator[bytes]:
    """One Parquet row group per chunk; the footer last."""
    import pyarrow.parquet as pq

    sink = _Drain()
    with pq.ParquetWriter(sink, table.schema, compression="zstd") as writer:
        for chunk in _slices(positions):
            writer.write_table(table.take(chunk))
            yield sink.drain()
    yield sink.drain()


_PAGING = {"_size", "_next", "_extra", "_format"}
EXPORT_PARAMS = (
    Param(
        "format",
        "csv (default), ndjson or parquet",
        {**STRING, "enum": list(EXPORT_FORMATS)},
    ),
    *(p for p in ROWS_PARAMS if p.name not in _PAGING),
)


@endpoint(
    "GET",
    "/v1/datasets/{dataset_id}/export",
    summary="The whole released view (or what the filters select), streamed",
    scope=DATASETS_SCOPE,
    parameters=(DATASET_ID, *EXPORT_PARAMS),
    responses={
        "200": {
            "description": "Every selected row; `Export-Rows` says how many",
            "headers": {"Export-Rows": {"description": "rows in the body", "schema": STRING}},
            "content": {
                media: {"schema": {**STRING, **({"format": "binary"} if k == "parquet" else {})}}
                for k, media in EXPORT_FORMATS.items()
            },
        }
    },
    problems=(400, 401, 403, 404, 414, 429, 431, 503),
)
async def export(request: Request) -> Response:
    svc, ctx, principal = caller(request)
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
    ctx.decision, ctx.reason = Verdict.ALLOW, None
    ctx.stream = fmt
    body: Iterator[bytes]
    if fmt == "ndjson":
        body = ndjson_stream(ordered, positions, columns)
    else:  # the view as an Arrow table: built once per view and columns, then only sliced
        table = await anyio.to_thread.run_sync(
            partial(svc.released.get, view.key, ordered, columns, csv=fmt == "csv")
        )
        body = csv_stream(table, positions) if fmt == "csv" else parquet_stream(table, positions)
    return StreamingResponse(
        body,
        media_type=EXPORT_FORMATS[fmt],
        headers={
            "Content-Disposition": f'attachment; filename="{dataset.id}.{fmt}"',
            "Export-Rows": str(len(positions)),
        },
    )
