"""Per-recipient fingerprints of released views (docs/transforms.md#fingerprints).

Keyed pseudonyms and synthetic values already differ per client. On top of them, every view gets
small keyed changes where the grant's transforms leave room for them: one more or one less unit
of a noisy (or opted-in kept) integer, the floor or the ceiling multiple of a rounded one, a day
more or less on a shifted date, up to two more mask characters in a masked address or
e-mail (keyed by what the mask leaves visible). The changes are keyed by (workspace secret,
grant, client) and the raw row or visible value, so they are
deterministic per recipient and look like noise to anyone without the secret; `gateway trace`
recomputes them to name the recipient of a leaked extract.

They are applied before the privacy model, which is then computed over the marked values (the
values that actually leave): k and l hold over them, and a mark on a quasi-identifier the model
generalizes is simply coarsened away with it. Formats and check characters are untouched: no
carrier is a checksummed, fixed-length or generalized column.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import TYPE_CHECKING

from gateway.model.dataset import ColumnType, Dataset
from gateway.model.grant import Grant
from gateway.privacy.keyed import arrow_text, keyed_words
from gateway.privacy.randomize import iso_days

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pandas as pd
    import pyarrow as pa

LABEL = b"public-data-gateway/fingerprint/v1"
VERSION = "fp3"  # part of every view key: views from before (or another version) never mix
MAX_CARRIERS = 32  # one keyed byte per carrier column and row (one HMAC-SHA256 per row)
_STEPS = (-1, 0, 1)  # an array where used: NumPy loads at the first view, not at start-up


def fingerprint_key(secret: bytes, grant_id: str, client_id: str) -> bytes:
    """The per-recipient key: HMAC-SHA256(secret, label || grant || client)."""
    label = LABEL + b"\x00" + grant_id.encode() + b"\x00" + client_id.encode()
    return hmac.new(secret, label, hashlib.sha256).digest()


def carriers(grant: Grant, dataset: Dataset) -> list[tuple[str, str]]:
    """(column, method) for every released column that carries the fingerprint, in grant order."""
    if not grant.fingerprint.enabled:
        return []
    found: list[tuple[str, str]] = []
    for name, spec in grant.columns:
        column = dataset.column(name)
        if column is None:
            continue
        options = spec.options
        method = None
        if spec.name == "perturb":
            method = "round" if "round" in options else "unit"
        elif spec.name == "date_shift":
            method = "day"
        elif spec.name == "mask" and options.get("preset") in ("address", "email"):
            method = f"mask_{options['preset']}"
        elif (
            spec.name == "keep"
            and name in grant.fingerprint.keep
            and column.type is ColumnType.INTEGER
        ):
            method = "unit"
        if method is not None:
            found.append((name, method))
    return found[:MAX_CARRIERS]


def _row_text(source: pd.DataFrame, dataset: Dataset) -> pa.Array:
    """Each raw row as one string (all declared columns joined by U+001F, a null as U+0000):
    what row keys hash. Joined by Arrow in one pass (pandas' `str.cat` goes through Python
    objects: seconds for a million rows)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    parts = [arrow_text(source[c.name].astype("string").fillna("\x00")) for c in dataset.columns]
    if not parts:
        return pa.array([""] * len(source), type=pa.large_string())
    if len(parts) == 1:
        return parts[0]
    return pc.binary_join_element_wise(*parts, pa.scalar("\x1f", pa.large_string()))


def _row_bytes(source: pd.DataFrame, dataset: Dataset, key: bytes) -> npt.NDArray[np.uint8]:
    """An (n, 32) array: the keyed digest of each raw row (byte j drives carrier j)."""
    import numpy as np

    words, _ = keyed_words(_row_text(source, dataset), key, 4)
    return words.astype(">u8").view(np.uint8).reshape(len(source), 32)


def _step(digest_bytes: npt.NDArray[np.uint8]) -> npt.NDArray[np.int64]:
    """-1, 0 or +1 from one keyed byte (bias below 1/256)."""
    import numpy as np

    stepped: npt.NDArray[np.int64] = np.array(_STEPS, dtype=np.int64)[
        digest_bytes.astype(np.int64) % 3
    ]
    return stepped


def _units(released: pd.Series, steps: npt.NDArray[np.int64]) -> pd.Series:
    import pandas as pd

    values = pd.to_numeric(released, errors="coerce").astype("Int64")
    moved: pd.Series = values + pd.Series(steps, index=values.index, dtype="Int64")
    return moved.where(values.notna(), pd.NA)


def _rounded(
    released: pd.Series, raw: pd.Series, step: int, bits: npt.NDArray[np.uint8]
) -> pd.Series:
    """The floor or the ceiling multiple of `step` (keyed): still a multiple, off by < step."""
    import numpy as np
    import pandas as pd

    values = pd.to_numeric(raw, errors="coerce").astype("float64")
    floor = np.floor(values / step) * step
    ceiling = np.ceil(values / step) * step
    chosen = np.where((bits & 1).astype(bool), ceiling, floor)
    out = pd.Series(chosen, index=released.index).round().astype("Int64")
    return out.where(values.notna() & released.notna(), released.astype("Int64"))


def _days(released: pd.Series, subjects: pd.Series, key: bytes) -> pd.Series:
    """One more, one less or the same day, per subject: a subject's dates still move together."""
    import numpy as np
    import pandas as pd

    words, _ = keyed_words(subjects, key, 1)
    steps = np.array(_STEPS, dtype=np.int64)[(words[:, 0] % np.uint64(3)).astype(np.int64)]
    moments = pd.to_datetime(released, errors="coerce", format="%Y-%m-%d")
    shifted = iso_days(moments + pd.to_timedelta(steps, unit="D"))
    return shifted.where(moments.notna(), released.astype("string"))


def _mask_length(released: pd.Series, char: str, preset: str, key: bytes) -> pd.Series:
    """Lengthen by 0, 1 or 2 the run of mask characters that carries no information (address:
    the four after the district; e-mail: the three after the first character). Never shorter,
    so the run a reader expects is always there; nothing else changes.

    The length is keyed by the visible part (the district head; the first character and the
    domain), not by the row: within one recipient's view every row showing the same head has the
    same run, so the mark survives in extracts whose other columns cannot tell rows apart, and
    it says nothing about the row itself."""
    import numpy as np
    import pandas as pd

    text = released.astype("string")
    mark = re.escape(char)
    if preset == "address":  # head + exactly four mask characters -> four to six
        fits = text.str.fullmatch(rf"(?s)(?:.*[^{mark}])?{mark}{{4}}")
        head, tail, base = text.str.slice(0, -4), pd.Series("", index=text.index), 4
    else:  # first character + three mask characters + "@domain" -> three to five
        fits = text.str.match(rf"(?s).{mark}{{3}}@")
        head, tail, base = text.str.slice(0, 1), text.str.slice(4), 3
    words, _ = keyed_words(head.fillna("") + "\x1f" + tail.fillna(""), key, 1)
    steps = np.array(_STEPS, dtype=np.int64)[(words[:, 0] % np.uint64(3)).astype(np.int64)]
    runs = np.array([char * base, char * (base + 1), char * (base + 2)], dtype=object)
    run = pd.Series(runs[steps + 1], index=text.index, dtype="string")
    changed = head + run + tail.astype("string")
    keep = ~fits.fillna(False).astype(bool).to_numpy()
    return text.where(keep, changed).astype(released.dtype)


def apply_fingerprint(
    frame: pd.DataFrame,
    source: pd.DataFrame,
    dataset: Dataset,
    grant: Grant,
    secret: bytes,
    client_id: str,
) -> pd.DataFrame:
    """The released frame with this recipient's fingerprint. `frame` holds the transformed
    columns, indexed like `source` (the rows the row filter kept); the privacy model runs on the
    result. Neither input is changed."""
    marked = carriers(grant, dataset)
    if not marked or frame.empty:
        return frame
    key = fingerprint_key(secret, grant.id, client_id)
    raw = source.loc[frame.index]
    digest = _row_bytes(raw, dataset, key)
    out = frame.copy()
    options = dict(grant.columns)
    for j, (name, method) in enumerate(marked):
        column_bytes = digest[:, j]
        params = options[name].options
        if method == "unit":
            out[name] = _units(frame[name], _step(column_bytes))
        elif method == "round":
            out[name] = _rounded(frame[name], raw[name], int(params["round"]), column_bytes)
        elif method == "day":
            subject_key = hmac.new(key, b"day\x00" + name.encode(), hashlib.sha256).digest()
            out[name] = _days(frame[name], raw[str(params["subject"])], subject_key)
        else:
            preset = method.removeprefix("mask_")
            mask_key = hmac.new(key, b"mask\x00" + name.encode(), hashlib.sha256).digest()
            out[name] = _mask_length(frame[name], str(params.get("char", "*")), preset, mask_key)
    return out
