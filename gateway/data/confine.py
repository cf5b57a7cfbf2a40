"""Files a policy may name, and reading them without leaving their directory.

A policy edit is input like any other (promise 8): a dataset source or a hierarchy file it names
must lie inside the workspace directory meant for it, after following every link, and must be a
regular file. Nothing under keys/, state/ or audit/ is ever readable through a policy, whatever
links point where. `resolve_confined` is the check at load time (with a message for file:line
diagnostics); `read_confined` is the read itself, which walks from the root one directory at a
time without following links, so a link swapped in after the check still cannot lead out.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path, PurePath

from gateway.errors import GatewayError
from gateway.settings import Workspace

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO must not wait for a writer (it is then refused as not regular).
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_CHUNK = 1 << 20


def private_dirs(ws: Workspace) -> tuple[Path, ...]:
    """Directories no policy may ever read from, whatever links point where."""
    return (ws.keys, ws.state, ws.audit)


class Unconfined(GatewayError, ValueError):
    """A named file is outside its allowed directories, not a regular file, or too large.
    The message names the path as written and the rule; never any content."""


def _real(directory: Path) -> Path:
    return directory.resolve(strict=False)


def resolve_confined(
    home: Path,
    written: str,
    roots: Sequence[Path],
    forbidden: Sequence[Path],
) -> Path:
    """The real path of `written` (relative to `home`) if it is a regular file inside one of
    `roots` and inside none of `forbidden` after following every link; else Unconfined."""
    allowed = " or ".join(f"{_shown(home, r)}/" for r in roots)
    pure = PurePath(written)
    if "\x00" in written or not written.strip():
        raise Unconfined(f"{written!r} is not a file name")
    if pure.is_absolute():
        raise Unconfined(f"{written!r} is an absolute path; name a file under {allowed}")
    if ".." in pure.parts:
        raise Unconfined(f"{written!r} contains '..'; name a file under {allowed} directly")
    try:
        real = (home / pure).resolve(strict=True)
    except FileNotFoundError:
        raise Unconfined(f"{written!r} does not exist") from None
    except (OSError, RuntimeError) as exc:  # a link loop: RuntimeError before Python 3.13
        raise Unconfined(f"{written!r} cannot be resolved ({type(exc).__name__})") from None
    check_inside(real, roots, forbidden, written=written, allowed=allowed)
    try:
        mode = real.stat().st_mode
    except OSError as exc:
        raise Unconfined(f"{written!r} cannot be read ({exc.strerror})") from None
    if not stat.S_ISREG(mode):
        raise Unconfined(f"{written!r} is not a regular file (a directory, FIFO or device)")
    return real


def check_inside(
    real: Path,
    roots: Sequence[Path],
    forbidden: Sequence[Path],
    *,
    written: str,
    allowed: str = "",
) -> Path:
    """The root (resolved) holding `real`, if it is inside one and inside no forbidden one."""
    for bad in forbidden:
        if real.is_relative_to(_real(bad)):
            raise Unconfined(f"{written!r} leads into {bad.name}/, which a policy can never read")
    for root in roots:
        resolved = _real(root)
        if real.is_relative_to(resolved) and real != resolved:
            return resolved
    where = allowed or " or ".join(f"{r.name}/" for r in roots)
    raise Unconfined(f"{written!r} leads outside {where} (after following links)")


def read_confined(
    real: Path,
    roots: Sequence[Path],
    forbidden: Sequence[Path],
    *,
    limit: int | None = None,
    shown: str | None = None,
) -> bytes:
    """The bytes of the regular file `real`, opened from its root one component at a time
    without following any link (defence against a link swapped in after `resolve_confined`).
    Raises Unconfined when it is no longer confined, not regular, or larger than `limit`."""
    shown = shown or str(real)
    root = check_inside(real, roots, forbidden, written=shown)
    parts = real.relative_to(root).parts
    try:
        directory = os.open(root, _DIR_FLAGS & ~os.O_NOFOLLOW)  # the root itself may be a link
        try:
            for part in parts[:-1]:
                child = os.open(part, _DIR_FLAGS, dir_fd=directory)
                os.close(directory)
                directory = child
            fd = os.open(parts[-1], _FILE_FLAGS, dir_fd=directory)
        finally:
            os.close(directory)
    except OSError as exc:
        raise Unconfined(
            f"{shown} cannot be opened inside {root} without following a link ({exc.strerror})"
        ) from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise Unconfined(f"{shown} is not a regular file (a directory, FIFO or device)")
        if limit is not None and info.st_size > limit:
            raise Unconfined(f"{shown} is {info.st_size} bytes, more than the {limit} allowed")
        return _read_bounded(handle.fileno(), shown, limit)


def _read_bounded(fd: int, shown: str, limit: int | None) -> bytes:
    """Read to the end, but never more than `limit` bytes (the file may grow while read)."""
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = os.read(fd, _CHUNK)
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if limit is not None and total > limit:
            raise Unconfined(f"{shown} grew past the {limit} bytes allowed while it was read")
        chunks.append(chunk)


def _shown(home: Path, directory: Path) -> str:
    try:
        return str(directory.relative_to(home))
    except ValueError:
        return str(directory)
