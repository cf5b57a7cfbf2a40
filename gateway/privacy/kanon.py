"""k-anonymity and l-diversity over a whole released view, by suppression.

Rows whose equivalence class (same released values on every quasi-identifier) has fewer than k
rows, or fewer than l distinct values of the sensitive column, are suppressed. If that would
suppress more than the allowed share, nothing is released: the error says how far off it is.
Generalizing quasi-identifiers first (the `generalize` transforms) makes classes larger.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from gateway.policy.model import PrivacyModel
from gateway.privacy.lattice import Unreachable, anonymize


class PrivacyUnreachable(Exception):
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
    total = len(source)
    if total == 0 or not qis:
        return 0.0
    kept = source.loc[released_index]
    cost = 0.0
    for i, qi in enumerate(qis):
        level = levels[i] if i < len(levels) else 0
        if level == 0 or kept.empty:
            continue
        values = source[qi].astype("string").fillna("\x00")
        domain = pd.Series(values.unique(), dtype="string")
        if len(domain) <= 1:
            continue
        table = tables.get(qi, [])
        if level <= len(table):
            labels = domain.map(table[level - 1]).fillna("*")
        else:  # above the hierarchy (or no hierarchy): everything is "*"
            labels = pd.Series("*", index=domain.index, dtype="string")
        covered = labels.map(labels.value_counts())
        per_value = pd.Series(
            ((covered - 1) / (len(domain) - 1)).to_numpy(dtype="float64"), index=domain.array
        )
        cell = kept[qi].astype("string").fillna("\x00").map(per_value)
        cost += float(cell.sum())
    suppressed = total - len(kept)
    return (cost + suppressed * len(qis)) / (total * len(qis))


def enforce(frame: pd.DataFrame, model: PrivacyModel) -> tuple[pd.DataFrame, PrivacyReport]:
    if model.hierarchies:
        return _generalize(frame, model)
    if frame.empty:
        return frame, PrivacyReport(0, None, 0, 0)
    qis = tuple(model.quasi_identifiers)
    keys = list(model.quasi_identifiers)
    # Nulls form their own class value (dropna=False): a null is a value an attacker sees too.
    groups = frame.groupby(keys, dropna=False, sort=False)
    size = groups[keys[0]].transform("size")
    keep = size >= model.k
    if model.l is not None and model.sensitive is not None:
        diversity = groups[model.sensitive].transform(lambda s: s.nunique(dropna=False))
        keep &= diversity >= model.l
    suppressed = int((~keep).sum())
    share = suppressed / len(frame)
    if share > model.max_suppression:
        target = f"k={model.k}" + (f", l={model.l}" if model.l else "")
        raise PrivacyUnreachable(
            f"{target} on {', '.join(keys)} would suppress {suppressed} of {len(frame)} rows "
            f"({share:.1%}), more than the allowed {model.max_suppression:.1%}; generalize the "
            "quasi-identifiers, choose fewer of them, or lower k"
        )
    released = frame[keep.to_numpy()]
    if released.empty:
        return released, PrivacyReport(0, None, suppressed, 0)
    final = released.groupby(keys, dropna=False, sort=False)
    sizes = final[keys[0]].size()
    k_achieved = int(sizes.min())
    l_achieved = None
    if model.l is not None and model.sensitive is not None:
        l_achieved = int(final[model.sensitive].nunique(dropna=False).min())
    return released, PrivacyReport(
        k_achieved,
        l_achieved,
        suppressed,
        int(final.ngroups),
        ncp=ncp(frame, released.index, qis, (), {}),
        discernibility=discernibility(sizes, suppressed, len(frame)),
    )


def _generalize(frame: pd.DataFrame, model: PrivacyModel) -> tuple[pd.DataFrame, PrivacyReport]:
    """Full-domain generalization by lattice search, then suppression within the limit."""
    hierarchies = dict(model.tables)
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
