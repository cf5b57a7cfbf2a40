"""Transparency endpoints: the signed checkpoint, inclusion and consistency proofs and the audit
keys with their rotations (public, like Certificate Transparency), and raw entries (scope
audit:read)."""

from __future__ import annotations

import base64
from urllib.parse import urlencode

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response

from gateway.api.common import AUDIT_SCOPE, caller, json_response, services
from gateway.api.endpoints import Param, endpoint, json_content, text_content
from gateway.api.schemas import STRING, STRINGS, requiring
from gateway.audit.paging import Page, scan
from gateway.audit.query import FILTER_FIELDS, Filters, make_filters
from gateway.errors import BadRequest, NotFound
from gateway.integers import parse_int
from gateway.model.decision import Verdict

MAX_ENTRIES = 1000
DEFAULT_ENTRIES = 100


def _int(request: Request, name: str, *, minimum: int = 0) -> int:
    raw = request.query_params.getlist(name)
    if len(raw) != 1:
        raise BadRequest(f"give {name} exactly once", parameter=name)
    return parse_int(raw[0], name, minimum=minimum)


def _only(request: Request, allowed: set[str]) -> None:
    unknown = sorted(set(request.query_params.keys()) - allowed)
    if unknown:
        raise BadRequest(f"unsupported parameter {unknown[0]!r}", parameter=unknown[0])


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _count(name: str, description: str, minimum: int) -> Param:
    return Param(name, description, {"type": "integer", "minimum": minimum}, required=True)


@endpoint(
    "GET",
    "/v1/audit/checkpoint",
    summary="Newest signed checkpoint (C2SP)",
    responses={"200": text_content("A signed note")},
    problems=(404, 503),
)
async def checkpoint(request: Request) -> Response:
    svc = services(request)
    latest = await anyio.to_thread.run_sync(svc.audit_log.latest_checkpoint)
    if latest is None:
        raise NotFound("no checkpoint has been signed yet; try again in a few seconds")
    return Response(
        latest.note, media_type="text/plain; charset=utf-8", headers={"Cache-Control": "no-cache"}
    )


@endpoint(
    "GET",
    "/v1/audit/proof",
    summary="Inclusion proof",
    parameters=(_count("idx", "Entry index", 0), _count("size", "Tree size", 1)),
    responses={"200": json_content(requiring("proof", "root"))},
    problems=(400, 503),
)
async def proof(request: Request) -> Response:
    svc = services(request)
    _only(request, {"idx", "size"})
    idx, size = _int(request, "idx"), _int(request, "size", minimum=1)
    tree = await anyio.to_thread.run_sync(svc.audit_log.tree)
    if size > tree.size:
        raise BadRequest(
            f"size {size} is larger than the log ({tree.size} entries)", parameter="size"
        )
    if idx >= size:
        raise BadRequest("idx must be smaller than size", parameter="idx")
    path = tree.inclusion_proof(idx, size)
    return json_response(
        {
            "idx": idx,
            "size": size,
            "leaf_hash": _b64(tree.leaf(idx)),
            "root": _b64(tree.root(size)),
            "proof": [_b64(p) for p in path],
        }
    )


@endpoint(
    "GET",
    "/v1/audit/consistency",
    summary="Consistency proof",
    parameters=(_count("from", "Older tree size", 1), _count("to", "Newer tree size", 1)),
    responses={"200": json_content(requiring("proof"))},
    problems=(400, 503),
)
async def consistency(request: Request) -> Response:
    svc = services(request)
    _only(request, {"from", "to"})
    first, second = _int(request, "from", minimum=1), _int(request, "to", minimum=1)
    tree = await anyio.to_thread.run_sync(svc.audit_log.tree)
    if second > tree.size:
        raise BadRequest(
            f"to={second} is larger than the log ({tree.size} entries)", parameter="to"
        )
    if first > second:
        raise BadRequest("from must not be larger than to", parameter="from")
    path = tree.consistency_proof(first, second)
    return json_response(
        {
            "from": first,
            "to": second,
            "from_root": _b64(tree.root(first)),
            "to_root": _b64(tree.root(second)),
            "proof": [_b64(p) for p in path],
        }
    )


@endpoint(
    "GET",
    "/v1/audit/keys",
    summary="Audit keys and the rotation entries that handed over between them",
    responses={"200": json_content(requiring("keys", "rotations"))},
    problems=(400, 503),
)
async def keys(request: Request) -> Response:
    """Every audit key with its window, and the key.rotate entries that handed over from one to
    the next (signed by the old key), so a caller who trusts an old key can follow rotations
    (gateway.audit.rotation)."""
    svc = services(request)
    _only(request, set())
    log = svc.audit_log

    def collect() -> dict[str, object]:
        windows = log.key_windows()
        rotations = []
        for window in windows:
            if window.from_idx > 0:
                for stored in log.entries(window.from_idx - 1, window.from_idx):
                    rotations.append(
                        {
                            "idx": stored.idx,
                            "kid": stored.kid,
                            "sig": _b64(stored.sig),
                            "entry": stored.line.decode("utf-8", "replace"),
                        }
                    )
        return {
            "keys": [
                {"kid": w.kid, "public_key": _b64(w.public_key), "from_idx": w.from_idx}
                for w in windows
            ],
            "rotations": rotations,
        }

    return json_response(await anyio.to_thread.run_sync(collect))


ENTRY_PARAMS = {"from", "to", "since", "until", "limit", "cursor", *FILTER_FIELDS}


def _one(request: Request, name: str) -> str | None:
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise BadRequest(f"give {name} at most once", parameter=name)
    return values[0] if values else None


def _optional_int(request: Request, name: str, *, minimum: int = 0) -> int | None:
    raw = _one(request, name)
    return None if raw is None else parse_int(raw, name, minimum=minimum)


def entry_filters(request: Request) -> Filters:
    """The filters of `gateway audit query`, from query parameters (shared by the audit and
    usage endpoints)."""
    try:
        return make_filters(
            {name: request.query_params.getlist(name) for name in FILTER_FIELDS},
            since=_one(request, "since"),
            until=_one(request, "until"),
            first=_optional_int(request, "from"),
            end=_optional_int(request, "to"),
        )
    except ValueError as exc:
        raise BadRequest(str(exc).replace("--", "")) from None


TIME_FILTERS = (
    Param("since", "From this time: ISO 8601 (UTC unless an offset) or 1h, 2d", STRING),
    Param("until", "Before this time (same forms as since)", STRING),
)
VALUE_FILTERS = tuple(
    Param(name, f"Only entries with this {name} (repeatable)", STRINGS) for name in FILTER_FIELDS
)


@endpoint(
    "GET",
    "/v1/audit/entries",
    summary="Audit entries as JSON objects, filtered, with keyset paging (scope audit:read)",
    scope=AUDIT_SCOPE,
    parameters=(
        Param("from", "First index", {"type": "integer", "minimum": 0}),
        Param("to", "End index (exclusive)", {"type": "integer", "minimum": 1}),
        *TIME_FILTERS,
        *VALUE_FILTERS,
        Param("limit", "Entries per page (default 100)", {"type": "integer", "minimum": 1}),
        Param("cursor", "Continue after this page (`next`)", {"type": "integer", "minimum": 0}),
    ),
    responses={"200": json_content(requiring("entries", "next"))},
    problems=(400, 401, 403, 429, 503),
)
async def entries(request: Request) -> Response:
    """Entries matching the filters, oldest first, as JSON objects, `limit` per page (at most
    MAX_ENTRIES) with a keyset cursor: `next` in the body and a `Link: <...>; rel="next"`."""
    svc, ctx, _principal = caller(request)
    _only(request, ENTRY_PARAMS)
    filters = entry_filters(request)
    limit = _optional_int(request, "limit", minimum=1) or DEFAULT_ENTRIES
    if limit > MAX_ENTRIES:
        raise BadRequest(f"at most {MAX_ENTRIES} entries per call", parameter="limit")
    after = _optional_int(request, "cursor")
    log = svc.audit_log

    def page() -> Page:
        return scan(log.entries, log.size(), filters, after=after, limit=limit)

    found = await anyio.to_thread.run_sync(page)
    ctx.decision, ctx.reason = Verdict.ALLOW, None
    ctx.rows = len(found.items)
    headers = {}
    next_cursor = None if found.next_after is None else str(found.next_after)
    if next_cursor is not None:
        query = [(k, v) for k, v in request.query_params.multi_items() if k != "cursor"]
        link = "/v1/audit/entries?" + urlencode([*query, ("cursor", next_cursor)])
        headers["Link"] = f'<{link}>; rel="next"'
    return json_response(
        {
            "entries": [
                {
                    "idx": stored.idx,
                    "entry": entry,
                    **({} if entry is not None else {"invalid": "not a canonical JSON entry"}),
                    "kid": stored.kid,
                    "sig": _b64(stored.sig),
                }
                for stored, entry in found.items
            ],
            "next": next_cursor,
        },
        headers=headers,
    )
