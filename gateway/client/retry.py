"""When to try a call again: 429 and 503 only, after the server's `Retry-After`, within bounds.

`Retry-After` (RFC 9110 section 10.2.3) is either a number of seconds or an HTTP date. A value
that is neither (odd Unicode digits, a negative number, text) counts as absent, and then the
client waits a short exponential backoff. A wait longer than the caller's bound is not waited
out: the call fails at once with the server's answer, which says when to come back.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

RETRY_STATUSES = frozenset({429, 503})
# A 503 that waiting does not mend: the grant's privacy model cannot be met on the data.
PERMANENT = frozenset({"urn:gateway:problem:privacy-unreachable"})
_SECONDS = re.compile(r"[0-9]{1,10}")  # ASCII digits only: `str.isdigit` accepts "²" and "①"


@dataclass(frozen=True)
class RetryPolicy:
    """At most `attempts` tries of one call; each wait at most `max_wait` seconds."""

    attempts: int = 4
    max_wait: float = 60.0
    backoff: float = 1.0  # first wait when the server names none; doubles each time

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1 (1 means: never retry)")
        if self.max_wait < 0 or self.backoff < 0:
            raise ValueError("max_wait and backoff must not be negative")


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds named by a Retry-After header value, or None when it names none we can trust."""
    if value is None:
        return None
    text = value.strip()
    if _SECONDS.fullmatch(text):
        return float(int(text))
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        return None  # RFC 9110 dates are GMT; a date without a zone is not one of them
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())


def delay(
    policy: RetryPolicy,
    status: int,
    headers: Mapping[str, str],
    attempt: int,
    problem_type: str | None = None,
) -> float | None:
    """How long to wait before try number `attempt + 1` (attempt counts from 1), or None when
    the answer is final: not a 429/503 (or a 503 waiting cannot mend), tries used up, or a
    wait beyond the bound."""
    if status not in RETRY_STATUSES or problem_type in PERMANENT or attempt >= policy.attempts:
        return None
    named = retry_after(headers.get("retry-after"))
    wait = named if named is not None else policy.backoff * 2 ** (attempt - 1)
    return wait if wait <= policy.max_wait else None
