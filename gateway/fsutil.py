"""Small file helpers: everything the gateway writes is private to its owner, whatever the umask.

A workspace holds raw personal data (data/), signing keys (keys/), the audit log (audit/) and
client secrets (state/): files are created 0600 and directories 0700, with their final mode at
creation (O_CREAT with the mode, then a chmod in case the umask narrowed it), so nothing is
readable by another user, not even for an instant. Public material (certificates, public keys)
follows the same rule: the owner hands it out, the file system does not.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import IO

PRIVATE = 0o600
PRIVATE_DIR = 0o700
_OTHERS = stat.S_IRWXG | stat.S_IRWXO


def private_dir(path: Path) -> Path:
    """Create `path` and its missing parents 0700. Existing directories are left as they are
    (the workspace's home may be a directory the operator made, or the current directory)."""
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(PRIVATE_DIR)
        except FileExistsError:
            continue  # made meanwhile by another process
        os.chmod(directory, PRIVATE_DIR)  # the umask may have narrowed the mode given to mkdir
    return path


def write_new(path: Path, data: bytes, mode: int = PRIVATE) -> bool:
    """Create `path` with `data` and `mode`; never overwrite. Returns False if it already existed.

    The file is created with its final mode (O_EXCL), so a private key is never world-readable,
    not even for an instant.
    """
    private_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        return False
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    os.chmod(path, mode)  # the umask may have narrowed the mode given to open()
    return True


def private_file(path: Path) -> None:
    """Create `path` empty and 0600 unless it exists: for files a library creates on first open
    with the umask's mode (SQLite), which then keeps the mode it finds. SQLite gives its -wal
    and -shm files the database file's permissions."""
    private_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE)
    except FileExistsError:
        return
    os.close(fd)
    os.chmod(path, PRIVATE)


@contextlib.contextmanager
def new_private(path: Path) -> Iterator[IO[bytes]]:
    """A new 0600 file to write into (never an existing one); removed if writing fails."""
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE)
    os.chmod(path, PRIVATE)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def replace_private(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically (readers see the old or the new file), 0600."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    with new_private(tmp) as handle:
        handle.write(data)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def exposed(paths: list[Path]) -> list[Path]:
    """The regular files under `paths` (files or directories) that another user may access."""
    found: list[Path] = []
    for top in paths:
        candidates = [top] if top.is_file() else sorted(top.rglob("*")) if top.is_dir() else []
        for path in candidates:
            try:
                info = path.lstat()
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode) and info.st_mode & _OTHERS:
                found.append(path)
    return found
