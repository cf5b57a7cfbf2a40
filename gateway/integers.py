"""The one strict integer parser for everything a caller sends (query parameters, filter values,
header values).

`str.isdigit()` is true for `²`, `①` and other Unicode digits that `int()` rejects, and `int()`
itself accepts what no caller should send: `" 12 "`, `"1_000"`, `"+5"`, Arabic-Indic `"١٢"`, and
numbers of thousands of digits. Here an integer is an optional `-` (only where negatives are
allowed) and 1 to `MAX_DIGITS` ASCII digits, nothing else; anything else is a 400 naming the
parameter. Knows nothing of HTTP.
"""

from __future__ import annotations

import re

from gateway.errors import BadRequest

MAX_DIGITS = 18  # every value fits a signed 64-bit integer (pandas int64 columns)
_UNSIGNED = re.compile(rb"[0-9]{1,%d}" % MAX_DIGITS)
_SIGNED = re.compile(rb"-?[0-9]{1,%d}" % MAX_DIGITS)


def parse_int(
    raw: str | bytes,
    name: str,
    *,
    minimum: int | None = 0,
    maximum: int | None = None,
) -> int:
    """`raw` as an int in [minimum, maximum], or BadRequest naming `name`. A negative value is
    accepted only where `minimum` is None or negative. The message never repeats the value."""
    pattern = _SIGNED if minimum is None or minimum < 0 else _UNSIGNED
    data = raw if isinstance(raw, bytes) else raw.encode("ascii") if raw.isascii() else b""
    if pattern.fullmatch(data) is None:
        raise BadRequest(f"{name} must be {_describe(minimum, maximum)}", parameter=name)
    value = int(data)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise BadRequest(f"{name} must be {_describe(minimum, maximum)}", parameter=name)
    return value


def _describe(minimum: int | None, maximum: int | None) -> str:
    if minimum is not None and maximum is not None:
        bounds = f" from {minimum} to {maximum}"
    elif minimum is not None:
        bounds = f" of at least {minimum}"
    else:
        bounds = f" of at most {maximum}" if maximum is not None else ""
    return f"an integer{bounds}, written with at most {MAX_DIGITS} ASCII digits"
