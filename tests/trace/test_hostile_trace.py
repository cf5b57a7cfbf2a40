"""Hostile files for `gateway trace` (issue 14, item 8): each is refused while it is read, before
the work it was built to cause, with exit 2 and one line on stderr (no traceback).

The spreadsheets are written by hand with zipfile: small files that expand to tens of millions
of cells, entity bombs and external entities in the XML parts. Before the fix, reading them took
minutes (the cell limit was checked after parsing) or ended in a traceback."""

from __future__ import annotations

import contextlib
import json
import struct
import zipfile
from collections.abc import Iterable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.cli import main
from gateway.trace.extract import ExtractError, read_extract
from gateway.trace.limits import MAX_COLUMNS, Deadline, TraceTimeout
from tests.conftest import Demo

_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_PKG = "http://schemas.openxmlformats.org/package/2006/relationships"
_DOC = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_ROOT_RELS = (
    f'<?xml version="1.0"?><Relationships xmlns="{_PKG}"><Relationship Id="rId1" '
    f'Type="{_DOC}/officeDocument" Target="xl/workbook.xml"/></Relationships>'
)
_BOOK = (
    f'<?xml version="1.0"?><workbook xmlns="{_MAIN}" xmlns:r="{_DOC}"><sheets>'
    '<sheet name="S" sheetId="1" r:id="rId1"/></sheets></workbook>'
)
_BOOK_RELS = (
    f'<?xml version="1.0"?><Relationships xmlns="{_PKG}">'
    f'<Relationship Id="rId1" Type="{_DOC}/worksheet" Target="worksheets/sheet1.xml"/>'
    f'<Relationship Id="rId2" Type="{_DOC}/sharedStrings" Target="sharedStrings.xml"/>'
    f'<Relationship Id="rId3" Type="{_DOC}/styles" Target="styles.xml"/>'
    "</Relationships>"
)
# Cell format 1 is a date (built-in number format 14), format 2 a custom date-time format.
_STYLES = (
    f'<?xml version="1.0"?><styleSheet xmlns="{_MAIN}"><numFmts count="1">'
    '<numFmt numFmtId="164" formatCode="yyyy/mm/dd hh:mm"/></numFmts><cellXfs count="3">'
    '<xf numFmtId="0"/><xf numFmtId="14"/><xf numFmtId="164"/></cellXfs></styleSheet>'
)
_BOMB = (
    '<!DOCTYPE b [<!ENTITY a "aaaaaaaaaa">'
    + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(9))
    + "]>"
)  # &j; expands to 10**10 characters


def _workbook(
    path: Path,
    rows: Iterable[str],
    *,
    dimension: str | None = None,
    strings: tuple[str, ...] = ("name", "city"),
    sheet_prolog: str = "",
    strings_prolog: str = "",
    strings_part: bytes | None = None,
    styles: str = _STYLES,
) -> Path:
    """A minimal .xlsx (ECMA-376): workbook, one sheet streamed from `rows`, shared strings."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("_rels/.rels", _ROOT_RELS)
        archive.writestr("xl/workbook.xml", _BOOK)
        archive.writestr("xl/_rels/workbook.xml.rels", _BOOK_RELS)
        archive.writestr("xl/styles.xml", styles)
        items = "".join(f"<si><t>{s}</t></si>" for s in strings)
        archive.writestr(
            "xl/sharedStrings.xml",
            strings_part
            or f'<?xml version="1.0"?>{strings_prolog}<sst xmlns="{_MAIN}">{items}</sst>',
        )
        with archive.open("xl/worksheets/sheet1.xml", "w") as sheet:
            declared = f'<dimension ref="{dimension}"/>' if dimension else ""
            sheet.write(
                f'<?xml version="1.0"?>{sheet_prolog}<worksheet xmlns="{_MAIN}">{declared}'
                "<sheetData>".encode()
            )
            for row in rows:
                sheet.write(row.encode())
            sheet.write(b"</sheetData></worksheet>")
    return path


def _refused(demo: Demo, path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    """Run `gateway trace` on a hostile file: exit 2 and exactly one line on stderr."""
    capsys.readouterr()
    code = main(["trace", str(path), "--home", str(demo.home), *extra])
    captured = capsys.readouterr()
    assert code == 2, (code, captured.out[-500:], captured.err[-500:])
    assert captured.err.count("\n") == 1, captured.err
    assert captured.err.startswith("error: ")
    assert "Traceback" not in captured.err
    return captured.err


def test_xlsx_with_60_million_cells_is_refused_before_parsing(
    demo: Demo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 0.4 MB workbook holding 60 M cells (60,000 rows of 1,000 empty cells) is refused from
    the zip directory (it expands 600 times), not after minutes of parsing."""
    row = "<row>" + "<c/>" * 1000 + "</row>"
    path = _workbook(tmp_path / "cells.xlsx", (row for _ in range(60_000)))
    assert path.stat().st_size < 1 << 20
    assert "zip bomb" in _refused(demo, path, capsys)


def test_xlsx_that_widens_every_row_is_refused_at_the_first_row(
    demo: Demo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One cell per row in the last column (XFD): a spreadsheet reader pads each row to 16,384
    cells (4,000 rows: 65 M cells from a 20 kB file). Refused at the first wide row."""
    rows = (f'<row r="{i}"><c r="XFD{i}"><v>1</v></c></row>' for i in range(1, 4001))
    path = _workbook(tmp_path / "wide.xlsx", rows)
    assert f"more than {MAX_COLUMNS} columns" in _refused(demo, path, capsys)


def test_xlsx_declaring_a_huge_sheet_is_refused_before_its_cells(
    demo: Demo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The sheet's own dimension (20 columns x 3 M rows) is checked before any cell is read."""
    rows = ['<row r="1"><c r="A1" t="s"><v>0</v></c></row>']
    path = _workbook(tmp_path / "declared.xlsx", rows, dimension="A1:T3000000")
    assert "declares 3000000 x 20 cells" in _refused(demo, path, capsys)


def test_xlsx_with_many_cells_in_a_small_archive_is_counted_while_streaming(
    tmp_path: Path,
) -> None:
    """Cells are counted as they stream (rows x columns of the table): a sheet of one wide
    header row and many short rows stops at the cell limit, not after the whole sheet."""
    header = '<row r="1">' + "".join(f'<c r="{c}1"><v>1</v></c>' for c in ("A", "ALL")) + "</row>"
    rows = (f'<row r="{i}"><c r="A{i}"><v>1</v></c></row>' for i in range(2, 60_000))
    path = _workbook(tmp_path / "sparse.xlsx", [header, *rows])
    with pytest.raises(ExtractError, match="more than 50000000 cells"):
        read_extract(path)


@pytest.mark.parametrize("part", ["sheet", "strings"])
def test_xml_entity_bombs_are_refused_before_the_parser_expands_them(
    demo: Demo, tmp_path: Path, capsys: pytest.CaptureFixture[str], part: str
) -> None:
    """A billion-laughs DTD in the worksheet or the shared strings: exit 2 and one line (it was
    exit 1 with a traceback); the parser never sees the declarations."""
    if part == "sheet":
        rows = ['<row r="1"><c r="A1" t="inlineStr"><is><t>&j;</t></is></c></row>']
        path = _workbook(tmp_path / "bomb.xlsx", rows, sheet_prolog=_BOMB)
    else:
        rows = ['<row r="1"><c r="A1" t="s"><v>0</v></c></row>']
        path = _workbook(tmp_path / "bomb.xlsx", rows, strings=("&j;",), strings_prolog=_BOMB)
    assert "declares a DTD or entities" in _refused(demo, path, capsys)


def test_external_entities_never_read_workspace_files(
    demo: Demo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An external entity naming the workspace's token key is refused; the key never appears."""
    key = demo.home / "keys" / "token-es256.key"
    prolog = f'<!DOCTYPE s [<!ENTITY k SYSTEM "file://{key}">]>'
    rows = ['<row r="1"><c r="A1" t="inlineStr"><is><t>&k;</t></is></c></row>']
    path = _workbook(tmp_path / "xxe.xlsx", rows, sheet_prolog=prolog)
    err = _refused(demo, path, capsys)
    assert "PRIVATE KEY" not in err


@pytest.mark.parametrize("encoding", ["utf-16", "cp037"])
def test_a_dtd_hidden_in_another_encoding_is_refused(tmp_path: Path, encoding: str) -> None:
    """UTF-16, or an EBCDIC code page the parser would switch to after the declaration, would
    hide `<!DOCTYPE` from a byte scan: such parts are refused."""
    declaration = f'<?xml version="1.0" encoding="{encoding}"?>'
    body = f'{_BOMB}<sst xmlns="{_MAIN}"><si><t>&j;</t></si></sst>'.encode(encoding)
    part = (declaration + _BOMB).encode("utf-16") if encoding == "utf-16" else b""
    if encoding == "cp037":
        part = declaration.encode("ascii") + body
    rows = ['<row r="1"><c r="A1" t="s"><v>0</v></c></row>']
    path = _workbook(tmp_path / f"{encoding}.xlsx", rows, strings_part=part)
    with pytest.raises(ExtractError, match="not UTF-8 XML"):
        read_extract(path)


def test_zip_members_claiming_to_expand_past_the_limit_are_refused(tmp_path: Path) -> None:
    """The zip directory's sizes are checked before any member is inflated: a member whose
    declared size is 3 GiB is refused (zipfile never inflates past a declared size)."""
    path = _workbook(tmp_path / "claims.xlsx", ['<row r="1"><c r="A1"><v>1</v></c></row>'])
    data = bytearray(path.read_bytes())
    at = data.rfind(b"PK\x01\x02")  # the last central directory entry (the sheet)
    data[at + 24 : at + 28] = struct.pack("<I", 3 << 30)  # its uncompressed size
    path.write_bytes(bytes(data))
    with pytest.raises(ExtractError, match="expands"):
        read_extract(path)


def test_csv_with_100000_columns_is_refused_from_its_header(
    demo: Demo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 0.9 MB CSV with 100,000 columns (it took over 300 s) is refused from its header line."""
    header = ",".join(f"c{i}" for i in range(100_000))
    path = tmp_path / "wide.csv"
    path.write_text(header + "\n" + ",".join("1" * 100_000) + "\n")
    assert path.stat().st_size < 1 << 20
    assert "more than 1000 columns" in _refused(demo, path, capsys)


@pytest.mark.parametrize("name", ["wide.ndjson", "wide.json"])
def test_json_rows_with_ever_new_keys_are_refused_while_read(
    demo: Demo, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    """Objects with distinct keys widen the table for every row (5,000 rows x 5,000 keys from
    one small file): the width is checked row by row, before a table is built."""
    rows = [{f"k{i}": 1} for i in range(5_000)]
    path = tmp_path / name
    if name.endswith(".ndjson"):
        path.write_text("\n".join(json.dumps(r) for r in rows))
    else:
        path.write_text(json.dumps(rows))
    assert "distinct keys" in _refused(demo, path, capsys)


def test_files_that_are_not_regular_files_are_refused(
    demo: Demo, capsys: pytest.CaptureFixture[str]
) -> None:
    """A device or pipe (here /dev/zero, endless) is refused instead of read forever."""
    assert "not a regular file" in _refused(demo, Path("/dev/zero"), capsys)


def test_the_whole_trace_runs_under_a_time_limit(
    demo: Demo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--time-limit` bounds the whole trace (reading, recomputing views, matching): past it,
    exit 2 and one line. (1 ms: less than recomputing one view takes.)"""
    path = tmp_path / "leak.csv"
    path.write_text("a\n" + "x\n" * 50)
    err = _refused(demo, path, capsys, "--time-limit", "0.001")
    assert "time limit of 0.001 s" in err


def test_deadline_checks_the_clock() -> None:
    """A deadline passes until its clock moves past the limit, then raises TraceTimeout."""
    now = [100.0]
    deadline = Deadline(5, clock=lambda: now[0])
    now[0] = 105.0
    deadline.check()
    now[0] = 105.5
    with pytest.raises(TraceTimeout, match="time limit of 5 s"):
        deadline.check()


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    content=st.binary(max_size=3000),
    suffix=st.sampled_from([".csv", ".tsv", ".json", ".ndjson", ".xlsx", ".xls", ".txt"]),
)
def test_any_bytes_give_a_table_or_an_extract_error(
    tmp_path: Path, content: bytes, suffix: str
) -> None:
    """Whatever the bytes and the name, reading ends in a table or an ExtractError (a clear
    message), never another exception."""
    path = tmp_path / f"x{suffix}"
    path.write_bytes(content)
    with contextlib.suppress(ExtractError):
        read_extract(path)


_FRAGMENTS = st.sampled_from(
    [
        '<row r="1">',
        "<row>",
        '<row r="0">',
        '<row r="²">',
        "</row>",
        "<c/>",
        '<c r="A1"><v>1</v></c>',
        '<c r="ZZZZ1"/>',
        '<c t="s"><v>7</v></c>',
        '<c t="s"><v>-1</v></c>',
        '<c t="b"><v>1</v></c>',
        '<c t="inlineStr"><is><r><t>x</t></r></is></c>',
        '<c s="99"><v>44000</v></c>',
        '<c s="1"><v>44000</v></c>',
        '<c s="2"><v>1e308</v></c>',
        '<c s="x"><v>1</v></c>',
        '<c r="a1"><v>1</v></c>',
        "<v>",
        "&amp;",
        "&undefined;",
        "<![CDATA[x]]>",
    ]
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(fragments=st.lists(_FRAGMENTS, max_size=30), dimension=st.sampled_from([None, "A1:B2", "Q"]))
def test_any_sheet_xml_gives_a_table_or_an_extract_error(
    tmp_path: Path, fragments: list[str], dimension: str | None
) -> None:
    """Sheets made of valid and broken pieces (bad references, indexes, numbers, markup): a
    table or an ExtractError, never another exception."""
    path = _workbook(tmp_path / "x.xlsx", fragments, dimension=dimension)
    with contextlib.suppress(ExtractError):
        read_extract(path)


_HOSTILE_STYLES = st.sampled_from(
    [
        _STYLES,
        f'<styleSheet xmlns="{_MAIN}"><cellXfs><xf numFmtId="x"/></cellXfs></styleSheet>',
        f'<styleSheet xmlns="{_MAIN}"><numFmts><numFmt numFmtId="²" formatCode="d"/></numFmts>'
        "</styleSheet>",
        "<styleSheet>",
        "",
    ]
)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    styles=_HOSTILE_STYLES,
    flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), max_size=4),
)
def test_damaged_workbooks_give_a_table_or_an_extract_error(
    tmp_path: Path, styles: str, flips: list[tuple[int, int]]
) -> None:
    """A workbook with hostile styles and bytes flipped anywhere in the archive (headers,
    compressed streams, directory): a table or an ExtractError, never another exception."""
    rows = ['<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" s="1"><v>41812</v></c></row>']
    path = _workbook(tmp_path / "x.xlsx", rows, styles=styles)
    data = bytearray(path.read_bytes())
    for at, xor in flips:
        data[at % len(data)] ^= xor
    path.write_bytes(bytes(data))
    with contextlib.suppress(ExtractError):
        read_extract(path)


def test_the_streamed_sheet_reads_like_a_spreadsheet_library(tmp_path: Path) -> None:
    """The streaming reader gives the table pandas/openpyxl gave for a sheet pandas wrote:
    shared and inline strings, numbers, booleans, dates, empty cells, empty and repeated
    header names, a blank row."""
    import pandas as pd

    written = pd.DataFrame(
        [
            ["北京市", 5615, 1.5, True, pd.Timestamp("2014-06-22"), None, "x"],
            [None, -3, None, False, pd.Timestamp("2020-02-29 13:45"), None, "y"],
            [" 空格 ", 0, 2.0, None, None, None, None],
        ],
        columns=["城市", "n", "f", "b", "d", "Unnamed: 5", "n"],
    )
    path = tmp_path / "w.xlsx"
    written.to_excel(path, index=False)
    expected = pd.read_excel(path, dtype=str, keep_default_na=False).astype("string")
    got = read_extract(path).frame
    assert list(got.columns) == list(expected.columns)
    assert got.fillna("").equals(expected.fillna("").replace("nan", "")), (got, expected)
    rows = [
        '<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c></row>',
        '<row r="3"><c r="A3" s="1"><v>41812</v></c><c r="B3" s="2"><v>41812.5</v></c></row>',
        '<row r="4"><c r="A4" t="inlineStr"><is><r><t>a</t></r><r><t>b</t></r></is></c>'
        '<c r="B4" t="b"><v>1</v></c></row>',
    ]
    frame = read_extract(_workbook(tmp_path / "d.xlsx", rows)).frame
    assert list(frame.columns) == ["name", "city"]
    assert frame.to_numpy().tolist() == [
        ["2014-06-22 00:00:00", "2014-06-22 12:00:00"],
        ["ab", "True"],
    ]


def test_a_cell_with_endless_parts_is_refused(tmp_path: Path) -> None:
    """A cell is read whole: one holding 20,000 rich-text runs is refused, not accumulated."""
    runs = "<r><t>x</t></r>" * 20_000
    rows = [f'<row r="1"><c r="A1" t="inlineStr"><is>{runs}</is></c></row>']
    with pytest.raises(ExtractError, match="a cell is too complex"):
        read_extract(_workbook(tmp_path / "runs.xlsx", rows))


def test_the_deadline_is_checked_between_elements_that_are_not_cells(tmp_path: Path) -> None:
    """Markup with no cell in it (here 40,000 unknown elements) still meets the deadline: it is
    checked every so many parser events, whatever they are."""
    ticks = iter(range(10**6))
    deadline = Deadline(2, clock=lambda: float(next(ticks)))
    path = _workbook(tmp_path / "junk.xlsx", ["<x/>" * 40_000])
    with pytest.raises(TraceTimeout):
        read_extract(path, deadline)
