"""Load and validate a directory of policy files. Every problem is reported at once, each with
file:line, the offending key and a hint; nothing half-valid is ever returned.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import yaml

from gateway.data.confine import (
    Unconfined,
    check_inside,
    private_dirs,
    read_confined,
    resolve_confined,
)
from gateway.errors import ConfigError
from gateway.policy.floors import floor_problem, has_words
from gateway.policy.model import (
    FILTER_OPS,
    GRADES,
    KINDS,
    NOT_DERIVED,
    Classification,
    Column,
    ColumnType,
    Condition,
    Dataset,
    Fingerprint,
    Grant,
    Limits,
    PolicySet,
    PrivacyModel,
    RowFilter,
    TransformSpec,
    derived_qis,
)
from gateway.policy.yamlsrc import (
    MAX_FILE_BYTES,
    MAX_SET_BYTES,
    PARSE_SECONDS,
    Located,
    Path_,
    error_line,
    load_located,
)
from gateway.privacy import transforms
from gateway.privacy.lattice import parse_hierarchy
from gateway.scopes import DATASETS_READ, SCOPES
from gateway.settings import Workspace

_ID = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
_FILE_KEYS = {"dataset", "grants"}
_DATASET_KEYS = {"id", "title", "description", "licence", "source", "columns"}
_COLUMN_KEYS = {"type", "class", "grade", "description", "kind"}
_GRANT_KEYS = {
    "id",
    "clients",
    "purposes",
    "valid",
    "scopes",
    "columns",
    "row_filter",
    "limits",
    "privacy",
    "fingerprint",
}
_LIMIT_KEYS = {"rows_per_request", "requests_per_minute", "rows_per_day"}
_PRIVACY_KEYS = {
    "k",
    "quasi_identifiers",
    "l",
    "sensitive",
    "max_suppression",
    "hierarchies",
    "recoding",
    "labels",
}
RECODINGS = ("full-domain", "local")
LABELS = ("hierarchy", "sets")
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
    source = _source(check, (*path, "source"), home, source_text) if source_text else None
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
        kind = col.get("kind")
        if kind is not None and kind not in KINDS:
            check.problem((*cpath, "kind"), f"unknown kind {kind!r}", f"one of: {', '.join(KINDS)}")
            kind = None
        columns.append(
            Column(name, ctype, cls, grade, str(col.get("description", "")), kind and str(kind))
        )
    return Dataset(
        id=ds_id,
        title=check.text(spec.get("title"), (*path, "title")),
        description=check.text(spec.get("description"), (*path, "description"), required=False),
        licence=check.text(spec.get("licence"), (*path, "licence"), required=False),
        source=source or Workspace(home).data,
        columns=tuple(columns),
        file=check.name,
    )


def _transform(
    check: _FileCheck, raw: Any, path: Path_, column: Column, home: Path
) -> tuple[TransformSpec | None, str | None]:
    """The column's transform, and its `not_identifying` justification when it has one."""
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
        return None, None
    # Two keys every transform takes: why a (nearly) raw release is necessary, and why the
    # column does not identify anyone (which leaves it out of the quasi-identifiers).
    justification = params.pop("justification", None)
    not_identifying = params.pop("not_identifying", None)
    for key, message in transforms.validate(name, params, column.type):
        check.problem(path if key == "transform" else (*path, key), message)
    if justification is not None:
        if not has_words(justification):
            check.problem(
                (*path, "justification"),
                "a justification must carry words, not blanks or punctuation",
                "say why the raw value is necessary for the purpose",
            )
        params["justification"] = justification
    floor = floor_problem(name, params, column, justification)
    if floor is not None:
        check.problem(path, *floor)
    if not_identifying is not None:
        if not has_words(not_identifying):
            check.problem(
                (*path, "not_identifying"),
                "not_identifying needs a written justification (words, not blanks)",
                "say why this column cannot help single anyone out",
            )
            not_identifying = None
        elif name in NOT_DERIVED:
            check.problem(
                (*path, "not_identifying"),
                f"{name} releases no real attribute; not_identifying does not apply",
            )
            not_identifying = None
    if name == "generalize" and isinstance(params.get("hierarchy"), str):
        table = _hierarchy_level(check, path, home, params)
        if table is not None:
            params[transforms.HIERARCHY_TABLE] = table
    spec = TransformSpec(name, tuple(sorted(params.items())))
    return spec, None if not_identifying is None else str(not_identifying)


def _hierarchy_level(
    check: _FileCheck, path: Path_, home: Path, params: dict[str, Any]
) -> tuple[tuple[str, str], ...] | None:
    """A generalize transform's hierarchy file, read now: the level's value -> label pairs."""
    file = str(params["hierarchy"])
    found = _hierarchy(check, (*path, "hierarchy"), home, file)
    if found is None:
        return None
    _, levels = found
    level = params.get("hierarchy_level")
    if not isinstance(level, int) or not 1 <= level <= len(levels):
        check.problem(
            (*path, "hierarchy_level"),
            f"{file} has levels 1 to {len(levels)}, not {level!r}",
        )
        return None
    return tuple(sorted(levels[level - 1].items()))


# --- files a policy names: dataset sources and hierarchy files --------------------------------

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


def _source(check: _FileCheck, path: Path_, home: Path, written: str) -> Path | None:
    """The real path of a dataset source, if it is confined to data/ (else a problem)."""
    ws = Workspace(home)
    try:
        return resolve_confined(home, written, (ws.data,), private_dirs(ws))
    except Unconfined as exc:
        hint = "run `gateway init --demo`" if "does not exist" in str(exc) else _SOURCE_HINT
        check.problem(path, f"data file {exc}", hint)
        return None


def _hierarchy(
    check: _FileCheck, path: Path_, home: Path, written: str
) -> tuple[Path, list[dict[str, str]]] | None:
    """A hierarchy file confined to policies/ or data/, and its levels (else a problem)."""
    try:
        real = resolve_confined(
            home, written, _hierarchy_roots(home), private_dirs(Workspace(home))
        )
        levels = parse_hierarchy(_hierarchy_bytes(home, real).decode("utf-8"), written)
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


def _hierarchy_bytes(home: Path, real: Path) -> bytes:
    ws = Workspace(home)
    return read_confined(real, _hierarchy_roots(home), private_dirs(ws), limit=MAX_HIERARCHY_BYTES)


_PURPOSE = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
CST = timezone(timedelta(hours=8))  # dates without a time are read in China Standard Time


def parse_moment(raw: Any, *, end: bool = False) -> datetime | None:
    """A date (in CST; with `end`, through the end of that day) or an ISO 8601 date-time."""
    if isinstance(raw, datetime):
        return raw if raw.tzinfo else raw.replace(tzinfo=CST)
    if isinstance(raw, date):
        moment = datetime(raw.year, raw.month, raw.day, tzinfo=CST)
        return moment + timedelta(days=1, microseconds=-1) if end else moment
    if isinstance(raw, str):
        try:
            parsed = datetime.fromisoformat(raw)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=CST)
    return None


def _moment(check: _FileCheck, raw: Any, path: Path_, *, end: bool) -> datetime | None:
    if raw is None:
        return None
    moment = parse_moment(raw, end=end)
    if moment is not None:
        return moment
    check.problem(
        path, f"{raw!r} is not a date or date-time", "e.g. 2026-12-31 or 2026-12-31T18:00:00+08:00"
    )
    return None


def _positive(check: _FileCheck, raw: Any, path: Path_, *, maximum: int) -> int | None:
    if raw is None:
        return None
    if not isinstance(raw, int) or isinstance(raw, bool) or not 1 <= raw <= maximum:
        check.problem(path, f"must be an integer from 1 to {maximum}")
        return None
    return raw


def _limits(check: _FileCheck, raw: Any, path: Path_) -> Limits:
    if raw is None:
        return Limits()
    spec = check.mapping(raw, path, _LIMIT_KEYS)
    rows = _positive(
        check, spec.get("rows_per_request"), (*path, "rows_per_request"), maximum=100_000
    )
    return Limits(
        rows_per_request=rows or DEFAULT_MAX_ROWS,
        requests_per_minute=_positive(
            check,
            spec.get("requests_per_minute"),
            (*path, "requests_per_minute"),
            maximum=1_000_000,
        ),
        rows_per_day=_positive(
            check, spec.get("rows_per_day"), (*path, "rows_per_day"), maximum=1_000_000_000
        ),
    )


def _condition_value_ok(column: Column, op: str, value: Any) -> str | None:
    if op in ("is_null", "not_null"):
        return None if value is None else f"{op} takes no value"
    if op in ("in", "not_in"):
        if not isinstance(value, list) or not value:
            return f"{op} needs a non-empty list"
        values = value
    else:
        values = [value]
    for item in values:
        if column.type == ColumnType.INTEGER and (
            not isinstance(item, int) or isinstance(item, bool)
        ):
            return f"column {column.name!r} is an integer column; {item!r} is not an integer"
        if column.type != ColumnType.INTEGER and not isinstance(item, str | date):
            return f"column {column.name!r} holds text; write {item!r} as a string"
    if op == "startswith" and column.type == ColumnType.INTEGER:
        return "startswith applies to text columns"
    return None


def _row_filter(check: _FileCheck, raw: Any, path: Path_, dataset: Dataset) -> RowFilter | None:
    if raw is None:
        return None
    if isinstance(raw, list):
        items = [_filter_item(check, r, (*path, i), dataset) for i, r in enumerate(raw)]
        return RowFilter("all", tuple(item for item in items if item is not None))
    item = _filter_item(check, raw, path, dataset)
    if item is None or isinstance(item, RowFilter):
        return item
    return RowFilter("all", (item,))


def _bad_filter(check: _FileCheck, path: Path_) -> None:
    check.problem(
        path,
        "a row filter is a condition, a list of conditions, or {all|any: [...]}",
        "e.g. {column: province, op: in, value: [北京市]}",
    )


def _filter_item(
    check: _FileCheck, raw: Any, path: Path_, dataset: Dataset
) -> RowFilter | Condition | None:
    if not isinstance(raw, dict):
        _bad_filter(check, path)
        return None
    if set(raw) in ({"all"}, {"any"}):
        (mode,) = raw
        items = raw[mode]
        if not isinstance(items, list) or not items:
            check.problem((*path, mode), "must be a non-empty list of conditions")
            return None
        return RowFilter(
            mode,
            tuple(
                item
                for i, r in enumerate(items)
                if (item := _filter_item(check, r, (*path, mode, i), dataset))
            ),
        )
    spec = check.mapping(raw, path, {"column", "op", "value"})
    column = dataset.column(str(spec.get("column")))
    op = spec.get("op")
    if column is None:
        check.problem(
            (*path, "column"), f"no column {spec.get('column')!r} in dataset {dataset.id!r}"
        )
        return None
    if op not in FILTER_OPS:
        check.problem((*path, "op"), f"unknown operator {op!r}", f"one of: {', '.join(FILTER_OPS)}")
        return None
    problem = _condition_value_ok(column, str(op), spec.get("value"))
    if problem:
        check.problem((*path, "value"), problem)
        return None
    value = spec.get("value")
    if isinstance(value, date):
        value = value.isoformat()
    if isinstance(value, list):
        value = tuple(v.isoformat() if isinstance(v, date) else v for v in value)
    return Condition(column.name, str(op), value)


def _privacy(
    check: _FileCheck,
    raw: Any,
    path: Path_,
    released: list[tuple[str, TransformSpec]],
    not_identifying: list[tuple[str, str]],
    home: Path,
) -> PrivacyModel | None:
    if raw is None:
        return None
    spec = check.mapping(raw, path, _PRIVACY_KEYS)
    names = [name for name, _ in released]
    k = spec.get("k")
    if not isinstance(k, int) or isinstance(k, bool) or k < 2:
        check.problem((*path, "k"), "k must be an integer of at least 2")
        return None
    recoding = spec.get("recoding", "full-domain")
    if recoding not in RECODINGS:
        check.problem(
            (*path, "recoding"),
            f"unknown recoding {recoding!r}",
            "full-domain (one level per column, lattice search) or local (Mondrian)",
        )
        return None
    labels = spec.get("labels", "hierarchy")
    if labels not in LABELS or (labels == "sets" and recoding != "local"):
        check.problem(
            (*path, "labels"),
            f"labels {labels!r} is not one of: hierarchy, sets (sets with recoding: local only)",
            "sets: a class may release the set of its values when narrower than its label",
        )
        return None
    l_value, sensitive = spec.get("l"), spec.get("sensitive")
    if l_value is not None:
        if not isinstance(l_value, int) or isinstance(l_value, bool) or l_value < 2:
            check.problem((*path, "l"), "l must be an integer of at least 2")
            return None
        if sensitive not in names:
            check.problem(
                (*path, "sensitive"),
                "l needs a released sensitive column that is not a quasi-identifier",
            )
            return None
    elif sensitive is not None:
        check.problem((*path, "sensitive"), "sensitive is used only with l")
    # Promise 4: every released column derived from a real value is a quasi-identifier,
    # whatever the file lists; listing them is optional and may only add columns.
    derived = derived_qis(
        tuple(released), tuple(not_identifying), str(sensitive) if l_value is not None else None
    )
    listed = spec.get("quasi_identifiers")
    qis = list(derived)
    if listed is not None:
        if not isinstance(listed, list) or not all(isinstance(q, str) for q in listed):
            check.problem((*path, "quasi_identifiers"), "must be a list of released columns")
            return None
        missing = [q for q in listed if q not in names]
        if missing:
            check.problem(
                (*path, "quasi_identifiers"),
                f"{missing} are not released by this grant",
                "k-anonymity holds over the released view: name released columns",
            )
            return None
        if l_value is not None and sensitive in listed:
            check.problem(
                (*path, "sensitive"),
                "l needs a released sensitive column that is not a quasi-identifier",
            )
            return None
        left_out = [q for q in derived if q not in listed]
        if left_out:
            check.problem(
                (*path, "quasi_identifiers"),
                f"{left_out} are released from real values but not listed: every such column is "
                "a quasi-identifier",
                "list them, drop the key (all such columns are used), or mark a column "
                "`not_identifying: <why>` in the grant's columns",
            )
            return None
        qis += [q for q in listed if q not in qis]
    limit = spec.get("max_suppression", 0)
    if not isinstance(limit, int | float) or isinstance(limit, bool) or not 0 <= limit <= 0.5:
        check.problem(
            (*path, "max_suppression"), "must be a share from 0 to 0.5 (e.g. 0.05 for 5 %)"
        )
        return None
    hierarchies: list[tuple[str, Path]] = []
    tables: dict[str, list[dict[str, str]]] = {}
    raw_h = spec.get("hierarchies") or {}
    if not isinstance(raw_h, dict):
        check.problem((*path, "hierarchies"), "must map quasi-identifiers to ARX hierarchy files")
        raw_h = {}
    for qi, file in raw_h.items():
        hpath = (*path, "hierarchies", qi)
        if qi not in qis:
            check.problem(hpath, f"{qi!r} is not one of the quasi_identifiers")
            continue
        found = _hierarchy(check, hpath, home, str(file))
        if found is None:
            continue
        resolved, tables[qi] = found
        hierarchies.append((qi, resolved))
    return PrivacyModel(
        k,
        tuple(qis),
        l_value,
        sensitive if l_value else None,
        float(limit),
        tuple(hierarchies),
        tables,
        str(recoding),
        str(labels),
    )


def _fingerprint(
    check: _FileCheck,
    raw: Any,
    path: Path_,
    dataset: Dataset,
    released: list[tuple[str, TransformSpec]],
    privacy: PrivacyModel | None,
) -> Fingerprint:
    """`auto` (the default), `off`, or `{keep: [kept integer columns]}` (docs/policies.md)."""
    if raw is None or raw is True or raw in ("auto", "on"):
        return Fingerprint()
    if raw is False or raw == "off":
        return Fingerprint(enabled=False)
    if not isinstance(raw, dict):
        check.problem(path, "must be auto, off, or {keep: [columns]}")
        return Fingerprint()
    spec = check.mapping(raw, path, {"keep"})
    keep = spec.get("keep", [])
    if not isinstance(keep, list) or not all(isinstance(k, str) for k in keep):
        check.problem((*path, "keep"), "must be a list of released integer columns")
        return Fingerprint()
    transforms = dict(released)
    for j, name in enumerate(keep):
        column = dataset.column(name)
        spec_of = transforms.get(name)
        if column is None or spec_of is None or spec_of.name != "keep":
            check.problem((*path, "keep", j), f"{name!r} is not a column this grant keeps")
        elif column.type is not ColumnType.INTEGER:
            check.problem((*path, "keep", j), f"{name!r} is not an integer column")
    return Fingerprint(keep=tuple(keep))


def _grants(check: _FileCheck, raw: Any, dataset: Dataset, home: Path) -> list[Grant]:
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
        purposes = spec.get("purposes")
        if not isinstance(purposes, list) or not purposes:
            check.problem(
                (*path, "purposes"),
                "must list the purposes this grant allows",
                "callers state one with `purpose=` or the Data-Purpose header",
            )
            purposes = []
        for j, purpose in enumerate(purposes):
            if not isinstance(purpose, str) or not _PURPOSE.match(purpose):
                check.problem(
                    (*path, "purposes", j),
                    f"{purpose!r} is not a purpose id",
                    "lower-case ASCII letters, digits, _ and - (it travels in an HTTP header)",
                )
        valid = spec.get("valid") or {}
        valid_spec = check.mapping(valid, (*path, "valid"), {"from", "until"}) if valid else {}
        valid_from = _moment(check, valid_spec.get("from"), (*path, "valid", "from"), end=False)
        valid_until = _moment(check, valid_spec.get("until"), (*path, "valid", "until"), end=True)
        if valid_from and valid_until and valid_until < valid_from:
            check.problem((*path, "valid"), "`until` is before `from`")
        scopes = spec.get("scopes", [DATASETS_READ])
        if not isinstance(scopes, list) or not scopes or any(s not in SCOPES for s in scopes):
            check.problem((*path, "scopes"), f"must be a list of known scopes: {', '.join(SCOPES)}")
            scopes = [DATASETS_READ]
        released: list[tuple[str, TransformSpec]] = []
        not_identifying: list[tuple[str, str]] = []
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
            tspec, why_not = _transform(check, traw, cpath, column, home)
            if why_not is not None:
                not_identifying.append((name, why_not))
            subject = tspec.options.get("subject") if tspec is not None else None
            if (
                tspec is not None
                and tspec.name == "date_shift"
                and dataset.column(str(subject)) is None
            ):
                check.problem(
                    (*cpath, "subject"),
                    f"no column {subject!r} in dataset {dataset.id!r}",
                    "the subject column identifies whose dates share one offset",
                )
            if tspec is not None and tspec.name != "drop":
                released.append((name, tspec))
        privacy = _privacy(
            check, spec.get("privacy"), (*path, "privacy"), released, not_identifying, home
        )
        fingerprint = _fingerprint(
            check, spec.get("fingerprint"), (*path, "fingerprint"), dataset, released, privacy
        )
        grants.append(
            Grant(
                id=grant_id,
                dataset=dataset.id,
                clients=frozenset(clients),
                purposes=frozenset(p for p in purposes if isinstance(p, str)),
                columns=tuple(released),
                limits=_limits(check, spec.get("limits"), (*path, "limits")),
                file=check.name,
                line=check.doc.line(path),
                valid_from=valid_from,
                valid_until=valid_until,
                scopes=frozenset(scopes),
                row_filter=_row_filter(
                    check, spec.get("row_filter"), (*path, "row_filter"), dataset
                ),
                privacy=privacy,
                fingerprint=fingerprint,
                not_identifying=tuple(not_identifying),
            )
        )
    return grants


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
            grants.extend(_grants(check, top.get("grants"), dataset, home))
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
                contents[label] = _hierarchy_bytes(home, hierarchy)
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
        tuple(_warnings(grants, datetime.now(UTC))),
        file_hashes,
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
    ]
