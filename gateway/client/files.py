"""Writing downloads to files: atomically (a temporary file renamed into place, so a failed
download never leaves a partial file under the name asked for), in CSV, NDJSON or Parquet.

When the gateway has no export endpoint, the client writes the file itself from JSON pages;
CSV cells a spreadsheet would run as a formula get a leading apostrophe, as the gateway's own
CSV does (OWASP CSV injection guidance)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import pandas as pd

from gateway.model.csvsafe import neutralize

FORMATS = ("csv", "ndjson", "parquet")


def format_of(path: Path, given: str | None) -> str:
    """The export format: the one given, or the file's suffix (.csv, .ndjson/.jsonl, .parquet)."""
    if given is not None:
        if given not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {given!r}")
        return given
    suffix = path.suffix.lower().lstrip(".")
    guessed = {"jsonl": "ndjson", "pq": "parquet"}.get(suffix, suffix)
    if guessed not in FORMATS:
        raise ValueError(
            f"cannot tell the format from {path.name!r}: name it .csv, .ndjson or .parquet, "
            "or pass format="
        )
    return guessed


@contextmanager
def atomic_file(path: Path) -> Iterator[IO[bytes]]:
    """A binary file that appears at `path` only when the block ends without an error."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        Path(temp).replace(path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def write_page(out: IO[bytes], frame: pd.DataFrame, fmt: str, *, first: bool) -> None:
    """Append one page of rows in CSV (a header before the first page only) or NDJSON."""
    if fmt == "csv":
        text = neutralize(frame).to_csv(index=False, header=first, lineterminator="\r\n")
    else:
        text = frame.to_json(orient="records", force_ascii=False, lines=True)
        if text and not text.endswith("\n"):
            text += "\n"
    out.write(text.encode("utf-8"))


def read_ndjson(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    """Rows of an NDJSON file as they were sent: no type or date guessing."""
    if path.stat().st_size == 0:
        return pd.DataFrame(columns=columns or [])
    return pd.read_json(path, lines=True, dtype=False)
