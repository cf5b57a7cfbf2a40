"""Fixed-width ASCII identifiers as byte matrices: 身份证号, 统一社会信用代码 and mobile numbers
are assembled column by column with NumPy (one row of bytes per value) and become Arrow-backed
strings in one step, without a Python object per value."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pandas as pd

Bytes: TypeAlias = "npt.NDArray[np.uint8]"


def digits(word: npt.NDArray[np.uint64] | npt.NDArray[np.int64], width: int) -> Bytes:
    """The last `width` decimal digits of each (non-negative) integer, most significant first,
    as ASCII: an (n, width) matrix."""
    import numpy as np

    unsigned = np.asarray(word).astype(np.uint64)
    powers = np.uint64(10) ** np.arange(width - 1, -1, -1, dtype=np.uint64)
    value: Bytes = ((unsigned[:, None] // powers) % np.uint64(10)).astype(np.uint8) + ord("0")
    return value


def pool(words: Sequence[str]) -> Bytes:
    """A pool of ASCII words of one width as an (m, width) matrix (rows picked by index)."""
    import numpy as np

    width = len(words[0]) if len(words) else 0
    if any(len(w) != width or not w.isascii() for w in words):
        raise ValueError("a byte pool holds ASCII words of one width")
    return np.frombuffer("".join(words).encode("ascii"), dtype=np.uint8).reshape(len(words), width)


def chars(values: npt.NDArray[np.str_]) -> Bytes:
    """One-character ASCII strings (check characters) as bytes."""
    import numpy as np

    code: Bytes = np.asarray(values, dtype="<U1").view(np.uint32).astype(np.uint8)
    return code


def text_rows(values: pd.Series, width: int) -> Bytes:
    """The reverse of `text`: a column of ASCII values, each exactly `width` bytes and none
    null, as an (n, width) matrix."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    array = pa.array(values.astype(pd.StringDtype("pyarrow")).array)
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    array = array.cast(pa.large_binary())
    if not len(array):
        return np.zeros((0, width), dtype=np.uint8)
    if array.null_count or not pc.all(pc.equal(pc.binary_length(array), width)).as_py():
        raise ValueError(f"every value must be {width} bytes long")
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int64)[array.offset :]
    data = np.frombuffer(array.buffers()[2], dtype=np.uint8)
    start = int(offsets[0])
    return data[start : start + len(array) * width].reshape(len(array), width).copy()


def text(matrix: Bytes) -> pd.Series:
    """Each row of an (n, width) ASCII matrix as one string (pandas' default string dtype,
    backed by one Arrow array)."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    count, width = matrix.shape
    offsets = np.arange(0, (count + 1) * width, width, dtype=np.int64)
    data = np.ascontiguousarray(matrix, dtype=np.uint8).tobytes()
    array = pa.LargeStringArray.from_buffers(count, pa.py_buffer(offsets), pa.py_buffer(data))
    return pd.Series(array, dtype="str")
