"""RFC 8785 (JCS) canonical JSON for the subset the audit log allows: no floats.

With integers, strings, booleans, null, lists and objects, and keys sorted by UTF-16 code units,
`json.dumps(..., sort_keys=True, separators=(",", ":"), ensure_ascii=False)` produces the JCS form,
except that JCS sorts keys by UTF-16 code units while Python sorts by code points; the two agree
for keys in the Basic Multilingual Plane, which we enforce (keys are ASCII).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TypeAlias

JsonValue: TypeAlias = "str | int | bool | Sequence[JsonValue] | Mapping[str, JsonValue] | None"

# RFC 8785 3.2.2.3: integers outside IEEE 754 double's exact range are not interoperable.
_MAX_SAFE = 2**53 - 1


def _check(value: object, where: str) -> None:
    if value is None or isinstance(value, bool | str):
        return
    if isinstance(value, int):
        if not -_MAX_SAFE <= value <= _MAX_SAFE:
            raise ValueError(f"{where}: integer {value} is outside the I-JSON safe range")
        return
    if isinstance(value, float):
        raise TypeError(f"{where}: floats are not allowed in signed entries (use integers)")
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str) or not key.isascii():
                raise TypeError(f"{where}: object keys must be ASCII strings, got {key!r}")
            _check(item, f"{where}.{key}")
        return
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check(item, f"{where}[{i}]")
        return
    raise TypeError(f"{where}: {type(value).__name__} is not a JSON value")


def canonical_json(value: JsonValue) -> bytes:
    """Encode `value` as RFC 8785 canonical JSON (UTF-8 bytes). Rejects floats and odd types."""
    _check(value, "$")
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8")
