"""Reading a leaked extract: CSV (any common separator, UTF-8 or GB 18030), JSON (our API's page
format or a plain array of objects), NDJSON, and .xlsx spreadsheets (with openpyxl). Cells are
compared as canonical text, so re-encodings (whitespace, case, full-width characters, thousands
separators, `1234.0`, `2014/6/22`, a spreadsheet's formula guard) do not hide a match."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from gateway.trace.limits import (
    MAX_BYTES,
    MAX_CELLS,
    MAX_COLUMNS,
    MAX_JSON_BYTES,
    UNLIMITED,
    Deadline,
    ExtractError,
)
from gateway.trace.xlsx import read_xlsx

__all__ = ["NULL", "Extract", "ExtractError", "canonical", "hashes", "read_extract"]

NULL = "\x00"  # a null cell, in canonical text (the same on both sides of a comparison)
_NULL_WORDS = ("", "null", "none", "nan", "<na>", "n/a", "na", "nat")
_NUMBER = r"[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:e[+-]?\d+)?"
_DATE = (  # named groups: Arrow's extract_regex asks for names
    r"(?P<year>\d{4})[-/.年](?P<month>\d{1,2})[-/.月](?P<day>\d{1,2})日?"
    r"(?:[t ]0{1,2}:00(?::00(?:\.0+)?)?)?"
)
_CSV_CHUNK = 100_000  # rows per parsed CSV chunk (the deadline is checked between chunks)
_CHECK_EVERY = 10_000  # JSON rows between deadline checks


@dataclass(frozen=True)
class Extract:
    frame: pd.DataFrame  # canonical text cells (NULL for nulls), the file's columns and rows
    format: str
    claimed: dict[str, Any] = field(default_factory=dict)  # what the file says of itself


def canonical(series: pd.Series) -> pd.Series:
    """Canonical text of every cell, vectorized (once per distinct value): NFKC, no whitespace,
    lower case, numbers and dates in one spelling, a CSV formula guard removed, nulls as NULL."""
    codes, uniques = pd.factorize(series.astype("string"), use_na_sentinel=True)
    distinct = _canonical_distinct(pd.Series(uniques, dtype="string"))
    table = np.empty(len(distinct) + 1, dtype=object)  # (not np.append: NumPy drops "\x00")
    table[:-1] = distinct.to_numpy(dtype=object)
    table[-1] = NULL  # code -1 (a null cell)
    return pd.Series(table[codes], index=series.index, dtype="string")


def _canonical_distinct(values: pd.Series) -> pd.Series:
    """Canonical text of distinct non-null values. In Arrow compute (RE2) throughout, but for
    decimals, which pandas parses and spells: a trace hashes every column of every candidate
    view and of the extract, and a dozen pandas operations per column cost more than the work
    itself."""
    arr = pa.array(values.array).cast(pa.large_string())
    arr = pc.utf8_lower(pc.utf8_normalize(arr, "NFKC"))
    arr = pc.replace_substring_regex(arr, r"\s+", "")
    arr = pc.replace_substring_regex(arr, r"^'([=+\-@])", r"\1")
    null = pc.is_in(arr, value_set=pa.array(_NULL_WORDS, type=pa.large_string()))
    out = arr
    numeric = pc.match_substring_regex(arr, rf"^{_NUMBER}$")
    if pc.any(numeric).as_py():
        plain = pc.replace_substring(arr, ",", "")
        whole = pc.and_(numeric, pc.match_substring_regex(plain, r"^[+-]?\d+(?:\.0*)?$"))
        if pc.any(whole).as_py():
            digits = pc.utf8_ltrim(pc.replace_substring_regex(plain, r"\.0*$", ""), "+")
            # Leading zeros go, the last digit stays.
            digits = pc.replace_substring_regex(digits, r"^(-?)0+(\d)", r"\1\2")
            digits = pc.if_else(pc.equal(digits, "-0"), "0", digits)
            out = pc.if_else(whole, digits, out)
        decimal = pc.and_(numeric, pc.invert(whole))
        if pc.any(decimal).as_py():
            out = pc.replace_with_mask(out, decimal, _decimals(plain.filter(decimal)))
    dated = pc.match_substring_regex(arr, rf"^{_DATE}$")
    if pc.any(dated).as_py():  # (never a number: a date has two separators)
        parts = pc.extract_regex(arr, rf"^{_DATE}$")
        year, month, day = (pc.struct_field(parts, [i]) for i in range(3))
        dash = pa.scalar("-", type=pa.large_string())
        iso = pc.binary_join_element_wise(
            year, pc.utf8_lpad(month, 2, "0"), pc.utf8_lpad(day, 2, "0"), dash
        )
        out = pc.if_else(dated, iso, out)
    out = pc.if_else(null, pa.scalar(NULL, type=pa.large_string()), out)
    return pd.Series(pd.array(out, dtype=pd.StringDtype("pyarrow")), index=values.index)


def _decimals(plain: pa.Array) -> pa.Array:
    """Decimals and exponents as pandas parses and spells them: an integral value as an
    integer (`1e3` is `1000`), another as pandas writes the float, unparsable text as is."""
    text = pd.Series(pd.array(plain, dtype=pd.StringDtype("pyarrow")))
    numbers = pd.to_numeric(text, errors="coerce")
    integral = numbers.notna() & (numbers == np.round(numbers)) & (numbers.abs() < 2**53)
    spelled = numbers.astype("string")
    spelled[integral] = numbers[integral].astype("int64").astype("string")
    return pa.array(spelled.fillna(text).to_numpy(dtype=object), type=pa.large_string())


def hashes(series: pd.Series) -> npt.NDArray[np.uint64]:
    """64-bit hashes of canonical cells (what matching compares)."""
    values = canonical(series).to_numpy(dtype=object)
    hashed: npt.NDArray[np.uint64] = pd.util.hash_array(values, categorize=True)
    return hashed


def read_extract(path: Path, deadline: Deadline = UNLIMITED) -> Extract:
    """The extract in `path`, by suffix, else by content. Hostile files get an ExtractError
    before the work they would cause is done (limits in gateway/trace/limits.py): too large,
    too wide, too many cells, too deeply nested, an XML entity or zip bomb, or not what they
    claim to be. The deadline is checked while reading."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise ExtractError(f"{path} is not a regular file")
        if info.st_size > MAX_BYTES:
            raise ExtractError(f"{path} is larger than {MAX_BYTES >> 20} MiB; trace a sample")
        suffix = path.suffix.lower()
        if suffix in (".xlsx", ".xlsm"):
            return _limited(_xlsx(path, deadline))
        data = path.read_bytes()
    except OSError as exc:
        raise ExtractError(f"cannot read {path}: {exc.strerror or exc}") from None
    except MemoryError:
        raise ExtractError("the file does not fit in memory; trace a sample of it") from None
    try:
        return _limited(_by_content(data, suffix, deadline))
    except RecursionError:
        raise ExtractError("the JSON is nested too deeply to be a table") from None
    except MemoryError:
        raise ExtractError("the file does not fit in memory; trace a sample of it") from None


def _limited(extract: Extract) -> Extract:
    if len(extract.frame.columns) > MAX_COLUMNS:
        raise ExtractError(f"more than {MAX_COLUMNS} columns; trace the columns you need")
    if extract.frame.size > MAX_CELLS:
        raise ExtractError(f"more than {MAX_CELLS} cells; trace a sample of the rows")
    return extract


def _by_content(data: bytes, suffix: str, deadline: Deadline) -> Extract:
    if suffix == ".xls":
        raise ExtractError("old .xls workbooks are not read; save the sheet as .xlsx or CSV")
    text = _decode(data)
    stripped = text.lstrip()
    ndjson = suffix in (".ndjson", ".jsonl") or (
        suffix not in (".json", ".csv", ".tsv") and stripped.startswith("{") and "\n{" in stripped
    )
    json_doc = suffix == ".json" or (suffix not in (".csv", ".tsv") and stripped[:1] in ("[", "{"))
    if (ndjson or json_doc) and len(data) > MAX_JSON_BYTES:
        raise ExtractError(
            f"a JSON file larger than {MAX_JSON_BYTES >> 20} MiB is not read whole; "
            "convert it to CSV, or trace a sample"
        )
    if ndjson:
        return _records(_ndjson(text, deadline), "ndjson", {}, deadline)
    if json_doc:
        return _json(text, deadline)
    frame = _csv(text, deadline)
    frame.columns = [str(c) for c in frame.columns]
    return Extract(frame.astype("string"), "csv", {})


def _decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise ExtractError("the file is neither UTF-8 nor GB 18030 text")


def _csv(text: str, deadline: Deadline) -> pd.DataFrame:
    """Parsed in chunks of rows, after the header's width was checked: a wide or long file is
    refused before pandas has spent time on it."""
    first = text[: text.find("\n")] if "\n" in text else text
    separator = max((",", "\t", ";", "|"), key=first.count)
    if first.count(separator) + 1 > MAX_COLUMNS:
        raise ExtractError(
            f"the header has more than {MAX_COLUMNS} columns; trace the columns you need"
        )
    try:
        reader = pd.read_csv(
            io.StringIO(text),
            sep=separator,
            dtype=str,
            keep_default_na=False,
            quoting=csv.QUOTE_MINIMAL,
            chunksize=_CSV_CHUNK,
        )
        chunks: list[pd.DataFrame] = []
        cells = 0
        with reader:
            for chunk in reader:
                deadline.check()
                cells += chunk.size
                if len(chunk.columns) > MAX_COLUMNS or cells > MAX_CELLS:
                    raise ExtractError(
                        f"more than {MAX_COLUMNS} columns or {MAX_CELLS} cells; trace a sample"
                    )
                chunks.append(chunk)
    except (ValueError, pd.errors.ParserError, csv.Error) as exc:
        # pandas' parser messages name lines and field counts, not cell contents.
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise ExtractError(f"not a readable CSV file: {reason}") from None
    if not chunks:
        return pd.DataFrame()
    return pd.concat(chunks, ignore_index=True) if len(chunks) > 1 else chunks[0]


def _ndjson(text: str, deadline: Deadline) -> list[Any]:
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if number % _CHECK_EVERY == 0:
            deadline.check()
        if line.strip():
            try:
                rows.append(json.loads(line))
            except ValueError:
                raise ExtractError(f"line {number} is not JSON") from None
    return rows


def _json(text: str, deadline: Deadline) -> Extract:
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise ExtractError(f"not a JSON document: {exc}") from None
    deadline.check()
    claimed: dict[str, Any] = {}
    if isinstance(document, dict) and isinstance(document.get("rows"), list):
        view = document.get("view")
        claimed = view if isinstance(view, dict) else {}
        document = document["rows"]
    if not isinstance(document, list):
        raise ExtractError("JSON must be an array of objects or an API page ({rows: [...]})")
    return _records(document, "json", claimed, deadline)


def _cell(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _records(rows: list[Any], fmt: str, claimed: dict[str, Any], deadline: Deadline) -> Extract:
    """Rows of JSON objects as a table; its width and size are checked row by row, before
    pandas builds it (objects with distinct keys widen the table for every row)."""
    keys: dict[Any, None] = {}
    for number, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise ExtractError("every row must be a JSON object")
        keys.update(dict.fromkeys(row))
        if len(keys) > MAX_COLUMNS:
            raise ExtractError(f"more than {MAX_COLUMNS} distinct keys; trace the columns you need")
        if number * len(keys) > MAX_CELLS:
            raise ExtractError(f"more than {MAX_CELLS} cells; trace a sample of the rows")
        if number % _CHECK_EVERY == 0:
            deadline.check()
    frame = pd.DataFrame.from_records(rows) if rows else pd.DataFrame()
    frame = frame.astype(object).map(_cell)
    frame.columns = [str(c) for c in frame.columns]
    return Extract(frame.astype("string"), fmt, claimed)


def _xlsx(path: Path, deadline: Deadline) -> Extract:
    if importlib.util.find_spec("openpyxl") is None:
        raise ExtractError(
            "reading .xlsx needs the openpyxl package, which is not installed "
            "(pip install openpyxl); or save the sheet as CSV and trace that"
        )
    frame = read_xlsx(path, deadline)
    frame.columns = [str(c) for c in frame.columns]
    return Extract(frame.astype("string"), "xlsx", {})
