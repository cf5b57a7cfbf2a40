"""Dataset sources on disk (CSV or Parquet), loaded with the declared column types and cached
by file identity. The dataset version is the SHA-256 of the file's bytes."""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from gateway.errors import ConfigError
from gateway.policy.model import ColumnType, Dataset

_DTYPES = {ColumnType.STRING: "string", ColumnType.INTEGER: "Int64", ColumnType.DATE: "string"}


@dataclass(frozen=True)
class Source:
    version: str  # SHA-256 of the file
    frame: pd.DataFrame


class SourceCache:
    """Loads each dataset's file once per (path, size, mtime); safe to share between threads."""

    def __init__(self) -> None:
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
            source = _read(path, dataset)
            self._cache[path] = (identity, source)
            return source


def _read(path: Path, dataset: Dataset) -> Source:
    raw = path.read_bytes()
    version = hashlib.sha256(raw).hexdigest()
    columns = [c.name for c in dataset.columns]
    dtypes = {c.name: _DTYPES[c.type] for c in dataset.columns}
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path, columns=columns).astype(dtypes)
    else:
        frame = pd.read_csv(
            path, usecols=columns, dtype=dtypes, keep_default_na=False, na_values=[""]
        )
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ConfigError(f"{path} lacks columns {missing} declared for dataset {dataset.id!r}")
    return Source(version, frame[columns])
