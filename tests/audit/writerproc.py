"""Helpers for the writer-process tests: find a serving process's writer child, stop it, and
wait (on conditions, never on a clock) until it is stopped, has unread entries or is gone."""

from __future__ import annotations

import array
import fcntl
import os
import termios
import time
from collections.abc import Callable
from pathlib import Path


def state(pid: int) -> str | None:
    """The process state letter from /proc (R, S, T, Z, ...), None once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def descendants(pid: int) -> list[int]:
    """Every live process below `pid`."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def writers_of(pid: int) -> list[int]:
    """The audit writer processes below `pid` (a `gateway serve` and its workers)."""
    found = []
    for child in descendants(pid):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"gateway.audit.child" in cmdline and state(child) not in (None, "Z"):
            found.append(child)
    return found


def holds_open(pid: int, path: Path) -> bool:
    """Whether process `pid` has `path` open: a writer child opens its log only once its
    imports are done and it has read its configuration, so it is then ready to commit."""
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False
    target = str(path.resolve())
    for fd in fds:
        try:
            if os.readlink(fd) == target:
                return True
        except OSError:
            continue
    return False


def unread(pid: int) -> int:
    """Bytes waiting in the writer's stdin pipe (entries sent to it and not yet read)."""
    fd = os.open(f"/proc/{pid}/fd/0", os.O_RDONLY | os.O_NONBLOCK)
    try:
        count = array.array("i", [0])
        fcntl.ioctl(fd, termios.FIONREAD, count)
        return count[0]
    finally:
        os.close(fd)


def wait_for(condition: Callable[[], object], what: str, seconds: float = 60) -> None:
    """Poll `condition()` until it is true; fail naming `what` if it never becomes true."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"gave up waiting: {what}")
