"""Canonical JSON for signed entries (RFC 8785 subset without floats)."""

from __future__ import annotations

import json
from collections.abc import Callable
from enum import StrEnum
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.audit.canonical import JsonValue, _check, canonical_json


def json_of(text: st.SearchStrategy[str], key_size: int, leaves: int) -> st.SearchStrategy[Any]:
    """JSON values of exact built-in types: safe integers, `text` strings, ASCII keys."""
    return st.recursive(
        st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | text,
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(
                st.text(alphabet=st.characters(max_codepoint=127), max_size=key_size),
                children,
                max_size=4,
            )
        ),
        max_leaves=leaves,
    )


json_values = json_of(st.text(), 8, 20)


@given(json_values)
def test_canonical_form_is_a_fixed_point(value: JsonValue) -> None:
    """Encoding, decoding and re-encoding gives the same bytes (what the verifier relies on)."""
    encoded = canonical_json(value)
    assert canonical_json(json.loads(encoded)) == encoded


def test_keys_sorted_and_no_whitespace() -> None:
    """Keys are sorted and there is no insignificant whitespace; non-ASCII text stays UTF-8."""
    assert (
        canonical_json({"b": 1, "a": [True, None, "数据"]})
        == '{"a":[true,null,"数据"],"b":1}'.encode()
    )


@pytest.mark.parametrize(
    "bad", [1.5, {"x": 0.1}, [float("nan")], 2**53, {1: "int key"}, {"键": 1}, b"x"]
)
def test_rejects_values_outside_the_subset(bad: object) -> None:
    """Floats, unsafe integers, odd keys and bytes never reach a signed entry."""
    with pytest.raises((TypeError, ValueError)):
        canonical_json(bad)  # type: ignore[arg-type]


class _Kind(StrEnum):
    HTTP = "http"


# Values `canonical_json` takes a quick look at by exact type, and the ones that need the full
# check: str and int subclasses (enums, bool), tuples, floats, odd keys, integers at the edge.
odd_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53) - 2, 2**53 + 2)
    | st.text()
    | st.sampled_from([_Kind.HTTP, 1.5, float("nan"), b"x"]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.lists(children, max_size=3).map(tuple)
        | st.dictionaries(
            st.text(max_size=4) | st.integers(0, 3) | st.sampled_from([_Kind.HTTP, None]),
            children,
            max_size=4,
        )
    ),
    max_leaves=20,
)


def _reference(value: object) -> bytes:
    """canonical_json as it was before its fast path: the full check, then json.dumps."""
    _check(value, "$")
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8")


def _outcome(encode: Callable[[object], bytes], value: object) -> tuple[str, object]:
    try:
        return ("ok", encode(value))
    except (TypeError, ValueError) as exc:
        return (type(exc).__name__, str(exc))


@given(odd_values)
def test_same_bytes_and_same_errors_as_the_full_check(value: object) -> None:
    """The exact-type fast path changes no output and no error (type and message)."""
    ours = _outcome(canonical_json, value)  # type: ignore[arg-type]
    assert ours == _outcome(_reference, value)


# Every code point, surrogates and controls included, in keys' values and in nested values.
any_text = st.text(alphabet=st.characters(exclude_categories=()), max_size=12)
wide_values = json_of(any_text, 6, 24)


@given(wide_values)
def test_exact_types_give_json_dumps_bytes(value: JsonValue) -> None:
    """The encoder used for exact built-in types (orjson) writes what json.dumps writes, or
    the value fails as it did (a lone surrogate: UnicodeEncodeError, a ValueError)."""
    assert _outcome(canonical_json, value) == _outcome(_reference, value)  # type: ignore[arg-type]


@pytest.mark.parametrize("depth", [1, 250, 260, 600])
def test_deep_nesting_as_before(depth: int) -> None:
    """Past orjson's nesting limit the value goes to json: the same bytes as before."""
    value: JsonValue = "x"
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    assert canonical_json(value) == _reference(value)


def test_every_code_point_as_json_dumps_writes_it() -> None:
    """Each code point outside the surrogates, alone and all in one string, as key values and
    in a list: the bytes json.dumps writes."""
    points = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    value: JsonValue = {"all": "".join(points), "each": points[:0x3000]}
    assert canonical_json(value) == _reference(value)
    for chunk in range(0, len(points), 0x4000):
        some: JsonValue = points[chunk : chunk + 0x4000]
        assert canonical_json(some) == _reference(some)
