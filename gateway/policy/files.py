"""Load and validate a directory of policy files. Every problem is reported at once, each with
file:line, the offending key and a hint; nothing half-valid is ever returned."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import yaml

from gateway.data.confine import (
    Unconfined,
    check_inside,
    read_confined,
)
from gateway.errors import ConfigError
from gateway.model.dataset import Dataset
from gateway.model.grant import (
    Grant,
)
from gateway.model.policyset import PolicySet
from gateway.policy.check import FileCheck, PolicyError, Problem
from gateway.policy.confined import hierarchy_bytes
from gateway.policy.datasets import read_dataset
from gateway.policy.grants import filter_warnings, read_grants
from gateway.policy.yamlsrc import (
    MAX_FILE_BYTES,
    MAX_SET_BYTES,
    PARSE_SECONDS,
    error_line,
    load_located,
)

_FILE_KEYS = {"dataset", "grants"}


def policy_hash(files: Mapping[str, bytes]) -> str:
    """SHA-256 over each file's name and content hash, in name order."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(f"{name}\x00{hashlib.sha256(files[name]).hexdigest()}\n".encode())
    return digest.hexdigest()


def read_policy_files(
    paths: list[Path], directory: Path, problems: list[Problem]
) -> dict[str, bytes]:
    """The bytes of each policy (or policy-test) file, by name. A file is read only if it is a
    regular file inside `directory` (after following links) within MAX_FILE_BYTES, and while the
    set stays within MAX_SET_BYTES; anything else becomes a problem at line 1 of that file."""
    contents: dict[str, bytes] = {}
    total = 0
    for path in paths:
        try:
            real = path.resolve(strict=True)
            check_inside(real, (directory,), (), written=path.name, allowed="the policy directory")
            content = read_confined(real, (directory,), (), limit=MAX_FILE_BYTES, shown=path.name)
        except (Unconfined, OSError, RuntimeError) as exc:
            message = (
                str(exc)
                if isinstance(exc, Unconfined)
                else f"cannot be read ({type(exc).__name__})"
            )
            problems.append(
                Problem(
                    path.name,
                    1,
                    "(file)",
                    message,
                    f"at most {MAX_FILE_BYTES} bytes, a regular file in {directory.name}/",
                )
            )
            continue
        total += len(content)
        if total > MAX_SET_BYTES:
            problems.append(
                Problem(
                    path.name,
                    1,
                    "(file)",
                    f"the files together exceed {MAX_SET_BYTES} bytes",
                    "split the data out of the policies, or remove unused files",
                )
            )
            break
        contents[path.name] = content
    return contents


def load_policies(directory: Path, home: Path) -> PolicySet:
    """Load every *.yaml / *.yml file in `directory`; raise PolicyError listing every problem."""
    if not directory.is_dir():
        raise ConfigError(
            f"no policy directory at {directory}; run `gateway init --demo` or create it"
        )
    paths = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])
    if not paths:
        # An empty policy set would deny everything silently; say so instead.
        raise ConfigError(f"no policy files (*.yaml) in {directory}")
    problems: list[Problem] = []
    contents = read_policy_files(paths, directory, problems)
    datasets: dict[str, Dataset] = {}
    grants: list[Grant] = []
    deadline = time.monotonic() + PARSE_SECONDS
    for name, content in contents.items():
        try:
            doc = load_located(content.decode("utf-8"), deadline=deadline)
        except UnicodeDecodeError as exc:
            problems.append(Problem(name, 1, "(file)", f"not UTF-8: {exc}"))
            continue
        except yaml.YAMLError as exc:
            line, message = error_line(exc)
            problems.append(Problem(name, line, "yaml", message))
            continue
        check = FileCheck(name, doc)
        top = check.mapping(doc.value, (), _FILE_KEYS)
        dataset = read_dataset(check, top.get("dataset"), home) if top else None
        if dataset is not None:
            if dataset.id in datasets:
                check.problem(
                    ("dataset", "id"),
                    f"dataset {dataset.id!r} is also defined in {datasets[dataset.id].file}",
                )
            datasets[dataset.id] = dataset
            grants.extend(read_grants(check, top.get("grants"), dataset, home))
        problems.extend(check.problems)
    problems.extend(_cross_checks(grants))
    if problems:
        raise PolicyError(problems)
    # Hierarchy files shape released views too: they are part of the policy set and its hash.
    for grant in grants:
        files = [h for _, h in grant.privacy.hierarchies] if grant.privacy else []
        files += [
            (home / str(spec.options["hierarchy"])).resolve()
            for _, spec in grant.columns
            if spec.name == "generalize" and "hierarchy" in spec.options
        ]
        for hierarchy in files:
            shown = hierarchy.relative_to(home) if hierarchy.is_relative_to(home) else hierarchy
            label = f"hierarchy:{shown}"
            try:
                contents[label] = hierarchy_bytes(home, hierarchy)
            except Unconfined as exc:  # changed since it was checked a moment ago
                raise PolicyError(
                    [Problem(grant.file, grant.line, "hierarchy", str(exc))]
                ) from None
    file_hashes = {name: hashlib.sha256(content).hexdigest() for name, content in contents.items()}
    return PolicySet(
        datasets,
        tuple(grants),
        policy_hash(contents),
        tuple(name for name in contents if not name.startswith("hierarchy:")),
        tuple(
            _warnings(grants, datetime.now(UTC))
            + [w for g in grants for w in filter_warnings(g, datasets[g.dataset])]
        ),
        file_hashes,
        dict(contents),
    )


def _windows_overlap(a: Grant, b: Grant) -> bool:
    earliest_end = min(
        a.valid_until or datetime.max.replace(tzinfo=UTC),
        b.valid_until or datetime.max.replace(tzinfo=UTC),
    )
    latest_start = max(
        a.valid_from or datetime.min.replace(tzinfo=UTC),
        b.valid_from or datetime.min.replace(tzinfo=UTC),
    )
    return latest_start <= earliest_end


def _cross_checks(grants: list[Grant]) -> list[Problem]:
    problems: list[Problem] = []
    seen_ids: dict[str, Grant] = {}
    for grant in grants:
        if grant.id in seen_ids:
            other = seen_ids[grant.id]
            problems.append(
                Problem(
                    grant.file,
                    grant.line,
                    "id",
                    f"grant id {grant.id!r} is also used at {other.file}:{other.line}",
                )
            )
        seen_ids[grant.id] = grant
    for i, a in enumerate(grants):
        for b in grants[i + 1 :]:
            if a.dataset != b.dataset or not _windows_overlap(a, b):
                continue
            clients, purposes = a.clients & b.clients, a.purposes & b.purposes
            if clients and purposes:
                problems.append(
                    Problem(
                        b.file,
                        b.line,
                        "clients",
                        f"grant {b.id!r} and grant {a.id!r} ({a.file}:{a.line}) could both apply"
                        f" to client {sorted(clients)[0]!r}, dataset {a.dataset!r},"
                        f" purpose {sorted(purposes)[0]!r}",
                        "give them disjoint purposes or validity windows, or merge them",
                    )
                )
    return problems


def _warnings(grants: list[Grant], now: datetime) -> list[str]:
    return [
        f"{g.file}:{g.line}: grant {g.id!r} expired on {g.valid_until:%Y-%m-%d %H:%M %z}"
        for g in grants
        if g.valid_until is not None and g.valid_until < now
    ] + [
        f"{g.file}:{g.line}: grant {g.id!r}: max_rows is deprecated; write "
        "limits: {rows_per_request: N} (the same page limit)"
        for g in grants
        if "max_rows" in g.limits.deprecated
    ]
