"""Files a policy names, read only from inside the workspace: dataset sources (under data/)
and ARX hierarchy files (under policies/ or data/), each within its size limit (promise 8)."""

from __future__ import annotations

from pathlib import Path

from gateway.data.confine import (
    Unconfined,
    private_dirs,
    read_confined,
    resolve_confined,
)
from gateway.policy.check import FileCheck
from gateway.policy.yamlsrc import (
    Path_,
)
from gateway.privacy.lattice import parse_hierarchy
from gateway.settings import Workspace

MAX_HIERARCHY_BYTES = 16 << 20  # one ARX hierarchy file


_SOURCE_HINT = (
    "a dataset source is a regular file under the workspace's data/ directory, named relative "
    "to the workspace (e.g. data/people.csv): no absolute path, no '..', no link leading out"
)


_HIERARCHY_HINT = (
    "an ARX hierarchy file (value;level1;...;* per line) under the workspace's policies/ or "
    "data/ directory, named relative to the workspace (e.g. policies/hierarchies/city.csv)"
)


def _hierarchy_roots(home: Path) -> tuple[Path, Path]:
    ws = Workspace(home)
    return (ws.policies, ws.data)


def source_path(check: FileCheck, path: Path_, home: Path, written: str) -> Path | None:
    """The real path of a dataset source, if it is confined to data/ (else a problem)."""
    ws = Workspace(home)
    try:
        return resolve_confined(home, written, (ws.data,), private_dirs(ws))
    except Unconfined as exc:
        hint = "run `gateway init --demo`" if "does not exist" in str(exc) else _SOURCE_HINT
        check.problem(path, f"data file {exc}", hint)
        return None


def read_hierarchy(
    check: FileCheck, path: Path_, home: Path, written: str
) -> tuple[Path, list[dict[str, str]]] | None:
    """A hierarchy file confined to policies/ or data/, and its levels (else a problem)."""
    try:
        real = resolve_confined(
            home, written, _hierarchy_roots(home), private_dirs(Workspace(home))
        )
        levels = parse_hierarchy(hierarchy_bytes(home, real).decode("utf-8"), written)
    except Unconfined as exc:
        message = str(exc)
    except UnicodeDecodeError:
        message = f"{written!r}: not UTF-8"
    except ValueError as exc:  # not a hierarchy (its message names the file, never a line)
        message = str(exc)
    else:
        return real, levels
    check.problem(path, f"cannot read hierarchy {message}", _HIERARCHY_HINT)
    return None


def hierarchy_bytes(home: Path, real: Path) -> bytes:
    ws = Workspace(home)
    return read_confined(real, _hierarchy_roots(home), private_dirs(ws), limit=MAX_HIERARCHY_BYTES)
