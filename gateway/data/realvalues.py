"""The real values of each kind in the workspace's data: what a synthetic or format-preserving
value must never equal (promise 2: not the row's own value, not any value of that column, not
any value of a column of the same kind in any dataset of the workspace).

A column is of a kind when its schema says so (`kind: id_card`), or, for kinds with a strict
format (身份证号, mobile, 统一社会信用代码, e-mail), when nine in ten of its values have that
format: a column the admin forgot to label is still protected.
"""

from __future__ import annotations

import hashlib
import threading
import time
from typing import TYPE_CHECKING

from gateway.data.sources import Source, SourceCache
from gateway.model.dataset import ColumnType
from gateway.model.policyset import PolicySet

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

FORMATS = {
    "id_card": r"\d{17}[\dXx]",
    "mobile": r"1[3-9]\d{9}",
    "credit_code": r"[0-9A-HJ-NPQRTUWXY]{2}\d{6}[0-9A-HJ-NPQRTUWXY]{10}",
    "email": r"[^@\s]+@[^@\s]+\.[^@\s]+",
}
_SAMPLE = 1000
_SHARE = 0.9
FRESH_SECONDS = 1.0  # how long a version stays current without looking at the files again


def kind_of(values: pd.Series, declared: str | None) -> str | None:
    """The column's kind: declared, or recognised by format."""
    if declared is not None:
        return declared
    sample = values.dropna().astype("string").head(_SAMPLE)
    if sample.empty:
        return None
    for kind, pattern in FORMATS.items():
        if float(sample.str.fullmatch(pattern).fillna(False).mean()) >= _SHARE:
            return kind
    return None


def column_text(values: pd.Series) -> pa.Array:
    """The column's non-null values as text, in one Arrow large_string array (repeats kept:
    whoever looks values up hashes them once; a Python set of a million strings costs seconds
    and ten times the memory)."""
    import pandas as pd
    import pyarrow as pa

    text = pa.array(values.astype(pd.StringDtype("pyarrow")).array)
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    return text.cast(pa.large_string()).drop_null()


class RealValues:
    """Per policy set and data version, the real values of each kind (gathered once, not
    copied together), as chunked Arrow large_string arrays (a value may repeat)."""

    def __init__(self, sources: SourceCache) -> None:
        self._sources = sources
        self._lock = threading.Lock()
        self._cache: dict[str, dict[str, pa.ChunkedArray]] = {}
        self._current: tuple[str, float, str] | None = None  # policy hash, checked at, version

    def of(self, policy: PolicySet, kind: str) -> pa.ChunkedArray:
        """The real values of `kind` in every dataset of the policy set (one chunk per column)."""
        import pyarrow as pa

        found = self.all(policy).get(kind)
        return pa.chunked_array([], type=pa.large_string()) if found is None else found

    def version(self, policy: PolicySet) -> str:
        """A digest of the policy set and the version of every one of its datasets: what `all`
        answers from. Part of the key of every view that avoids real values, so a change to
        any dataset computes such views afresh. Looks at the files (`SourceCache.load`)."""
        return self._version(policy, [self._sources.load(d) for d in policy.datasets.values()])

    def peek_version(self, policy: PolicySet) -> str | None:
        """The version computed in the last second for this policy set, or None: no file is
        looked at, so the request path can call it (the view's own source is checked at the
        same pace)."""
        current = self._current
        if current is None or current[0] != policy.hash:
            return None
        if time.monotonic() - current[1] >= FRESH_SECONDS:
            return None
        return current[2]

    def _version(self, policy: PolicySet, loaded: list[Source]) -> str:
        digest = hashlib.sha256(policy.hash.encode())
        for source in loaded:
            digest.update(source.version.encode())
        key = digest.hexdigest()
        self._current = (policy.hash, time.monotonic(), key)
        return key

    def all(self, policy: PolicySet) -> dict[str, pa.ChunkedArray]:
        """Kind -> the real values of that kind, over every dataset of the policy set."""
        import pyarrow as pa

        loaded = [(d, self._sources.load(d)) for d in policy.datasets.values()]
        key = self._version(policy, [source for _, source in loaded])
        with self._lock:
            found = self._cache.get(key)
        if found is not None:
            return found
        values: dict[str, list[pa.Array]] = {}
        for dataset, source in loaded:
            for column in dataset.columns:
                if column.type is not ColumnType.STRING:
                    continue
                series = source.frame[column.name]
                kind = kind_of(series, column.kind)
                if kind is not None:
                    values.setdefault(kind, []).append(column_text(series))
        found = {
            kind: pa.chunked_array(arrays, type=pa.large_string())
            for kind, arrays in values.items()
        }
        with self._lock:
            if len(self._cache) > 16:
                self._cache.clear()
            self._cache[key] = found
        return found
