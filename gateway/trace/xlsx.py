"""Reading the first sheet of an .xlsx workbook as a table of text, in bounded time and memory.

An .xlsx file is a zip archive of XML parts (ECMA-376 / ISO/IEC 29500). It is read here with
the standard library's streaming XML parser instead of a spreadsheet library, so that every
limit is checked while the file is read, not after it was expanded:

1. the archive: member count, the sum of the members' uncompressed sizes and each member's
   compression ratio, from the zip directory, before anything is decompressed (zipfile never
   inflates a member past its declared size);
2. every XML part: no document type declaration (hence no entity, internal or external) and no
   encoding other than UTF-8/ASCII, checked on the bytes before the parser sees them;
3. the sheet: the declared dimension first, then while streaming, cell by cell: columns, cells
   and rows x columns, and the deadline.

openpyxl is used only for its date-format rules (which number formats are dates).
"""

from __future__ import annotations

import posixpath
import re
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO
from xml.etree.ElementTree import Element, ParseError, iterparse

import numpy as np
import pandas as pd

from gateway.trace.limits import (
    MAX_CELLS,
    MAX_COLUMNS,
    MAX_PART,
    MAX_RATIO,
    MAX_UNZIPPED,
    MAX_ZIP_MEMBERS,
    RATIO_FLOOR,
    Deadline,
    ExtractError,
)

_REF = re.compile(r"([A-Z]{1,3})([0-9]{1,7})")
_RANGE = re.compile(r"([A-Z]{1,3})([0-9]{1,7})(?::([A-Z]{1,3})([0-9]{1,7}))?")
_DTD = re.compile(rb"<!(?:DOCTYPE|ENTITY)", re.IGNORECASE)
_DECLARED_ENCODING = re.compile(rb"""^<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_ASCII_ENCODINGS = {b"utf-8", b"utf8", b"us-ascii", b"ascii"}
_OFFICE_DOC = "/officeDocument"
_CHECK_EVERY = 4096  # cells between cell-limit checks
_CHECK_EVENTS = 16_384  # parser events between deadline checks
_MAX_ITEM_PARTS = 10_000  # elements inside one cell or shared string (runs of rich text)
_MAX_ROW = 1_048_576  # the format's own limits (ECMA-376 Part 1, 18.3.1.73 and 18.3.1.4)
_MAX_COLUMN = 16_384


def read_xlsx(path: Path, deadline: Deadline) -> pd.DataFrame:
    """The first sheet as text cells: its first non-empty row names the columns."""
    try:
        archive = zipfile.ZipFile(path)
    except (*_DAMAGED, ValueError):
        raise ExtractError("not a readable .xlsx workbook (not a zip archive)") from None
    with archive:
        _check_archive(archive)
        try:
            return _Workbook(archive, deadline).first_sheet()
        except _DAMAGED as exc:
            # Positions only: expat's messages name a line and column, never content.
            raise ExtractError(f"not a readable .xlsx workbook ({_position(exc)})") from None


# What a damaged archive or part raises from zipfile, zlib and the XML parser.
_DAMAGED = (
    ParseError,
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    OSError,
    UnicodeDecodeError,
    NotImplementedError,  # a compression method zipfile does not know
)


def _position(exc: BaseException) -> str:
    if isinstance(exc, ParseError):
        line, column = exc.position
        return f"malformed XML at line {line}, column {column}"
    if isinstance(exc, zipfile.BadZipFile | zlib.error | EOFError):
        return "a damaged zip member"
    return type(exc).__name__


def _number(text: str | None) -> int | None:
    """A small non-negative integer attribute (an index), or None: ASCII digits only."""
    if text is None or not (text.isascii() and text.isdigit()) or len(text) > 9:
        return None
    return int(text)


def _check_archive(archive: zipfile.ZipFile) -> None:
    members = archive.infolist()
    if len(members) > MAX_ZIP_MEMBERS:
        raise ExtractError(f"the workbook has more than {MAX_ZIP_MEMBERS} parts; not a table")
    total = 0
    for info in members:
        if info.flag_bits & 0x1:
            raise ExtractError("the workbook is encrypted; save an unprotected copy and trace it")
        total += info.file_size
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size > RATIO_FLOOR and ratio > MAX_RATIO:
            raise ExtractError(
                f"the workbook part {info.filename!r} expands {ratio:.0f} times (more than "
                f"{MAX_RATIO}): a zip bomb, not a spreadsheet"
            )
    if total > MAX_UNZIPPED:
        raise ExtractError(
            f"the workbook expands to more than {MAX_UNZIPPED >> 20} MiB; trace a sample"
        )


class _Guarded:
    """A member's bytes on their way to the XML parser, refused at the first sign of a
    document type declaration (the only place entities can be declared) or of an encoding in
    which that check could be evaded. No part of a workbook needs either."""

    def __init__(self, raw: IO[bytes], name: str) -> None:
        self._raw = raw
        self._name = name
        self._tail = b""
        self._first = True

    def read(self, size: int = -1) -> bytes:
        chunk = self._raw.read(size)
        if self._first and chunk:
            self._first = False
            self._check_encoding(chunk)
        if _DTD.search(self._tail + chunk):
            raise ExtractError(
                f"the workbook part {self._name!r} declares a DTD or entities (an XML entity "
                "bomb or external entity); refused"
            )
        self._tail = chunk[-16:]
        return chunk

    def _check_encoding(self, head: bytes) -> None:
        head = head.removeprefix(b"\xef\xbb\xbf")
        declared = _DECLARED_ENCODING.match(head)
        utf16 = head[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in head[:4]
        if utf16 or (declared and declared.group(1).lower() not in _ASCII_ENCODINGS):
            raise ExtractError(f"the workbook part {self._name!r} is not UTF-8 XML; refused")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _attr(element: Element, name: str) -> str | None:
    """An attribute by local name, in whatever namespace (r:id and the like)."""
    for key, value in element.attrib.items():
        if _local(key) == name:
            return value
    return None


def _column(letters: str) -> int:
    number = 0
    for letter in letters:
        number = number * 26 + ord(letter) - 64
    return number


def _text(element: Element) -> str:
    """The text of a string item (<si> or <is>): its <t>, or its runs' <t>; no phonetic runs."""
    parts: list[str] = []
    for child in element:
        name = _local(child.tag)
        if name == "t":
            parts.append(child.text or "")
        elif name == "r":
            parts.extend(t.text or "" for t in child if _local(t.tag) == "t")
    return "".join(parts)


class _Workbook:
    def __init__(self, archive: zipfile.ZipFile, deadline: Deadline) -> None:
        self.archive = archive
        self.deadline = deadline
        self.names = set(archive.namelist())

    def _events(self, name: str, small: bool = True) -> Iterator[tuple[str, Element]]:
        """("start" | "end", element) of a part. Parts other than the sheet and its strings
        are small in any real workbook; their trees are kept whole, so their size is capped."""
        if name not in self.names:
            raise ExtractError(f"not a readable .xlsx workbook (the part {name!r} is missing)")
        if small and self.archive.getinfo(name).file_size > MAX_PART:
            raise ExtractError(
                f"the workbook part {name!r} is larger than {MAX_PART >> 20} MiB; not a table"
            )
        with self.archive.open(name) as raw:
            # Safe: _Guarded refuses any DTD (so any entity) before the parser reads it.
            yield from iterparse(_Guarded(raw, name), events=("start", "end"))  # noqa: S314

    def _relations(self, part: str) -> dict[str, tuple[str, str]]:
        """Relationship id -> (type, member name) of a part."""
        folder, base = posixpath.split(part)
        rels = posixpath.join(folder, "_rels", base + ".rels")
        if rels not in self.names:
            return {}
        found: dict[str, tuple[str, str]] = {}
        for event, element in self._events(rels):
            external = element.get("TargetMode") == "External"
            if event == "end" and _local(element.tag) == "Relationship" and not external:
                target = element.get("Target", "")
                member = target[1:] if target.startswith("/") else posixpath.join(folder, target)
                found[element.get("Id", "")] = (element.get("Type", ""), posixpath.normpath(member))
            if len(found) > MAX_ZIP_MEMBERS:
                raise ExtractError("the workbook declares too many relationships; not a table")
        return found

    def first_sheet(self) -> pd.DataFrame:
        root = self._relations("")
        book = next((m for t, m in root.values() if t.endswith(_OFFICE_DOC)), "xl/workbook.xml")
        relations = self._relations(book)
        first_id, date1904 = None, False
        for event, element in self._events(book):
            name = _local(element.tag) if event == "end" else ""
            if name == "sheet" and first_id is None:
                first_id = _attr(element, "id")
            elif name == "workbookPr":
                date1904 = element.get("date1904", "0").lower() in ("1", "true")
        if first_id is None or first_id not in relations:
            raise ExtractError("not a readable .xlsx workbook (it names no sheet)")
        kinds = {t.rsplit("/", 1)[-1]: m for t, m in relations.values()}
        strings = self._shared_strings(kinds["sharedStrings"]) if "sharedStrings" in kinds else []
        dates = self._date_styles(kinds["styles"]) if "styles" in kinds else set()
        return _Sheet(strings, dates, date1904, self.deadline).read(
            self._events(relations[first_id][1], small=False)
        )

    def _shared_strings(self, name: str) -> list[str]:
        strings: list[str] = []
        for tag, element, start in _items(self._events(name, small=False), "si", self.deadline):
            if not start and tag == "si":
                strings.append(_text(element))
                if len(strings) > MAX_CELLS:
                    raise ExtractError(f"more than {MAX_CELLS} shared strings; not a table")
        return strings

    def _date_styles(self, name: str) -> set[int]:
        """Indexes of the cell formats (cellXfs) whose number format is a date or time."""
        # openpyxl ships no type information; these two names are its documented date rules.
        from openpyxl.styles.numbers import (  # type: ignore[import-untyped]
            BUILTIN_FORMATS,
            is_date_format,
        )

        codes: dict[int, str] = {}
        formats: list[int] = []
        in_cell_xfs = False
        for event, element in self._events(name):
            tag = _local(element.tag)
            if tag == "cellXfs":
                in_cell_xfs = event == "start"
            elif event == "end" and tag == "numFmt":
                number = _number(element.get("numFmtId"))
                if number is not None:
                    codes[number] = element.get("formatCode", "")
            elif event == "end" and tag == "xf" and in_cell_xfs:
                formats.append(_number(element.get("numFmtId")) or 0)
            if len(formats) + len(codes) > MAX_CELLS:
                raise ExtractError("the workbook declares too many formats; not a table")
        return {
            i
            for i, fmt in enumerate(formats)
            if is_date_format(codes.get(fmt, BUILTIN_FORMATS.get(fmt, "General")))
        }


def _items(
    events: Iterator[tuple[str, Element]], item: str, deadline: Deadline
) -> Iterator[tuple[str, Element, bool]]:
    """(local name, element, is start) of a streamed part, in bounded memory: an element is
    dropped from its parent once it was seen whole, except inside an `item` (a cell, a string),
    which is seen whole at its end and may hold at most _MAX_ITEM_PARTS elements. The deadline
    is checked every _CHECK_EVENTS events, whatever the elements are."""
    stack: list[Element] = []
    inside = parts = seen = 0
    for event, element in events:
        seen += 1
        if seen % _CHECK_EVENTS == 0:
            deadline.check()
        tag = _local(element.tag)
        if event == "start":
            stack.append(element)
            if inside:
                parts += 1
                if parts > _MAX_ITEM_PARTS:
                    what = "cell" if item == "c" else "shared string"
                    raise ExtractError(f"not a readable .xlsx workbook (a {what} is too complex)")
            inside += tag == item
            parts = 0 if tag == item else parts
            yield tag, element, True
            continue
        stack.pop()
        if tag == item:
            inside -= 1
        if inside:
            continue  # a part of an item: read with the item
        yield tag, element, False
        if stack:
            stack[-1].clear()  # memory stays bounded by one element (its parent forgets it)


class _Sheet:
    """Streams a worksheet's cells, keeping only non-empty values (sparse), within limits."""

    def __init__(
        self, strings: list[str], dates: set[int], date1904: bool, deadline: Deadline
    ) -> None:
        self.strings = strings
        self.dates = dates
        self.date1904 = date1904
        self.deadline = deadline
        self.rows: list[int] = []
        self.columns: list[int] = []
        self.values: list[str] = []
        self.filled_rows: set[int] = set()
        self.width = 0

    def read(self, events: Iterator[tuple[str, Element]]) -> pd.DataFrame:
        row = col = cells = 0
        for tag, element, start in _items(events, "c", self.deadline):
            if start:
                if tag == "row":
                    row = self._index(element.get("r"), row + 1, _MAX_ROW, "row")
                    col = 0
            elif tag == "dimension":
                self._declared(element.get("ref", ""))
            elif tag == "c":
                cells += 1
                col = self._cell(element, row, col)
                if cells % _CHECK_EVERY == 0 and cells > MAX_CELLS:
                    raise ExtractError(f"more than {MAX_CELLS} cells; trace a sample")
        return self._frame()

    @staticmethod
    def _index(raw: str | None, default: int, top: int, what: str) -> int:
        if raw is None:
            value = default
        elif raw.isascii() and raw.isdigit():
            value = int(raw)
        else:
            raise ExtractError(f"not a readable .xlsx workbook (a {what} number is not a number)")
        if not 1 <= value <= top:
            raise ExtractError(f"not a readable .xlsx workbook (a {what} number is out of range)")
        return value

    def _declared(self, ref: str) -> None:
        """The sheet's own statement of its extent, refused before any cell is read."""
        match = _RANGE.fullmatch(ref.upper())
        if match is None:
            return  # absent or odd: the streamed cells are counted anyway
        first_col, first_row = _column(match[1]), int(match[2])
        last_col = _column(match[3]) if match[3] else first_col
        last_row = int(match[4]) if match[4] else first_row
        columns, rows = last_col - first_col + 1, last_row - first_row + 1
        if columns > MAX_COLUMNS:
            raise ExtractError(f"the sheet declares {columns} columns (at most {MAX_COLUMNS})")
        if rows * columns > MAX_CELLS:
            raise ExtractError(
                f"the sheet declares {rows} x {columns} cells (at most {MAX_CELLS}); trace a sample"
            )

    def _cell(self, element: Element, row: int, col: int) -> int:
        ref = element.get("r")
        if ref is not None:
            match = _REF.fullmatch(ref)
            if match is None:
                raise ExtractError("not a readable .xlsx workbook (a cell reference is malformed)")
            col = _column(match[1])
            row = self._index(match[2], 0, _MAX_ROW, "row")
        else:
            col += 1
        if not 1 <= col <= _MAX_COLUMN:
            raise ExtractError("not a readable .xlsx workbook (a column is out of range)")
        if col > MAX_COLUMNS:
            raise ExtractError(f"more than {MAX_COLUMNS} columns; trace the columns you need")
        value = self._value(element)
        if value is None or value == "":
            return col
        self.filled_rows.add(row)
        self.width = max(self.width, col)
        if len(self.filled_rows) * self.width > MAX_CELLS:
            raise ExtractError(f"more than {MAX_CELLS} cells; trace a sample of the rows")
        self.rows.append(row)
        self.columns.append(col)
        self.values.append(value)
        return col

    def _value(self, element: Element) -> str | None:
        kind = element.get("t", "n")
        if kind == "inlineStr":
            inline = next((c for c in element if _local(c.tag) == "is"), None)
            return None if inline is None else _text(inline)
        raw = next((c.text for c in element if _local(c.tag) == "v"), None)
        if raw is None or kind == "e":
            return None  # an empty cell, or an error value (#N/A, #DIV/0!)
        if kind == "s":
            return self._shared(raw)
        if kind == "b":
            return "True" if raw.strip() == "1" else "False"  # as pandas spells them
        if kind == "n" and self.dates and _number(element.get("s")) in self.dates:
            return self._date(raw)
        return raw  # numbers as written (canonical text unifies their spellings), str, d

    def _shared(self, raw: str) -> str:
        text = raw.strip()
        if not (text.isascii() and text.isdigit()) or int(text) >= len(self.strings):
            raise ExtractError("not a readable .xlsx workbook (a shared string index is invalid)")
        return self.strings[int(text)]

    def _date(self, raw: str) -> str:
        from openpyxl.utils.datetime import (  # type: ignore[import-untyped]
            CALENDAR_MAC_1904,
            CALENDAR_WINDOWS_1900,
            from_excel,
        )

        epoch = CALENDAR_MAC_1904 if self.date1904 else CALENDAR_WINDOWS_1900
        try:
            return str(from_excel(float(raw), epoch))
        except (ValueError, OverflowError, TypeError):
            return raw

    def _frame(self) -> pd.DataFrame:
        """Dense text table: the first non-empty row names the columns (pandas' spelling of
        empty and repeated names), empty rows are dropped."""
        if not self.values:
            return pd.DataFrame()
        order = np.array(sorted(self.filled_rows))
        position = np.searchsorted(order, np.asarray(self.rows))
        grid = np.full((len(order), self.width), None, dtype=object)
        grid[position, np.asarray(self.columns) - 1] = np.asarray(self.values, dtype=object)
        names: list[str] = []
        seen: dict[str, int] = {}
        for i, cell in enumerate(grid[0]):
            name = f"Unnamed: {i}" if cell is None else str(cell)
            if name in seen:
                seen[name] += 1
                name = f"{name}.{seen[name]}"
            seen.setdefault(name, 0)
            names.append(name)
        return pd.DataFrame(grid[1:], columns=names).astype("string")
