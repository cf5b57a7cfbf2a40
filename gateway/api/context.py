"""The per-call audit context: handlers fill it in, the audit middleware logs it."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from starlette.requests import Request

from gateway.audit.canonical import JsonValue


@dataclass
class AuditContext:
    rid: str
    route: str | None = None  # the route template, never the raw path (it may hold anything)
    client: str | None = None
    token_sha256: str | None = None
    decision: str = "none"  # allow | deny | error | none (no access decision was needed)
    reason: str | None = None
    dataset: str | None = None
    grant: str | None = None
    policy: str | None = None
    transforms: list[str] = field(default_factory=list)
    rows: int = 0
    headers: dict[str, str] = field(default_factory=dict)  # extra response headers (rate limits)
    on_finish: list[Callable[[], None]] = field(default_factory=list)  # run after the response

    def event(
        self, *, method: str, path: str, query: str, status: int, body: bytes
    ) -> dict[str, JsonValue]:
        """The call as an audit event: hashes stand in for anything a caller could fill with
        personal data (raw path, query string, response body)."""
        return {
            "kind": "http",
            "rid": self.rid,
            "method": method[:16],
            "route": self.route,
            "path_sha256": _sha256(path.encode("utf-8", "surrogateescape")),
            "query_sha256": _sha256(query.encode("latin-1", "replace")) if query else None,
            "status": status,
            "client": self.client,
            "token_sha256": self.token_sha256,
            "decision": self.decision,
            "reason": self.reason,
            "dataset": self.dataset,
            "grant": self.grant,
            "policy": self.policy,
            "transforms": list(self.transforms),
            "rows": self.rows,
            "resp_sha256": _sha256(body),
        }


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def audit_context(request: Request) -> AuditContext:
    ctx = request.scope.get("state", {}).get("audit")
    if not isinstance(ctx, AuditContext):
        raise RuntimeError("the audit middleware is not installed")
    return ctx
