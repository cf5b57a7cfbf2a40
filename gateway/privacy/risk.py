"""Re-identification risk of a released view, measured the way an outsider would: group the whole
view by every released quasi-identifier and count (ARX's prosecutor-model figures).

- `uniques`: rows alone in their class (an attacker who knows those values finds the person);
- `highest`: the highest prosecutor risk, 1 / size of the smallest class;
- `average`: the average prosecutor risk over rows, classes / rows.

Next to it, per released column, how much of the real value is left: the share of released
values equal to the source value, for masks the share of characters left visible, and the share
of rows whose real value an outsider recovers (`recoverable`, see `recoverable_shares`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.privacy.recover import Recovery, recoverable_shares

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa


@dataclass(frozen=True)
class Risk:
    quasi_identifiers: tuple[str, ...]
    rows: int
    classes: int
    uniques: int  # rows in classes of size 1
    smallest: int  # the smallest class (0 for an empty view)
    highest: float  # prosecutor risk of the most exposed row: 1 / smallest
    average: float  # mean prosecutor risk over rows: classes / rows
    equal_share: tuple[tuple[str, float], ...] = ()  # column -> share equal to the source
    visible_share: tuple[tuple[str, float], ...] = ()  # masked column -> share of chars shown
    recoverable_share: tuple[tuple[str, float], ...] = ()  # column -> share an outsider recovers

    def describe(self) -> dict[str, object]:
        """The figures as the dataset description, `policy check` and the status show them."""
        return {
            "quasi_identifiers": list(self.quasi_identifiers),
            "rows": self.rows,
            "classes": self.classes,
            "rows_in_unique_classes": self.uniques,
            "smallest_class": self.smallest,
            "highest_risk": round(self.highest, 4),
            "average_risk": round(self.average, 4),
            "equal_to_source": {name: round(share, 4) for name, share in self.equal_share},
            "mask_visible": {name: round(share, 4) for name, share in self.visible_share},
            "recoverable": {name: round(share, 4) for name, share in self.recoverable_share},
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, object]) -> Risk:
        """Inverse of `asdict` (the on-disk view sidecar)."""

        def pairs(key: str) -> tuple[tuple[str, float], ...]:
            items = raw.get(key) or []
            assert isinstance(items, list)  # noqa: S101 - our own authenticated sidecar
            return tuple((str(a), float(b)) for a, b in items)

        qis = raw.get("quasi_identifiers") or []
        assert isinstance(qis, list)  # noqa: S101 - our own authenticated sidecar
        return cls(
            tuple(str(q) for q in qis),
            int(str(raw["rows"])),
            int(str(raw["classes"])),
            int(str(raw["uniques"])),
            int(str(raw["smallest"])),
            float(str(raw["highest"])),
            float(str(raw["average"])),
            pairs("equal_share"),
            pairs("visible_share"),
            pairs("recoverable_share"),
        )


def class_sizes(frame: pd.DataFrame, qis: Sequence[str]) -> np.ndarray:
    """Per row, the size of its equivalence class over `qis` (nulls are a value too)."""
    import numpy as np
    import pandas as pd

    if not len(frame):
        return np.zeros(0, dtype=np.int64)
    if not qis:
        return np.full(len(frame), len(frame), dtype=np.int64)
    key = np.zeros(len(frame), dtype=np.int64)
    for qi in qis:
        codes, uniques = pd.factorize(frame[qi].astype("string"), use_na_sentinel=False)
        key, _ = pd.factorize(key * (len(uniques) + 1) + codes)
        key = key.astype(np.int64)
    counts = np.bincount(key)
    sizes: np.ndarray = counts[key]
    return sizes


def _text(column: pd.Series) -> pa.Array:
    """The column as Arrow text (`astype("string")`, as pandas compares and measures it)."""
    import pyarrow as pa

    array = pa.array(column.astype("string").array)
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    return array


def _total(values: pa.Array) -> int:
    """The sum of an Arrow integer array (0 when empty or all null)."""
    import pyarrow.compute as pc

    return int(pc.sum(values).as_py() or 0)


def _equal_count(released: pd.Series, raw: pd.Series) -> int:
    """Rows whose released text equals the source text (a null on either side is not equal).
    In Arrow compute: a handful of pandas operations per column cost more than the work on a
    view of a few thousand rows, and `measure` runs on every view."""
    import pyarrow.compute as pc

    return _total(pc.fill_null(pc.equal(_text(released), _text(raw)), False).cast("int64"))


def _visible(released: pd.Series, raw: pd.Series, char: str) -> tuple[int, int]:
    """Characters of the released values that are not `char` (each occurrence counted once,
    non-overlapping, as a literal), and characters of the source values, over the rows present
    on both sides."""
    import pyarrow.compute as pc

    text, real = _text(released), _text(raw)
    present = pc.and_(pc.is_valid(text), pc.is_valid(real))
    left = pc.subtract(pc.utf8_length(text), pc.count_substring(text, pattern=char))
    shown = pc.max_element_wise(left, 0)
    return _total(pc.filter(shown, present)), _total(pc.filter(pc.utf8_length(real), present))


def measure(
    frame: pd.DataFrame,
    source: pd.DataFrame,
    qis: Sequence[str],
    masks: Mapping[str, str] | None = None,
    recovery: Mapping[str, Recovery] | None = None,
) -> Risk:
    """The risk figures of `frame` (indexed like `source`) over `qis`; `masks` maps masked
    columns to their mask character, `recovery` the columns derived from a real value to how an
    outsider reads the real value back (`recover.recovery_of`)."""
    sizes = class_sizes(frame, qis)
    rows = len(frame)
    classes = int((1.0 / sizes).sum().round()) if rows else 0  # each class adds size x 1/size
    smallest = int(sizes.min()) if rows else 0
    equal: list[tuple[str, float]] = []
    visible: list[tuple[str, float]] = []
    # Only the released columns of the source rows (the others may be long texts, never read).
    needed = [name for name in frame.columns if name in source.columns]
    raw = source.loc[frame.index, needed] if rows else source.iloc[:0]
    for name in frame.columns:
        if name not in source.columns:
            continue
        same = _equal_count(frame[name], raw[name])
        equal.append((str(name), float(same / rows) if rows else 0.0))
    for name, char in (masks or {}).items():
        # Characters left visible, against the length of the real value (a mask that shows a
        # district of a long address shows little of it, whatever the mask's own length).
        shown, total = _visible(frame[name], raw[name], char)
        visible.append((name, shown / total if total else 0.0))
    return Risk(
        tuple(qis),
        rows,
        classes,
        int((sizes == 1).sum()),
        smallest,
        1.0 / smallest if smallest else 0.0,
        classes / rows if rows else 0.0,
        tuple(equal),
        tuple(visible),
        recoverable_shares(frame, raw, recovery or {}),
    )
