"""Issue 15: keyed pseudonyms and keyed words are exactly HMAC-SHA256 of each row's value, whether
the column is keyed per distinct value (dictionary) or, when nearly all values are distinct,
per row."""

from __future__ import annotations

import hashlib
import hmac

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.privacy import keyed
from gateway.privacy.keyed import arrow_text, keyed_tokens, keyed_words

KEY = b"k" * 32


def reference_tokens(key: bytes, values: list[str | None], length: int) -> list[str | None]:
    return [
        None if v is None else hmac.new(key, v.encode(), hashlib.sha256).hexdigest()[:length]
        for v in values
    ]


def reference_words(key: bytes, values: list[str | None], words: int) -> np.ndarray:
    """What the dictionary path always gave: null rows take the first non-null value's words."""
    first = next((v for v in values if v is not None), None)
    rows = []
    for v in values:
        v = first if v is None else v
        if v is None:
            rows.append([0] * words)
            continue
        digest = hmac.new(key, v.encode(), hashlib.sha256).digest()
        rows.append([int.from_bytes(digest[8 * j : 8 * j + 8], "big") for j in range(words)])
    return np.array(rows, dtype=np.uint64).reshape(len(values), words)


@pytest.mark.parametrize("sample", [2, 4096])
@given(
    values=st.lists(st.one_of(st.none(), st.text(max_size=12), st.sampled_from(["a", "甲"]))),
    length=st.integers(-70, 70),
    words=st.integers(1, 4),
)
def test_keyed_values_are_exactly_hmac_sha256_either_way(
    sample: int, values: list[str | None], length: int, words: int
) -> None:
    """Pseudonyms and keyed words equal per-row HMAC-SHA256 for any column, nulls included, on
    the dictionary path and on the per-row path (a small sample makes small columns take it)."""
    series = pd.Series(values, dtype="string[pyarrow]")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(keyed, "_SAMPLE", sample)
        tokens = keyed_tokens(KEY, arrow_text(series), length).to_pylist()
        got_words, nulls = keyed_words(series, KEY, words)
    assert tokens == reference_tokens(KEY, values, length)
    assert nulls.tolist() == [v is None for v in values]
    assert (got_words == reference_words(KEY, values, words)).all()


def test_a_large_distinct_column_takes_the_per_row_path_with_the_same_values() -> None:
    """A column of distinct values larger than the sample is keyed per row, to the same values."""
    values: list[str | None] = [f"110105199001{i:06d}" for i in range(10_000)]
    values[5000] = None
    text = pa.array(values, pa.large_string())
    table, indices, _ = keyed.keyed_digests(KEY, text)
    assert indices is None  # no dictionary pass
    assert keyed_tokens(KEY, text, 20).to_pylist() == reference_tokens(KEY, values, 20)
    repeats = pa.array([f"employer-{i % 50}" for i in range(10_000)], pa.large_string())
    table, indices, _ = keyed.keyed_digests(KEY, repeats)
    assert indices is not None
    assert len(table) == 50
