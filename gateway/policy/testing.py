"""Policy tests: YAML cases next to the policies (`policies/tests/*.yaml`), run by
`gateway policy test`, by every reload before a new policy set goes live, and by `make test`.

    cases:
      - name: the demo client reads residents for statistics
        client: demo
        dataset: residents
        purpose: statistics
        at: 2026-06-01            # optional; default: now
        scopes: [datasets:read]   # optional; default: [datasets:read]
        expect: allow             # allow | deny
        grant: demo-residents     # optional: the grant that must decide
        reason: purpose_not_allowed   # for deny: the expected reason code
        columns: [name, id_card]  # optional: exactly the released columns, in order
        values:                   # optional: released values of the first rows
          name: ["周*", "蔡**"]
        privacy:                  # optional: claims checked on the whole released view,
          k_at_least: 5           #   grouped by every released quasi-identifier
          unique_rows: 0          #   rows alone in their class
          l_at_least: 2           #   distinct values of the model's sensitive column
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from gateway.errors import ConfigError
from gateway.policy.engine import Engine
from gateway.policy.files import CST, parse_moment
from gateway.policy.model import Dataset, Grant

_CASE_KEYS = {
    "name",
    "client",
    "dataset",
    "purpose",
    "at",
    "scopes",
    "expect",
    "grant",
    "reason",
    "columns",
    "values",
    "privacy",
}
_CLAIMS = {"k_at_least", "unique_rows", "l_at_least"}
ViewOf = Callable[[Dataset, Grant, str], pd.DataFrame]


@dataclass(frozen=True)
class CaseResult:
    file: str
    name: str
    passed: bool
    message: str


def load_cases(directory: Path) -> list[tuple[str, dict[str, Any]]]:
    cases: list[tuple[str, dict[str, Any]]] = []
    for path in sorted(directory.glob("*.yaml")) if directory.is_dir() else []:
        try:
            doc = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: {exc}") from exc
        items = doc.get("cases") if isinstance(doc, dict) else None
        if not isinstance(items, list):
            raise ConfigError(f"{path}: expected a top-level `cases:` list")
        for i, case in enumerate(items):
            if not isinstance(case, dict) or set(case) - _CASE_KEYS:
                unknown = sorted(set(case) - _CASE_KEYS) if isinstance(case, dict) else case
                raise ConfigError(
                    f"{path}: case {i}: unknown key(s) {unknown}; allowed: {sorted(_CASE_KEYS)}"
                )
            for required in ("client", "dataset", "expect"):
                if required not in case:
                    raise ConfigError(f"{path}: case {i}: `{required}` is required")
            if case["expect"] not in ("allow", "deny"):
                raise ConfigError(f"{path}: case {i}: expect must be allow or deny")
            cases.append((path.name, case))
    return cases


def run_cases(
    engine: Engine, cases: list[tuple[str, dict[str, Any]]], view_of: ViewOf | None = None
) -> list[CaseResult]:
    """Run each case; `view_of(dataset, grant, client)` materializes released rows for
    `columns`/`values` checks (without it, those checks are skipped and say so)."""
    results = []
    for file, case in cases:
        name = str(
            case.get("name") or f"{case['client']} / {case['dataset']} / {case.get('purpose')}"
        )
        results.append(CaseResult(file, name, *_run(engine, case, view_of)))
    return results


def _run(engine: Engine, case: dict[str, Any], view_of: ViewOf | None) -> tuple[bool, str]:
    at = parse_moment(case.get("at")) if case.get("at") is not None else datetime.now(UTC)
    if at is None:
        return False, f"`at` {case.get('at')!r} is not a date or date-time"
    decision = engine.decide(
        str(case["client"]),
        str(case["dataset"]),
        case.get("purpose"),
        case.get("scopes", ["datasets:read"]),
        at,
    )
    got = "allow" if decision.allowed else "deny"
    if got != case["expect"]:
        return (
            False,
            f"expected {case['expect']}, got {got} ({decision.reason or 'allowed'})",
        )
    if "reason" in case and decision.reason != case["reason"]:
        return False, f"expected reason {case['reason']!r}, got {decision.reason!r}"
    if not decision.allowed or decision.grant is None:
        return True, f"deny ({decision.reason})"
    grant = decision.grant
    if "grant" in case and grant.id != case["grant"]:
        return False, f"decided by grant {grant.id!r}, expected {case['grant']!r}"
    released = [name for name, _ in grant.columns]
    if "columns" in case and list(case["columns"]) != released:
        return False, f"released columns {released}, expected {case['columns']}"
    if "values" in case:
        if view_of is None:
            return True, f"allow by {grant.id} (values not checked: no data here)"
        dataset = engine.policy.datasets[grant.dataset]
        frame = view_of(dataset, grant, str(case["client"]))
        for column, expected in dict(case["values"]).items():
            if column not in frame.columns:
                return False, f"column {column!r} is not released"
            actual = frame[str(column)].iloc[: len(expected)].tolist()
            if actual != list(expected):
                return False, f"{column}: released {actual}, expected {list(expected)}"
    if "privacy" in case:
        if view_of is None:
            return True, f"allow by {grant.id} (privacy not checked: no data here)"
        dataset = engine.policy.datasets[grant.dataset]
        failed = _privacy_claims(view_of(dataset, grant, str(case["client"])), grant, case)
        if failed:
            return False, failed
    return True, f"allow by {grant.id}"


def _privacy_claims(frame: pd.DataFrame, grant: Grant, case: dict[str, Any]) -> str | None:
    """Check claims the way an outsider would: group the whole released view by every released
    quasi-identifier and count (promise 4). Only figures enter the message, never values."""
    claims = case["privacy"]
    if not isinstance(claims, dict) or set(claims) - _CLAIMS:
        return f"privacy: expected a mapping of {sorted(_CLAIMS)}"
    qis = list(grant.quasi_identifiers())
    if frame.empty:
        return "privacy: the view releases no rows"
    sizes = frame.groupby(qis, dropna=False).size() if qis else pd.Series([len(frame)])
    smallest, unique = int(sizes.min()), int((sizes == 1).sum())
    if "k_at_least" in claims and smallest < int(claims["k_at_least"]):
        return f"privacy: smallest class over {qis} has {smallest} rows, claimed >= " + str(
            claims["k_at_least"]
        )
    if "unique_rows" in claims and unique != int(claims["unique_rows"]):
        return f"privacy: {unique} rows are unique over {qis}, claimed {claims['unique_rows']}"
    if "l_at_least" in claims:
        model = grant.privacy
        if model is None or model.sensitive is None:
            return "privacy: l_at_least needs a grant with an l-diversity model"
        distinct = frame.groupby(qis, dropna=False)[model.sensitive].nunique(dropna=False)
        if int(distinct.min()) < int(claims["l_at_least"]):
            return f"privacy: a class holds {int(distinct.min())} distinct {model.sensitive}"
    return None


__all__ = ["CST", "CaseResult", "load_cases", "run_cases"]
