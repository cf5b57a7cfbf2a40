"""The privacy figures of every grant's view on the current data, for `policy check`, `policy
explain` and `/v1/admin/status`: the model achieved, the risk over the released
quasi-identifiers, and what deserves an admin's attention (docs/privacy.md#risk)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, TypeAlias

from gateway.model.dataset import Dataset
from gateway.model.grant import Grant
from gateway.model.policyset import PolicySet
from gateway.privacy.kanon import PrivacyReport, PrivacyUnreachable
from gateway.privacy.linkage import (
    carried_columns,
    joined,
    linking_tokens,
    released_columns,
    spread,
)
from gateway.privacy.views import View

if TYPE_CHECKING:
    import pandas as pd

# (dataset, grant, client) -> the view's figures: (model achieved or None, risk)
Figures = tuple[dict[str, object] | None, dict[str, object]]
FiguresOf = Callable[[Dataset, Grant, str], Figures]
# (dataset, grant, client) -> the released rows (raises PrivacyUnreachable like FiguresOf)
FramesOf: TypeAlias = "Callable[[Dataset, Grant, str], pd.DataFrame]"


def model_figures(report: PrivacyReport | None, grant: Grant) -> dict[str, object] | None:
    """The privacy model required and achieved over the whole view (None without a model)."""
    if grant.privacy is None or report is None:
        return None
    described: dict[str, object] = {
        "model": "k-anonymity" + (" + l-diversity" if grant.privacy.l else ""),
        "recoding": grant.privacy.recoding,
        "labels": grant.privacy.labels,
        "k_required": grant.privacy.k,
        "k": report.k,
        "l_required": grant.privacy.l,
        "l": report.l,
        "quasi_identifiers": list(grant.privacy.quasi_identifiers),
        "suppressed_rows": report.suppressed,
        "classes": report.classes,
        "information_loss": {
            "ncp": round(report.ncp, 4),
            "discernibility": report.discernibility,
        },
    }
    if report.levels and grant.privacy.recoding == "full-domain":
        described["generalization_levels"] = list(report.levels)
        described["loss"] = round(report.loss or 0.0, 4)
    return described


def figures(view: View, grant: Grant) -> Figures:
    """A view's figures: the model achieved (or None) and the measured risk, with the figures
    over every released column that carries a real value (`released_columns`: the
    quasi-identifiers plus any declared not identifying), counted once per view."""
    risk = view.risk.describe() if view.risk is not None else {}
    columns = released_columns(grant)
    found = view.memo.get(("released", columns))
    if not isinstance(found, dict):
        found = view.memo[("released", columns)] = spread(view.frame, columns)
    risk["released_columns"] = found
    return model_figures(view.privacy, grant), risk


@dataclass(frozen=True)
class Assessment:
    grant: str
    dataset: str
    client: str
    model: dict[str, object] | None = None
    risk: dict[str, object] | None = None
    error: str | None = None  # the view cannot be released (its model does not hold)
    warnings: tuple[str, ...] = ()
    not_identifying: dict[str, str] = field(default_factory=dict)
    # Joined releases this client holds with an earlier grant's view (linked on a token).
    linked: tuple[dict[str, object], ...] = ()

    def describe(self) -> dict[str, object]:
        return {
            "grant": self.grant,
            "dataset": self.dataset,
            "client": self.client,
            "model": self.model,
            "risk": self.risk,
            "error": self.error,
            "warnings": list(self.warnings),
            "not_identifying": self.not_identifying,
            "linked": list(self.linked),
        }


def assess(
    policy: PolicySet, figures_of: FiguresOf, frames_of: FramesOf | None = None
) -> list[Assessment]:
    """Every grant's view (for its first client: views differ per client only by keyed values
    and fingerprints), in file order. With `frames_of`, also the release each client holds when
    it joins two of its views on a per-person token they share (`linked`)."""
    found: list[Assessment] = []
    for grant in policy.grants:
        dataset = policy.datasets[grant.dataset]
        client = sorted(grant.clients)[0] if grant.clients else ""
        base = Assessment(grant.id, dataset.id, client, not_identifying=dict(grant.not_identifying))
        try:
            model, risk = figures_of(dataset, grant, client)
        except PrivacyUnreachable as exc:
            found.append(replace(base, error=str(exc)))
            continue
        warnings: list[str] = []
        uniques = risk.get("rows_in_unique_classes")
        if grant.privacy is None and isinstance(uniques, int) and uniques:
            qis = ", ".join(str(q) for q in grant.quasi_identifiers())
            warnings.append(
                f"grant {grant.id!r} has no privacy model and {uniques} of {risk.get('rows')} "
                f"released rows are unique over {qis}: anyone who knows those values finds "
                "the row (add `privacy: {k: 5}`, or mark columns not_identifying with a reason)"
            )
        warnings += _declared_warnings(grant, risk)
        found.append(replace(base, model=model, risk=risk, warnings=tuple(warnings)))
    if frames_of is not None:
        found = _with_links(policy, found, frames_of)
    return found


def _declared_warnings(grant: Grant, risk: dict[str, object]) -> list[str]:
    """When the columns declared not identifying single people out once they are counted."""
    if not grant.not_identifying:
        return []
    spread = risk.get("released_columns")
    if not isinstance(spread, dict):
        return []
    uniques, smallest = spread.get("rows_in_unique_classes"), spread.get("smallest_class")
    k = grant.privacy.k if grant.privacy is not None else None
    before = risk.get("rows_in_unique_classes")
    grew = isinstance(uniques, int) and isinstance(before, int) and uniques > before
    below = k is not None and isinstance(smallest, int) and 0 < smallest < k
    if not grew and not below:
        return []
    names = ", ".join(name for name, _ in grant.not_identifying)
    return [
        f"grant {grant.id!r}: counted with the columns declared not identifying ({names}), "
        f"{uniques} of {spread.get('rows')} released rows are unique and the smallest class has "
        f"{smallest} row(s)"
        + (f", below k={k}" if below else "")
        + ": those columns do identify people here (drop or coarsen them, or let the model "
        "count them by removing not_identifying)"
    ]


def _with_links(
    policy: PolicySet, found: list[Assessment], frames_of: FramesOf
) -> list[Assessment]:
    """Add to the later grant of each linked pair (same client, same dataset, a per-person
    token keyed to link across grants) the figures of the joined release, and warn when that
    release singles people out or has classes below the smaller declared k."""
    grants = list(policy.grants)
    by_id = {a.grant: i for i, a in enumerate(found)}
    for j, second in enumerate(grants):
        for first in grants[:j]:
            tokens = linking_tokens(first, second)
            if not tokens or found[by_id[first.id]].error or found[by_id[second.id]].error:
                continue
            dataset = policy.datasets[second.dataset]
            declared = [g.privacy.k for g in (first, second) if g.privacy is not None]
            for client in sorted(first.clients & second.clients):
                try:
                    views = [
                        (g.id, frames_of(dataset, g, client), carried_columns(g))
                        for g in (first, second)
                    ]
                except PrivacyUnreachable:
                    continue
                for token, width in tokens:
                    link: dict[str, object] = {"grants": [first.id, second.id], "client": client}
                    link |= joined(views[0], views[1], token, width)
                    at = found[by_id[second.id]]
                    found[by_id[second.id]] = replace(
                        at,
                        linked=(*at.linked, link),
                        warnings=(*at.warnings, *_link_warnings(link, min(declared, default=0))),
                    )
    return found


def _link_warnings(link: dict[str, object], k: int) -> list[str]:
    grants = link["grants"]
    assert isinstance(grants, list)  # noqa: S101 - built by _with_links
    uniques, smallest = link.get("rows_in_unique_classes"), link.get("smallest_class")
    below = isinstance(smallest, int) and 0 < smallest < k
    if not (isinstance(uniques, int) and uniques) and not below:
        return []
    return [
        f"client {link['client']!r} can join its views of grants "
        f"{' and '.join(repr(g) for g in grants)} on "
        f"{link['token']!r} (the same token in both): {uniques} of {link['rows']} joined rows "
        f"are unique and the smallest class has {smallest} row(s)"
        + (f", below k={k}" if below else "")
        + " (leave `scope` out of the token, so each grant keys its own, or make the views "
        "coarser together)"
    ]


def render(assessment: Assessment) -> list[str]:
    """Lines for a terminal: the model, the risk, warnings, declared non-identifying columns."""
    head = f"grant {assessment.grant} ({assessment.dataset}, as {assessment.client})"
    if assessment.error is not None:
        return [f"  {head}: WITHHELD: {assessment.error}"]
    lines = [f"  {head}:"]
    model = assessment.model
    if model is not None:
        lines.append(
            f"    model: {model.get('model')} ({model.get('recoding')}), k required "
            f"{model.get('k_required')}, achieved {model.get('k')}"
            + (
                f"; l required {model.get('l_required')}, achieved {model.get('l')}"
                if model.get("l_required")
                else ""
            )
            + f"; suppressed {model.get('suppressed_rows')} rows; NCP "
            f"{_loss(model)}"
        )
    else:
        lines.append("    model: none")
    risk = assessment.risk or {}
    listed = risk.get("quasi_identifiers")
    qis = ", ".join(str(q) for q in listed) if isinstance(listed, list) and listed else "none"
    lines.append(
        f"    risk over {qis}: {risk.get('rows')} rows, {risk.get('classes')} classes, "
        f"{risk.get('rows_in_unique_classes')} rows unique; highest {risk.get('highest_risk')}, "
        f"average {risk.get('average_risk')} (prosecutor)"
    )
    spread = risk.get("released_columns")
    if isinstance(spread, dict) and spread.get("columns") != listed:
        lines.append("    " + _spread_line("over every released column", spread))
    elif isinstance(spread, dict):
        lines[-1] += "; these are all released columns (tokens and a sensitive column aside)"
    for name, why in assessment.not_identifying.items():
        lines.append(f"    not identifying: {name}: {why}")
    for link in assessment.linked:
        grants = link.get("grants")
        together = " + ".join(str(g) for g in grants) if isinstance(grants, list) else ""
        lines.append(
            "    " + _spread_line(f"joined {together} on {link.get('token')} (all columns)", link)
        )
    lines += [f"    warning: {w}" for w in assessment.warnings]
    return lines


def _spread_line(what: str, figures: dict[str, object]) -> str:
    listed = figures.get("columns")
    columns = ", ".join(str(c) for c in listed) if isinstance(listed, list) and listed else ""
    return (
        f"{what}{f' ({columns})' if columns and 'joined' not in what else ''}: "
        f"{figures.get('rows')} rows, {figures.get('classes')} classes, smallest "
        f"{figures.get('smallest_class')}, {figures.get('rows_in_unique_classes')} rows unique; "
        f"highest {figures.get('highest_risk')}, average {figures.get('average_risk')}"
    )


def _loss(model: dict[str, object]) -> object:
    loss = model.get("information_loss")
    return loss.get("ncp") if isinstance(loss, dict) else None
