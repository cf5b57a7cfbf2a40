"""Keyed, deterministic randomness per value: one HMAC-SHA256 per distinct value (HMAC has no
vectorized form), gathered to rows as integers that vectorized generators then use."""

from __future__ import annotations

import hashlib

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa


def arrow_text(series: pd.Series) -> pa.Array:
    """The column as one contiguous Arrow large_string array (zero-copy for pyarrow-backed
    strings held in one chunk; several chunks, as large reads produce, are combined)."""
    text = pa.array(series.astype(pd.StringDtype("pyarrow")).array)
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    return text.cast(pa.large_string())


def hmac_sha256_many(key: bytes, values: list[str]) -> list[bytes]:
    """HMAC-SHA256(key, value) for many values: exactly RFC 2104, with the keyed inner and outer
    hash states computed once and copied per value (about twice as fast as hmac.new each)."""
    block = hashlib.sha256(key).digest() if len(key) > 64 else key
    block = block.ljust(64, b"\x00")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))
    out: list[bytes] = []
    for value in values:
        i = inner.copy()
        i.update(value.encode("utf-8"))
        o = outer.copy()
        o.update(i.digest())
        out.append(o.digest())
    return out


def keyed_words(
    series: pd.Series, key: bytes, words: int = 2
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.bool_]]:
    """(an (n, words) array of keyed 64-bit integers per row, a mask of null rows)."""
    encoded = arrow_text(series).dictionary_encode()
    blob = b"".join(d[: 8 * words] for d in hmac_sha256_many(key, encoded.dictionary.to_pylist()))
    table = np.frombuffer(blob, dtype=">u8").astype(np.uint64).reshape(-1, words)
    nulls = encoded.indices.is_null().to_numpy(zero_copy_only=False)
    indices = encoded.indices.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    if not len(table):
        return np.zeros((len(indices), words), np.uint64), nulls
    return table[indices], nulls


def uniform(words: npt.NDArray[np.uint64]) -> npt.NDArray[np.float64]:
    """Floats in (0, 1) from 64-bit words (53 bits of precision)."""
    return ((words >> np.uint64(11)).astype(np.float64) + 0.5) / float(1 << 53)
