"""`gateway policy explain`: a decision with every rule tried and why it matched or not, and for
an allow a few rows of the released view under the raw column names and their transforms."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from gateway.model.decision import Verdict
from gateway.model.filterlang import operator
from gateway.model.grant import Condition, RowFilter
from gateway.policy.engine import Engine
from gateway.policy.testing import ViewOf
from gateway.privacy.assess import FiguresOf
from gateway.privacy.kanon import PrivacyUnreachable


def explain(
    engine: Engine,
    client: str,
    dataset: str,
    purpose: str | None,
    at: datetime,
    scopes: list[str],
    view_of: ViewOf | None = None,
    figures_of: FiguresOf | None = None,
    sample: int = 3,
) -> dict[str, Any]:
    decision = engine.decide(client, dataset, purpose, scopes, at)
    result: dict[str, Any] = {
        "decision": Verdict.ALLOW if decision.allowed else Verdict.DENY,
        "reason": decision.reason,
        "grant": decision.grant.id if decision.grant else None,
        "policy": decision.policy,
        "request": {
            "client": client,
            "dataset": dataset,
            "purpose": purpose,
            "at": at.isoformat(timespec="seconds"),
            "scopes": scopes,
        },
        "tried": [
            {"grant": t.grant, "outcome": t.outcome, "detail": t.detail} for t in decision.tried
        ],
    }
    if not decision.tried:
        result["tried"] = [
            {
                "grant": None,
                "outcome": decision.reason,
                "detail": f"no grant names client {client!r} for dataset {dataset!r}",
            }
        ]
    grant = decision.grant
    if grant is None:
        return result
    result["columns"] = [
        {
            "column": name,
            "transform": spec.name,
            "params": {k: v for k, v in spec.options.items() if not k.startswith("_")},
        }
        for name, spec in grant.columns
    ]
    if grant.row_filter is not None:
        result["row_filter"] = describe_filter(grant.row_filter)
    result["quasi_identifiers"] = list(grant.quasi_identifiers())
    if grant.not_identifying:
        result["not_identifying"] = dict(grant.not_identifying)
    if grant.privacy is not None:
        result["privacy"] = {
            "k": grant.privacy.k,
            "quasi_identifiers": list(grant.privacy.quasi_identifiers),
            "l": grant.privacy.l,
            "sensitive": grant.privacy.sensitive,
            "max_suppression": grant.privacy.max_suppression,
            "recoding": grant.privacy.recoding,
        }
    if figures_of is not None:
        try:
            achieved, risk = figures_of(engine.policy.datasets[dataset], grant, client)
        except PrivacyUnreachable as exc:
            result["withheld"] = str(exc)
            return result
        result["achieved"] = achieved
        result["risk"] = risk
    if view_of is not None:
        frame = view_of(engine.policy.datasets[dataset], grant, client)
        result["released_rows"] = len(frame)
        head = frame.head(sample).astype(object)
        result["sample"] = head.where(head.notna(), None).to_dict(orient="records")
    return result


def describe_filter(item: RowFilter | Condition) -> str:
    """A row filter as readable text: `age >= 18 and age <= 65`."""
    if isinstance(item, Condition):
        op = operator(item.op)
        if op.takes == "flag":
            return f"{item.column} {op.words}"
        value = list(item.value) if isinstance(item.value, tuple) else item.value
        return f"{item.column} {op.words} {value!r}"
    joiner = " and " if item.mode == "all" else " or "
    parts = [
        describe_filter(i) if isinstance(i, Condition) else f"({describe_filter(i)})"
        for i in item.items
    ]
    return joiner.join(parts)


def render(result: dict[str, Any]) -> str:
    """The explanation as text for a terminal."""
    req = result["request"]
    lines = [
        f"{result['decision'].upper()}: client {req['client']!r}, dataset {req['dataset']!r}, "
        f"purpose {req['purpose']!r}, at {req['at']}, scopes {' '.join(req['scopes'])}",
        f"  policy set {result['policy']}",
    ]
    if result["reason"]:
        lines.append(f"  reason: {result['reason']}")
    lines.append("  rules tried:")
    for tried in result["tried"]:
        mark = "->" if tried["outcome"] == "match" else "  "
        lines.append(f"   {mark} grant {tried['grant']}: {tried['outcome']} ({tried['detail']})")
    if "columns" in result:
        lines.append("  released columns:")
        for column in result["columns"]:
            params = ", ".join(
                f"{k}={v}" for k, v in column["params"].items() if k != "justification"
            )
            lines.append(
                f"     {column['column']}: {column['transform']}"
                + (f" ({params})" if params else "")
            )
    if "row_filter" in result:
        lines.append(f"  row filter: {result['row_filter']}")
    lines += _privacy_lines(result)
    if "sample" in result:
        lines.append(
            f"  released view: {result['released_rows']} rows; first {len(result['sample'])}:"
        )
        for row in result["sample"]:
            lines.append("     " + " | ".join(f"{k}={v}" for k, v in row.items()))
    return "\n".join(lines)


def _privacy_lines(result: dict[str, Any]) -> list[str]:
    """The model, the quasi-identifiers and the measured risk, in words."""
    lines: list[str] = []
    if "quasi_identifiers" in result:
        lines.append(f"  quasi-identifiers: {', '.join(result['quasi_identifiers']) or 'none'}")
    for name, why in result.get("not_identifying", {}).items():
        lines.append(f"     not identifying: {name}: {why}")
    model = result.get("privacy")
    if model is not None:
        text = f"k={model['k']}"
        if model.get("l"):
            text += f", l={model['l']} on {model['sensitive']}"
        lines.append(
            f"  privacy model: {text}, {model['recoding']} recoding, at most "
            f"{model['max_suppression']:.1%} suppressed"
        )
    if "withheld" in result:
        lines.append(f"  WITHHELD: {result['withheld']}")
    achieved = result.get("achieved")
    if achieved:
        lines.append(
            f"  achieved: k={achieved['k']}"
            + (f", l={achieved['l']}" if achieved.get("l") is not None else "")
            + f", {achieved['suppressed_rows']} rows suppressed, {achieved['classes']} classes, "
            f"NCP {achieved['information_loss']['ncp']}"
        )
    risk = result.get("risk")
    if risk:
        lines.append(
            f"  risk: {risk['rows_in_unique_classes']} of {risk['rows']} rows unique; "
            f"highest {risk['highest_risk']}, average {risk['average_risk']} (prosecutor)"
        )
        spread = risk.get("released_columns")
        if isinstance(spread, dict) and spread.get("columns") != risk.get("quasi_identifiers"):
            lines.append(
                f"  over every released column ({', '.join(spread['columns'])}): "
                f"{spread['rows_in_unique_classes']} of {spread['rows']} rows unique, smallest "
                f"class {spread['smallest_class']}; highest {spread['highest_risk']}"
            )
    return lines
