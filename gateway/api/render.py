"""Render a page of released rows as JSON, CSV or NDJSON. CSV cells that a spreadsheet would
run as a formula (starting with =, +, -, @, tab or carriage return) are neutralized with a
leading apostrophe (OWASP CSV injection guidance)."""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING, Any

from starlette.requests import Request

from gateway.api.common import query_values
from gateway.errors import BadRequest
from gateway.model.csvsafe import neutralize

if TYPE_CHECKING:
    import pandas as pd

FORMATS = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "ndjson": "application/x-ndjson",
}
_ACCEPT = {
    "application/json": "json",
    "text/csv": "csv",
    "application/x-ndjson": "ndjson",
    "application/ndjson": "ndjson",
}


def choose_format(request: Request) -> str:
    explicit = query_values(request, "_format")
    if len(explicit) > 1:
        raise BadRequest("give _format once", parameter="_format")
    if explicit:
        if explicit[0] not in FORMATS:
            raise BadRequest(f"_format must be one of {', '.join(FORMATS)}", parameter="_format")
        return explicit[0]
    for part in request.headers.get("accept", "").split(","):
        kind = part.split(";")[0].strip().lower()
        if kind in _ACCEPT:
            return _ACCEPT[kind]
    return "json"


def render(page: pd.DataFrame, fmt: str, meta: dict[str, Any], next_cursor: str | None) -> bytes:
    if fmt == "csv":
        buffer = io.StringIO()
        neutralize(page).to_csv(buffer, index=False, lineterminator="\r\n")
        return buffer.getvalue().encode("utf-8")
    records = page.to_json(orient="records", force_ascii=False, lines=fmt == "ndjson")
    if fmt == "ndjson":
        return (records + ("\n" if records and not records.endswith("\n") else "")).encode("utf-8")
    meta_json = json.dumps(meta, ensure_ascii=False, separators=(",", ":"))
    next_json = json.dumps(next_cursor)
    return f'{{"rows":{records},"next":{next_json},"view":{meta_json}}}'.encode()
