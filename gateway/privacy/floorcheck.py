"""Release floors measured on the data when a view is built (promise 2, issue 13 item 5): the
loader refuses what the declaration already decides (`model/floors.py`); what only the data
decides is checked here, on the figures `risk.measure` took from the released rows.

A column counts as released (nearly) raw, that is as `keep`, when more than RAW_SHARE of its rows
- equal the source value (`equal_to_source`),
- show their characters through a mask (`mask_visible`), or
- give the real value back to an outsider who knows the column's values (`recoverable`).

Then a 重要 column whose values equal or give back the real ones is withheld whatever the
justification (a 重要 column never leaves as keep); otherwise a personal or sensitive column is
withheld unless its grant justifies it in words. A mask that leaves more than half of the
characters visible but fits several real values (`mask preset: address` shows about half of
a demo address) stays a matter of justification, as before: the loader already refuses, for a
重要 column of known length, a mask that shows more than half of it.
"""

from __future__ import annotations

from gateway.model.dataset import Dataset
from gateway.model.floors import IMPORTANT, RAW_SHARE, has_words
from gateway.model.grant import Grant, TransformSpec
from gateway.privacy.risk import Risk

_WHAT = {
    "equal": "of its released values equal the source values",
    "visible": "of its characters are left visible by the mask",
    "recoverable": (
        "of its rows give the real value back to anyone who knows the column's values (the "
        "released value fits exactly one of them)"
    ),
}


def measured_floor(grant: Grant, dataset: Dataset, risk: Risk) -> str | None:
    """Why the view may not be released because a column leaves (nearly) raw, or None."""
    specs = dict(grant.columns)
    for what, shares in (
        ("equal", risk.equal_share),
        ("visible", risk.visible_share),
        ("recoverable", risk.recoverable_share),
    ):
        for name, share in shares:
            column = dataset.column(name)
            spec = specs.get(name)
            if column is None or spec is None or spec.name == "keep" or share <= RAW_SHARE:
                continue  # keep is decided at load (never 重要, justified when protected)
            if column.grade == IMPORTANT and what != "visible":
                return (
                    f"column {name!r} ({IMPORTANT}) is released nearly raw: {share:.0%} "
                    f"{_WHAT[what]}, above {RAW_SHARE:.0%}; a {IMPORTANT} column never leaves "
                    f"(nearly) raw, justified or not: {advice(spec)}"
                )
            if column.classification.protected and not has_words(spec.options.get("justification")):
                return (
                    f"column {name!r} is released nearly raw: {share:.0%} {_WHAT[what]}, above "
                    f"{RAW_SHARE:.0%}; give it a justification, or {advice(spec)}"
                )
    return None


def advice(spec: TransformSpec) -> str:
    """What the admin changes so that the transform changes more."""
    options = spec.options
    if spec.name == "generalize" and "width" in options:
        return (
            f"widen the bins (width: {options['width']} holds one of the column's values per "
            "bin for most rows; use several times the gap between its values)"
        )
    if spec.name == "generalize":
        return "use a coarser level, so that each label covers several of the column's values"
    if spec.name == "perturb" and "noise" in options:
        return (
            f"raise scale (scale: {options.get('scale')} moves values by less than the gap "
            "between the column's values, so rounding to the nearest one undoes it)"
        )
    if spec.name == "perturb":
        return "raise round: to several times the gap between the column's values"
    if spec.name == "mask":
        return "mask more characters (first:/last:, or a preset that shows less)"
    if spec.name == "date_shift":
        return "raise max_days"
    return "choose a transform that changes more, or leave the column out"
