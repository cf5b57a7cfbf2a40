"""The compact record of the rows a response released, kept in its audit entry (`row_ids`).

Positions are those of the rows in the view's keyed order (the order callers page through),
which only the workspace secret relates to source rows. Encoding (docs/audit-format.md): the
distinct positions in increasing order, as differences (the first from 0), each a 4-byte
unsigned big-endian integer; the bytes compressed with zlib (RFC 1950), then standard base64.
A page read in the default order is one run of consecutive positions and encodes to a few
dozen characters.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

MAX_ROWS = 1 << 20  # far above any page; a record claiming more is refused, not inflated


def encode_rows(positions: npt.ArrayLike) -> str:
    """The record of `positions` (any order, repeats allowed)."""
    import numpy as np

    ordered = np.unique(np.asarray(positions, dtype=np.int64))
    if len(ordered) and (ordered[0] < 0 or ordered[-1] >= 1 << 32):
        raise ValueError("row positions must be in 0 .. 2**32 - 1")
    deltas = np.diff(ordered, prepend=0).astype(">u4")
    return base64.b64encode(zlib.compress(deltas.tobytes(), 6)).decode("ascii")


def decode_rows(record: str) -> npt.NDArray[np.int64]:
    """The positions of a record, increasing; raises ValueError for anything else."""
    import numpy as np

    try:
        packed = base64.b64decode(record.encode("ascii"), validate=True)
        inflate = zlib.decompressobj()
        raw = inflate.decompress(packed, 4 * MAX_ROWS + 1)
    except (binascii.Error, zlib.error, UnicodeEncodeError) as exc:
        raise ValueError(f"not a row record: {exc}") from None
    if len(raw) > 4 * MAX_ROWS or not inflate.eof or len(raw) % 4:
        raise ValueError("not a row record: bad length")
    deltas = np.frombuffer(raw, dtype=">u4").astype(np.int64)
    if len(deltas) > 1 and (deltas[1:] == 0).any():
        raise ValueError("not a row record: positions must increase")
    positions: npt.NDArray[np.int64] = np.cumsum(deltas)
    return positions
