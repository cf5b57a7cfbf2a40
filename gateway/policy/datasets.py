"""A policy file's `dataset:` section, and the column transforms a grant declares (names,
parameters, release floors)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.model.dataset import GRADES, KINDS, Classification, Column, ColumnType, Dataset
from gateway.model.floors import floor_problem, grade_problem, has_words
from gateway.model.grant import (
    NOT_DERIVED,
    TransformSpec,
)
from gateway.policy.check import FileCheck
from gateway.policy.confined import read_hierarchy, source_path
from gateway.policy.yamlsrc import (
    Path_,
)
from gateway.privacy import transforms
from gateway.settings import Workspace

_DATASET_KEYS = {"id", "title", "description", "licence", "source", "columns"}


_COLUMN_KEYS = {"type", "class", "grade", "description", "kind"}


def read_dataset(check: FileCheck, raw: Any, home: Path) -> Dataset | None:
    path: Path_ = ("dataset",)
    spec = check.mapping(raw, path, _DATASET_KEYS)
    if not spec:
        return None
    ds_id = check.identifier(spec.get("id"), (*path, "id"))
    source_text = check.text(spec.get("source"), (*path, "source"))
    source = source_path(check, (*path, "source"), home, source_text) if source_text else None
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
        column = Column(
            name, ctype, cls, grade, str(col.get("description", "")), kind and str(kind)
        )
        graded = grade_problem(column)
        if graded is not None:
            check.problem((*cpath, "grade") if "grade" in col else cpath, *graded)
        columns.append(column)
    return Dataset(
        id=ds_id,
        title=check.text(spec.get("title"), (*path, "title")),
        description=check.text(spec.get("description"), (*path, "description"), required=False),
        licence=check.text(spec.get("licence"), (*path, "licence"), required=False),
        source=source or Workspace(home).data,
        columns=tuple(columns),
        file=check.name,
    )


def read_transform(
    check: FileCheck, raw: Any, path: Path_, column: Column, home: Path
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
    check: FileCheck, path: Path_, home: Path, params: dict[str, Any]
) -> tuple[tuple[str, str], ...] | None:
    """A generalize transform's hierarchy file, read now: the level's value -> label pairs."""
    file = str(params["hierarchy"])
    found = read_hierarchy(check, (*path, "hierarchy"), home, file)
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
