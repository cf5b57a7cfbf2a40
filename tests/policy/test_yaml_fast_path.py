"""The libyaml fast path of load_located gives exactly what the pure-Python reference loader gives:
the same value, the same line of every key and item, the same problems, and for anything the
reference refuses the same error (promise 8: a policy edit parses in bounded time and memory
and is judged the same whichever parser reads it)."""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gateway.policy import yamlsrc
from gateway.policy.yamlsrc import MAX_FILE_BYTES, Refused, load_located, load_located_reference
from tests.policy.test_policy_confinement import billion_laughs

DEMO = Path(yamlsrc.__file__).resolve().parent.parent / "demo" / "policies"

# One example or more of every YAML 1.1 implicit type, written the ways the spec allows, and the
# near misses that stay strings (or fail to construct, like 2001-02-30).
IMPLICIT = [
    *("0", "-17", "+5", "0o17", "017", "0x1F", "0b1010", "1_000", "190:20:30", "-0", "00"),
    *("3.14", "-1.5e3", "6.8523015e+5", "1e3", "1_0.5", ".5", "1.", "190:20:30.15", "-.Inf"),
    *(".inf", ".NaN", "+.inf", "true", "False", "yes", "No", "on", "OFF", "y", "n", "TRUE"),
    *("null", "~", "Null", "NULL", "2001-12-14", "2002-1-5", "2001-02-30", "2001-12-14 21:59:43"),
    *("2001-12-14t21:59:43.10-05:00", "2001-12-14T21:59:43Z", "2001-12-14 21:59:43.10 +5"),
    *("=", "<<", "a b", "a: b", "é", "日本語", "x#y", "-", "--- x", "'it''s'", '"\\u00e9\\t"'),
    *("'multi\n  line'", "plain\n  continued", "!!str 1", "!!int '7'", "!!binary aGk=", "!x y"),
    *("[]", "{}", "''", '""', '"a\\\nb"', "'#'", "@x", "`x", "%x", "? x", "*x", "&x y", "|"),
]
WORDS = st.text(st.sampled_from("ab z0.:-_#'\"é日\\"), max_size=8)
KEYS = st.sampled_from(["a", "b", "id", "名前", "key x", "1", "null", "true", "'q'", '"k: v"', "~"])


def quoted(text: str) -> str:
    """text as a double- or single-quoted YAML scalar (JSON strings are YAML)."""
    return json.dumps(text, ensure_ascii=False)


SCALARS = st.one_of(
    st.sampled_from(IMPLICIT),
    st.text(max_size=12).map(quoted),
    WORDS.map(lambda w: "'" + w.replace("'", "''") + "'"),
    WORDS,
)


# The strategies a document is drawn from, built once: a strategy made inside `documents` is a
# new object per draw, and Hypothesis validates each new one on its first draw (about half of
# this test's CPU when they were built per draw). The same strategies, so the same documents.
_HEADERS = st.sampled_from(["|", ">", "|-", ">+", "|2", ">-  # folded"])
_BODIES = st.lists(st.sampled_from(["x", "  y z", "", "é # not a comment", "- a"]), max_size=4)
_ENTRIES = st.integers(1, 4)
_KINDS = st.sampled_from(["scalar", "flow", "block", "nested", "empty"])
_COMMENTS = st.sampled_from(["", "", "  # note", " #é"])
_FLOW_ITEMS = st.lists(SCALARS.filter(lambda s: "\n" not in s), max_size=3)
_FLOWS = st.sampled_from(["[{}]", "{{{}}}"])
_EXTRA_LINE = st.integers(0, 5)


@functools.cache
def _extra_lines(indent: str) -> st.SearchStrategy[str]:
    return st.sampled_from(["", "# comment", indent + "# indented", "  "])


def _block_scalar(draw: st.DrawFn, indent: str) -> list[str]:
    header = draw(_HEADERS)
    body = draw(_BODIES)
    return [header] + [(indent + "  " + line) if line else "" for line in body]


@functools.cache
def _nested(depth: int, indent: str) -> st.SearchStrategy[list[str]]:
    return documents(depth, indent)


@st.composite
def documents(draw: st.DrawFn, depth: int = 0, indent: str = "") -> list[str]:
    """Lines of a block mapping or sequence at `indent`, nested up to three levels."""
    lines: list[str] = []
    as_list = draw(st.booleans())
    for _ in range(draw(_ENTRIES)):
        lead = indent + ("- " if as_list else draw(KEYS) + ":")
        kind = draw(_KINDS)
        comment = draw(_COMMENTS)
        if kind == "nested" and depth < 3:
            inner = draw(_nested(depth + 1, indent + "  "))
            lines.append(lead.rstrip() + comment)
            lines.extend(inner)
        elif kind == "flow":
            items = draw(_FLOW_ITEMS)
            flow = draw(_FLOWS)
            inside = ", ".join(f"k{i}: {s}" if flow[0] == "{" else s for i, s in enumerate(items))
            lines.append(f"{lead} {flow.format(inside)}{comment}")
        elif kind == "block":
            block = _block_scalar(draw, indent)
            lines.append(f"{lead} {block[0]}")
            lines.extend(block[1:])
        elif kind == "empty":
            lines.append(lead.rstrip() + comment)
        else:
            value = draw(SCALARS).replace("\n", "\n" + indent + "  ")
            lines.append(f"{lead} {value}{comment}")
        if draw(_EXTRA_LINE) == 0:
            lines.append(draw(_extra_lines(indent)))
    return lines


def outcome(load: Any, text: str) -> tuple[Any, ...]:
    """What a loader makes of text: repr of the value (so NaN equals NaN), lines and problems,
    or the error's type, message and the line error_line reports."""
    try:
        located = load(text)
    except yaml.YAMLError as exc:
        return ("error", type(exc).__name__, str(exc), yamlsrc.error_line(exc))
    except Exception as exc:  # a value that fails to construct (2001-02-30): same either way
        return ("error", type(exc).__name__, str(exc))
    return ("ok", repr(located.value), located.lines, located.problems)


def fast_only(text: str) -> yamlsrc.Located:
    """The fast path alone, with no fallback to the reference loader."""
    return yamlsrc._load(yamlsrc._FastLoader(text, None))


@settings(max_examples=400)
@example(lines=["a: 1", "a: 2", "1: x", "null: y", "b:", "- c", "-", "- 2001-12-14"])
@example(lines=["a: |", "  x", "", "  y", "b: >-", "  folded", "  text"])
@given(lines=documents())
def test_generated_documents_load_the_same_on_both_paths(lines: list[str]) -> None:
    """Promise 8 (property): for generated documents of every implicit type, block scalars,
    flow collections, comments and unicode, the fast path and the reference give the same
    value, lines and problems, or the same error."""
    text = "\n".join(lines) + "\n"
    assert outcome(load_located, text) == outcome(load_located_reference, text)


@settings(max_examples=300)
@given(
    data=st.recursive(
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(),
            st.floats(),
            st.text(max_size=10),
            st.dates(),
            st.datetimes(),
        ),
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
        ),
        max_leaves=20,
    ),
    flow=st.sampled_from([None, True, False]),
    unicode=st.booleans(),
)
def test_dumped_data_loads_the_same_on_both_paths_and_takes_the_fast_one(
    data: Any, flow: bool | None, unicode: bool
) -> None:
    """Promise 8 (property): whatever PyYAML writes from plain data, both paths read the same,
    and the fast path reads it without falling back."""
    text = yaml.safe_dump({"d": data}, default_flow_style=flow, allow_unicode=unicode, width=30)
    assert outcome(fast_only, text) == outcome(load_located_reference, text)


@settings(max_examples=500)
@example(text="a:\tb\n")
@example(text="%YAML 1.1\n--- a\n")
@example(text="a: b\n---\nc: d\n")
@example(text="---")  # an empty document ending without a newline: libyaml marks line 2
@example(text="# only a comment\n\n  # and another")  # no document at all: no root, no line
@example(text="")
@given(text=st.text(st.sampled_from("ab :-[]{},#&*!|>'\"\n\t%?~.01é\\\r\x85\u2028"), max_size=40))
def test_any_text_is_judged_the_same_on_both_paths(text: str) -> None:
    """Promise 8 (property): for arbitrary text made of YAML's indicators, the fast path never
    accepts what the reference refuses, and errors keep their message, line and hint."""
    assert outcome(load_located, text) == outcome(load_located_reference, text)


def test_a_text_without_a_document_takes_the_fast_path() -> None:
    """Promise 8: a file of comments only (1 MiB of them is allowed) is read by the fast path
    alone, to what the reference gives: no value, no line (not seconds of pure Python)."""
    text = "# " + "x" * ((1 << 20) - 10) + "\n\n# end\n"
    with mock.patch.object(yamlsrc, "_PolicyLoader", side_effect=AssertionError("parsed twice")):
        fast = load_located(text)
    assert fast == load_located_reference("# x\n\n# end\n") == yamlsrc.Located(None)


def test_demo_policies_take_the_fast_path_and_parse_identically() -> None:
    """Promise 8: every demo policy and policy-test file parses on the fast path (no fallback)
    to exactly what the reference loader gives."""
    files = sorted(DEMO.rglob("*.yaml"))
    assert len(files) >= 3
    for path in files:
        text = path.read_text("utf-8")
        assert not yamlsrc._reference_only(text), path.name
        assert fast_only(text) == load_located_reference(text), path.name


class _Any:
    """Equal to anything: error_line's wording is compared through str(exc) already."""

    def __eq__(self, other: object) -> bool:
        return True

    __hash__ = None  # type: ignore[assignment]


ANY: Any = _Any()

HOSTILE = [
    (billion_laughs(), 1, "anchor &a0 is not allowed in policy files; write the value out"),
    ("dataset: *nowhere\n", 1, "alias *nowhere is not allowed"),
    ("dataset:\n  id: x\n  <<: {title: y}\n", 3, "merge key << is not allowed"),
    ("dataset: &d {id: x}\n", 1, "anchor &d is not allowed"),
    ("dataset:\n  title: " + "[" * 40 + "]" * 40 + "\n", 2, "nested deeper than 32 levels"),
    ("grants: [" + "1," * 60_000 + "]\n", 1, "more than 50000 keys, values and items"),
]


@pytest.mark.parametrize(("text", "line", "message"), HOSTILE)
def test_hostile_documents_are_refused_the_same_way(text: str, line: int, message: str) -> None:
    """Promise 8: anchors, aliases (billion laughs), merge keys, depth and node count are refused
    by the fast path itself while composing, without a second parse by the reference loader,
    and load_located reports them exactly as the reference does (message, line, quoted text)."""
    with pytest.raises(Refused) as refused:
        fast_only(text)
    assert message in str(refused.value)
    with (
        mock.patch.object(yamlsrc, "_PolicyLoader", side_effect=AssertionError("parsed twice")),
        pytest.raises(Refused) as fast,
    ):
        load_located(text)
    with pytest.raises(Refused) as reference:
        load_located_reference(text)
    assert message in str(fast.value)
    assert str(fast.value) == str(reference.value)
    assert yamlsrc.error_line(fast.value) == yamlsrc.error_line(reference.value) == (line, ANY)


def marked(load: Any, text: str) -> tuple[Any, ...]:
    """outcome(), and for an error with a mark, where it points: name, line, column, index and
    the line quoted in the message."""
    try:
        load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        if mark is not None:
            where = (mark.name, mark.line, mark.column, mark.index, mark.get_snippet())
            return (*outcome(load, text), where)
    except Exception:  # noqa: S110 - outcome() below records it
        pass
    return outcome(load, text)


@settings(max_examples=200)
@example(lines=["a:", "  b: [1, {c: d}]", "  e: é日"], nodes=5, depth=3)
@example(lines=["- [[[x]]]"], nodes=40, depth=2)
# Refused at an empty plain scalar, which libyaml marks a column later than PyYAML (found in a
# fresh clone's `make test`): the reference words that refusal.
@example(lines=["-", "  -  0", "  -  {k0: }", "", "  -  0", ""], nodes=5, depth=3)
@given(lines=documents(), nodes=st.integers(1, 40), depth=st.integers(1, 4))
def test_refusals_for_size_are_the_same_on_both_paths(
    lines: list[str], nodes: int, depth: int
) -> None:
    """Promise 8 (property): with the node and depth limits lowered so that refusals fall
    anywhere in a generated document, load_located (which does not parse a refused document a
    second time) refuses as the reference does: the same message, line, column, index and
    quoted line, or the same value when nothing is refused."""
    text = "\n".join(lines) + "\n"
    with (
        mock.patch.object(yamlsrc, "MAX_NODES", nodes),
        mock.patch.object(yamlsrc, "MAX_DEPTH", depth),
    ):
        assert marked(load_located, text) == marked(load_located_reference, text)


def test_deadline_and_size_are_refused_the_same_way() -> None:
    """Promise 8: a set whose deadline has passed, and a file over the size limit, are refused
    on the fast path as on the reference."""
    text = (DEMO / "residents.yaml").read_text("utf-8")
    past = time.monotonic() - 1
    with pytest.raises(Refused, match="took longer than"):
        load_located(text, deadline=past)
    with pytest.raises(Refused, match="took longer than"):
        yamlsrc._load(yamlsrc._FastLoader(text, past))
    huge = "# " + "x" * MAX_FILE_BYTES + "\n"
    with pytest.raises(Refused, match="larger than") as fast:
        load_located(huge)
    with pytest.raises(Refused, match="larger than") as reference:
        load_located_reference(huge)
    assert str(fast.value) == str(reference.value)
