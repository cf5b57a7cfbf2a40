"""The pipe between a serving process and its audit writer process (audit/child.py): frames of
a 4-byte big-endian length and a `marshal` payload. Both ends are the same interpreter running
the same code, and the pipe is private to them (the child's stdin and stdout), so `marshal` of
built-in values (dicts, lists, str, int, bytes, None) is safe here and faster than JSON.

Parent to child: the opening message (a dict), then `("append", batch, [event, ...], ts)` (ts:
the serving process's time in ms, which stamps the entries) and
`("pragma", name, value)` (tests make the child's writes fail, see AuditLog.fail_writes).
Child to parent: `("done", [(batch, [outcome, ...]), ...], halt)` once per group commit, and
`("fatal", message)` when the child cannot open the log."""

from __future__ import annotations

import marshal
import struct
from collections.abc import Mapping, Sequence
from typing import Any

from gateway.audit.canonical import JsonValue
from gateway.audit.entry import Appended
from gateway.errors import AuditUnavailable

_LENGTH = struct.Struct(">I")
MAX_FRAME = 1 << 28  # far above any batch; a larger length means the stream is corrupt

Event = Mapping[str, JsonValue]
# ("ok", idx, ts, leaf, kid, sig) or ("err", kind, message)
Outcome = tuple[Any, ...]
# The child's halt as (reason, saved, resume counter at the halt), or None.
HaltState = tuple[str, bool, str | None] | None

ERRORS: dict[str, type[Exception]] = {
    "AuditUnavailable": AuditUnavailable,
    "TypeError": TypeError,
    "ValueError": ValueError,
}


def frame(message: object) -> bytes:
    """One frame (raises ValueError when the message holds a value marshal cannot carry)."""
    payload = marshal.dumps(message)  # type: ignore[arg-type]  # ValueError when it cannot
    return _LENGTH.pack(len(payload)) + payload


class Frames:
    """Splits a byte stream into messages."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Any]:
        self._buffer += data
        messages: list[Any] = []
        while len(self._buffer) >= _LENGTH.size:
            (length,) = _LENGTH.unpack_from(self._buffer)
            if length > MAX_FRAME:
                raise ValueError(f"audit writer pipe: a frame of {length} bytes")
            end = _LENGTH.size + length
            if len(self._buffer) < end:
                break
            # The peer is our own child (or parent) over a private pipe; see the module doc.
            messages.append(marshal.loads(bytes(self._buffer[_LENGTH.size : end])))  # noqa: S302
            del self._buffer[:end]
        return messages


def plain(value: object) -> object:
    """`value` with str/int/float subclasses (enums) as the exact built-in types marshal
    carries, and mappings and sequences as dicts and lists (the JSON they encode to is the
    same); anything else is left for marshal to refuse."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str):
        return "" + value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, Mapping):
        return {("" + k if isinstance(k, str) else k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def encode_outcome(result: Appended | BaseException) -> Outcome:
    if isinstance(result, Appended):
        return ("ok", result.idx, result.ts, result.leaf, result.kid, result.sig)
    kind = type(result).__name__
    return ("err", kind if kind in ERRORS else "AuditUnavailable", str(result))


def decode_outcome(origin: str, outcome: Sequence[Any]) -> Appended | Exception:
    if outcome[0] == "ok":
        _, idx, ts, leaf, kid, sig = outcome
        return Appended(origin, idx, ts, leaf, kid, sig)
    _, kind, message = outcome
    return ERRORS.get(kind, AuditUnavailable)(message)
