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

A failure never quotes a value, released or expected (a grant that releases a column raw would
otherwise put raw personal data into the status, the log and the audit entry of the rejected
reload): it names the column and row position, and shows each value as a keyed hash (HMAC-SHA256
under a key derived from the workspace secret, 12 hex digits). Test files are parsed like policy
files (no anchors or aliases, bounded size, depth and node count).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import yaml

from gateway.errors import ConfigError
from gateway.model.dataset import Dataset
from gateway.model.decision import Verdict
from gateway.model.grant import Grant
from gateway.policy.check import CST, Problem, parse_moment
from gateway.policy.engine import Engine
from gateway.policy.files import read_policy_files
from gateway.policy.yamlsrc import PARSE_SECONDS, error_line, load_located
from gateway.privacy.kanon import PrivacyUnreachable

if TYPE_CHECKING:
    import pandas as pd

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
ViewOf: TypeAlias = "Callable[[Dataset, Grant, str], pd.DataFrame]"


@dataclass(frozen=True)
class CaseResult:
    file: str
    name: str
    passed: bool
    message: str


def load_cases(directory: Path) -> list[tuple[str, dict[str, Any]]]:
    cases: list[tuple[str, dict[str, Any]]] = []
    paths = sorted(directory.glob("*.yaml")) if directory.is_dir() else []
    problems: list[Problem] = []
    contents = read_policy_files(paths, directory, problems)
    if problems:
        raise ConfigError("\n".join(f"tests/{p}" for p in problems))
    deadline = time.monotonic() + PARSE_SECONDS
    for name, content in contents.items():
        path = directory / name
        try:
            located = load_located(content.decode("utf-8"), deadline=deadline)
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path}: not UTF-8 (byte {exc.start})") from None
        except yaml.YAMLError as exc:
            line, message = error_line(exc)
            raise ConfigError(f"{path}:{line}: {message}") from None
        if located.problems:
            line, message = located.problems[0]
            raise ConfigError(f"{path}:{line}: {message}")
        doc = located.value or {}
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
            if case["expect"] not in (Verdict.ALLOW, Verdict.DENY):
                raise ConfigError(f"{path}: case {i}: expect must be allow or deny")
            cases.append((path.name, case))
    return cases


def run_cases(
    engine: Engine,
    cases: list[tuple[str, dict[str, Any]]],
    view_of: ViewOf | None = None,
    *,
    secret: bytes | None = None,
) -> list[CaseResult]:
    """Run each case; `view_of(dataset, grant, client)` materializes released rows for
    `columns`/`values` checks (without it, those checks are skipped and say so). `secret` (the
    workspace's pseudonymization secret) keys the hashes that stand for values in failure
    messages; without it a random key is used and the hashes compare only within this run."""
    key = hmac.new(
        secret if secret is not None else secrets.token_bytes(32), _TAG_CONTEXT, hashlib.sha256
    ).digest()
    results = []
    for file, case in cases:
        name = str(
            case.get("name") or f"{case['client']} / {case['dataset']} / {case.get('purpose')}"
        )
        results.append(CaseResult(file, name, *_run(engine, case, view_of, key)))
    return results


_TAG_CONTEXT = b"public-data-gateway/policy-test-value/v1"
_SHOWN_DIFFERENCES = 3


def value_tag(key: bytes, value: Any) -> str:
    """A released or expected value as it may appear in a message: `#` and 12 hex digits of
    HMAC-SHA256 over its JSON form, or `null`. Equal values give equal tags under one key."""
    plain = _plain(value)
    if plain is None:
        return "null"
    body = json.dumps(plain, ensure_ascii=False, sort_keys=True, default=str)
    return "#" + hmac.new(key, body.encode(), hashlib.sha256).hexdigest()[:12]


def _plain(value: Any) -> Any:
    """One comparable Python value: NA/NaN/None -> None, numpy scalars -> Python, dates -> ISO."""
    import numpy as np
    import pandas as pd

    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _differences(column: str, actual: list[Any], expected: list[Any], key: bytes) -> str | None:
    """None when the released values are the expected ones; else where they differ, by row
    position and keyed hash only (never a value: it may be raw personal data)."""
    if len(actual) < len(expected):
        return f"{column}: {len(actual)} rows released, {len(expected)} values expected"
    rows = [
        i for i, (a, e) in enumerate(zip(actual, expected, strict=True)) if _plain(a) != _plain(e)
    ]
    if not rows:
        return None
    shown = "; ".join(
        f"row {i}: released {value_tag(key, actual[i])}, expected {value_tag(key, expected[i])}"
        for i in rows[:_SHOWN_DIFFERENCES]
    )
    more = f"; and {len(rows) - _SHOWN_DIFFERENCES} more" if len(rows) > _SHOWN_DIFFERENCES else ""
    return (
        f"{column}: {len(rows)} of {len(expected)} values differ ({shown}{more}); values are "
        "shown as keyed hashes, never as themselves"
    )


def _run(
    engine: Engine, case: dict[str, Any], view_of: ViewOf | None, key: bytes
) -> tuple[bool, str]:
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
    got = Verdict.ALLOW if decision.allowed else Verdict.DENY
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
    if ("values" in case or "privacy" in case) and view_of is None:
        return True, f"allow by {grant.id} (values and privacy not checked: no data here)"
    frame: pd.DataFrame | None = None
    if view_of is not None and ("values" in case or "privacy" in case):
        dataset = engine.policy.datasets[grant.dataset]
        try:
            frame = view_of(dataset, grant, str(case["client"]))
        except (PrivacyUnreachable, ConfigError) as exc:  # counts and names only, no values
            return False, f"the view of grant {grant.id!r} cannot be built: {exc}"
        except Exception as exc:  # reported, never raised: its text may quote data
            return False, (
                f"building the view of grant {grant.id!r} failed ({type(exc).__name__}; its "
                "message is withheld because it may quote data)"
            )
    if "values" in case and frame is not None:
        values = case["values"]
        if not isinstance(values, dict):
            return False, "`values` must map column names to lists of expected values"
        for column, expected in values.items():
            if column not in frame.columns:
                return False, f"column {column!r} is not released"
            if not isinstance(expected, list):
                return False, f"values of {column!r} must be a list"
            actual = frame[str(column)].iloc[: len(expected)].tolist()
            different = _differences(str(column), actual, expected, key)
            if different:
                return False, different
    if "privacy" in case and frame is not None:
        failed = _privacy_claims(frame, grant, case)
        if failed:
            return False, failed
    return True, f"allow by {grant.id}"


def _privacy_claims(frame: pd.DataFrame, grant: Grant, case: dict[str, Any]) -> str | None:
    """Check claims the way an outsider would: group the whole released view by every released
    quasi-identifier and count (promise 4). Only figures enter the message, never values."""
    import pandas as pd

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


__all__ = ["CST", "CaseResult", "load_cases", "run_cases", "value_tag"]
