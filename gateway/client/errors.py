"""What the client raises: one base class, and the three ways a call can fail."""

from __future__ import annotations

from collections.abc import Mapping


class ClientError(Exception):
    """Base of every error the gateway client raises on purpose; the message says what to do."""


class ProblemError(ClientError):
    """The gateway answered with an error (RFC 9457 problem+json, or an OAuth error at the token
    endpoint). `status`, `type`, `detail`, the whole `problem` object and the answer's headers
    (`Retry-After`, `WWW-Authenticate`, ...) are kept."""

    def __init__(
        self,
        status: int,
        problem: Mapping[str, object],
        url: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.status = status
        self.headers = {k.lower(): v for k, v in (headers or {}).items()}
        self.problem = dict(problem)
        self.type = str(problem.get("type") or problem.get("error") or "about:blank")
        self.detail = str(
            problem.get("detail") or problem.get("error_description") or problem.get("title") or ""
        )
        self.url = url
        super().__init__(f"{status} {self.type} at {url}: {self.detail}")


class ReceiptError(ClientError):
    """An `Audit-Receipt` is missing, malformed, or not signed by a trusted audit key."""
