"""The transform catalogue. Each transform is a pure, vectorized `Series -> Series` function with
validated parameters and a GB/T 37964 technique category (reported in the released schema).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

from gateway.errors import GatewayError
from gateway.model.dataset import ColumnType
from gateway.model.tokens import SCOPES, token_scope
from gateway.privacy import generalize, randomize, synthesize
from gateway.privacy.keyed import arrow_text, keyed_tokens, keyed_words

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pandas as pd
    import pyarrow as pa

Taken: TypeAlias = "pa.ChunkedArray | pa.Array | Collection[str]"


@dataclass(frozen=True)
class TransformContext:
    """What a transform may depend on besides the column: the workspace secret and the scope."""

    secret: bytes
    client_id: str
    grant_id: str
    source: pd.DataFrame | None = field(default=None, compare=False)  # for date_shift subjects
    # The workspace's real values of a kind (Arrow strings, or any collection of text):
    # synthetic and format-preserving values avoid them.
    taken: Callable[[str], Taken] | None = field(default=None, compare=False)
    # The version of what `taken` answers from (a digest over every dataset's version): part of
    # the key of a view whose transforms draw against real values, so that a change to any
    # dataset, not only the view's own, computes such a view afresh.
    real_values: str = ""


@dataclass(frozen=True)
class Param:
    kind: type
    required: bool = False
    choices: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None


# Where the policy loader puts a generalize transform's hierarchy level (value -> label pairs).
HIERARCHY_TABLE = "_hierarchy_table"

Apply: TypeAlias = "Callable[[pd.Series, Mapping[str, Any], TransformContext], pd.Series]"


@dataclass(frozen=True)
class TransformDef:
    name: str
    category: str  # GB/T 37964 technique
    params: Mapping[str, Param]
    column_types: frozenset[ColumnType]
    apply: Apply
    output_type: ColumnType | None = None  # None: same as the input column

    def validate(self, params: Mapping[str, Any], column_type: ColumnType) -> list[tuple[str, str]]:
        """Problems as (parameter, message); empty when the parameters fit."""
        problems: list[tuple[str, str]] = []
        if column_type not in self.column_types:
            allowed = ", ".join(sorted(t.value for t in self.column_types))
            problems.append(
                ("transform", f"{self.name} applies to {allowed} columns, not {column_type}")
            )
        for key, value in params.items():
            spec = self.params.get(key)
            if spec is None:
                known = ", ".join(sorted(self.params)) or "none"
                problems.append((key, f"unknown parameter for {self.name} (known: {known})"))
                continue
            if not isinstance(value, spec.kind) or (isinstance(value, bool) and spec.kind is int):
                problems.append((key, f"must be a {spec.kind.__name__}, got {value!r}"))
                continue
            if spec.choices and value not in spec.choices:
                problems.append((key, f"{value!r} is not one of: {', '.join(spec.choices)}"))
            if isinstance(value, int) and spec.minimum is not None and value < spec.minimum:
                problems.append((key, f"must be at least {spec.minimum}"))
            if isinstance(value, int) and spec.maximum is not None and value > spec.maximum:
                problems.append((key, f"must be at most {spec.maximum}"))
        for key, spec in self.params.items():
            if spec.required and key not in params:
                problems.append((key, f"{self.name} needs the parameter {key!r}"))
        return problems


# --- keep / drop -----------------------------------------------------------------------------


def _keep(series: pd.Series, params: Mapping[str, Any], ctx: TransformContext) -> pd.Series:
    return series.copy()


def _drop(series: pd.Series, params: Mapping[str, Any], ctx: TransformContext) -> pd.Series:
    raise AssertionError("drop is resolved by the view builder; it never produces a column")


# --- mask ------------------------------------------------------------------------------------
# Computed with Arrow compute kernels (C++), not per-row Python: see benchmarks/run.py.

# (keep first, keep last) per preset; name, email and address presets have their own rules.
_KEEP_PRESETS: dict[str, tuple[int, int]] = {
    "id_card": (6, 1),  # region code and check character; the birth date and sequence are hidden
    "mobile": (3, 4),
    "bank_card": (6, 4),
    "credit_code": (8, 0),  # registration authority, type and region
}
MASK_PRESETS = (*_KEEP_PRESETS, "chinese_name", "email", "address")
COMPOUND_SURNAMES = (
    "欧阳",
    "司马",
    "上官",
    "诸葛",
    "东方",
    "皇甫",
    "尉迟",
    "公孙",
    "慕容",
    "长孙",
    "宇文",
    "司徒",
    "夏侯",
    "轩辕",
    "令狐",
    "端木",
    "西门",
    "南宫",
    "独孤",
    "呼延",
)
_ADDRESS_HEAD = r"^(?P<head>.+?(?:自治县|新区|区|县|旗))"
_EMAIL = r"^(?P<first>.)[^@]*@(?P<domain>.+)$"


def _text(series: pd.Series) -> pa.Array:
    """The column as one Arrow large_string array."""
    return arrow_text(series)


def _series(values: pa.Array, index: pd.Index) -> pd.Series:
    import pandas as pd

    return pd.Series(pd.array(values, dtype=pd.StringDtype("pyarrow")), index=index)


def _mask_arrow(arr: pa.Array, params: Mapping[str, Any]) -> pa.Array:
    import pyarrow as pa
    import pyarrow.compute as pc

    typ = arr.type
    empty = pa.scalar("", typ)
    char = pa.scalar(params.get("char", "*"), typ)
    length = pc.utf8_length(arr)
    preset = params.get("preset")
    if preset == "chinese_name":
        compound = pc.is_in(
            pc.utf8_slice_codeunits(arr, 0, 2), value_set=pa.array(COMPOUND_SURNAMES)
        )
        keep = pc.if_else(compound, 2, 1)
        show = pc.greater(length, keep)
        head = pc.if_else(
            compound, pc.utf8_slice_codeunits(arr, 0, 2), pc.utf8_slice_codeunits(arr, 0, 1)
        )
        hidden = pc.if_else(show, pc.subtract(length, keep), length)
        result = pc.binary_join_element_wise(
            pc.if_else(show, head, empty), pc.binary_repeat(char, hidden), empty
        )
    elif preset == "email":
        parts = pc.extract_regex(arr, _EMAIL)
        masked = pc.binary_join_element_wise(
            pc.struct_field(parts, "first"),
            pc.binary_repeat(char, 3),
            pa.scalar("@", typ),
            pc.struct_field(parts, "domain"),
            empty,
        )
        result = pc.if_else(pc.is_null(parts), pc.binary_repeat(char, 4), masked)
    elif preset == "address":
        parts = pc.extract_regex(arr, _ADDRESS_HEAD)
        head = pc.if_else(pc.is_null(parts), empty, pc.struct_field(parts, "head"))
        result = pc.binary_join_element_wise(head, pc.binary_repeat(char, 4), empty)
    else:
        default = (int(params.get("first", 0)), int(params.get("last", 0)))
        first, last = _KEEP_PRESETS.get(str(preset), default)
        # Keep `first` leading and `last` trailing characters; if that would show the whole value,
        # hide all of it (a short value is never released raw).
        hidden = pc.subtract(pc.subtract(length, first), last)
        show = pc.greater(hidden, 0)
        head = pc.if_else(show, pc.utf8_slice_codeunits(arr, 0, first), empty)
        tail = pc.if_else(show, pc.utf8_slice_codeunits(arr, -last), empty) if last else empty
        stars = pc.binary_repeat(char, pc.if_else(show, hidden, length))
        result = pc.binary_join_element_wise(head, stars, tail, empty)
    # If the hidden characters were mask characters already, the output would equal the raw
    # value: hide the whole value instead (promise 2, found by a property test).
    unchanged = pc.fill_null(pc.equal(result, arr), False)
    result = pc.if_else(unchanged, pc.binary_repeat(char, length), result)
    # Nulls stay null.
    return pc.if_else(pc.is_null(arr), pa.scalar(None, typ), result)


def _mask(series: pd.Series, params: Mapping[str, Any], ctx: TransformContext) -> pd.Series:
    return _series(_mask_arrow(_text(series), params), series.index)


# --- pseudonymize ----------------------------------------------------------------------------

# "recipient" (the default of per-person tokens): one client's view under one grant, so tokens
# link neither across grants nor across clients; "grant": every client of a grant; "client": every
# grant of a client (links its views); "shared": everyone (docs/privacy.md#linkage).
PSEUDONYM_SCOPES = SCOPES
# "valid": values a real person could hold (valid region codes, live mobile prefixes);
# "unassigned": codes no real person can hold (docs/privacy.md#synthetic-values).
CODES = ("valid", "unassigned")


def scope_key(secret: bytes, scope: str, ctx: TransformContext) -> bytes:
    """Derive the per-scope HMAC key: the same value maps to unrelated pseudonyms across scopes."""
    scope_id = {
        "recipient": f"{len(ctx.client_id)}:{ctx.client_id}{ctx.grant_id}",
        "client": ctx.client_id,
        "grant": ctx.grant_id,
        "shared": "",
    }[scope]
    label = b"public-data-gateway/pseudonym/v1\x00" + scope.encode() + b"\x00" + scope_id.encode()
    return hmac.new(secret, label, hashlib.sha256).digest()


MAX_REDRAWS = 32


class SyntheticClash(GatewayError, ValueError):
    """Synthetic values kept equalling real ones after every redraw (a tiny value space)."""


def _remix(words: npt.NDArray[np.uint64], attempt: int) -> npt.NDArray[np.uint64]:
    """Fresh keyed words for a redraw: a SplitMix64 step of each word and the attempt number
    (the same input value always redraws the same way)."""
    import numpy as np

    with np.errstate(over="ignore"):
        z = words + np.uint64(0x9E3779B97F4A7C15) * np.uint64(attempt)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        mixed: npt.NDArray[np.uint64] = z ^ (z >> np.uint64(31))
    return mixed


def _taken_text(taken: Taken) -> pa.ChunkedArray:
    import pyarrow as pa

    if isinstance(taken, pa.ChunkedArray):
        return taken.cast(pa.large_string())
    if isinstance(taken, pa.Array):
        return pa.chunked_array([taken.cast(pa.large_string())])
    return pa.chunked_array([pa.array(list(taken), type=pa.large_string())])


def _members(values: pa.Array, universe: pa.ChunkedArray) -> npt.NDArray[np.bool_]:
    """Whether each value (no nulls) is in `universe`, with Arrow's hash kernels (pandas' isin
    on Arrow strings walks the value set in Python). The hash set is built over the smaller
    side, usually the values (building costs more than looking up): the universe's members
    among them are found first, then the values are looked up among those few."""
    import numpy as np
    import pyarrow.compute as pc

    if len(values) <= len(universe):
        universe = pc.filter(universe, pc.is_in(universe, value_set=values).fill_null(False))
    found = pc.is_in(values, value_set=universe.combine_chunks())
    return np.asarray(found.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


def _keyed_kind(
    series: pd.Series,
    kind: str,
    key: bytes,
    taken: Taken = frozenset(),
    codes: str = "valid",
) -> pd.Series:
    """Values of `kind` keyed to each input value; never equal to the input, to any value of the
    column, or to any real value of that kind in the workspace (`taken`): such draws are redrawn
    from fresh keyed words, deterministically."""
    import pandas as pd
    import pyarrow as pa

    words, nulls = keyed_words(series, key)
    out = synthesize.generate(kind, words, codes)
    # The column's own values are forbidden too (so a draw never equals its row's value).
    forbidden = pa.chunked_array([*_taken_text(taken).chunks, _text(series).drop_null()])
    clash = _members(_text(out), forbidden) & ~nulls
    for attempt in range(1, MAX_REDRAWS + 1):
        if not clash.any():
            break
        redrawn = synthesize.generate(kind, _remix(words[clash], attempt), codes)
        out[clash] = redrawn.to_numpy()
        clash[clash] = _members(_text(redrawn), forbidden)
    if clash.any():
        raise SyntheticClash(
            f"synthetic {kind} values still equal real ones after {MAX_REDRAWS} redraws: the "
            "value space is too small for this data"
        )
    out.index = series.index
    return out.astype("string").where(~pd.Series(nulls, index=series.index), pd.NA)


def draws_against_real_values(name: str, params: tuple[tuple[str, Any], ...]) -> bool:
    """Whether transform `name` with these parameters reads the workspace's real values
    (synthetic and format-preserving values avoid every real value of their kind, in every
    dataset)."""
    if name == "synthesize":
        return True
    return name == "pseudonymize" and dict(params).get("format", "token") != "token"


def _taken(ctx: TransformContext, kind: str) -> Taken:
    taken: Taken = frozenset() if ctx.taken is None else ctx.taken(kind)
    return taken


def _pseudonymize(series: pd.Series, params: Mapping[str, Any], ctx: TransformContext) -> pd.Series:
    key = scope_key(ctx.secret, token_scope(params), ctx)
    if params.get("format", "token") != "token":
        # Format-preserving: a valid-looking 身份证号 or mobile number that is not the real one.
        kind = str(params["format"])
        return _keyed_kind(series, kind, key, _taken(ctx, kind), params.get("codes", "valid"))
    length = params.get("length", 20)
    # One HMAC per distinct value (HMAC has no vectorized form); rows then take theirs by index.
    return _series(keyed_tokens(key, _text(series), length), series.index)


def _suppress(series: pd.Series, params: Mapping[str, Any], ctx: TransformContext) -> pd.Series:
    import pandas as pd

    return pd.Series(pd.NA, index=series.index, dtype=series.dtype)


def _generalize(series: pd.Series, params: Mapping[str, Any], ctx: TransformContext) -> pd.Series:
    import pandas as pd

    if HIERARCHY_TABLE in params:  # filled in by the policy loader from the hierarchy file
        mapping = dict(params[HIERARCHY_TABLE])
        labels = series.astype("string").map(mapping)
        # A value the hierarchy does not list becomes "*" (never released as is); nulls stay null.
        return labels.fillna("*").astype("string").where(series.notna(), pd.NA)
    preset = params.get("preset")
    if preset == "id_card":
        return generalize.id_card(series, params)
    if preset == "address":
        return generalize.address(series, params)
    if "to" in params:
        return generalize.date(series, params)
    return generalize.numeric(series, params)


def _synthesize(series: pd.Series, params: Mapping[str, Any], ctx: TransformContext) -> pd.Series:
    key = scope_key(ctx.secret, token_scope(params), ctx)
    kind = str(params["kind"])
    subkey = hmac.new(key, b"synthesize", hashlib.sha256).digest()
    return _keyed_kind(series, kind, subkey, _taken(ctx, kind), params.get("codes", "valid"))


def _perturb(series: pd.Series, params: Mapping[str, Any], ctx: TransformContext) -> pd.Series:
    key = scope_key(ctx.secret, params.get("scope", "client"), ctx)
    records = None if ctx.source is None else ctx.source.loc[series.index]
    key = hmac.new(key, b"perturb", hashlib.sha256).digest()
    return randomize.perturb(series, params, key, records)


def _date_shift(series: pd.Series, params: Mapping[str, Any], ctx: TransformContext) -> pd.Series:
    if ctx.source is None:
        raise ValueError("date_shift needs the source rows (for the subject column)")
    key = scope_key(ctx.secret, params.get("scope", "client"), ctx)
    subjects = ctx.source[params["subject"]].loc[series.index]
    return randomize.date_shift(
        series, subjects, params, hmac.new(key, b"date_shift", hashlib.sha256).digest()
    )


_ANY = frozenset(ColumnType)
_STRING = frozenset({ColumnType.STRING})
_INTEGER = frozenset({ColumnType.INTEGER})
_DATE = frozenset({ColumnType.DATE})

CATALOGUE: dict[str, TransformDef] = {
    t.name: t
    for t in (
        TransformDef("keep", "none", {"justification": Param(str)}, _ANY, _keep),
        TransformDef("drop", "suppression", {}, _ANY, _drop),
        TransformDef(
            "mask",
            "suppression",
            {
                "preset": Param(str, choices=MASK_PRESETS),
                "first": Param(int, minimum=0, maximum=64),
                "last": Param(int, minimum=0, maximum=64),
                "char": Param(str),
            },
            frozenset({ColumnType.STRING, ColumnType.DATE}),
            _mask,
            ColumnType.STRING,
        ),
        TransformDef(
            "pseudonymize",
            "pseudonymization",
            {
                "scope": Param(str, choices=PSEUDONYM_SCOPES),
                "length": Param(int, minimum=16, maximum=64),
                "format": Param(str, choices=("token", "id_card", "mobile")),
                "codes": Param(str, choices=CODES),
            },
            _ANY,
            _pseudonymize,
            ColumnType.STRING,
        ),
        TransformDef("suppress", "suppression", {}, _ANY, _suppress),
        TransformDef(
            "generalize",
            "generalization",
            {
                "width": Param(int, minimum=1, maximum=10**9),
                "bins": Param(list),
                "top": Param(int),
                "bottom": Param(int),
                "to": Param(str, choices=("year", "quarter", "month")),
                "preset": Param(str, choices=("id_card", "address")),
                "level": Param(str, choices=("province", "city", "district")),
                "birth": Param(str, choices=("decade", "year", "none")),
                "hierarchy": Param(str),
                "hierarchy_level": Param(int, minimum=1, maximum=64),
            },
            _ANY,
            _generalize,
            ColumnType.STRING,
        ),
        TransformDef(
            "synthesize",
            "synthesis",
            {
                "kind": Param(str, required=True, choices=synthesize.KINDS),
                "scope": Param(str, choices=PSEUDONYM_SCOPES),
                "codes": Param(str, choices=CODES),
            },
            _STRING,
            _synthesize,
        ),
        TransformDef(
            "perturb",
            "randomization",
            {
                "round": Param(int, minimum=1, maximum=10**9),
                "noise": Param(str, choices=("laplace",)),
                "scale": Param(int, minimum=1, maximum=10**9),
                "scope": Param(str, choices=PSEUDONYM_SCOPES),
            },
            _INTEGER,
            _perturb,
        ),
        TransformDef(
            "date_shift",
            "randomization",
            {
                "subject": Param(str, required=True),
                "max_days": Param(int, minimum=1, maximum=3650),
                "scope": Param(str, choices=PSEUDONYM_SCOPES),
            },
            _DATE,
            _date_shift,
        ),
    )
}


def _validate_generalize(
    params: Mapping[str, Any], column_type: ColumnType
) -> list[tuple[str, str]]:
    numeric = {"width", "bins", "top", "bottom"} & params.keys()
    problems: list[tuple[str, str]] = []
    if "hierarchy" in params or "hierarchy_level" in params:
        if not {"hierarchy", "hierarchy_level"} <= params.keys():
            problems.append(("hierarchy", "give both hierarchy (a file) and hierarchy_level"))
        for key in (numeric | {"to", "preset", "level", "birth"}) & params.keys():
            problems.append((key, "does not apply with a hierarchy file"))
        return problems
    if column_type == ColumnType.INTEGER:
        if not ({"width", "bins"} & params.keys()):
            problems.append(("width", "generalize on an integer column needs width or bins"))
        if {"width", "bins"} <= params.keys():
            problems.append(("bins", "give width or bins, not both"))
        bins = params.get("bins")
        if bins is not None and (
            not bins
            or any(not isinstance(b, int) or isinstance(b, bool) for b in bins)
            or list(bins) != sorted(set(bins))
        ):
            problems.append(("bins", "must be a non-empty, increasing list of integers"))
        for key in {"to", "preset", "level", "birth"} & params.keys():
            problems.append((key, "does not apply to an integer column"))
    elif column_type == ColumnType.DATE:
        if "to" not in params:
            problems.append(("to", "generalize on a date column needs to: year, quarter or month"))
        for key in (numeric | {"preset", "level", "birth"}) & params.keys():
            problems.append((key, "does not apply to a date column"))
    else:
        if params.get("preset") not in ("id_card", "address"):
            problems.append(
                ("preset", "generalize on a text column needs preset: id_card or address")
            )
        for key in (numeric | {"to"}) & params.keys():
            problems.append((key, "does not apply to a text column"))
        if params.get("preset") == "address" and "birth" in params:
            problems.append(("birth", "applies to the id_card preset only"))
    return problems


def _validate_perturb(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    if ("round" in params) == ("noise" in params):
        return [("round", "perturb needs round: N or noise: laplace (with scale), not both")]
    if "noise" in params and "scale" not in params:
        return [("scale", "laplace noise needs a scale")]
    return []


def validate_mask_params(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Rules across mask parameters: a preset or first/last, and a one-character mask."""
    problems: list[tuple[str, str]] = []
    if "preset" in params and ({"first", "last"} & params.keys()):
        problems.append(("preset", "give either a preset or first/last, not both"))
    if "preset" not in params and not ({"first", "last"} & params.keys()):
        problems.append(("preset", "mask needs a preset or first/last"))
    char = params.get("char", "*")
    if isinstance(char, str) and len(char) != 1:
        problems.append(("char", "must be exactly one character"))
    return problems


def validate(
    name: str, params: Mapping[str, Any], column_type: ColumnType
) -> list[tuple[str, str]]:
    """All problems with `name` + `params` applied to a column of `column_type`."""
    definition = CATALOGUE.get(name)
    if definition is None:
        return [
            ("transform", f"unknown transform {name!r} (known: {', '.join(sorted(CATALOGUE))})")
        ]
    problems = definition.validate(params, column_type)
    if name == "mask" and not problems:
        problems += validate_mask_params(params)
    if name == "generalize" and not problems:
        problems += _validate_generalize(params, column_type)
    if name == "perturb" and not problems:
        problems += _validate_perturb(params)
    if name == "pseudonymize" and params.get("format", "token") != "token" and "length" in params:
        problems.append(("length", "length applies to format: token only"))
    if name == "pseudonymize" and params.get("format", "token") == "token" and "codes" in params:
        problems.append(("codes", "codes applies to format: id_card or mobile only"))
    kind = params.get("kind", params.get("format"))
    if params.get("codes") == "unassigned" and kind not in synthesize.UNASSIGNED:
        problems.append(
            ("codes", f"unassigned codes exist for {', '.join(synthesize.UNASSIGNED)} only")
        )
    return problems
