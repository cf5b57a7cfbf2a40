"""k-anonymity and l-diversity over a whole released view, by suppression.

Rows whose equivalence class (same released values on every quasi-identifier) has fewer than k
rows, or fewer than l distinct values of the sensitive column, are suppressed. If that would
suppress more than the allowed share, nothing is released: the error says how far off it is.
Generalizing quasi-identifiers first (the `generalize` transforms) makes classes larger.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.errors import GatewayError
from gateway.model.grant import PrivacyModel
from gateway.privacy.lattice import Unreachable, anonymize
from gateway.privacy.mondrian import MondrianUnreachable, mondrian

if TYPE_CHECKING:
    import pandas as pd


class PrivacyUnreachable(GatewayError):
    """The privacy model cannot be met within the suppression limit; nothing is released."""


@dataclass(frozen=True)
class PrivacyReport:
    k: int  # the smallest class in the released view
    l: int | None  # noqa: E741 - the model's standard name
    suppressed: int
    classes: int
    levels: tuple[int, ...] = ()  # generalization level per quasi-identifier (lattice search)
    loss: float | None = None  # generalization loss, 0..1 (mean of level/height per QI)
    ncp: float = 0.0  # normalized certainty penalty over all source rows and QIs, 0..1
    discernibility: int = 0  # sum of class sizes squared, plus rows suppressed x source rows


def discernibility(sizes: pd.Series, suppressed: int, total: int) -> int:
    """Bayardo and Agrawal's discernibility metric: each released row costs the size of its
    class, each suppressed row the size of the whole source."""
    return int((sizes.astype("int64") ** 2).sum()) + suppressed * total


def ncp(
    source: pd.DataFrame,
    released_index: pd.Index,
    qis: tuple[str, ...],
    levels: tuple[int, ...],
    tables: dict[str, list[dict[str, str]]],
) -> float:
    """Normalized certainty penalty (Xu et al. 2006), the measure ARX calls "loss": a released
    cell generalized to a label covering c of the column's d distinct values costs (c-1)/(d-1);
    a suppressed row costs 1 per quasi-identifier. Averaged over source rows and QIs."""
    import pandas as pd

    total = len(source)
    if total == 0 or not qis:
        return 0.0
    kept = source.index.get_indexer_for(released_index)  # the released rows' positions
    if (kept < 0).any():
        raise KeyError("the released rows must be rows of the source")
    cost = 0.0
    for i, qi in enumerate(qis):
        level = levels[i] if i < len(levels) else 0
        if level == 0 or not len(kept):
            continue
        codes, uniques = pd.factorize(source[qi].astype("string").fillna("\x00"))
        domain = pd.Series(uniques, dtype="string")
        if len(domain) <= 1:
            continue
        table = tables.get(qi, [])
        if level <= len(table):
            labels = domain.map(table[level - 1]).fillna("*")
        else:  # above the hierarchy (or no hierarchy): everything is "*"
            labels = pd.Series("*", index=domain.index, dtype="string")
        covered = labels.map(labels.value_counts())
        per_value = ((covered - 1) / (len(domain) - 1)).to_numpy(dtype="float64")
        cost += float(per_value[codes[kept]].sum())  # each released cell, in release order
    suppressed = total - len(kept)
    return (cost + suppressed * len(qis)) / (total * len(qis))


def enforce(
    frame: pd.DataFrame,
    model: PrivacyModel,
    ladders: Mapping[str, list[dict[str, str]]] | None = None,
) -> tuple[pd.DataFrame, PrivacyReport]:
    """Meet the model over the whole frame: generalize the quasi-identifiers along their
    hierarchies (`ladders`: per QI, the levels above the released values; the model's own ARX
    tables where none is given), then suppress within the limit. Raises PrivacyUnreachable."""
    qis = tuple(model.quasi_identifiers)
    if frame.empty:
        return frame, PrivacyReport(0, None, 0, 0, tuple(0 for _ in qis))
    if not qis:  # nothing released identifies: the whole view is one class
        l_achieved = None
        if model.l is not None and model.sensitive is not None:
            l_achieved = int(frame[model.sensitive].nunique(dropna=False))
            if l_achieved < model.l:
                raise PrivacyUnreachable(
                    f"l={model.l} cannot be met: the view holds {l_achieved} distinct "
                    f"values of {model.sensitive}"
                )
        if len(frame) < model.k:
            raise PrivacyUnreachable(f"k={model.k} cannot be met: the view has {len(frame)} rows")
        return frame, PrivacyReport(len(frame), l_achieved, 0, 1, discernibility=len(frame) ** 2)
    tables = {qi: list(levels) for qi, levels in (ladders or {}).items()}
    for qi, table in model.tables.items():
        tables.setdefault(qi, list(table))
    if model.recoding == "local":
        return _local(frame, model, tables)
    return _generalize(frame, model, tables)


def _local(
    frame: pd.DataFrame, model: PrivacyModel, tables: dict[str, list[dict[str, str]]]
) -> tuple[pd.DataFrame, PrivacyReport]:
    """Multidimensional local recoding (Mondrian): each class gets its own labels."""
    qis = tuple(model.quasi_identifiers)
    kinds = {qi: _kind(frame[qi]) for qi in qis}
    try:
        released, report = mondrian(
            frame,
            qis,
            model.k,
            kinds=kinds,
            hierarchies={qi: t for qi, t in tables.items() if kinds[qi] == "categorical"},
            l=model.l,
            sensitive=model.sensitive,
            max_suppression=model.max_suppression,
            set_labels=model.labels == "sets",
        )
    except MondrianUnreachable as exc:
        raise PrivacyUnreachable(str(exc)) from exc
    return released, PrivacyReport(
        report.k,
        report.l,
        report.suppressed,
        report.classes,
        tuple(1 for _ in qis),
        None,
        ncp=report.ncp,
        discernibility=report.discernibility,
    )


def _kind(values: pd.Series) -> str:
    """How Mondrian cuts a column: integers and ISO dates by value (interval labels), the rest
    along its hierarchy (the hierarchy label covering the class)."""
    import pandas as pd

    if pd.api.types.is_integer_dtype(values.dtype):
        return "numeric"
    # Each distinct value is looked at once (a million rows hold a few thousand dates).
    text = pd.Series(values.dropna().astype("string").unique(), dtype="string")
    if len(text) and bool(text.str.fullmatch(r"\d{4}-\d{2}-\d{2}").all()):
        return "date"
    return "categorical"


def _generalize(
    frame: pd.DataFrame, model: PrivacyModel, hierarchies: dict[str, list[dict[str, str]]]
) -> tuple[pd.DataFrame, PrivacyReport]:
    """Full-domain generalization by lattice search, then suppression within the limit."""
    try:
        released, solution = anonymize(
            frame,
            model.quasi_identifiers,
            hierarchies,
            model.k,
            model.max_suppression,
            model.l,
            model.sensitive,
        )
    except Unreachable as exc:
        raise PrivacyUnreachable(str(exc)) from exc
    qis = tuple(model.quasi_identifiers)
    classes = (
        int(released.groupby(list(qis), dropna=False, sort=False).ngroups) if len(released) else 0
    )
    return released, PrivacyReport(
        solution.k,
        solution.l,
        solution.suppressed,
        classes,
        solution.levels,
        solution.loss,
        ncp=ncp(frame, released.index, qis, solution.levels, hierarchies),
        discernibility=solution.discernibility,
    )
