"""Load and validate a directory of policy files. Every problem is reported at once, each with
file:line, the offending key and a hint; nothing half-valid is ever returned.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gateway.errors import ConfigError
from gateway.policy.model import (
    GRADES,
    Classification,
    Column,
    ColumnType,
    Dataset,
    Grant,
    PolicySet,
    TransformSpec,
)
from gateway.policy.yamlsrc import Located, Path_, load_located
from gateway.privacy import transforms

_ID = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
_FILE_KEYS = {"dataset", "grants"}
_DATASET_KEYS = {"id", "title", "description", "licence", "source", "columns"}
_COLUMN_KEYS = {"type", "class", "grade", "description"}
_GRANT_KEYS = {"id", "clients", "columns", "max_rows"}
DEFAULT_MAX_ROWS = 1000


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    key: str
    message: str
    hint: str = ""

    def __str__(self) -> str:
        text = f"{self.file}:{self.line}: {self.key}: {self.message}"
        return f"{text} (hint: {self.hint})" if self.hint else text


class PolicyError(ConfigError):
    """The policy set is invalid; `problems` lists every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class _FileCheck:
    """Validation of one file; accumulates problems instead of stopping at the first."""

    def __init__(self, name: str, doc: Located) -> None:
        self.name = name
        self.doc = doc
        self.problems = [Problem(name, line, "yaml", msg) for line, msg in doc.problems]

    def problem(self, path: Path_, message: str, hint: str = "") -> None:
        key = ".".join(str(p) for p in path) or "(file)"
        self.problems.append(Problem(self.name, self.doc.line(path), key, message, hint))

    def mapping(self, value: Any, path: Path_, allowed: set[str]) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.problem(path, f"must be a mapping, got {type(value).__name__}")
            return {}
        for key in value:
            if key not in allowed:
                self.problem(
                    (*path, key), "unknown key", f"allowed keys: {', '.join(sorted(allowed))}"
                )
        return value

    def text(self, value: Any, path: Path_, *, required: bool = True) -> str:
        if value is None and not required:
            return ""
        if not isinstance(value, str) or not value.strip():
            self.problem(path, "must be a non-empty string" if value is not None else "is required")
            return ""
        return value

    def identifier(self, value: Any, path: Path_) -> str:
        text = self.text(value, path)
        if text and not _ID.match(text):
            self.problem(path, f"{text!r} is not a valid id", "lower-case letters, digits, _ and -")
        return text


def _dataset(check: _FileCheck, raw: Any, home: Path) -> Dataset | None:
    path: Path_ = ("dataset",)
    spec = check.mapping(raw, path, _DATASET_KEYS)
    if not spec:
        return None
    ds_id = check.identifier(spec.get("id"), (*path, "id"))
    source_text = check.text(spec.get("source"), (*path, "source"))
    source = (home / source_text).resolve() if source_text else home
    if source_text and not source.is_file():
        check.problem(
            (*path, "source"), f"data file {source} does not exist", "run `gateway init --demo`"
        )
    columns: list[Column] = []
    raw_columns = spec.get("columns")
    if not isinstance(raw_columns, dict) or not raw_columns:
        check.problem((*path, "columns"), "must map column names to their type and class")
        raw_columns = {}
    for name, col_raw in raw_columns.items():
        cpath = (*path, "columns", name)
        col = check.mapping(col_raw, cpath, _COLUMN_KEYS)
        try:
            ctype = ColumnType(str(col.get("type")))
        except ValueError:
            check.problem(
                (*cpath, "type"),
                f"unknown type {col.get('type')!r}",
                f"one of: {', '.join(t.value for t in ColumnType)}",
            )
            ctype = ColumnType.STRING
        try:
            cls = Classification(str(col.get("class")))
        except ValueError:
            check.problem(
                (*cpath, "class"),
                f"unknown class {col.get('class')!r}",
                f"one of: {', '.join(c.value for c in Classification)}",
            )
            cls = Classification.SENSITIVE  # unknown classification is treated as the strictest
        grade = GRADES.get(str(col.get("grade", "一般")))
        if grade is None:
            check.problem(
                (*cpath, "grade"), f"unknown grade {col.get('grade')!r}", "一般, 重要 or 核心"
            )
            grade = "核心"
        columns.append(Column(name, ctype, cls, grade, str(col.get("description", ""))))
    return Dataset(
        id=ds_id,
        title=check.text(spec.get("title"), (*path, "title")),
        description=check.text(spec.get("description"), (*path, "description"), required=False),
        licence=check.text(spec.get("licence"), (*path, "licence"), required=False),
        source=source,
        columns=tuple(columns),
        file=check.name,
    )


def _transform(check: _FileCheck, raw: Any, path: Path_, column: Column) -> TransformSpec | None:
    if isinstance(raw, str):
        name, params = raw, {}
    elif isinstance(raw, dict) and isinstance(raw.get("transform"), str):
        name = raw["transform"]
        params = {k: v for k, v in raw.items() if k != "transform"}
    else:
        check.problem(
            path,
            "must be a transform name or a mapping with 'transform'",
            "e.g. `keep` or `{transform: mask, preset: mobile}`",
        )
        return None
    for key, message in transforms.validate(name, params, column.type):
        check.problem(path if key == "transform" else (*path, key), message)
    if name == "keep" and column.classification.protected and not params.get("justification"):
        check.problem(
            path,
            f"{column.classification} column released raw without a justification",
            "add `justification: <why raw is necessary>` or choose mask/pseudonymize",
        )
    return TransformSpec(name, tuple(sorted(params.items())))


def _grants(check: _FileCheck, raw: Any, dataset: Dataset) -> list[Grant]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        check.problem(("grants",), "must be a list of grants")
        return []
    grants: list[Grant] = []
    for i, graw in enumerate(raw):
        path: Path_ = ("grants", i)
        spec = check.mapping(graw, path, _GRANT_KEYS)
        if not spec:
            continue
        grant_id = check.identifier(spec.get("id"), (*path, "id"))
        clients = spec.get("clients")
        if (
            not isinstance(clients, list)
            or not clients
            or not all(isinstance(c, str) for c in clients)
        ):
            check.problem((*path, "clients"), "must be a non-empty list of client ids")
            clients = []
        max_rows = spec.get("max_rows", DEFAULT_MAX_ROWS)
        if (
            not isinstance(max_rows, int)
            or isinstance(max_rows, bool)
            or not 1 <= max_rows <= 100_000
        ):
            check.problem((*path, "max_rows"), "must be an integer from 1 to 100000")
            max_rows = 1
        released: list[tuple[str, TransformSpec]] = []
        columns = spec.get("columns")
        if not isinstance(columns, dict) or not columns:
            check.problem((*path, "columns"), "must map released columns to one transform each")
            columns = {}
        for name, traw in columns.items():
            cpath = (*path, "columns", name)
            column = dataset.column(name)
            if column is None:
                known = ", ".join(c.name for c in dataset.columns)
                check.problem(
                    cpath, f"no column {name!r} in dataset {dataset.id!r}", f"columns: {known}"
                )
                continue
            tspec = _transform(check, traw, cpath, column)
            if tspec is not None and tspec.name != "drop":
                released.append((name, tspec))
        grants.append(
            Grant(
                grant_id,
                dataset.id,
                frozenset(clients),
                tuple(released),
                max_rows,
                check.name,
                check.doc.line(path),
            )
        )
    return grants


def policy_hash(files: Mapping[str, bytes]) -> str:
    """SHA-256 over each file's name and content hash, in name order."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(f"{name}\x00{hashlib.sha256(files[name]).hexdigest()}\n".encode())
    return digest.hexdigest()


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
    contents = {p.name: p.read_bytes() for p in paths}
    problems: list[Problem] = []
    datasets: dict[str, Dataset] = {}
    grants: list[Grant] = []
    for name, content in contents.items():
        try:
            doc = load_located(content.decode("utf-8"))
        except UnicodeDecodeError as exc:
            problems.append(Problem(name, 1, "(file)", f"not UTF-8: {exc}"))
            continue
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark is not None else 1
            problems.append(Problem(name, line, "yaml", str(getattr(exc, "problem", exc))))
            continue
        check = _FileCheck(name, doc)
        top = check.mapping(doc.value, (), _FILE_KEYS)
        dataset = _dataset(check, top.get("dataset"), home) if top else None
        if dataset is not None:
            if dataset.id in datasets:
                check.problem(
                    ("dataset", "id"),
                    f"dataset {dataset.id!r} is also defined in {datasets[dataset.id].file}",
                )
            datasets[dataset.id] = dataset
            grants.extend(_grants(check, top.get("grants"), dataset))
        problems.extend(check.problems)
    problems.extend(_cross_checks(grants))
    if problems:
        raise PolicyError(problems)
    return PolicySet(datasets, tuple(grants), policy_hash(contents))


def _cross_checks(grants: list[Grant]) -> list[Problem]:
    problems: list[Problem] = []
    seen_ids: dict[str, Grant] = {}
    seen_pairs: dict[tuple[str, str], Grant] = {}
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
        for client in sorted(grant.clients):
            pair = (client, grant.dataset)
            if pair in seen_pairs:
                other = seen_pairs[pair]
                problems.append(
                    Problem(
                        grant.file,
                        grant.line,
                        "clients",
                        f"client {client!r} already has grant {other.id!r} for {grant.dataset!r} "
                        f"({other.file}:{other.line})",
                        "two grants that could both apply are refused; merge them",
                    )
                )
            seen_pairs[pair] = grant
    return problems
