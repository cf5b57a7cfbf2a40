"""Every transform is a hierarchy the privacy search can climb (docs/privacy.md#hierarchies).

For each released quasi-identifier this builds the levels above what the grant's transform
released: level 1..H, each a mapping from a released value (as text) to a coarser label, the
last level always `*`. Each level is a function of the level below, so generalizing more only
merges classes (the lattice search relies on it):

- masks reveal less: 身份证号 region 6 → 4 → 2 digits → none; mobile 3+4 → 3+0 → none; a name's
  surname → `*`; an address's district → city → province → none; an e-mail's domain → none;
- dates (kept, shifted or generalized) coarsen to month → year → decade → `*`;
- integers (kept, perturbed or binned) to nested wider bins (×5, ×10, ×50, ...) → `*`;
- text with an ARX hierarchy file climbs the file's levels; other text goes to `*`.

Levels are computed once per distinct released value, from one representative row (the value's
first row): every level is nested in the one below, so any representative gives the same label.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeAlias

from gateway.model.dataset import Column, ColumnType
from gateway.model.grant import TransformSpec
from gateway.privacy import generalize
from gateway.privacy.transforms import HIERARCHY_TABLE

if TYPE_CHECKING:
    import pandas as pd

Level = dict[str, str]
Labeller: TypeAlias = "Callable[[pd.Series, pd.Series], pd.Series]"  # (released, source) -> labels

MAX_LEVELS = 6  # below `*`
_MULTIPLIERS = (5, 10, 50, 100, 500, 1_000, 5_000, 10_000, 50_000, 100_000)


def ladder(
    spec: TransformSpec,
    column: Column,
    released: pd.Series,
    source: pd.Series,
    file_levels: list[dict[str, str]] | None = None,
) -> list[Level]:
    """The levels above the released values of one column (never empty: the top is `*`)."""
    import numpy as np
    import pandas as pd

    text = released.astype("string")
    codes, uniques = pd.factorize(text, use_na_sentinel=False)
    first = np.zeros(len(uniques), dtype=np.int64)
    first[codes[::-1]] = np.arange(len(codes) - 1, -1, -1)
    # Only the representatives leave Arrow (`to_numpy` of a whole text column makes an object
    # per row).
    rep_released = pd.Series(released.iloc[first].to_numpy() if len(first) else [], dtype=object)
    rep_source = pd.Series(source.iloc[first].to_numpy() if len(first) else [], dtype=object)
    keys = pd.Series(uniques, dtype="string").fillna("\x00")
    levels: list[Level] = []
    for labeller in _labellers(spec, column, rep_released, rep_source, file_levels):
        labels = labeller(rep_released, rep_source).astype("string").fillna("*")
        distinct = int(labels.nunique())
        below = len(set(levels[-1].values())) if levels else len(keys)
        if distinct < below:  # else no coarser than the level below: skip it
            levels.append(dict(zip(keys.tolist(), labels.tolist(), strict=True)))
        # One label left (kept, or skipped as the level below has one too): no later level can
        # be coarser, so each would be labelled only to be skipped (an integer column's ten
        # widths are mostly past that point).
        if len(levels) >= MAX_LEVELS or distinct <= 1:
            break
    levels.append(dict.fromkeys(keys.tolist(), "*"))
    return levels


def _labellers(
    spec: TransformSpec,
    column: Column,
    released: pd.Series,
    source: pd.Series,
    file_levels: list[dict[str, str]] | None,
) -> list[Labeller]:
    name, options = spec.name, spec.options
    if name == "mask":
        return _mask_levels(options)
    if name == "generalize":
        return _generalize_levels(options, released)
    if file_levels:
        return [_file_level(level) for level in file_levels]
    if column.type is ColumnType.DATE and name in ("keep", "date_shift"):
        return [_date_prefix(7), _date_prefix(4), _decade]
    if column.type is ColumnType.INTEGER and name in ("keep", "perturb"):
        base = int(options.get("round", 1)) if name == "perturb" else 1
        return [_bins_of_released(base * m) for m in _MULTIPLIERS]
    return []  # other text: straight to `*`


def _file_level(level: Mapping[str, str]) -> Labeller:
    def label(released: pd.Series, source: pd.Series) -> pd.Series:
        return released.astype("string").map(dict(level)).fillna("*")

    return label


def _date_prefix(width: int) -> Labeller:
    def label(released: pd.Series, source: pd.Series) -> pd.Series:
        return released.astype("string").str.slice(0, width)

    return label


def _decade(released: pd.Series, source: pd.Series) -> pd.Series:
    return released.astype("string").str.slice(0, 3) + "0s"


def _bins(values: pd.Series, width: int) -> pd.Series:
    import pandas as pd

    numbers = pd.to_numeric(values, errors="coerce").astype("float64")
    return generalize.numeric(numbers, {"width": width})


def _bins_of_released(width: int) -> Labeller:
    def label(released: pd.Series, source: pd.Series) -> pd.Series:
        return _bins(released, width)

    return label


def _bins_of_source(width: int) -> Labeller:
    def label(released: pd.Series, source: pd.Series) -> pd.Series:
        return _bins(source, width)

    return label


def _keep_chars(first: int, last: int, char: str, total: int | None = None) -> Labeller:
    """Show `first` leading and `last` trailing characters of the released (masked) value."""
    import pandas as pd

    def label(released: pd.Series, source: pd.Series) -> pd.Series:
        text = released.astype("string")
        length = text.str.len() if total is None else pd.Series(total, index=text.index)
        head = text.str.slice(0, first)
        tail = text.str.slice(-last) if last else ""
        # A null stays null (its label becomes `*` in `ladder`).
        stars = (
            (length - first - last).clip(lower=0).map(lambda n: char * int(n), na_action="ignore")
        )
        return head + stars.astype("string") + tail

    return label


def _mask_levels(options: Mapping[str, Any]) -> list[Labeller]:
    preset, char = options.get("preset"), str(options.get("char", "*"))
    if preset == "id_card":
        return [_keep_chars(4, 0, char), _keep_chars(2, 0, char)]
    if preset == "mobile":
        return [_keep_chars(3, 0, char)]
    if preset in ("bank_card", "credit_code"):
        return [_keep_chars(4, 0, char), _keep_chars(2, 0, char)]
    if preset == "chinese_name":
        return [_surname(char)]
    if preset == "email":
        return [_email_domain(char)]
    if preset == "address":
        return [_address_level("city"), _address_level("province")]
    first, last = int(options.get("first", 0)), int(options.get("last", 0))
    levels: list[Labeller] = []
    if last:
        levels.append(_keep_chars(first, 0, char))
    if first > 1:
        levels.append(_keep_chars(first // 2, 0, char))
    return levels


def _surname(char: str) -> Labeller:
    def label(released: pd.Series, source: pd.Series) -> pd.Series:
        text = released.astype("string")
        head = text.str.extract(rf"^([^{_escape(char)}]*)", expand=False).astype("string")
        return head + char

    return label


def _email_domain(char: str) -> Labeller:
    def label(released: pd.Series, source: pd.Series) -> pd.Series:
        domain = released.astype("string").str.extract(r"(@.*)$", expand=False).astype("string")
        return (char * 3 + domain).fillna("*")

    return label


def _address_level(level: str) -> Labeller:
    def label(released: pd.Series, source: pd.Series) -> pd.Series:
        return generalize.address(released, {"level": level}).fillna("*")

    return label


def _escape(char: str) -> str:
    return "\\" + char if char in r"\^]-[" else char


def _generalize_levels(options: Mapping[str, Any], released: pd.Series) -> list[Labeller]:
    if HIERARCHY_TABLE in options:
        return []  # climbed by the hierarchy file's higher levels: see `file_levels`
    preset = options.get("preset")
    if preset == "id_card":
        return [_region_prefix(2, keep_birth=True), _region_prefix(2, keep_birth=False)]
    if preset == "address":
        order = ["district", "city", "province"]
        start = order.index(str(options.get("level", "city"))) + 1
        return [_address_of_source(level) for level in order[start:]]
    if "to" in options:
        to = options["to"]
        levels = [] if to == "year" else [_date_prefix(4)]
        return [*levels, _decade]
    if "bins" in options:
        edges = list(options["bins"])
        out: list[Labeller] = []
        while len(edges) > 1:
            edges = edges[::2]
            out.append(_edges_of_source(edges, options))
        return out
    width = int(options.get("width", 10))
    return [_bins_of_source(width * m) for m in _MULTIPLIERS]


def _region_prefix(keep: int, *, keep_birth: bool) -> Labeller:
    def label(released: pd.Series, source: pd.Series) -> pd.Series:
        text = released.astype("string")
        region = text.str.slice(0, keep).str.pad(6, side="right", fillchar="0")
        return region + text.str.slice(6) if keep_birth else region

    return label


def _address_of_source(level: str) -> Labeller:
    def label(released: pd.Series, source: pd.Series) -> pd.Series:
        return generalize.address(source.astype("string"), {"level": level}).fillna("*")

    return label


def _edges_of_source(edges: list[int], options: Mapping[str, Any]) -> Labeller:
    import pandas as pd

    params = {k: v for k, v in options.items() if k in ("top", "bottom")}

    def label(released: pd.Series, source: pd.Series) -> pd.Series:
        numbers = pd.to_numeric(source, errors="coerce").astype("float64")
        return generalize.numeric(numbers, {**params, "bins": edges})

    return label
