"""YAML to plain data, remembering the line of every key and item (for file:line diagnostics).

PyYAML silently keeps the last of duplicated keys; a policy typo must not pass that way, so
duplicates are reported here.

A policy file is input like any other (promise 8), so it parses in bounded time and memory.
Anchors, aliases and merge keys (`<<`) are refused while the document is composed, before a
single value is constructed: an alias shares a node, and expanding shared nodes is how a
few hundred bytes become gigabytes ("billion laughs"). Policy files need none of them. File
size, depth and the number of nodes are limited too, and parsing a set stops at a deadline.

Two loaders share those checks (`_Limits.compose_node`, Python either way). The fast one takes
its events from libyaml's C parser; the reference one is PyYAML's pure-Python SafeLoader, as
before. A document goes to the fast one first; if that fails in any way, the reference loader
parses it again and its outcome (value, or error with the same message, line and hint) is the
answer. The one exception is a refusal by the shared checks: the reference would refuse at the
same event, so the fast path's refusal is the answer, with the mark the reference gives. Either
way the result is the reference loader's (tests/policy/test_yaml_fast_path.py).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.events import AliasEvent, CollectionStartEvent, NodeEvent, ScalarEvent
from yaml.reader import Reader
from yaml.resolver import Resolver

try:
    from yaml._yaml import CParser
except ImportError:  # PyYAML built without libyaml: every document takes the reference path
    CParser = None  # type: ignore[assignment,misc]

MAX_FILE_BYTES = 1 << 20  # one policy or policy-test file
MAX_SET_BYTES = 8 << 20  # all policy files together (and, separately, all policy-test files)
MAX_DEPTH = 32  # nested mappings and lists
MAX_NODES = 50_000  # keys, values and items in one file
PARSE_SECONDS = 20.0  # parsing one whole set (its files share one deadline)

Path_ = tuple[str | int, ...]


@dataclass
class Located:
    """Parsed YAML plus the 1-based line of every key path."""

    value: Any
    lines: dict[Path_, int] = field(default_factory=dict)
    problems: list[tuple[int, str]] = field(default_factory=list)

    def line(self, path: Path_) -> int:
        """Line of `path`, or of its nearest ancestor that has one."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), 1)


class Refused(yaml.MarkedYAMLError):
    """The document uses something policy files may not (anchors, aliases, merge keys) or
    exceeds a limit; `problem_mark` holds the line."""

    def __init__(self, problem: str, mark: Any, *, exact: bool = True) -> None:
        super().__init__(problem=problem, problem_mark=mark)
        # False where libyaml's mark may differ from PyYAML's (an empty plain scalar: libyaml
        # can put it a column later), so the fast path's refusal is not the answer.
        self.exact = exact


class _Limits(Composer):
    """Composition that refuses anchors, aliases and merge keys and bounds depth, node count and
    time (composition shares alias nodes; nothing is expanded yet). Mixed in before the class
    that supplies the events, so this compose_node, and Composer's, are the ones that run."""

    peek_event: Callable[[], Any]  # a declaration only: the event source supplies it
    _deadline: float | None
    _depth: int
    _nodes: int

    def _limit(self, deadline: float | None) -> None:
        self._deadline = deadline
        self._depth = 0
        self._nodes = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()
        if isinstance(event, AliasEvent):
            raise Refused(
                f"alias *{event.anchor} is not allowed in policy files; write the value out",
                event.start_mark,
            )
        if isinstance(event, NodeEvent) and event.anchor is not None:
            raise Refused(
                f"anchor &{event.anchor} is not allowed in policy files; write the value out",
                event.start_mark,
            )
        # plain style: None from PyYAML's parser, "" from libyaml's
        if isinstance(event, ScalarEvent) and event.value == "<<" and not event.style:
            raise Refused(
                "merge key << is not allowed in policy files; write the keys out",
                event.start_mark,
            )
        self._nodes += 1
        # An empty plain scalar (`{k: }`) is where libyaml's and PyYAML's marks may differ.
        exact = not (isinstance(event, ScalarEvent) and not event.value and not event.style)
        if self._nodes > MAX_NODES:
            raise Refused(
                f"more than {MAX_NODES} keys, values and items", event.start_mark, exact=exact
            )
        if self._deadline is not None and time.monotonic() > self._deadline:
            raise Refused(
                f"parsing the policy set took longer than {PARSE_SECONDS:.0f} s",
                event.start_mark,
                exact=exact,
            )
        if isinstance(event, CollectionStartEvent):
            if self._depth >= MAX_DEPTH:
                raise Refused(f"nested deeper than {MAX_DEPTH} levels", event.start_mark)
            self._depth += 1
            try:
                node = super().compose_node(parent, index)
            finally:
                self._depth -= 1
            return node
        return super().compose_node(parent, index)


class _PolicyLoader(_Limits, yaml.SafeLoader):
    """The reference: PyYAML's pure-Python reader, scanner and parser, with the limits."""

    def __init__(self, text: str, deadline: float | None) -> None:
        yaml.SafeLoader.__init__(self, text)
        self._limit(deadline)


class _FastLoader(_Limits, SafeConstructor, Resolver, CParser):
    """The same composition, resolution and construction in Python, over libyaml's events: the
    MRO puts Composer's get_single_node/compose_node before CParser's, so only get_event,
    peek_event and check_event (and the reading and scanning behind them) are C."""

    def __init__(self, text: str, deadline: float | None) -> None:
        CParser.__init__(self, text)
        Composer.__init__(self)
        SafeConstructor.__init__(self)
        Resolver.__init__(self)
        self._limit(deadline)


def load_located(text: str, *, deadline: float | None = None) -> Located:
    """Parse one YAML document. Raises yaml.YAMLError on syntax errors and Refused (a
    yaml.MarkedYAMLError) on anything policy files may not hold; both carry the line."""
    if len(text) > MAX_FILE_BYTES:
        raise Refused(f"the file is larger than {MAX_FILE_BYTES} bytes", None)
    if CParser is not None and not _reference_only(text):
        try:
            located = _load(_FastLoader(text, deadline))
        except Refused as exc:
            if exc.exact and _same_refusal(text, deadline):
                raise Refused(exc.problem or "", _reference_mark(text, exc.problem_mark)) from None
        except Exception:  # noqa: S110 - any failure: the reference loader decides and words it
            pass
        else:
            # An empty document ("---" at the end of the text without a newline) is the one
            # valid text found where libyaml marks the root a line later; nothing to save there.
            # A text with no document at all (only comments and blank lines, as a file may be
            # while it is written) has no root and no line: the same on both paths, and the
            # reference would take seconds over a long one.
            if located.value is not None or not located.lines:
                return located
    return load_located_reference(text, deadline=deadline)


# Where libyaml and PyYAML's scanner read the same text differently (found by
# tests/policy/test_yaml_fast_path.py): tabs, line breaks other than "\n" and byte-order marks
# anywhere; outside comments, tags (!), directives (%), reserved indicators (@, `), "?" (PyYAML
# ends a plain scalar at it in a flow collection, libyaml does not) and a comment right after a
# block scalar header (|#). A document with any of them goes straight to the reference loader.
_ANYWHERE = re.compile("[\t\r\x85\u2028\u2029\ufeff]")
_RISKY = re.compile("[!%@`?]|[|>][-+0-9]*#")
_COMMENT = re.compile("(?:^| )#.*")


def _reference_only(text: str) -> bool:
    """Whether text holds anything libyaml might read differently. Comments are left out, but
    only on lines without quotes (where a " #" could be inside a quoted scalar); a " #" in a
    block scalar or a multi-line quoted scalar cuts only text that is content either way."""
    if _ANYWHERE.search(text):
        return True
    if not _RISKY.search(text):
        return False
    for line in text.split("\n"):
        if "'" not in line and '"' not in line:
            line = _COMMENT.sub("", line, count=1)
        if _RISKY.search(line):
            return True
    return False


def _same_refusal(text: str, deadline: float | None) -> bool:
    """Whether a refusal by the fast path is the reference's too, so the text need not be parsed
    a second time (a refusal for size comes after 50,000 nodes or 32 levels, seconds of pure
    Python to repeat). Both loaders see the same events up to the refused one (the texts they
    might read differently never reach the fast path), and the same _Limits counts them, so
    both refuse at the same event, for the same reason. Two exceptions go to the reference:
    characters its reader refuses before parsing anything, and a passed deadline (the
    reference then refuses at its first node, which costs nothing)."""
    if deadline is not None and time.monotonic() > deadline:
        return False
    return Reader.NON_PRINTABLE.search(text) is None


def _reference_mark(text: str, mark: Any) -> yaml.Mark:
    """libyaml's mark as PyYAML's reader makes it: the same name, line, column and index (in
    characters), plus the buffer its error message quotes the line from."""
    return yaml.Mark(mark.name, mark.index, mark.line, mark.column, text + "\0", mark.index)


def load_located_reference(text: str, *, deadline: float | None = None) -> Located:
    """load_located with PyYAML's pure-Python parser only: the answer the fast path must give,
    and the one whose errors (message, line, hint) users see."""
    if len(text) > MAX_FILE_BYTES:
        raise Refused(f"the file is larger than {MAX_FILE_BYTES} bytes", None)
    try:
        return _load(_PolicyLoader(text, deadline))
    except yaml.MarkedYAMLError as exc:
        _locate_plain_value(text, exc)
        raise


def _load(loader: _PolicyLoader | _FastLoader) -> Located:
    try:
        node = loader.get_single_node()
        located = Located(None)
        if node is not None:
            located.lines[()] = node.start_mark.line + 1
            located.value = _convert(loader, node, (), located)
        return located
    finally:
        loader.dispose()


def _locate_plain_value(text: str, exc: yaml.MarkedYAMLError) -> None:
    """`city:keep` (no space after the colon) on one line and `income: drop` on the next: YAML
    reads both lines as one plain value and fails only at the second colon. Name the line the
    value started on as the error's context, where the mistake is."""
    mark = exc.problem_mark
    if exc.context_mark is not None or mark is None or exc.problem != _MAPPING_VALUES:
        return
    last: Any = None
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):  # events only: nothing expands
            last = event
    except yaml.YAMLError:
        pass
    if not isinstance(last, ScalarEvent) or last.style is not None:
        return
    start: Any = last.start_mark
    end: Any = last.end_mark
    if start.line < mark.line == end.line:
        exc.context, exc.context_mark = _PLAIN_CONTEXT, start


def _convert(loader: SafeConstructor, node: yaml.Node, path: Path_, out: Located) -> Any:
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if not isinstance(key, str):
                out.problems.append((line, f"key {key!r} must be a string"))
                continue
            if key in result:
                out.problems.append((line, f"duplicate key {key!r}"))
                continue
            out.lines[(*path, key)] = line
            result[key] = _convert(loader, value_node, (*path, key), out)
        return result
    if isinstance(node, yaml.SequenceNode):
        items: list[Any] = []
        for i, item in enumerate(node.value):
            out.lines[(*path, i)] = item.start_mark.line + 1
            items.append(_convert(loader, item, (*path, i), out))
        return items
    return loader.construct_object(node, deep=True)


# Errors PyYAML detects only on a later line, for a construct that began on the line of the
# error's context mark: a key without its ": " ("b:2", "bogus line") is found missing at the
# next line, an unclosed [ or { at the next key. The admin's mistake is on the context's line.
_MAPPING_VALUES = "mapping values are not allowed here"
_PLAIN_CONTEXT = "while scanning a plain value"
_STARTED_EARLIER = (
    _PLAIN_CONTEXT,
    "while scanning a simple key",
    "while parsing a flow",
    "while scanning a quoted scalar",
    "while scanning a block scalar",
)


def error_line(exc: yaml.YAMLError) -> tuple[int, str]:
    """The 1-based line of the admin's mistake behind a YAML syntax error, and what to say."""
    problem = getattr(exc, "problem", None) or str(exc)
    mark = getattr(exc, "problem_mark", None)
    context = getattr(exc, "context", None)
    context_mark = getattr(exc, "context_mark", None)
    if context == _PLAIN_CONTEXT and context_mark is not None:
        hint = "a value runs on from this line to the next: is a space missing after a colon?"
        return context_mark.line + 1, f"{problem} ({hint})"
    if (
        context_mark is not None
        and isinstance(context, str)
        and context.startswith(_STARTED_EARLIER)
    ):
        return context_mark.line + 1, f"{problem} ({context} that starts on this line)"
    return (mark.line + 1 if mark is not None else 1), str(problem)
