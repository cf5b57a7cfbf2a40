"""Keyed, deterministic randomness per value: one HMAC-SHA256 per distinct value (HMAC has no
vectorized form), gathered to rows as integers that vectorized generators then use."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.hmac import HMAC

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pandas as pd
    import pyarrow as pa


def arrow_text(series: pd.Series) -> pa.Array:
    """The column as one contiguous Arrow large_string array (zero-copy for pyarrow-backed
    strings held in one chunk; several chunks, as large reads produce, are combined)."""
    import pandas as pd
    import pyarrow as pa

    text = pa.array(series.astype(pd.StringDtype("pyarrow")).array)
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    return text.cast(pa.large_string())


def _as_bytes(values: pa.Array | Sequence[str] | Sequence[bytes]) -> list[bytes]:
    """UTF-8 bytes of each value; an Arrow string array is converted without a per-value
    `str.encode` (its buffers already hold UTF-8)."""
    import pyarrow as pa

    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array):
        return values.cast(pa.large_binary()).to_pylist()  # type: ignore[no-any-return]
    return [v.encode("utf-8") if isinstance(v, str) else bytes(v) for v in values]


def hmac_sha256_joined(key: bytes, values: pa.Array | Sequence[str] | Sequence[bytes]) -> bytearray:
    """HMAC-SHA256(key, value) of every value, the 32-byte digests concatenated in order.
    `values` is a list of text or bytes, or an Arrow string array without nulls.

    OpenSSL's HMAC through `cryptography` (RFC 2104): keyed once, its state (the inner and
    outer hashes after the key blocks) copied per value, so each value costs three C calls:
    fewer than copying two `hashlib` states (six calls, each OpenSSL copy allocating), and
    about a third of `hmac.new`'s time per value (docs/performance.md)."""
    fresh = HMAC(key, hashes.SHA256()).copy
    out = bytearray()
    # The loop is the whole cost: a bound method, no attribute lookups, values already bytes;
    # each digest is appended to one buffer in place (cheaper than a list of a million digests
    # joined afterwards).
    for value in _as_bytes(values):
        mac = fresh()
        mac.update(value)
        out += mac.finalize()
    return out


def hmac_sha256_many(key: bytes, values: pa.Array | Sequence[str] | Sequence[bytes]) -> list[bytes]:
    """HMAC-SHA256(key, value) for many values, one digest each (`hmac_sha256_joined` split)."""
    joined = bytes(hmac_sha256_joined(key, values))
    return [joined[start : start + 32] for start in range(0, len(joined), 32)]


# Each byte's two hex digits as one 16-bit item: `_HEX_PAIRS` read as a "<u2" array, item b
# viewed as bytes is `f"{b:02x}"` (the item is only moved, never read as a number, so byte order
# cannot matter), and one gather over a digest table writes its hex text. Kept as bytes, read as
# an array where used: NumPy loads at the first view, not when a serving process starts.
_HEX_PAIRS = "".join(f"{b:02x}" for b in range(256)).encode("ascii")
_SAMPLE = 4096  # values looked at to guess how many of a column's values are distinct
_PER_ROW_ABOVE = 0.75  # above this share of distinct values, skip the dictionary pass


def _digest_table(key: bytes, values: pa.Array) -> npt.NDArray[np.uint8]:
    import numpy as np

    joined = hmac_sha256_joined(key, values)
    return np.frombuffer(joined, np.uint8).reshape(len(joined) // 32, 32)


def _mostly_distinct(text: pa.Array) -> bool:
    """Whether more than `_PER_ROW_ABOVE` of the column's values are distinct, estimated from
    `_SAMPLE` values spread evenly over it (a prefix can be all distinct in a column of few
    values: a million rows of 18,000 company names). The column's distinct values are
    estimated with Chao's bias-corrected estimator, d + f1 (f1 - 1) / (2 (f2 + 1)), where d, f1
    and f2 count the sample's distinct values and those seen once and twice."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    positions = np.linspace(0, len(text) - 1, _SAMPLE).astype(np.int64)
    sample = text.take(pa.array(positions)).drop_null()
    if not len(sample):
        return False
    counts = pc.value_counts(sample).field("counts").to_numpy()
    once, twice = int((counts == 1).sum()), int((counts == 2).sum())
    estimate = len(counts) + once * (once - 1) / (2 * (twice + 1))
    present = len(text) - int(text.null_count)
    return min(estimate, present) > _PER_ROW_ABOVE * present


def keyed_digests(
    key: bytes, text: pa.Array
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64] | None, npt.NDArray[np.bool_]]:
    """HMAC-SHA256 of a text column's values: (a (m, 32) table of digests, each row's index into
    it or None when the table has one digest per row, the null rows).

    One HMAC per distinct value: a column with repeats is dictionary-encoded first. When a
    sample shows nearly every value distinct, that hashing pass would not pay, and each row is
    keyed directly; the digests are the same either way. A null row gets the digest of the
    column's first non-null value (the dictionary's index 0), whichever way was taken."""
    import numpy as np
    import pyarrow.compute as pc

    nulls = text.is_null().to_numpy(zero_copy_only=False)
    if len(text) > _SAMPLE and _mostly_distinct(text):
        if text.null_count:
            first = pc.drop_null(text)
            filled = pc.fill_null(text, first[0]) if len(first) else text
        else:
            filled = text
        return _digest_table(key, filled), None, nulls
    encoded = text.dictionary_encode()
    indices = encoded.indices.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    return _digest_table(key, encoded.dictionary), indices, nulls


def hex_prefixes(table: npt.NDArray[np.uint8], length: int) -> pa.Array:
    """`[d.hex()[:length] for d in digests]` for a (n, 32) digest table, as an Arrow
    large_string array, vectorized."""
    import numpy as np
    import pyarrow as pa

    width = len(range(64)[:length])  # the slice's own semantics, negative lengths included
    count = len(table)
    if count == 0 or width == 0:
        return pa.array([""] * count, pa.large_string())
    # Two hex digits per byte from one table lookup, only for the bytes the prefix shows.
    pairs = np.frombuffer(_HEX_PAIRS, "<u2")[table[:, : (width + 1) // 2]].view(np.uint8)
    text = pairs if width % 2 == 0 else pairs[:, :width]
    offsets = np.arange(0, (count + 1) * width, width, dtype=np.int64)
    return pa.LargeStringArray.from_buffers(
        count, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(text))
    )


def keyed_tokens(key: bytes, text: pa.Array, length: int) -> pa.Array:
    """Per row, `HMAC-SHA256(key, value).hex()[:length]`; null rows stay null."""
    import pyarrow as pa
    import pyarrow.compute as pc

    table, indices, nulls = keyed_digests(key, text)
    tokens = hex_prefixes(table, length)
    if indices is None:
        if not nulls.any():
            return tokens
        return pc.if_else(pa.array(nulls), pa.scalar(None, pa.large_string()), tokens)
    return pc.take(tokens, pa.array(indices, mask=nulls))


def keyed_words(
    series: pd.Series | pa.Array, key: bytes, words: int = 2
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.bool_]]:
    """(an (n, words) array of keyed 64-bit integers per row, a mask of null rows) for a text
    column (a Series, or an Arrow large_string array)."""
    import numpy as np
    import pyarrow as pa

    text = series if isinstance(series, pa.Array) else arrow_text(series)
    table, indices, nulls = keyed_digests(key, text)
    if not len(table):
        return np.zeros((len(text), words), np.uint64), nulls
    values = np.ascontiguousarray(table[:, : 8 * words]).view(">u8").astype(np.uint64)
    return (values if indices is None else values[indices]), nulls


def uniform(words: npt.NDArray[np.uint64]) -> npt.NDArray[np.float64]:
    """Floats in (0, 1) from 64-bit words (53 bits of precision)."""
    import numpy as np

    return ((words >> np.uint64(11)).astype(np.float64) + 0.5) / float(1 << 53)
