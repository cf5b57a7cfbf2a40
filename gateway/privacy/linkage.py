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
from typing import TYPE_CHECKING

from gateway.model.grant import NOT_DERIVED, Grant
from gateway.model.tokens import link_key, token_width
from gateway.privacy.risk import class_sizes

if TYPE_CHECKING:
    import pandas as pd


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


def linking_tokens(a: Grant, b: Grant) -> tuple[tuple[str, int | None], ...]:
    """The source columns both grants release as a per-person token keyed so that the same
    person gets the same token in both views of one client (scope client or shared), each with
    the width both hex pseudonyms share (None for other tokens: they are compared whole)."""
    if a.dataset != b.dataset:
        return ()
    theirs = {name: spec for name, spec in b.columns}
    found: list[tuple[str, int | None]] = []
    for name, spec in a.columns:
        key, other = link_key(spec.name, spec.options), theirs.get(name)
        if key is None or other is None or link_key(other.name, other.options) != key:
            continue
        widths = [token_width(s.options) for s in (spec, other) if s.name == "pseudonymize"]
        found.append((name, min(w for w in widths if w is not None) if any(widths) else None))
    return tuple(found)


def joined(
    first: tuple[str, pd.DataFrame, Sequence[str]],
    second: tuple[str, pd.DataFrame, Sequence[str]],
    token: str,
    width: int | None = None,
) -> dict[str, object]:
    """The figures of two released views (grant id, rows, columns carrying real values) joined
    on `token` (its first `width` characters when given). Only tokens that occur once in each
    view are joined: each such pair of rows is one person seen twice; the columns of both views
    then describe that person together."""
    import pandas as pd

    parts = []
    for grant_id, frame, columns in (first, second):
        key = frame[token].astype("string")
        key = key.str.slice(0, width) if width is not None else key
        once = key.notna() & ~key.duplicated(keep=False)
        part = frame.loc[once, list(columns)].add_prefix(f"{grant_id}.")
        parts.append(part.set_axis(pd.Index(key[once], name=token)))
    together = parts[0].join(parts[1], how="inner")
    figures = spread(together.reset_index(drop=True), list(together.columns))
    return {"token": token, **figures}
