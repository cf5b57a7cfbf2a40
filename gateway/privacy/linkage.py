"""Risk over what a recipient actually holds, beyond one view's declared quasi-identifiers
(docs/privacy.md#the-figures, #linkage):

- `spread`: the figures over every released column that carries a real value (the model's
  quasi-identifiers plus the columns declared `not_identifying`; the l-diversity sensitive
  attribute is left out, l reports on it);
- `joined`: the figures of two views of one client joined on a per-person token they share
  (every non-token column of both): what that client can single out by joining them.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from gateway.model.grant import NOT_DERIVED, Grant
from gateway.model.tokens import link_key
from gateway.privacy.risk import class_sizes


def released_columns(grant: Grant) -> tuple[str, ...]:
    """Every released column whose values carry a real value, in release order: the model's
    quasi-identifiers and the columns declared not identifying (not the sensitive attribute)."""
    sensitive = grant.privacy.sensitive if grant.privacy is not None else None
    qis = set(grant.quasi_identifiers())
    return tuple(
        name
        for name, spec in grant.columns
        if name in qis or (spec.name not in NOT_DERIVED and name != sensitive)
    )


def carried_columns(grant: Grant) -> tuple[str, ...]:
    """Every released column that carries a real value, the sensitive attribute included."""
    return tuple(name for name, spec in grant.columns if spec.name not in NOT_DERIVED)


def spread(frame: pd.DataFrame, columns: Sequence[str]) -> dict[str, object]:
    """Class figures of `frame` grouped by `columns` (prosecutor model, as risk.measure)."""
    sizes = class_sizes(frame, list(columns))
    rows = len(frame)
    classes = int((1.0 / sizes).sum().round()) if rows else 0
    smallest = int(sizes.min()) if rows else 0
    return {
        "columns": list(columns),
        "rows": rows,
        "classes": classes,
        "rows_in_unique_classes": int((sizes == 1).sum()),
        "smallest_class": smallest,
        "highest_risk": round(1.0 / smallest, 4) if smallest else 0.0,
        "average_risk": round(classes / rows, 4) if rows else 0.0,
    }


def linking_tokens(a: Grant, b: Grant) -> tuple[str, ...]:
    """The source columns both grants release as a per-person token keyed so that the same
    person gets the same token in both views of one client (scope client or shared)."""
    if a.dataset != b.dataset:
        return ()
    theirs = {name: link_key(spec.name, spec.options) for name, spec in b.columns}
    return tuple(
        name
        for name, spec in a.columns
        if (key := link_key(spec.name, spec.options)) is not None and theirs.get(name) == key
    )


def joined(
    first: tuple[str, pd.DataFrame, Sequence[str]],
    second: tuple[str, pd.DataFrame, Sequence[str]],
    token: str,
) -> dict[str, object]:
    """The figures of two released views (grant id, rows, columns carrying real values) joined
    on `token`. Only tokens that occur once in each view are joined: each such pair of rows is
    one person seen twice; the columns of both views then describe that person together."""
    parts = []
    for grant_id, frame, columns in (first, second):
        linked = frame[frame[token].notna() & ~frame[token].duplicated(keep=False)]
        part = linked[[*columns, token]].rename(columns={c: f"{grant_id}.{c}" for c in columns})
        parts.append(part.set_index(token))
    together = parts[0].join(parts[1], how="inner")
    figures = spread(together.reset_index(drop=True), list(together.columns))
    return {"token": token, **figures}
