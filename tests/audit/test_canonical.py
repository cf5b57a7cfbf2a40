"""Canonical JSON for signed entries (RFC 8785 subset without floats)."""

from __future__ import annotations

import json
from collections.abc import Callable
from enum import StrEnum

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.audit.canonical import JsonValue, _check, canonical_json

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.text(alphabet=st.characters(max_codepoint=127), max_size=8), children, max_size=4
        )
    ),
    max_leaves=20,
)


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
