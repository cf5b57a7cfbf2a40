"""A policy file's `grants:` section: clients, purposes, validity, scopes, released columns,
row filter and limits (the privacy model and fingerprint are in policy/privacy_model.py)."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any

from gateway.aggregate.rules import parse_rules
from gateway.model.dataset import Column, ColumnType, Dataset
from gateway.model.filterlang import NAMES, operator
from gateway.model.floors import CORE, IMPORTANT, has_words
from gateway.model.grant import (
    FILTER_OPS,
    Condition,
    Grant,
    Limits,
    PrivacyModel,
    RowFilter,
    TransformSpec,
)
from gateway.model.scopes import DATASETS_READ, SCOPES
from gateway.model.tokens import LINKING_SCOPES, TOKEN_TRANSFORMS, token_scope
from gateway.policy.check import FileCheck, read_moment, read_positive
from gateway.policy.datasets import read_transform
from gateway.policy.privacy_model import read_fingerprint, read_privacy
from gateway.policy.yamlsrc import (
    Path_,
)

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
    "aggregate",
    "max_rows",  # deprecated: limits.rows_per_request
}


_LIMIT_KEYS = {"rows_per_request", "requests_per_minute", "rows_per_day", "max_rows"}


DEFAULT_MAX_ROWS = 1000


_PURPOSE = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")


def _limits(check: FileCheck, raw: Any, path: Path_, old: Any = None) -> Limits:
    """The grant's limits. `max_rows` (in the grant or in its limits) is the page limit's old
    name: accepted with a warning, refused next to `rows_per_request`."""
    spec = {} if raw is None else check.mapping(raw, path, _LIMIT_KEYS)
    named = ((old, path[:-1]), (spec.get("max_rows"), path))
    legacy = [(value, where) for value, where in named if value is not None]
    rows_raw, rows_path = spec.get("rows_per_request"), (*path, "rows_per_request")
    if legacy and (rows_raw is not None or len(legacy) > 1):
        check.problem(
            (*legacy[0][1], "max_rows"),
            "max_rows is the old name of rows_per_request",
            "give rows_per_request only",
        )
    elif legacy:
        rows_raw, rows_path = legacy[0][0], (*legacy[0][1], "max_rows")
    rows = read_positive(check, rows_raw, rows_path, maximum=100_000)
    return Limits(
        rows_per_request=rows or DEFAULT_MAX_ROWS,
        requests_per_minute=read_positive(
            check,
            spec.get("requests_per_minute"),
            (*path, "requests_per_minute"),
            maximum=1_000_000,
        ),
        rows_per_day=read_positive(
            check, spec.get("rows_per_day"), (*path, "rows_per_day"), maximum=1_000_000_000
        ),
        deprecated=("max_rows",) if legacy else (),
    )


def _condition_value_ok(column: Column, op: str, value: Any) -> str | None:
    takes = operator(op).takes  # gateway/model/filterlang.py: one language for all filters
    if takes == "flag":
        return None if value is None else f"{op} takes no value"
    if takes == "list":
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
    if operator(op).text_only and column.type == ColumnType.INTEGER:
        return f"{op} applies to text columns"
    return None


def _row_filter(check: FileCheck, raw: Any, path: Path_, dataset: Dataset) -> RowFilter | None:
    if raw is None:
        return None
    if isinstance(raw, list):
        items = [_filter_item(check, r, (*path, i), dataset) for i, r in enumerate(raw)]
        return RowFilter("all", tuple(item for item in items if item is not None))
    item = _filter_item(check, raw, path, dataset)
    if item is None or isinstance(item, RowFilter):
        return item
    return RowFilter("all", (item,))


def _bad_filter(check: FileCheck, path: Path_) -> None:
    check.problem(
        path,
        "a row filter is a condition, a list of conditions, or {all|any: [...]}",
        "e.g. {column: province, op: in, value: [北京市]}",
    )


def _filter_item(
    check: FileCheck, raw: Any, path: Path_, dataset: Dataset
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
        check.problem((*path, "op"), f"unknown operator {op!r}", f"one of: {', '.join(NAMES)}")
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


def _token_scope(check: FileCheck, spec: TransformSpec, path: Path_) -> None:
    """A per-person token keyed wider than one grant links a client's views (or everyone's) on
    it: allowed only with a written justification (docs/privacy.md#linkage)."""
    options = spec.options
    if spec.name not in TOKEN_TRANSFORMS or token_scope(options) not in LINKING_SCOPES:
        return
    if not has_words(options.get("justification")):
        check.problem(
            (*path, "scope"),
            f"scope: {token_scope(options)} gives a person the same {spec.name} token in every "
            f"{'grant of the client' if token_scope(options) == 'client' else 'grant'}, so "
            "those views can be joined on it; it needs a written justification",
            "leave scope out (one token per client and grant), or add `justification: <why the "
            "views must link>`",
        )


def _filter_columns(raw: Any, path: Path_) -> list[tuple[str, Path_]]:
    """The source columns a row filter's conditions name, with where each is written."""
    if isinstance(raw, list):
        return [found for i, item in enumerate(raw) for found in _filter_columns(item, (*path, i))]
    if not isinstance(raw, dict):
        return []
    if set(raw) in ({"all"}, {"any"}):
        (mode,) = raw
        return _filter_columns(raw[mode], (*path, mode))
    column = raw.get("column")
    return [(column, (*path, "column"))] if isinstance(column, str) else []


def _filter_on_sensitive(check: FileCheck, raw: Any, path: Path_, privacy: PrivacyModel) -> None:
    """A row filter on the l-diversity sensitive attribute tells every recipient something
    about every released person's sensitive value (`monthly_income gte 30000`): refused."""
    for column, where in _filter_columns(raw, path):
        if column == privacy.sensitive:
            check.problem(
                where,
                f"the row filter selects rows by {column!r}, the sensitive attribute of the "
                "l-diversity model: being in the view then discloses it for everyone released",
                "filter on other columns, or release an aggregate instead",
            )


def _conditions(found: RowFilter | Condition) -> list[Condition]:
    if isinstance(found, Condition):
        return [found]
    return [c for item in found.items for c in _conditions(item)]


def filter_warnings(grant: Grant, dataset: Dataset) -> list[str]:
    """A row filter over a 核心 or 重要 column the grant does not release as is: membership in
    the view tells every recipient that condition of each released person's protected value."""
    if grant.row_filter is None:
        return []
    kept = {name for name, spec in grant.columns if spec.name == "keep"}
    warnings: list[str] = []
    for condition in _conditions(grant.row_filter):
        column = dataset.column(condition.column)
        if column is None or column.grade not in (CORE, IMPORTANT) or column.name in kept:
            continue
        warnings.append(
            f"{grant.file}:{grant.line}: grant {grant.id!r}: the row filter selects by "
            f"{column.name!r} ({column.grade}), which the view does not release as is: every "
            f"released row discloses `{column.name} {condition.op} {condition.value!r}` "
            "(filter on other columns if that is not meant to be known)"
        )
    return warnings


def read_grants(check: FileCheck, raw: Any, dataset: Dataset, home: Path) -> list[Grant]:
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
        valid_from = read_moment(check, valid_spec.get("from"), (*path, "valid", "from"), end=False)
        valid_until = read_moment(
            check, valid_spec.get("until"), (*path, "valid", "until"), end=True
        )
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
            tspec, why_not = read_transform(check, traw, cpath, column, home)
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
                _token_scope(check, tspec, cpath)
        privacy = read_privacy(
            check, spec.get("privacy"), (*path, "privacy"), released, not_identifying, home
        )
        if privacy is not None and privacy.sensitive is not None:
            _filter_on_sensitive(check, spec.get("row_filter"), (*path, "row_filter"), privacy)
        fingerprint = read_fingerprint(
            check, spec.get("fingerprint"), (*path, "fingerprint"), dataset, released, privacy
        )
        grants.append(
            Grant(
                id=grant_id,
                dataset=dataset.id,
                clients=frozenset(clients),
                purposes=frozenset(p for p in purposes if isinstance(p, str)),
                columns=tuple(released),
                limits=_limits(check, spec.get("limits"), (*path, "limits"), spec.get("max_rows")),
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
                aggregate=parse_rules(
                    check.problem,
                    spec.get("aggregate"),
                    (*path, "aggregate"),
                    [c.name for c in dataset.columns],
                    [c.name for c in dataset.columns if c.type is ColumnType.INTEGER],
                    [c.name for c in dataset.columns if c.classification.protected],
                ),
            )
        )
    return grants
