"""The dataset API: catalog and rows, only ever from desensitized views, only for a stated
purpose the caller's grant allows."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response

from gateway.api.common import (
    DATASETS_SCOPE,
    caller,
    json_response,
    query_values,
    recorded_purpose,
)
from gateway.api.context import AuditContext
from gateway.api.endpoints import endpoint, json_content
from gateway.api.paging import next_link
from gateway.api.render import FORMATS, choose_format, render
from gateway.api.schemas import CATALOG, DATASET, DATASET_ID, PURPOSE, ROWS_PARAMS, rows_content
from gateway.audit.rowset import encode_rows
from gateway.auth.tokens import Principal
from gateway.errors import BadRequest, Denied, NotFound, PrivacyUnavailable
from gateway.model.dataset import Dataset
from gateway.model.decision import Verdict
from gateway.model.grant import Grant
from gateway.policy.engine import NO_GRANT, PURPOSE_MISSING, Engine
from gateway.privacy.assess import figures
from gateway.privacy.kanon import PrivacyUnreachable
from gateway.privacy.transforms import CATALOGUE
from gateway.privacy.views import View, avoids_real_values
from gateway.query import Query, after, apply, parse_query
from gateway.runtime.pages import CachedPage
from gateway.runtime.services import Services

DEFAULT_PAGE = 100
_NOT_FOUND = "no dataset with this id is available to you"


def purpose_of(request: Request) -> str | None:
    """The purpose stated by the `purpose` parameter or the `Data-Purpose` header."""
    values = query_values(request, "purpose")
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
    ctx.purpose = recorded_purpose(engine.policy, purpose)
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


def _released_columns(
    dataset: Dataset, grant: Grant, view: View | None = None
) -> list[dict[str, object]]:
    """Each released column: its type as released (a quasi-identifier the privacy model
    generalized holds text labels, which the view knows), the transform and its category."""
    types = {c.name: c.type for c in view.columns} if view is not None else {}
    released: list[dict[str, object]] = []
    for name, spec in grant.columns:
        definition = CATALOGUE[spec.name]
        column = dataset.column(name)
        assert column is not None  # noqa: S101 - the policy loader guarantees it
        released.append(
            {
                "name": name,
                "type": types.get(name, (definition.output_type or column.type).value),
                "description": column.description,
                "transform": spec.name,
                "category": definition.category,
            }
        )
    return released


def _grant_fields(dataset: Dataset, grant: Grant, view: View | None = None) -> dict[str, object]:
    """What one grant releases: its purposes, term, page limit and columns."""
    return {
        "purposes": sorted(grant.purposes),
        "valid_until": grant.valid_until.isoformat() if grant.valid_until else None,
        "rows_per_request": grant.rows_per_request,
        "columns": _released_columns(dataset, grant, view),
        "not_identifying": dict(grant.not_identifying),
    }


def _about(dataset: Dataset) -> dict[str, object]:
    return {
        "id": dataset.id,
        "title": dataset.title,
        "description": dataset.description,
        "licence": dataset.licence,
    }


def _describe(dataset: Dataset, grant: Grant, view: View) -> dict[str, object]:
    return {**_about(dataset), "grant": grant.id, **_grant_fields(dataset, grant, view)}


def _updated(dataset: Dataset) -> str | None:
    try:
        moment = dataset.source.stat().st_mtime
    except OSError:
        return None
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds")


def _grant_item(
    svc: Services, engine: Engine, dataset: Dataset, grant: Grant, client_id: str
) -> dict[str, object]:
    """One grant in the catalog, with the row count of its released view (null when the view
    cannot be released under its privacy model)."""
    try:
        view: View | None = view_of(svc, engine, dataset, grant, client_id)
    except PrivacyUnreachable:
        view = None
    return {
        "id": grant.id,
        **_grant_fields(dataset, grant, view),
        "rows": len(view.frame) if view is not None else None,
    }


@endpoint(
    "GET",
    "/v1/datasets",
    summary="Datasets you hold a grant for, each once, with its grants and purposes",
    scope=DATASETS_SCOPE,
    responses={"200": json_content(CATALOG)},
    problems=(400, 401, 403, 429, 503),
)
async def list_datasets(request: Request) -> Response:
    svc, ctx, principal = caller(request)
    engine = svc.engine
    grants = engine.visible(principal.client_id, datetime.now(UTC))

    def describe_all() -> list[dict[str, object]]:
        by_dataset: dict[str, list[Grant]] = {}
        for grant in grants:
            by_dataset.setdefault(grant.dataset, []).append(grant)
        items = []
        for dataset_id, held in by_dataset.items():
            dataset = engine.policy.datasets[dataset_id]
            items.append(
                {
                    **_about(dataset),
                    "updated": _updated(dataset),
                    "purposes": sorted({p for g in held for p in g.purposes}),
                    "grants": [
                        _grant_item(svc, engine, dataset, g, principal.client_id) for g in held
                    ],
                }
            )
        return items

    items = await anyio.to_thread.run_sync(describe_all)  # may build views the first time
    ctx.policy = engine.policy.hash
    ctx.decision, ctx.reason = Verdict.ALLOW, None
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


def view_of(svc: Services, engine: Engine, dataset: Dataset, grant: Grant, client_id: str) -> View:
    """The grant's released view for this client (built, or from the cache)."""
    source = svc.sources.load(dataset)
    ctx = svc.context(client_id, grant)
    return svc.views.get(source.frame, source.version, dataset, grant, engine.policy.hash, ctx)


async def _load_view(
    svc: Services, engine: Engine, dataset: Dataset, grant: Grant, principal: Principal
) -> View:
    try:
        return await anyio.to_thread.run_sync(
            view_of, svc, engine, dataset, grant, principal.client_id
        )
    except PrivacyUnreachable as exc:
        # Nothing is released; the operator must fix the grant. The caller learns why.
        raise PrivacyUnavailable(
            f"this view cannot be released under its privacy model: {exc}"
        ) from exc


@endpoint(
    "GET",
    "/v1/datasets/{dataset_id}",
    summary="A dataset's released schema",
    scope=DATASETS_SCOPE,
    parameters=(DATASET_ID, PURPOSE),
    responses={"200": json_content(DATASET)},
    problems=(400, 401, 403, 404, 429, 503),
)
async def get_dataset(request: Request) -> Response:
    svc, ctx, principal = caller(request)
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
    ctx.decision, ctx.reason = Verdict.ALLOW, None
    return json_response(
        {
            **_describe(dataset, grant, view),
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
) -> CachedPage:
    """Filter, order and cut one page of the view; render it, record which rows it holds, the
    cursor of the next page (None on the last) and the body's SHA-256 (the audit entry carries
    it). Cached per view and query, all of it in one entry."""
    cache_key = (view.key, query, fmt, purpose)
    cached = svc.pages.get(cache_key)
    if cached is not None:
        return cached
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
    rendered = CachedPage(body, len(page), row_ids, next_cursor, hashlib.sha256(body).hexdigest())
    svc.pages.put(cache_key, rendered)
    return rendered


def _link(svc: Services, request: Request, cursor: str) -> str:
    """The page's Link header, kept per path, raw query and cursor (it depends on nothing
    else; a path starting with // depends on the Host header too, and is never kept)."""
    path, query = request.scope["path"], request.scope.get("query_string", b"")
    if path.startswith("//"):
        return next_link(request, cursor)
    return svc.links.get_or_put((path, query, cursor), lambda: next_link(request, cursor))


@endpoint(
    "GET",
    "/v1/datasets/{dataset_id}/rows",
    summary="Desensitized rows",
    scope=DATASETS_SCOPE,
    parameters=(DATASET_ID, *ROWS_PARAMS),
    rows_response=rows_content,
    problems=(400, 401, 403, 404, 414, 429, 431, 503),
)
async def rows(request: Request) -> Response:
    # The common case (a cached view) is cheap and runs on the event loop: thread hand-offs cost
    # more than the work. Building a view can take seconds: that happens in a worker thread.
    svc, ctx, principal = caller(request)
    engine = svc.engine
    purpose = purpose_of(request)
    dataset, grant = decide(engine, ctx, principal, request.path_params["dataset_id"], purpose)
    fmt = choose_format(request)
    svc.limiter.grant_request(principal, grant)
    try:
        view = _cached_view(svc, engine, dataset, grant, principal.client_id)
        if view is None:
            view = await anyio.to_thread.run_sync(
                view_of, svc, engine, dataset, grant, principal.client_id
            )
    except PrivacyUnreachable as exc:
        # Nothing is released; the operator must fix the grant. The caller learns why.
        raise PrivacyUnavailable(
            f"this view cannot be released under its privacy model: {exc}"
        ) from exc
    # The page a query string gives is fixed for an immutable view: a repeated query skips
    # parsing (a query that fails to parse is never kept, so it fails every time).
    raw = (view.key, request.scope.get("query_string", b""), grant.rows_per_request, fmt, purpose)
    page = svc.pages.get(raw)
    if page is None:
        params = {key: request.query_params.getlist(key) for key in request.query_params}
        query = parse_query(
            params,
            _column_types(view),
            max_size=grant.rows_per_request,
            default_size=min(DEFAULT_PAGE, grant.rows_per_request),
        )
        page = _page(svc, view, query, fmt, purpose, grant)
        svc.pages.put(raw, page)
    body, count, row_ids, next_cursor = page.body, page.rows, page.row_ids, page.next_cursor
    svc.limiter.rows(principal, count, grant)
    ctx.transforms = view.transforms
    ctx.rows = count
    ctx.view, ctx.row_ids = view.key, row_ids
    ctx.known_body = (body, page.sha256)  # the body's digest, computed once per page
    ctx.decision, ctx.reason = Verdict.ALLOW, None
    headers: dict[str, str] = {}
    if fmt == "csv":
        headers["Content-Disposition"] = f'attachment; filename="{dataset.id}.csv"'
    if next_cursor is not None:
        # RFC 8288: the next page in every format (a CSV or NDJSON body has no room for it).
        headers["Link"] = _link(svc, request, next_cursor)
    return Response(body, media_type=FORMATS[fmt], headers=headers)
