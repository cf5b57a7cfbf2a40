"""The GatewayError tree. Each error knows its HTTP status and its public, non-revealing message.

Two families: `ConfigError` for operators (bad workspace, bad policy, missing key; never sent to
HTTP callers) and `ApiError` for callers (rendered as RFC 9457 problem+json). The errors of one
part are defined next to it and join the tree too: `store.db.StoreError`,
`privacy.kanon.PrivacyUnreachable` (and the recoders' `Unreachable`, `MondrianUnreachable`),
`privacy.transforms.SyntheticClash`, `data.confine.Unconfined`, `trace.limits.ExtractError` and
`TraceTimeout`. The `gateway` command prints any of them as one line on stderr and exits with its
`exit_code`, never with a traceback.
"""

from __future__ import annotations

from typing import ClassVar


class GatewayError(Exception):
    """Base of every error the gateway raises on purpose."""

    exit_code: ClassVar[int] = 1  # what the `gateway` command exits with


class ConfigError(GatewayError):
    """The workspace or its configuration is unusable; the message says what to do."""


class AuditUnavailable(GatewayError):
    """The audit log cannot be written. Calls fail closed (503) until it can."""


class ApiError(GatewayError):
    """An error answered to an HTTP caller as problem+json."""

    status: ClassVar[int] = 500
    slug: ClassVar[str] = "internal"
    title: ClassVar[str] = "Internal error"
    reason: ClassVar[str] = "error"

    def __init__(self, detail: str | None = None, *, headers: dict[str, str] | None = None):
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.headers = headers or {}

    @property
    def type_uri(self) -> str:
        return f"urn:gateway:problem:{self.slug}"


class BadRequest(ApiError):
    status = 400
    slug = "bad-request"
    title = "Bad request"
    reason = "bad_request"

    def __init__(self, detail: str, *, parameter: str | None = None):
        super().__init__(detail)
        self.parameter = parameter


class Unauthorized(ApiError):
    status = 401
    slug = "unauthorized"
    title = "Authentication required"
    reason = "unauthenticated"

    def __init__(self, detail: str, *, error: str | None = "invalid_token"):
        challenge = 'Bearer realm="gateway"'
        if error:
            challenge += f', error="{error}"'
        super().__init__(detail, headers={"WWW-Authenticate": challenge})
        self.error = error


class Forbidden(ApiError):
    status = 403
    slug = "forbidden"
    title = "Forbidden"
    reason = "forbidden"


class Denied(Forbidden):
    """A policy decision against the caller; the reason code is safe to show it."""

    slug = "denied"
    title = "Denied by policy"

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code


class InsufficientScope(Forbidden):
    slug = "insufficient-scope"
    title = "Insufficient scope"
    reason = "scope_missing"

    def __init__(self, scope: str) -> None:
        super().__init__(f"the access token lacks the scope {scope!r}")
        challenge = f'Bearer realm="gateway", error="insufficient_scope", scope="{scope}"'
        self.headers = {"WWW-Authenticate": challenge}


class TooManyRequests(ApiError):
    status = 429
    slug = "too-many-requests"
    title = "Too many requests"
    reason = "quota_exceeded"

    def __init__(self, detail: str, *, retry_after: int, headers: dict[str, str]) -> None:
        super().__init__(detail, headers={**headers, "Retry-After": str(retry_after)})


class ClientDisabled(Unauthorized):
    """The token is valid but its client has been disabled (answered like any bad token)."""

    reason = "client_disabled"


class TokenRevoked(Unauthorized):
    """The token's jti is on the deny-list (answered like any bad token)."""

    reason = "token_revoked"


class NotFound(ApiError):
    status = 404
    slug = "not-found"
    title = "Not found"
    reason = "not_found"


class MethodNotAllowed(ApiError):
    status = 405
    slug = "method-not-allowed"
    title = "Method not allowed"
    reason = "method_not_allowed"


class MalformedRequest(ApiError):
    """The HTTP parser refused the request; nothing of it reached a handler."""

    status = 400
    slug = "malformed-request"
    title = "Malformed HTTP request"
    reason = "malformed_request"


class RequestTimeout(ApiError):
    status = 408
    slug = "request-timeout"
    title = "Request timeout"
    reason = "request_timeout"


class LengthRequired(ApiError):
    status = 411
    slug = "length-required"
    title = "Length required"
    reason = "too_large"


class PayloadTooLarge(ApiError):
    status = 413
    slug = "payload-too-large"
    title = "Request body too large"
    reason = "too_large"


class UriTooLong(ApiError):
    status = 414
    slug = "uri-too-long"
    title = "Request URI too long"
    reason = "too_large"


class HeadersTooLarge(ApiError):
    status = 431
    slug = "headers-too-large"
    title = "Request header fields too large"
    reason = "too_large"


class ServiceUnavailable(ApiError):
    status = 503
    slug = "audit-unavailable"
    title = "Service unavailable"
    reason = "audit_unavailable"


class LogInvalid(ApiError):
    """The audit log does not verify: no figures are computed from it."""

    status = 500
    slug = "audit-log-invalid"
    title = "The audit log does not verify"
    reason = "audit_log_invalid"


class PrivacyUnavailable(ApiError):
    """The view's declared privacy model (or a release floor) cannot be met on the current data:
    nothing is released until an admin changes the grant."""

    status = 503
    slug = "privacy-unreachable"
    title = "View withheld: its privacy model cannot be met"
    reason = "privacy_unreachable"


class StoreUnavailable(ApiError):
    status = 503
    slug = "store-unavailable"
    title = "Service unavailable"
    reason = "store_unavailable"


class BudgetExhausted(TooManyRequests):
    """A differentially private query would pass the privacy-loss budget of its client and
    grant for the current period: nothing is computed, nothing is spent."""

    slug = "privacy-budget-exhausted"
    title = "Privacy budget exhausted"
    reason = "budget_exhausted"


class TableUnprotectable(ApiError):
    """No cell-suppression pattern protects the requested table: nothing is released."""

    status = 422
    slug = "table-unprotectable"
    title = "Table cannot be released safely"
    reason = "table_unprotectable"
