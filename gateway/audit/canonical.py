"""RFC 8785 (JCS) canonical JSON for the subset the audit log allows: no floats.

With integers, strings, booleans, null, lists and objects, and keys sorted by UTF-16 code units,
`json.dumps(..., sort_keys=True, separators=(",", ":"), ensure_ascii=False)` produces the JCS form,
except that JCS sorts keys by UTF-16 code units while Python sorts by code points; the two agree
for keys in the Basic Multilingual Plane, which we enforce (keys are ASCII).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeAlias

JsonValue: TypeAlias = "str | int | bool | Sequence[JsonValue] | Mapping[str, JsonValue] | None"

# RFC 8785 3.2.2.3: integers outside IEEE 754 double's exact range are not interoperable.
MAX_SAFE = 2**53 - 1
# json.dumps with these arguments builds this same encoder on every call; one is enough (it
# keeps no state between calls). Same options, so the same bytes.
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _orjson() -> Callable[[Any], bytes] | None:
    """orjson's encoder with sorted keys; None where it is not installed (the gateway requires
    it; the auditor's verifier, verifier/pyproject.toml, ships this module with `cryptography`
    as its only dependency and encodes with `json`: the same bytes)."""
    try:
        import orjson
    except ImportError:
        return None

    def dumps(value: Any) -> bytes:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)

    return dumps


_FAST = _orjson()


def _check(value: object, where: str) -> None:
    if value is None or isinstance(value, bool | str):
        return
    if isinstance(value, int):
        if not -MAX_SAFE <= value <= MAX_SAFE:
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


def _plain(value: object) -> bool:
    """True when `value` is built only of the exact types an entry holds (str, int in the safe
    range, bool, None, dict with ASCII str keys, list) and so passes `_check`. A cheap first
    look by exact type (every audit entry passes it); anything else, an enum or a tuple
    included, goes to `_check`, which accepts or rejects it with its usual message."""
    kind = type(value)
    if kind is dict:
        try:
            if not "".join(value).isascii():  # type: ignore[arg-type]  # every key at once
                return False
        except TypeError:  # a key that is no str
            return False
        items: Iterable[object] = value.values()  # type: ignore[attr-defined]  # a dict
    elif kind is list:
        items = value  # type: ignore[assignment]  # a list
    else:
        return _plain_scalar(value)
    for item in items:
        kind = type(item)
        if kind is str or item is None or kind is bool:
            continue
        if kind is int:
            if -MAX_SAFE <= item <= MAX_SAFE:  # type: ignore[operator]  # an int
                continue
            return False
        if not _plain(item):
            return False
    return True


def _plain_scalar(value: object) -> bool:
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    return kind is int and -MAX_SAFE <= value <= MAX_SAFE  # type: ignore[operator]  # an int


def json_str(value: str) -> str:
    """A str as `canonical_json` writes it inside a value (the same encoder's string form)."""
    return _ENCODER.encode(value)


def canonical_json(value: JsonValue) -> bytes:
    """Encode `value` as RFC 8785 canonical JSON (UTF-8 bytes). Rejects floats and odd types.

    A value of exact built-in types (every audit entry) is written by orjson with sorted keys:
    for those types it writes the bytes `json.dumps` does (keys are ASCII, so byte order is
    code point order; the same escapes, lowercase `\\u00XX` for the other controls, raw UTF-8
    for the rest; property-tested on every code point), in a quarter of the time, and the audit
    writer encodes one entry per call. What orjson refuses (a lone surrogate, nesting past its
    limit) goes to `json`, which accepts or refuses it as before."""
    if _plain(value):
        if _FAST is not None:
            try:
                return _FAST(value)
            except TypeError:  # orjson.JSONEncodeError
                pass
    else:
        _check(value, "$")
    return _ENCODER.encode(value).encode("utf-8")
