"""Dataset sources on disk (CSV or Parquet), loaded with the declared column types and cached
by file identity. The dataset version is the SHA-256 of the file's bytes.

A source is read only from inside the workspace's data/ directory, without following links
(gateway/data/confine.py): the policy loader checked that already, and the read checks again in
case a link was swapped in since. No error message quotes a cell of the file."""

from __future__ import annotations

import hashlib
import io
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.data.confine import Unconfined, private_dirs, read_confined
from gateway.errors import ConfigError
from gateway.model.dataset import ColumnType, Dataset
from gateway.settings import Workspace

if TYPE_CHECKING:
    import pandas as pd

_DTYPES = {ColumnType.STRING: "string", ColumnType.INTEGER: "Int64", ColumnType.DATE: "string"}


@dataclass(frozen=True)
class Source:
    version: str  # SHA-256 of the file
    frame: pd.DataFrame


class SourceCache:
    """Loads each dataset's file once per (path, size, mtime); safe to share between threads."""

    def __init__(self, workspace: Workspace) -> None:
        self._roots = (workspace.data,)
        self._forbidden = private_dirs(workspace)
        self._lock = threading.Lock()
        self._cache: dict[Path, tuple[tuple[int, int], Source]] = {}
        self._checked: dict[Path, float] = {}

    def peek(self, dataset: Dataset) -> Source | None:
        """The loaded source if it was checked within the last second (no disk access)."""
        with self._lock:
            recent = self._checked.get(dataset.source)
            cached = self._cache.get(dataset.source)
        if recent is not None and cached is not None and time.monotonic() - recent < 1.0:
            return cached[1]
        return None

    def load(self, dataset: Dataset) -> Source:
        path = dataset.source
        with self._lock:
            recent = self._checked.get(path)
            cached = self._cache.get(path)
        if recent is not None and cached is not None and time.monotonic() - recent < 1.0:
            return cached[1]  # the file was checked less than a second ago
        try:
            stat = path.stat()
        except FileNotFoundError:
            raise ConfigError(f"data file {path} of dataset {dataset.id!r} is missing") from None
        identity = (stat.st_size, stat.st_mtime_ns)
        with self._lock:
            self._checked[path] = time.monotonic()
            cached = self._cache.get(path)
            if cached is not None and cached[0] == identity:
                return cached[1]
            try:
                raw = read_confined(path, self._roots, self._forbidden)
            except Unconfined as exc:
                raise ConfigError(f"dataset {dataset.id!r}: {exc}") from None
            source = _parse(raw, path, dataset)
            self._cache[path] = (identity, source)
            return source


def _parse(raw: bytes, path: Path, dataset: Dataset) -> Source:
    import pandas as pd

    version = hashlib.sha256(raw).hexdigest()
    columns = [c.name for c in dataset.columns]
    dtypes = {c.name: _DTYPES[c.type] for c in dataset.columns}
    try:
        if path.suffix == ".parquet":
            frame = pd.read_parquet(io.BytesIO(raw), columns=columns).astype(dtypes)
        else:
            frame = _csv(raw, columns, dtypes)
    except (ValueError, TypeError, KeyError, OverflowError) as exc:
        # pandas quotes the offending cell in its messages: never pass them on.
        raise ConfigError(_unreadable(raw, path, dataset, exc)) from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ConfigError(f"{path} lacks columns {missing} declared for dataset {dataset.id!r}")
    return Source(version, frame[columns])


def _csv(raw: bytes, columns: list[str], dtypes: dict[str, str]) -> pd.DataFrame:
    import pandas as pd

    return pd.read_csv(
        io.BytesIO(raw), usecols=columns, dtype=dtypes, keep_default_na=False, na_values=[""]
    )


def _unreadable(raw: bytes, path: Path, dataset: Dataset, exc: Exception) -> str:
    """Why the file does not read with the declared types: column and row position only."""
    import pandas as pd

    where = f"{path.name} of dataset {dataset.id!r}"
    if path.suffix != ".parquet":
        integers = [c.name for c in dataset.columns if c.type == ColumnType.INTEGER]
        try:
            text = _csv(raw, [c.name for c in dataset.columns], dict.fromkeys(integers, "string"))
        except (ValueError, TypeError, KeyError):
            return f"{where} cannot be read as CSV with the declared columns ({type(exc).__name__})"
        for name in integers:
            column = text[name]
            bad = column.notna() & pd.to_numeric(column, errors="coerce").isna()
            if bad.any():
                row = int(bad.to_numpy().argmax())
                return (
                    f"{where}: column {name!r} is declared integer but row {row} (0-based, after "
                    "the header) is not an integer; fix the data or declare the column string"
                )
    return (
        f"{where} cannot be read with the declared column types ({type(exc).__name__}); "
        "check the types declared in the policy"
    )
