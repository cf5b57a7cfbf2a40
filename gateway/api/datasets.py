"""The dataset API: catalog and rows, only ever from desensitized views."""

from __future__ import annotations

import json

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response

from gateway.api.common import caller, json_response
from gateway.errors import BadRequest, NotFound
from gateway.policy.model import Dataset, Grant, PolicySet
from gateway.privacy.transforms import CATALOGUE, TransformContext
from gateway.privacy.views import View
from gateway.services import Services

DEFAULT_PAGE = 100
_ROW_PARAMS = {"_size"}


def _granted(policy: PolicySet, client_id: str, dataset_id: str) -> tuple[Dataset, Grant]:
    """The dataset and grant, or 404, identical for unknown and ungranted datasets."""
    grant = policy.grant_for(client_id, dataset_id)
    dataset = policy.datasets.get(dataset_id)
    if grant is None or dataset is None:
        raise NotFound("no dataset with this id is available to you")
    return dataset, grant


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
        "max_rows": grant.max_rows,
        "columns": released,
    }


async def list_datasets(request: Request) -> Response:
    svc, ctx, principal = caller(request, "/v1/datasets")
    items = []
    for grant in svc.policy.grants_of(principal.client_id):
        items.append(_describe(svc.policy.datasets[grant.dataset], grant))
    ctx.decision, ctx.reason = "allow", None
    return json_response({"datasets": items, "policy": svc.policy.hash})


async def get_dataset(request: Request) -> Response:
    svc, ctx, principal = caller(request, "/v1/datasets/{id}")
    dataset, grant = _granted(svc.policy, principal.client_id, request.path_params["dataset_id"])
    ctx.dataset, ctx.grant = dataset.id, grant.id
    ctx.decision, ctx.reason = "allow", None
    return json_response({**_describe(dataset, grant), "policy": svc.policy.hash})


def _page_size(request: Request, grant: Grant) -> int:
    unknown = sorted(set(request.query_params.keys()) - _ROW_PARAMS)
    if unknown:
        raise BadRequest(f"unsupported parameter {unknown[0]!r}", parameter=unknown[0])
    raw = request.query_params.getlist("_size")
    if not raw:
        return min(DEFAULT_PAGE, grant.max_rows)
    if len(raw) > 1:
        raise BadRequest("give _size once", parameter="_size")
    try:
        size = int(raw[0])
    except ValueError:
        raise BadRequest(
            f"_size must be an integer, got {raw[0][:32]!r}", parameter="_size"
        ) from None
    if not 1 <= size <= grant.max_rows:
        raise BadRequest(f"_size must be between 1 and {grant.max_rows}", parameter="_size")
    return size


def _view(svc: Services, dataset: Dataset, grant: Grant, client_id: str) -> View:
    source = svc.sources.load(dataset)
    ctx = TransformContext(svc.pseudonym_secret, client_id, grant.id)
    return svc.views.get(source.frame, source.version, dataset, grant, svc.policy.hash, ctx)


async def rows(request: Request) -> Response:
    svc, ctx, principal = caller(request, "/v1/datasets/{id}/rows")
    dataset, grant = _granted(svc.policy, principal.client_id, request.path_params["dataset_id"])
    ctx.dataset, ctx.grant = dataset.id, grant.id
    size = _page_size(request, grant)
    view = await anyio.to_thread.run_sync(_view, svc, dataset, grant, principal.client_id)
    page = view.frame.iloc[:size]
    await anyio.to_thread.run_sync(svc.limiter.rows, principal, len(page))
    meta = {
        "dataset": view.dataset,
        "grant": view.grant,
        "policy": view.policy,
        "version": view.source_version,
        "total_rows": len(view.frame),
        "columns": [c.name for c in view.columns],
    }
    records = page.to_json(orient="records", force_ascii=False)
    view_json = json.dumps(meta, ensure_ascii=False, separators=(",", ":"))
    body = f'{{"rows":{records},"next":null,"view":{view_json}}}'
    ctx.transforms = view.transforms
    ctx.rows = len(page)
    ctx.decision, ctx.reason = "allow", None
    return Response(body, media_type="application/json")
