"""Canonical JSON for signed entries (RFC 8785 subset without floats)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.audit.canonical import JsonValue, canonical_json

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
