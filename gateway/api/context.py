"""The per-call audit context: handlers fill it in, the audit middleware logs it."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from starlette.requests import Request

from gateway.audit.canonical import JsonValue
from gateway.audit.events import Event, http_call
from gateway.model.decision import Verdict


@dataclass
class AuditContext:
    rid: str
    route: str | None = None  # the route template, never the raw path (it may hold anything)
    client: str | None = None
    token_sha256: str | None = None
    decision: Verdict = Verdict.NONE
    reason: str | None = None
    dataset: str | None = None
    purpose: str | None = None  # a purpose the policy set declares; "(undeclared)" otherwise
    grant: str | None = None
    policy: str | None = None
    transforms: Sequence[str] = ()
    rows: int = 0
    view: str | None = None  # the view a rows response was cut from (its key)
    row_ids: str | None = None  # which of its rows it released (gateway/audit/rowset.py)
    rejected: str | None = None  # the defect, when the HTTP parser refused the request
    peer: str | None = None  # the peer's address, logged for refused requests only
    headers: dict[str, str] = field(default_factory=dict)  # extra response headers (rate limits)
    # A streamed export (gateway/api/export.py): its entry is committed when the response
    # starts, before the first byte of the body, so it cannot hold the body's hash.
    stream: str | None = None
    extra: dict[str, JsonValue] = field(default_factory=dict)  # endpoint fields (aggregates)
    on_finish: list[Callable[[], None]] = field(default_factory=list)  # run after the response
    # A response body whose SHA-256 is already known (a cached page), with that digest: used
    # only when the body sent is that very object, so the digest logged is the body's own.
    known_body: tuple[bytes, str] | None = None

    def event(
        self, *, method: str, path: str, query: str, status: int, body: bytes, hmacs: CallHmacs
    ) -> Event:
        """The call as an audit event. The raw path and query string may hold personal values
        (a 身份证号 in a filter), which a plain hash would not hide (the value space is small
        enough to enumerate): they are logged as HMACs under a workspace key instead."""
        released = self.decision == Verdict.ALLOW and status == 200
        path_hmac, query_hmac = hmacs.of(self.client, path, query)
        return http_call(
            rid=self.rid,
            method=method[:16],
            route=self.route,
            path_hmac=path_hmac,
            query_hmac=query_hmac,
            status=status,
            client=self.client,
            token_sha256=self.token_sha256,
            decision=self.decision,
            reason=self.reason,
            dataset=self.dataset,
            purpose=self.purpose,
            grant=self.grant,
            policy=self.policy,
            transforms=self.transforms,
            rows=self.rows,
            resp_sha256=None if self.stream else self._body_sha256(body),
            # Nothing of a refused request was parsed (its bytes may hold anything): who and why.
            rejected=self.rejected,
            peer=self.peer if self.rejected is not None else None,
            # Which rows left, so a leak can be followed to the calls that released it.
            view=self.view if released else None,
            row_ids=self.row_ids if released else None,
            export=self.stream,
            extra=self.extra,
        )

    def _body_sha256(self, body: bytes) -> str:
        known = self.known_body
        if known is not None and known[0] is body:
            return known[1]
        return _sha256(body)


class CallHmacs:
    """The HMACs of a call's raw path and query string under the workspace key, remembered per
    (client, path, query): a client repeating a call (the next page of the same query, a
    poller) does not hash them again. Kept per authenticated client only, so how long one call
    takes says nothing about which paths and queries other callers sent. Bounded: only short
    pairs are kept, and the table is emptied when full."""

    KEEP_BYTES = 512  # longer paths and queries are hashed every time
    KEEP_MAX = 4096

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._known: dict[tuple[str | None, str, str], tuple[str, str | None]] = {}

    def of(self, client: str | None, path: str, query: str) -> tuple[str, str | None]:
        """(HMAC of the path, HMAC of the query string or None when there is none)."""
        known = self._known.get((client, path, query))
        if known is not None:
            return known
        key = self._key
        found = (
            _hmac(key, _path_bytes(path)),
            _hmac(key, query.encode("latin-1", "replace")) if query else None,
        )
        if client is not None and len(path) + len(query) <= self.KEEP_BYTES:
            if len(self._known) >= self.KEEP_MAX:
                self._known.clear()
            self._known[(client, path, query)] = found
        return found


def _path_bytes(path: str) -> bytes:
    """The path as bytes, whatever the server put in it (any lone surrogate included)."""
    try:
        return path.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return path.encode("utf-8", "surrogatepass")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _hmac(key: bytes, data: bytes) -> str:
    return hmac.new(key, data, hashlib.sha256).hexdigest()


def audit_context(request: Request) -> AuditContext:
    ctx = request.scope.get("state", {}).get("audit")
    if not isinstance(ctx, AuditContext):
        raise RuntimeError("the audit middleware is not installed")
    return ctx
