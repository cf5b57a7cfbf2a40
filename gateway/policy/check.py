"""What every policy file check shares: problems (file:line, key, message, hint), the
error that lists them, the per-file check that collects them, and small typed readers
(ids, moments, positive integers)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

from gateway.errors import ConfigError
from gateway.policy.yamlsrc import (
    Located,
    Path_,
)

_ID = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    key: str
    message: str
    hint: str = ""

    def __str__(self) -> str:
        text = f"{self.file}:{self.line}: {self.key}: {self.message}"
        return f"{text} (hint: {self.hint})" if self.hint else text


class PolicyError(ConfigError):
    """The policy set is invalid; `problems` lists every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class FileCheck:
    """Validation of one file; accumulates problems instead of stopping at the first."""

    def __init__(self, name: str, doc: Located) -> None:
        self.name = name
        self.doc = doc
        self.problems = [Problem(name, line, "yaml", msg) for line, msg in doc.problems]

    def problem(self, path: Path_, message: str, hint: str = "") -> None:
        key = ".".join(str(p) for p in path) or "(file)"
        self.problems.append(Problem(self.name, self.doc.line(path), key, message, hint))

    def mapping(self, value: Any, path: Path_, allowed: set[str]) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.problem(path, f"must be a mapping, got {type(value).__name__}")
            return {}
        for key in value:
            if key not in allowed:
                self.problem(
                    (*path, key), "unknown key", f"allowed keys: {', '.join(sorted(allowed))}"
                )
        return value

    def text(self, value: Any, path: Path_, *, required: bool = True) -> str:
        if value is None and not required:
            return ""
        if not isinstance(value, str) or not value.strip():
            self.problem(path, "must be a non-empty string" if value is not None else "is required")
            return ""
        return value

    def identifier(self, value: Any, path: Path_) -> str:
        text = self.text(value, path)
        if text and not _ID.match(text):
            self.problem(path, f"{text!r} is not a valid id", "lower-case letters, digits, _ and -")
        return text


CST = timezone(timedelta(hours=8))  # dates without a time are read in China Standard Time


def parse_moment(raw: Any, *, end: bool = False) -> datetime | None:
    """A date (in CST; with `end`, through the end of that day) or an ISO 8601 date-time."""
    if isinstance(raw, datetime):
        return raw if raw.tzinfo else raw.replace(tzinfo=CST)
    if isinstance(raw, date):
        moment = datetime(raw.year, raw.month, raw.day, tzinfo=CST)
        return moment + timedelta(days=1, microseconds=-1) if end else moment
    if isinstance(raw, str):
        try:
            parsed = datetime.fromisoformat(raw)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=CST)
    return None


def read_moment(check: FileCheck, raw: Any, path: Path_, *, end: bool) -> datetime | None:
    if raw is None:
        return None
    moment = parse_moment(raw, end=end)
    if moment is not None:
        return moment
    check.problem(
        path, f"{raw!r} is not a date or date-time", "e.g. 2026-12-31 or 2026-12-31T18:00:00+08:00"
    )
    return None


def read_positive(check: FileCheck, raw: Any, path: Path_, *, maximum: int) -> int | None:
    if raw is None:
        return None
    if not isinstance(raw, int) or isinstance(raw, bool) or not 1 <= raw <= maximum:
        check.problem(path, f"must be an integer from 1 to {maximum}")
        return None
    return raw
