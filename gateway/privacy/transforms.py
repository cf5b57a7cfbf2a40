"""The transform catalogue. Each transform is a pure, vectorized `Series -> Series` function with
validated parameters and a GB/T 37964 technique category (reported in the released schema).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from gateway.policy.model import ColumnType


@dataclass(frozen=True)
class TransformContext:
    """What a transform may depend on besides the column: the workspace secret and the scope."""

    secret: bytes
    client_id: str
    grant_id: str


@dataclass(frozen=True)
class Param:
    kind: type
    required: bool = False
    choices: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None


Apply = Callable[[pd.Series, Mapping[str, Any], TransformContext], pd.Series]


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
_ADDRESS_HEAD = r"^(.+?(?:自治县|新区|区|县|旗))"


def _stars(index: pd.Index, counts: pd.Series, char: str) -> pd.Series:
    repeats = counts.fillna(0).clip(lower=0).astype(np.int64).tolist()
    return pd.Series(char, index=index, dtype="string").str.repeat(repeats)


def _mask_keep(text: pd.Series, first: int, last: int, char: str) -> pd.Series:
    """Keep `first` leading and `last` trailing characters; if that would show the whole value,
    hide all of it (a short value is never released raw)."""
    length = text.str.len()
    hidden = length - first - last
    show = hidden > 0
    head = text.str.slice(0, first).where(show, "")
    tail = text.str.slice(-last).where(show, "") if last else ""
    return head + _stars(text.index, hidden.where(show, length), char) + tail


def _mask(series: pd.Series, params: Mapping[str, Any], ctx: TransformContext) -> pd.Series:
    text = series.astype("string")
    char = params.get("char", "*")
    preset = params.get("preset")
    if preset == "chinese_name":
        compound = text.str.slice(0, 2).isin(COMPOUND_SURNAMES)
        surname_len = compound.astype(np.int64) + 1
        length = text.str.len()
        show = length > surname_len
        head = text.str.slice(0, 2).where(compound, text.str.slice(0, 1)).where(show, "")
        result = head + _stars(text.index, length - surname_len.where(show, 0), char)
    elif preset == "email":
        parts = text.str.extract(r"^(.)[^@]*@(.+)$")
        result = (parts[0] + char * 3 + "@" + parts[1]).fillna(char * 4).astype("string")
    elif preset == "address":
        head = text.str.extract(_ADDRESS_HEAD)[0].astype("string")
        result = (head.fillna("") + char * 4).astype("string")
    else:
        default = (int(params.get("first", 0)), int(params.get("last", 0)))
        first, last = _KEEP_PRESETS.get(str(preset), default)
        result = _mask_keep(text, first, last, char)
    # If the hidden characters were mask characters already, the output would equal the raw
    # value: hide the whole value instead (promise 2, found by a property test).
    unchanged = (result == text).fillna(False)
    result = result.mask(unchanged, _stars(text.index, text.str.len(), char))
    return result.where(series.notna(), pd.NA)


# --- pseudonymize ----------------------------------------------------------------------------

PSEUDONYM_SCOPES = ("client", "grant", "shared")


def scope_key(secret: bytes, scope: str, ctx: TransformContext) -> bytes:
    """Derive the per-scope HMAC key: the same value maps to unrelated pseudonyms across scopes."""
    scope_id = {"client": ctx.client_id, "grant": ctx.grant_id, "shared": ""}[scope]
    label = b"public-data-gateway/pseudonym/v1\x00" + scope.encode() + b"\x00" + scope_id.encode()
    return hmac.new(secret, label, hashlib.sha256).digest()


def _pseudonymize(series: pd.Series, params: Mapping[str, Any], ctx: TransformContext) -> pd.Series:
    key = scope_key(ctx.secret, params.get("scope", "client"), ctx)
    length = params.get("length", 20)
    codes, uniques = pd.factorize(series.astype("string"), use_na_sentinel=True)
    # One HMAC per distinct value (HMAC has no vectorized form); rows are then gathered by code.
    digests = np.array(
        [
            hmac.new(key, str(v).encode("utf-8"), hashlib.sha256).hexdigest()[:length]
            for v in uniques
        ]
        + [""],
        dtype=object,
    )
    out = pd.Series(digests[codes], index=series.index, dtype="string")
    return out.where(codes >= 0, pd.NA)


_ANY = frozenset(ColumnType)
_STRING = frozenset({ColumnType.STRING})

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
            },
            _ANY,
            _pseudonymize,
            ColumnType.STRING,
        ),
    )
}


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
    return problems
