"""Release floors: what a column may leave as, by its grade (GB/T 43697 核心 / 重要 / 一般), and
which transforms count as releasing the raw value (promise 2, docs/privacy.md#floors).

- a 核心 (core) column never leaves at row level as anything derived from the real value: only
  `suppress` or `synthesize` (or not at all);
- a 重要 (important) column never leaves raw: not as `keep`, and not as a transform whose output
  is (nearly) the raw value;
- a personal or sensitive 一般 column leaves raw or nearly raw only with a written justification.

"Nearly raw" is decided here from the declaration where it can be (a mask that shows more than
half of a value of known length, `perturb round: 1`, a date shift of less than a week, bins one
unit wide); the view builder also measures it on the data (the share of released values equal
to the source, the share of characters a mask leaves visible, and the share of rows whose real
value an outsider recovers from the released value and the column's observed domain) and
refuses to release a view that crosses the line. One threshold decides all of these:
RAW_SHARE, "more than half".

A column's kind sets the lowest grade it may carry (KIND_MIN_GRADE): a 身份证号 is 核心 wherever it
appears, a name, mobile number, address, e-mail or bank card at least 重要, so re-grading a
column cannot open a floor.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from itertools import pairwise
from typing import Any

from gateway.model.dataset import Column, ColumnType

CORE, IMPORTANT, GENERAL = "核心", "重要", "一般"
GRADE_ORDER = {GENERAL: 0, IMPORTANT: 1, CORE: 2}
CORE_ALLOWED = frozenset({"suppress", "synthesize", "drop"})
MIN_SHIFT_DAYS = 7  # a date shifted by less than a week still pins the day down
# The one line between "changed" and "(nearly) raw": a release whose values equal the source,
# show their characters, or give the real value back to an outsider in more than this share of
# the rows counts as raw (as `keep`).
RAW_SHARE = 0.5
MIN_WORDS = 3  # words a justification must carry (a CJK character counts as one word)
MIN_DISTINCT_WORDS = 2  # "test test test" says nothing either

# The lowest grade a column of a kind may carry: identifiers of a person are never 一般.
KIND_MIN_GRADE = {
    "id_card": CORE,
    "name": IMPORTANT,
    "mobile": IMPORTANT,
    "address": IMPORTANT,
    "email": IMPORTANT,
    "bank_card": IMPORTANT,
}

# Whole justifications that are placeholders, not reasons (compared lower-cased, without marks).
PLACEHOLDERS = frozenset(
    {
        "todo", "tbd", "tba", "fixme", "xxx", "n/a", "na", "none", "null", "nil", "test",
        "testing", "abcd", "asdf", "qwerty", "foo", "bar", "placeholder", "lorem ipsum",
        "待定", "待补充", "暂无", "无", "略", "测试", "同上", "不适用", "见上",
    }
)  # fmt: skip
_LATIN_WORD = re.compile(r"[^\W\d_]{2,}")

# Typical lengths of values of a kind, and what each mask preset shows (first, last).
KIND_LENGTH = {"id_card": 18, "mobile": 11, "bank_card": 16, "credit_code": 18}
PRESET_SHOWS = {"id_card": (6, 1), "mobile": (3, 4), "bank_card": (6, 4), "credit_code": (8, 0)}


def is_cjk(ch: str) -> bool:
    """Han, kana and hangul: scripts where one character is (about) a word."""
    return unicodedata.name(ch, "").startswith(("CJK", "HIRAGANA", "KATAKANA", "HANGUL"))


def has_words(text: object) -> bool:
    """A justification must say something: at least MIN_WORDS words (runs of two or more
    letters; each CJK character counts as one), at least two different ones, and not a
    placeholder ("TODO", "n/a", "abcd", "待定")."""
    if not isinstance(text, str):
        return False
    plain = " ".join(re.sub(r"[^\w/]+", " ", text.casefold()).split())
    if plain in PLACEHOLDERS or plain.replace(" ", "") in PLACEHOLDERS:
        return False
    cjk = [ch for ch in text if is_cjk(ch)]
    latin = _LATIN_WORD.findall("".join(" " if is_cjk(ch) else ch for ch in text).casefold())
    words = [w for w in latin if w not in PLACEHOLDERS] + cjk
    return len(words) >= MIN_WORDS and len(set(words)) >= MIN_DISTINCT_WORDS


def grade_problem(column: Column) -> tuple[str, str] | None:
    """(message, hint) when `column` is graded below what its kind requires."""
    lowest = KIND_MIN_GRADE.get(column.kind or "")
    if lowest is None or GRADE_ORDER.get(column.grade, 2) >= GRADE_ORDER[lowest]:
        return None
    return (
        f"a column of kind {column.kind} is graded {column.grade}, below {lowest}: the value "
        f"identifies a person wherever it appears, and its grade decides the release floors",
        f"grade it {lowest}" + ("" if lowest == CORE else f" or {CORE}"),
    )


def nearly_raw(name: str, params: Mapping[str, Any], column: Column) -> str | None:
    """Why `name` with `params` releases (nearly) the raw value of `column`, or None."""
    if name == "keep":
        return "keep releases the raw value"
    if name == "mask":
        preset = params.get("preset")
        if preset in PRESET_SHOWS:
            first, last = PRESET_SHOWS[str(preset)]
            length = KIND_LENGTH[str(preset)]
        else:
            first, last = int(params.get("first", 0)), int(params.get("last", 0))
            length = KIND_LENGTH.get(column.kind or "", 0)
        if length and 2 * (first + last) > length:
            return f"the mask shows {first + last} of {length} characters, more than half"
        return None
    if name == "perturb" and params.get("round") == 1:
        return "perturb with round: 1 leaves every value unchanged"
    if name == "date_shift" and int(params.get("max_days", 30)) < MIN_SHIFT_DAYS:
        return (
            f"a date shift of at most {params.get('max_days')} day(s) leaves the date nearly as "
            f"it was (use max_days: {MIN_SHIFT_DAYS} or more)"
        )
    if name == "generalize" and params.get("width") == 1:
        return "bins one unit wide release the raw value"
    edges = params.get("bins") if name == "generalize" else None
    if column.type is ColumnType.INTEGER and isinstance(edges, list) and len(edges) >= 2:
        numbers = [e for e in edges if isinstance(e, int | float)]
        if len(numbers) == len(edges) and all(b - a <= 1 for a, b in pairwise(numbers)):
            return "bins one unit wide release the raw value (every bin between the edges)"
    return None


def floor_problem(
    name: str, params: Mapping[str, Any], column: Column, justification: object
) -> tuple[str, str] | None:
    """(message, hint) when releasing `column` with this transform breaks a floor."""
    if column.grade == CORE and name not in CORE_ALLOWED:
        return (
            f"{CORE} column released as {name}: core data never leaves at row level as a value "
            "derived from the real one",
            "use suppress or synthesize, or leave the column out",
        )
    raw = nearly_raw(name, params, column)
    if raw is None:
        return None
    if column.grade == IMPORTANT:
        return (
            f"{IMPORTANT} column released (nearly) raw: {raw}",
            "mask, generalize, pseudonymize or suppress it",
        )
    if column.classification.protected and not has_words(justification):
        given = "" if justification is None else " (the justification given says nothing)"
        return (
            f"{column.classification} column released (nearly) raw without a justification"
            f"{given}: {raw}",
            "add `justification: <why raw is necessary>` or choose mask/pseudonymize",
        )
    return None
