"""A grant's `privacy:` model (k-anonymity, l-diversity, hierarchies, recoding) and its
`fingerprint:` settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.model.dataset import ColumnType, Dataset
from gateway.model.grant import (
    Fingerprint,
    PrivacyModel,
    TransformSpec,
    derived_qis,
)
from gateway.policy.check import FileCheck
from gateway.policy.confined import read_hierarchy
from gateway.policy.yamlsrc import (
    Path_,
)

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


def read_privacy(
    check: FileCheck,
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
        found = read_hierarchy(check, hpath, home, str(file))
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


def read_fingerprint(
    check: FileCheck,
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
