"""Small file helpers: create-only writes with explicit modes."""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE = 0o600
PUBLIC = 0o644


def write_new(path: Path, data: bytes, mode: int = PRIVATE) -> bool:
    """Create `path` with `data` and `mode`; never overwrite. Returns False if it already existed.

    The file is created with its final mode (O_EXCL), so a private key is never world-readable,
    not even for an instant.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
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
