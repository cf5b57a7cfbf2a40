"""Admin endpoints (scope `admin`): status, policy reload, and decision explanations."""

from __future__ import annotations

import datetime as dt
import os

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response

from gateway.api.audit import TIME_FILTERS, VALUE_FILTERS, entry_filters
from gateway.api.common import ADMIN_SCOPE, AUDIT_SCOPE, caller, json_response
from gateway.api.endpoints import Param, endpoint, json_content
from gateway.api.schemas import OBJECT, STRING, requiring
from gateway.audit.query import FILTER_FIELDS, Filters, LogNotVerified, VerifiedLog
from gateway.audit.usage import UsageRow, totals, usage, usage_csv, usage_json
from gateway.errors import BadRequest, LogInvalid
from gateway.model.decision import Verdict
from gateway.policy.check import parse_moment
from gateway.policy.explain import explain
from gateway.privacy.assess import assess
from gateway.runtime.reloader import PolicyReloader, PolicyStatus
from gateway.runtime.services import Services, figures_maker, view_maker

USAGE_PARAMS = {"since", "until", "format", *FILTER_FIELDS}


def _reloader(request: Request) -> PolicyReloader:
    found = request.app.state.reloader
    assert isinstance(found, PolicyReloader)  # noqa: S101 - set by create_app
    return found


def _iso(moment: float | None) -> str | None:
    return (
        dt.datetime.fromtimestamp(moment, dt.UTC).isoformat(timespec="seconds") if moment else None
    )


def _status(svc: Services, status: PolicyStatus) -> dict[str, object]:
    latest = svc.audit_log.latest_checkpoint()
    return {
        "worker": os.getpid(),
        "policy": {
            "active": status.active,
            "loaded_at": _iso(status.loaded_at),
            "files": list(status.files),
            "last_error": status.last_error,
            "last_attempt": _iso(status.last_attempt),
            "reloads": status.reloads,
            "warnings": list(svc.policy.warnings),
        },
        "views": [
            a.describe()
            for a in assess(
                svc.policy,
                figures_maker(svc.settings, svc.sources, svc.views, svc.policy),
                view_maker(svc.settings, svc.sources, svc.views, svc.policy),
            )
        ],
        "audit": {
            "origin": svc.audit_log.origin,
            "size": svc.audit_log.size(),
            "checkpoint": latest.size if latest else None,
            "halted": svc.audit_log.halted,
        },
    }


_PROBLEMS = (401, 403, 429, 503)


@endpoint(
    "GET",
    "/v1/admin/status",
    summary="Policy and audit status (scope admin)",
    scope=ADMIN_SCOPE,
    responses={"200": json_content(requiring("policy", "audit"))},
    problems=_PROBLEMS,
)
async def status(request: Request) -> Response:
    svc, ctx, _ = caller(request)
    body = await anyio.to_thread.run_sync(_status, svc, _reloader(request).status)
    ctx.decision, ctx.reason = Verdict.ALLOW, None
    return json_response(body)


@endpoint(
    "POST",
    "/v1/admin/reload",
    summary="Reload policies now (scope admin)",
    scope=ADMIN_SCOPE,
    responses={"200": json_content(OBJECT), "422": json_content(OBJECT, "Rejected")},
    problems=_PROBLEMS,
)
async def reload(request: Request) -> Response:
    svc, ctx, principal = caller(request)
    result = await anyio.to_thread.run_sync(
        _reloader(request).reload, "admin endpoint", principal.client_id
    )
    body = await anyio.to_thread.run_sync(_status, svc, result)
    ctx.decision, ctx.reason = Verdict.ALLOW, None
    ctx.policy = svc.policy.hash
    return json_response(body, status=200 if result.last_error is None else 422)


@endpoint(
    "GET",
    "/v1/admin/explain",
    summary="Explain a decision (scope admin)",
    scope=ADMIN_SCOPE,
    parameters=(
        Param("client", "Client id", STRING, required=True),
        Param("dataset", "Dataset id", STRING, required=True),
        Param("purpose", "Purpose", STRING),
        Param("at", "ISO 8601 time", STRING),
    ),
    responses={"200": json_content(requiring("decision"))},
    problems=(400, *_PROBLEMS),
)
async def explain_decision(request: Request) -> Response:
    svc, ctx, _ = caller(request)
    params = request.query_params
    for required in ("client", "dataset"):
        if not params.get(required):
            raise BadRequest(f"{required} is required", parameter=required)
    at = dt.datetime.now(dt.UTC)
    if params.get("at"):
        parsed = parse_moment(params["at"])
        if parsed is None:
            raise BadRequest("at must be an ISO 8601 date or date-time", parameter="at")
        at = parsed
    engine = svc.engine
    scopes = params.getlist("scope") or ["datasets:read"]
    view_of = view_maker(svc.settings, svc.sources, svc.views, engine.policy)
    figures_of = figures_maker(svc.settings, svc.sources, svc.views, engine.policy)
    result = await anyio.to_thread.run_sync(
        lambda: explain(
            engine,
            params["client"],
            params["dataset"],
            params.get("purpose"),
            at,
            scopes,
            view_of,
            figures_of,
        )
    )
    ctx.decision, ctx.reason = Verdict.ALLOW, None
    return json_response(result)


def _usage(svc: Services, filters: Filters) -> tuple[VerifiedLog, list[UsageRow]]:
    ws = svc.settings.workspace
    verified = svc.verified_log.load(
        svc.settings.audit_database, ws.audit_public_keys, filters.matches
    )
    quotas = {c.client_id: c.rows_per_day for c in svc.registry.all()}
    return verified, usage(verified.entries, quotas)


@endpoint(
    "GET",
    "/v1/admin/usage",
    summary="Usage per client, dataset, purpose and day (scope admin or audit:read)",
    scope=(ADMIN_SCOPE, AUDIT_SCOPE),
    parameters=(
        *TIME_FILTERS,
        *VALUE_FILTERS,
        Param("format", "json (default) or csv", {"enum": ["json", "csv"]}),
    ),
    responses={
        "200": {
            "description": "OK",
            "content": {
                "application/json": {"schema": requiring("verification", "usage", "totals")},
                "text/csv": {"schema": STRING},
            },
        }
    },
    problems=(400, *_PROBLEMS),
)
async def usage_report(request: Request) -> Response:
    """Usage per client, dataset, purpose and UTC day from the verified log (JSON, or CSV for
    billing with `format=csv`). Scope `admin` or `audit:read`."""
    svc, ctx, _ = caller(request)
    unknown = sorted(set(request.query_params) - USAGE_PARAMS)
    if unknown:
        raise BadRequest(f"unsupported parameter {unknown[0][:40]!r}", parameter=unknown[0][:40])
    fmt = request.query_params.get("format", "json")
    if fmt not in ("json", "csv"):
        raise BadRequest("format must be json or csv", parameter="format")
    filters = entry_filters(request)
    try:
        verified, rows = await anyio.to_thread.run_sync(_usage, svc, filters)
    except LogNotVerified as exc:
        raise LogInvalid(
            f"the audit log does not verify ({exc.problem}); no figures are computed from it. "
            "The operator runs `gateway audit verify` to see every problem."
        ) from None
    ctx.decision, ctx.reason = Verdict.ALLOW, None
    if fmt == "csv":
        return Response(
            usage_csv(rows),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="usage.csv"'},
        )
    return json_response(
        {
            "verification": verified.verification.as_json(),
            "usage": usage_json(rows),
            "totals": totals(rows),
        }
    )
