"""The privacy figures of every grant's view on the current data, for `policy check`, `policy
explain` and `/v1/admin/status`: the model achieved, the risk over the released
quasi-identifiers, and what deserves an admin's attention (docs/privacy.md#risk)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from gateway.model.dataset import Dataset
from gateway.model.grant import Grant
from gateway.model.policyset import PolicySet
from gateway.privacy.kanon import PrivacyReport, PrivacyUnreachable
from gateway.privacy.views import View

# (dataset, grant, client) -> the view's figures: (model achieved or None, risk)
Figures = tuple[dict[str, object] | None, dict[str, object]]
FiguresOf = Callable[[Dataset, Grant, str], Figures]


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
    """A view's figures: the model achieved (or None) and the measured risk."""
    risk = view.risk.describe() if view.risk is not None else {}
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
        }


def assess(policy: PolicySet, figures_of: FiguresOf) -> list[Assessment]:
    """Every grant's view (for its first client: views differ per client only by keyed values
    and fingerprints), in file order."""
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
        found.append(replace(base, model=model, risk=risk, warnings=tuple(warnings)))
    return found


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
    for name, why in assessment.not_identifying.items():
        lines.append(f"    not identifying: {name}: {why}")
    lines += [f"    warning: {w}" for w in assessment.warnings]
    return lines


def _loss(model: dict[str, object]) -> object:
    loss = model.get("information_loss")
    return loss.get("ncp") if isinstance(loss, dict) else None
