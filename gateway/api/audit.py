"""Transparency endpoints: the signed checkpoint, inclusion and consistency proofs and the audit
keys with their rotations (public, like Certificate Transparency), and raw entries (scope
audit:read)."""

from __future__ import annotations

import base64

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response

from gateway.api.common import AUDIT_SCOPE, caller, json_response, services
from gateway.api.context import audit_context
from gateway.errors import BadRequest, NotFound
from gateway.integers import parse_int

MAX_ENTRIES = 1000


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


async def checkpoint(request: Request) -> Response:
    svc = services(request)
    audit_context(request).route = "/v1/audit/checkpoint"
    latest = await anyio.to_thread.run_sync(svc.audit_log.latest_checkpoint)
    if latest is None:
        raise NotFound("no checkpoint has been signed yet; try again in a few seconds")
    return Response(
        latest.note, media_type="text/plain; charset=utf-8", headers={"Cache-Control": "no-cache"}
    )


async def proof(request: Request) -> Response:
    svc = services(request)
    audit_context(request).route = "/v1/audit/proof"
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


async def consistency(request: Request) -> Response:
    svc = services(request)
    audit_context(request).route = "/v1/audit/consistency"
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


async def keys(request: Request) -> Response:
    """Every audit key with its window, and the key.rotate entries that handed over from one to
    the next (signed by the old key), so a caller who trusts an old key can follow rotations
    (gateway.audit.rotation)."""
    svc = services(request)
    audit_context(request).route = "/v1/audit/keys"
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


async def entries(request: Request) -> Response:
    svc, ctx, _principal = caller(request, "/v1/audit/entries", scope=AUDIT_SCOPE)
    _only(request, {"from", "to"})
    first, end = _int(request, "from"), _int(request, "to", minimum=1)
    if end <= first:
        raise BadRequest("to must be larger than from", parameter="to")
    if end - first > MAX_ENTRIES:
        raise BadRequest(f"at most {MAX_ENTRIES} entries per call", parameter="to")
    rows = await anyio.to_thread.run_sync(svc.audit_log.entries, first, end)
    ctx.decision, ctx.reason = "allow", None
    ctx.rows = len(rows)
    return json_response(
        {
            "entries": [
                {
                    "idx": e.idx,
                    "entry": e.line.decode("utf-8", "replace"),
                    "kid": e.kid,
                    "sig": _b64(e.sig),
                }
                for e in rows
            ]
        }
    )
