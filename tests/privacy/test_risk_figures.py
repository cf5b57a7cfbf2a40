"""The per-column figures next to the risk (docs/privacy.md): the share of released values equal
to the source value, and for masks the share of the real value's characters left visible, equal
a plain per-row reading, whatever the mask character (regular-expression metacharacters, more
than one character) and with nulls on either side."""

from __future__ import annotations

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.privacy.risk import measure

CELLS = st.one_of(st.none(), st.text(alphabet="ab*.+朝区", max_size=8))


def plain_visible(released: list[str | None], raw: list[str | None], char: str) -> float:
    shown = total = 0
    for value, real in zip(released, raw, strict=True):
        if value is None or real is None:
            continue
        shown += max(len(value) - value.count(char), 0)
        total += len(real)
    return shown / total if total else 0.0


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(CELLS, CELLS), max_size=20),
    st.sampled_from(["*", ".", "+", "**", "区"]),
)
def test_visible_and_equal_shares_are_a_plain_count(
    rows: list[tuple[str | None, str | None]], char: str
) -> None:
    """Promise 2's measured floor reads what a person would count, row by row."""
    released = [r[0] for r in rows]
    raw = [r[1] for r in rows]
    index = pd.Index(range(100, 100 + len(rows)))
    frame = pd.DataFrame({"m": pd.Series(released, index=index, dtype="string")})
    source = pd.DataFrame(
        {
            "m": pd.Series(raw, index=index, dtype="string"),
            "long": pd.Series(["x" * 50] * len(rows), index=index, dtype="string"),
        }
    )
    risk = measure(frame, source, ["m"], {"m": char})
    assert risk.visible_share == (("m", plain_visible(released, raw, char)),)
    same = sum(1 for a, b in rows if a is not None and b is not None and a == b)
    assert risk.equal_share == (("m", same / len(rows) if rows else 0.0),)
