"""`GET /v1/datasets/{id}/aggregate`: counts, sums and means by group, computed on source values
and released only under the grant's `aggregate` rules (docs/developers.md#aggregates)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response

from gateway.aggregate import suppress, tables
from gateway.aggregate.budget import DELTA_UNIT, EPSILON_UNIT, Spend, decimal_text
from gateway.api.common import DATASETS_SCOPE, caller, json_response
from gateway.api.datasets import decide, purpose_of
from gateway.api.endpoints import Param, endpoint, json_content
from gateway.api.schemas import DATASET_ID, PURPOSE, STRING, requiring
from gateway.errors import BadRequest, BudgetExhausted, Denied, TableUnprotectable
from gateway.model.aggregate import MAX_CELLS, MEASURES, AggregateRules
from gateway.model.dataset import Dataset
from gateway.model.decision import Verdict
from gateway.model.grant import Grant
from gateway.privacy.filters import row_mask
from gateway.runtime.services import Services

if TYPE_CHECKING:
    import pandas as pd

PARAMETERS = ("group_by", "measure", "column", "purpose")


def _one(request: Request, name: str) -> str | None:
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise BadRequest(f"give {name} once", parameter=name)
    return values[0] if values else None


def parse_request(request: Request, rules: AggregateRules) -> tables.Request:
    """The query, checked against the grant's rules (names only from the rules, never echoed
    back unchecked)."""
    unknown = sorted(set(request.query_params) - set(PARAMETERS))
    if unknown:
        raise BadRequest(
            f"unknown parameter; this endpoint takes {', '.join(PARAMETERS)}",
            parameter=unknown[0][:64],
        )
    allowed = [name for name, _ in rules.group_by]
    raw = _one(request, "group_by")
    if not raw:
        raise BadRequest(f"group_by one or two of: {', '.join(allowed)}", parameter="group_by")
    group_by = tuple(raw.split(","))
    if len(group_by) > 2 or len(set(group_by)) != len(group_by):
        raise BadRequest("group_by takes one or two distinct columns", parameter="group_by")
    if any(name not in allowed for name in group_by):
        raise BadRequest(
            f"this grant allows grouping by: {', '.join(allowed)}", parameter="group_by"
        )
    measure = _one(request, "measure") or "count"
    if measure not in MEASURES:
        raise BadRequest(f"measure must be one of {', '.join(MEASURES)}", parameter="measure")
    column = _one(request, "column")
    numeric = [name for name, _ in rules.measures]
    if measure == "count":
        if column is not None:
            raise BadRequest("count takes no column", parameter="column")
    elif column not in numeric:
        raise BadRequest(
            f"{measure} needs column= one of: {', '.join(numeric) or '(none in this grant)'}",
            parameter="column",
        )
    if rules.dp is not None:
        cells = 1
        for name in group_by:
            cells *= len(rules.categories(name) or ())
        if cells > MAX_CELLS:  # refused before any budget is spent
            raise BadRequest(
                f"the table would have more than {MAX_CELLS} cells", parameter="group_by"
            )
    return tables.Request(group_by, measure, column)


def _source(svc: Services, dataset: Dataset, grant: Grant, wanted: tables.Request) -> pd.DataFrame:
    """The grant's rows (its row filter, on source values), only the columns needed."""
    frame = svc.sources.load(dataset).frame
    if grant.row_filter is not None:
        frame = frame[row_mask(frame, grant.row_filter).to_numpy()]
    needed = [*wanted.group_by, *([wanted.column] if wanted.column else [])]
    return frame[needed]


def _compute(
    svc: Services, dataset: Dataset, grant: Grant, rules: AggregateRules, wanted: tables.Request
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    frame = _source(svc, dataset, grant, wanted)
    table = tables.table(frame, rules, wanted, clamp=rules.dp is not None)
    if rules.dp is None:
        return tables.suppressed(table, wanted, rules.min_cell), None
    return tables.private(frame, table, rules, wanted)


def _dp_record(spend: Spend, rules: AggregateRules) -> dict[str, str]:
    """The budget figures for the audit entry, as decimal strings (entries hold no floats)."""
    assert rules.dp is not None  # noqa: S101 - dp rules only
    return {
        "mechanism": rules.dp.mechanism,
        "epsilon": format(rules.dp.epsilon.normalize(), "f"),
        "delta": format(rules.dp.delta.normalize(), "f"),
        "epsilon_remaining": decimal_text(spend.epsilon_left, EPSILON_UNIT),
        "delta_remaining": decimal_text(spend.delta_left, DELTA_UNIT),
        "period": spend.period,
        "spent": "yes" if spend.allowed else "no",
    }


_ENTRY = {"type": "object", "required": ["key", "value"]}
AGGREGATE = {
    **requiring("dataset", "grant", "group_by", "measure", "method", "cells", "total"),
    "properties": {
        "method": {**STRING, "enum": ["suppression", "differential_privacy"]},
        "cells": {"type": "array", "items": _ENTRY},
        "margins": {"type": "object", "additionalProperties": {"type": "array", "items": _ENTRY}},
        "total": _ENTRY,
    },
}
_BUDGET_HEADERS = {
    name: {"description": description, "schema": STRING}
    for name, description in (
        ("DP-Budget-Epsilon-Remaining", "epsilon left in this period (differential privacy)"),
        ("DP-Budget-Delta-Remaining", "delta left in this period (differential privacy)"),
        ("DP-Budget-Reset", "seconds until the budget period ends"),
    )
}


@endpoint(
    "GET",
    "/v1/datasets/{dataset_id}/aggregate",
    summary="Counts, sums and means by group, on source values, under the grant's rules",
    scope=DATASETS_SCOPE,
    parameters=(
        DATASET_ID,
        PURPOSE,
        Param("group_by", "One or two columns the grant allows, comma-separated", STRING),
        Param("measure", "count (default), sum or mean", {**STRING, "enum": list(MEASURES)}),
        Param("column", "For sum and mean: an integer column the grant lists", STRING),
    ),
    responses={"200": {**json_content(AGGREGATE), "headers": _BUDGET_HEADERS}},
    problems=(400, 401, 403, 404, 414, 422, 429, 431, 503),
)
async def aggregate(request: Request) -> Response:
    svc, ctx, principal = caller(request)
    engine = svc.engine
    purpose = purpose_of(request)
    dataset, grant = decide(engine, ctx, principal, request.path_params["dataset_id"], purpose)
    rules = grant.aggregate
    if rules is None:
        ctx.reason = "no_aggregate"
        raise Denied("no_aggregate", "this grant releases no aggregates")
    wanted = parse_request(request, rules)
    svc.limiter.grant_request(principal, grant)
    ctx.extra["aggregate"] = {
        "group_by": list(wanted.group_by),
        "measure": wanted.measure,
        "column": wanted.column,
    }
    headers: dict[str, str] = {}
    if rules.dp is not None:
        if svc.budgets is None:
            raise RuntimeError("services were built without a budget store")
        spend = await anyio.to_thread.run_sync(
            svc.budgets.spend,
            principal.client_id,
            grant.id,
            rules.dp,
            (rules.dp.epsilon, rules.dp.delta),
        )
        ctx.extra["dp"] = _dp_record(spend, rules)
        headers = spend.headers
        ctx.headers.update(headers)
        if not spend.allowed:
            raise BudgetExhausted(
                f"this query costs epsilon {rules.dp.epsilon} (delta {rules.dp.delta}) and only "
                f"{headers['DP-Budget-Epsilon-Remaining']} "
                f"({headers['DP-Budget-Delta-Remaining']}) is left of this grant's budget "
                f"for the {rules.dp.period}; retry after {spend.reset} s",
                retry_after=spend.reset,
                headers=headers,
            )
    try:
        body, cost = await anyio.to_thread.run_sync(_compute, svc, dataset, grant, rules, wanted)
    except tables.TooManyCells as exc:
        raise BadRequest(f"{exc}; group by fewer or coarser columns", parameter="group_by") from exc
    except suppress.CannotProtect as exc:
        raise TableUnprotectable(str(exc)) from exc
    ctx.decision, ctx.reason = Verdict.ALLOW, None
    payload: dict[str, Any] = {
        "dataset": dataset.id,
        "grant": grant.id,
        "purpose": purpose,
        "policy": engine.policy.hash,
        "group_by": list(wanted.group_by),
        "measure": wanted.measure,
        "column": wanted.column,
        "method": "suppression" if rules.dp is None else "differential_privacy",
        **body,
    }
    if rules.dp is None:
        payload["min_cell"] = rules.min_cell
    else:
        assert cost is not None  # noqa: S101 - dp results carry their cost
        payload["privacy"] = {
            "mechanism": rules.dp.mechanism,
            "epsilon": float(rules.dp.epsilon),
            "delta": float(rules.dp.delta),
            "scale": cost["scale"],
            "budget": {
                "epsilon_remaining": float(headers["DP-Budget-Epsilon-Remaining"]),
                "delta_remaining": float(headers["DP-Budget-Delta-Remaining"]),
                "period": rules.dp.period,
                "reset_seconds": int(headers["DP-Budget-Reset"]),
            },
        }
    return json_response(payload, headers=headers)
