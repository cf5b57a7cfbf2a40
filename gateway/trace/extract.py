"""Reading a leaked extract: CSV (any common separator, UTF-8 or GB 18030), JSON (our API's page
format or a plain array of objects), NDJSON, and .xlsx spreadsheets (with openpyxl). Cells are
compared as canonical text, so re-encodings (whitespace, case, full-width characters, thousands
separators, `1234.0`, `2014/6/22`, a spreadsheet's formula guard) do not hide a match."""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

NULL = "\x00"  # a null cell, in canonical text (the same on both sides of a comparison)
_NULL_WORDS = ("", "null", "none", "nan", "<na>", "n/a", "na", "nat")
_NUMBER = r"[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:e[+-]?\d+)?"
_DATE = r"(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?(?:[t ]0{1,2}:00(?::00(?:\.0+)?)?)?"
_MAX_CELLS = 50_000_000
MAX_BYTES = 1 << 30  # a leaked extract larger than 1 GiB: trace a sample of it


class ExtractError(Exception):
    """The file cannot be read as an extract; the message says why."""


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
    arr = pa.array(values.array).cast(pa.large_string())
    arr = pc.utf8_lower(pc.utf8_normalize(arr, "NFKC"))
    arr = pc.replace_substring_regex(arr, r"\s+", "")
    arr = pc.replace_substring_regex(arr, r"^'([=+\-@])", r"\1")
    text = pd.Series(pd.array(arr, dtype=pd.StringDtype("pyarrow")), index=values.index)
    null = text.isin(_NULL_WORDS)
    numeric = pd.Series(
        pc.match_substring_regex(arr, rf"^{_NUMBER}$").to_numpy(zero_copy_only=False),
        index=values.index,
    )
    if numeric.any():
        plain = text[numeric].str.replace(",", "", regex=False)
        whole = plain.str.fullmatch(r"[+-]?\d+(?:\.0*)?").fillna(False).astype(bool)
        digits = plain[whole].str.replace(r"\.0*$", "", regex=True).str.lstrip("+")
        digits = digits.str.replace(r"^(-?)0+(?=\d)", r"\1", regex=True).replace("-0", "0")
        numbers = pd.to_numeric(plain[~whole], errors="coerce")
        integral = numbers.notna() & (numbers == np.round(numbers)) & (numbers.abs() < 2**53)
        spelled = numbers.astype("string")
        spelled[integral] = numbers[integral].astype("int64").astype("string")
        text[digits.index] = digits
        text[spelled.index] = spelled.fillna(plain[~whole])
    dated = pc.match_substring_regex(arr, rf"^{_DATE}$").to_numpy(zero_copy_only=False)
    if dated.any():
        dates = text[dated].str.extract(rf"^{_DATE}$")
        text[dates.index] = (dates[0] + "-" + dates[1].str.zfill(2) + "-") + dates[2].str.zfill(2)
    return text.mask(null, NULL)


def hashes(series: pd.Series) -> npt.NDArray[np.uint64]:
    """64-bit hashes of canonical cells (what matching compares)."""
    values = canonical(series).to_numpy(dtype=object)
    hashed: npt.NDArray[np.uint64] = pd.util.hash_array(values, categorize=True)
    return hashed


def read_extract(path: Path) -> Extract:
    """The extract in `path`, by suffix, else by content. Hostile files get an ExtractError:
    too large, too many cells, too deeply nested, or not what they claim to be."""
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise ExtractError(f"{path} is larger than {MAX_BYTES >> 20} MiB; trace a sample")
        suffix = path.suffix.lower()
        if suffix in (".xlsx", ".xlsm"):
            return _limited(_xlsx(path))
        data = path.read_bytes()
    except OSError as exc:
        raise ExtractError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return _limited(_by_content(data, suffix))
    except RecursionError:
        raise ExtractError("the JSON is nested too deeply to be a table") from None


def _limited(extract: Extract) -> Extract:
    if extract.frame.size > _MAX_CELLS:
        raise ExtractError(f"more than {_MAX_CELLS} cells; trace a sample of the rows")
    return extract


def _by_content(data: bytes, suffix: str) -> Extract:
    if suffix == ".xls":
        raise ExtractError("old .xls workbooks are not read; save the sheet as .xlsx or CSV")
    text = _decode(data)
    stripped = text.lstrip()
    if suffix in (".ndjson", ".jsonl") or (
        suffix not in (".json", ".csv", ".tsv") and stripped.startswith("{") and "\n{" in stripped
    ):
        return _records(_ndjson(text), "ndjson", {})
    if suffix == ".json" or (suffix not in (".csv", ".tsv") and stripped[:1] in ("[", "{")):
        return _json(text)
    frame = _csv(text)
    frame.columns = [str(c) for c in frame.columns]
    return Extract(frame.astype("string"), "csv", {})


def _decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise ExtractError("the file is neither UTF-8 nor GB 18030 text")


def _csv(text: str) -> pd.DataFrame:
    first = text.split("\n", 1)[0]
    separator = max((",", "\t", ";", "|"), key=first.count)
    try:
        return pd.read_csv(
            io.StringIO(text),
            sep=separator,
            dtype=str,
            keep_default_na=False,
            quoting=csv.QUOTE_MINIMAL,
        )
    except (ValueError, pd.errors.ParserError) as exc:
        raise ExtractError(f"not a readable CSV file: {exc}") from None


def _ndjson(text: str) -> list[Any]:
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except ValueError:
                raise ExtractError(f"line {number} is not JSON") from None
    return rows


def _json(text: str) -> Extract:
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise ExtractError(f"not a JSON document: {exc}") from None
    claimed: dict[str, Any] = {}
    if isinstance(document, dict) and isinstance(document.get("rows"), list):
        view = document.get("view")
        claimed = view if isinstance(view, dict) else {}
        document = document["rows"]
    if not isinstance(document, list):
        raise ExtractError("JSON must be an array of objects or an API page ({rows: [...]})")
    return _records(document, "json", claimed)


def _cell(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _records(rows: list[Any], fmt: str, claimed: dict[str, Any]) -> Extract:
    if not all(isinstance(r, dict) for r in rows):
        raise ExtractError("every row must be a JSON object")
    frame = pd.DataFrame.from_records(rows) if rows else pd.DataFrame()
    if frame.size > _MAX_CELLS:
        raise ExtractError(f"more than {_MAX_CELLS} cells; trace a sample of the rows")
    frame = frame.astype(object).map(_cell)
    frame.columns = [str(c) for c in frame.columns]
    return Extract(frame.astype("string"), fmt, claimed)


def _xlsx(path: Path) -> Extract:
    if importlib.util.find_spec("openpyxl") is None:
        raise ExtractError(
            "reading .xlsx needs the openpyxl package, which is not installed "
            "(pip install openpyxl); or save the sheet as CSV and trace that"
        )
    try:
        frame = pd.read_excel(path, sheet_name=0, dtype=str, keep_default_na=False)
    except (ValueError, OSError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        raise ExtractError(f"not a readable .xlsx workbook: {exc}") from None
    frame.columns = [str(c) for c in frame.columns]
    return Extract(frame.astype("string"), "xlsx", {})
