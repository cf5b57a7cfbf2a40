"""The dataset API: catalog and rows, only ever from desensitized views, only for a stated
purpose the caller's grant allows."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response

from gateway.api.common import caller, json_response
from gateway.api.context import AuditContext
from gateway.api.render import FORMATS, choose_format, render
from gateway.auth.tokens import Principal
from gateway.errors import BadRequest, Denied, NotFound, PrivacyUnavailable
from gateway.policy.engine import NO_GRANT, PURPOSE_MISSING, Engine
from gateway.policy.model import Dataset, Grant
from gateway.privacy.assess import figures
from gateway.privacy.kanon import PrivacyUnreachable
from gateway.privacy.transforms import CATALOGUE
from gateway.privacy.views import View, avoids_real_values
from gateway.query import Query, after, apply, parse_query
from gateway.services import Services
from gateway.trace.rowset import encode_rows

DEFAULT_PAGE = 100
_NOT_FOUND = "no dataset with this id is available to you"


def purpose_of(request: Request) -> str | None:
    """The purpose stated by the `purpose` parameter or the `Data-Purpose` header."""
    values = request.query_params.getlist("purpose")
    header = request.headers.get("data-purpose")
    if len(values) > 1 or (values and header and values[0] != header):
        raise BadRequest(
            "state one purpose (parameter or Data-Purpose header)", parameter="purpose"
        )
    return (values[0] if values else header) or None


def decide(
    engine: Engine, ctx: AuditContext, principal: Principal, dataset_id: str, purpose: str | None
) -> tuple[Dataset, Grant]:
    """The policy decision for this call, recorded in the audit context; raise when denied."""
    dataset = engine.policy.datasets.get(dataset_id)
    decision = engine.decide(
        principal.client_id, dataset_id, purpose, principal.scopes, datetime.now(UTC)
    )
    ctx.policy = decision.policy
    if dataset is None or decision.reason == NO_GRANT:
        ctx.reason = NO_GRANT
        raise NotFound(_NOT_FOUND)  # exactly like an unknown dataset
    ctx.dataset = dataset.id
    if decision.reason == PURPOSE_MISSING:
        ctx.reason = PURPOSE_MISSING
        raise BadRequest(
            "state the purpose of this request: `purpose=` or the Data-Purpose header",
            parameter="purpose",
        )
    if not decision.allowed or decision.grant is None:
        ctx.reason = decision.reason
        detail = next((t.detail for t in decision.tried if t.outcome == decision.reason), "denied")
        raise Denied(str(decision.reason), detail)
    ctx.grant = decision.grant.id
    return dataset, decision.grant


def _privacy(view: View, grant: Grant) -> dict[str, object]:
    """The privacy model achieved and the risk measured over every released quasi-identifier
    (a view without a model still reports its risk)."""
    model, risk = figures(view, grant)
    return {**(model or {"model": None}), "risk": risk}


def _describe(dataset: Dataset, grant: Grant) -> dict[str, object]:
    released = []
    for name, spec in grant.columns:
        definition = CATALOGUE[spec.name]
        column = dataset.column(name)
        assert column is not None  # noqa: S101 - the policy loader guarantees it
        released.append(
            {
                "name": name,
                "type": (definition.output_type or column.type).value,
                "description": column.description,
                "transform": spec.name,
                "category": definition.category,
            }
        )
    return {
        "id": dataset.id,
        "title": dataset.title,
        "description": dataset.description,
        "licence": dataset.licence,
        "grant": grant.id,
        "purposes": sorted(grant.purposes),
        "valid_until": grant.valid_until.isoformat() if grant.valid_until else None,
        "max_rows": grant.max_rows,
        "columns": released,
        "not_identifying": dict(grant.not_identifying),
    }


def _updated(dataset: Dataset) -> str | None:
    try:
        moment = dataset.source.stat().st_mtime
    except OSError:
        return None
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds")


def _released_rows(svc: Services, engine: Engine, grant: Grant, client_id: str) -> int | None:
    try:
        return len(
            _view(svc, engine, engine.policy.datasets[grant.dataset], grant, client_id).frame
        )
    except PrivacyUnreachable:
        return None


async def list_datasets(request: Request) -> Response:
    svc, ctx, principal = caller(request, "/v1/datasets")
    engine = svc.engine
    grants = engine.visible(principal.client_id, datetime.now(UTC))

    def describe_all() -> list[dict[str, object]]:
        return [
            {
                **_describe(engine.policy.datasets[g.dataset], g),
                "updated": _updated(engine.policy.datasets[g.dataset]),
                "rows": _released_rows(svc, engine, g, principal.client_id),
            }
            for g in grants
        ]

    items = await anyio.to_thread.run_sync(describe_all)  # may build views the first time
    ctx.policy = engine.policy.hash
    ctx.decision, ctx.reason = "allow", None
    return json_response({"datasets": items, "policy": engine.policy.hash})


def _cached_view(
    svc: Services, engine: Engine, dataset: Dataset, grant: Grant, client_id: str
) -> View | None:
    source = svc.sources.peek(dataset)
    if source is None:
        return None
    real = ""
    if avoids_real_values(grant):
        # Synthetic values avoid every dataset's real values: the version of those as checked
        # within the last second; None sends the call to `_view`, which checks the files.
        current = svc.real_values.peek_version(engine.policy)
        if current is None:
            return None
        real = current
    return svc.views.peek(source.version, dataset, grant, engine.policy.hash, client_id, real)


def _view(svc: Services, engine: Engine, dataset: Dataset, grant: Grant, client_id: str) -> View:
    source = svc.sources.load(dataset)
    ctx = svc.context(client_id, grant)
    return svc.views.get(source.frame, source.version, dataset, grant, engine.policy.hash, ctx)


async def _load_view(
    svc: Services, engine: Engine, dataset: Dataset, grant: Grant, principal: Principal
) -> View:
    try:
        return await anyio.to_thread.run_sync(
            _view, svc, engine, dataset, grant, principal.client_id
        )
    except PrivacyUnreachable as exc:
        # Nothing is released; the operator must fix the grant. The caller learns why.
        raise PrivacyUnavailable(
            f"this view cannot be released under its privacy model: {exc}"
        ) from exc


async def get_dataset(request: Request) -> Response:
    svc, ctx, principal = caller(request, "/v1/datasets/{id}")
    engine = svc.engine
    dataset_id = request.path_params["dataset_id"]
    purpose = purpose_of(request)
    if purpose is None:
        # The schema needs no purpose when the caller holds just one grant for this dataset.
        visible = [
            g
            for g in engine.visible(principal.client_id, datetime.now(UTC))
            if g.dataset == dataset_id
        ]
        if len(visible) == 1:
            purpose = sorted(visible[0].purposes)[0]
    dataset, grant = decide(engine, ctx, principal, dataset_id, purpose)
    view = await _load_view(svc, engine, dataset, grant, principal)
    ctx.decision, ctx.reason = "allow", None
    return json_response(
        {
            **_describe(dataset, grant),
            "rows": len(view.frame),
            "updated": _updated(dataset),
            "privacy": _privacy(view, grant),
            "policy": engine.policy.hash,
        }
    )


def _column_types(view: View) -> dict[str, str]:
    return {c.name: c.type for c in view.columns}


def _page(
    svc: Services, view: View, query: Query, fmt: str, purpose: str | None, grant: Grant
) -> tuple[bytes, int, str, str]:
    """Filter, order and cut one page of the view; render it, and record which rows it holds
    and the body's SHA-256 (which the audit entry carries). Cached per view and query (the row
    record and digest under a key of their own)."""
    cache_key = (view.key, query, fmt, purpose)
    cached, extra = svc.pages.get(cache_key), svc.pages.get(("extra", *cache_key))
    if cached is not None and extra is not None:
        row_ids, digest = extra[0].decode("ascii").split(" ")
        return cached[0], cached[1], row_ids, digest
    ordered = apply(view.ordered, query)
    matching = len(ordered)
    if query.cursor is not None:
        sort_value, rid = svc.cursors.decode(query.cursor, view.key, query)
        ordered = after(ordered, query, sort_value, rid)
    page = ordered.iloc[: query.size]
    next_cursor = None
    if len(ordered) > query.size:
        last = page.iloc[-1]
        sort_value = last[query.sort] if query.sort else None
        next_cursor = svc.cursors.encode(view.key, query, sort_value, int(last["_rid"]))
    meta: dict[str, object] = {
        "dataset": view.dataset,
        "grant": view.grant,
        "purpose": purpose,
        "policy": view.policy,
        "version": view.source_version,
        "total_rows": len(view.frame),
        "columns": list(query.columns),
        "privacy": _privacy(view, grant),
    }
    if query.count:
        meta["count"] = matching
    body = render(page[list(query.columns)], fmt, meta, next_cursor)
    row_ids = encode_rows(page["_rid"].to_numpy())
    digest = hashlib.sha256(body).hexdigest()
    svc.pages.put(("extra", *cache_key), (f"{row_ids} {digest}".encode("ascii"), len(page)))
    svc.pages.put(cache_key, (body, len(page)))
    return body, len(page), row_ids, digest


async def rows(request: Request) -> Response:
    # The common case (a cached view) is cheap and runs on the event loop: thread hand-offs cost
    # more than the work. Building a view can take seconds: that happens in a worker thread.
    svc, ctx, principal = caller(request, "/v1/datasets/{id}/rows")
    engine = svc.engine
    purpose = purpose_of(request)
    dataset, grant = decide(engine, ctx, principal, request.path_params["dataset_id"], purpose)
    fmt = choose_format(request)
    svc.limiter.grant_request(principal, grant)
    try:
        view = _cached_view(svc, engine, dataset, grant, principal.client_id)
        if view is None:
            view = await anyio.to_thread.run_sync(
                _view, svc, engine, dataset, grant, principal.client_id
            )
    except PrivacyUnreachable as exc:
        # Nothing is released; the operator must fix the grant. The caller learns why.
        raise PrivacyUnavailable(
            f"this view cannot be released under its privacy model: {exc}"
        ) from exc
    params = {key: request.query_params.getlist(key) for key in request.query_params}
    query = parse_query(
        params,
        _column_types(view),
        max_size=grant.max_rows,
        default_size=min(DEFAULT_PAGE, grant.max_rows),
    )
    body, count, row_ids, digest = _page(svc, view, query, fmt, purpose, grant)
    svc.limiter.rows(principal, count, grant)
    ctx.transforms = view.transforms
    ctx.rows = count
    ctx.view, ctx.row_ids = view.key, row_ids
    ctx.known_body = (body, digest)  # the audit entry's body digest, computed once per page
    ctx.decision, ctx.reason = "allow", None
    headers = (
        {"Content-Disposition": f'attachment; filename="{dataset.id}.csv"'}
        if fmt == "csv"
        else None
    )
    return Response(body, media_type=FORMATS[fmt], headers=headers)
