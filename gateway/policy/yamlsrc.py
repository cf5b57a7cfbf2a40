"""YAML to plain data, remembering the line of every key and item (for file:line diagnostics).

PyYAML silently keeps the last of duplicated keys; a policy typo must not pass that way, so
duplicates are reported here.

A policy file is input like any other (promise 8), so it parses in bounded time and memory.
Anchors, aliases and merge keys (`<<`) are refused while the document is composed, before a
single value is constructed: an alias shares a node, and expanding shared nodes is how a
few hundred bytes become gigabytes ("billion laughs"). Policy files need none of them. File
size, depth and the number of nodes are limited too, and parsing a set stops at a deadline.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.events import AliasEvent, CollectionStartEvent, NodeEvent, ScalarEvent

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

    def __init__(self, problem: str, mark: Any) -> None:
        super().__init__(problem=problem, problem_mark=mark)


class _PolicyLoader(yaml.SafeLoader):
    """SafeLoader that refuses anchors, aliases and merge keys and bounds depth, node count and
    time while composing (composition shares alias nodes; nothing is expanded yet)."""

    def __init__(self, text: str, deadline: float | None) -> None:
        super().__init__(text)
        self._deadline = deadline
        self._depth = 0
        self._nodes = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
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
        if isinstance(event, ScalarEvent) and event.value == "<<" and event.style is None:
            raise Refused(
                "merge key << is not allowed in policy files; write the keys out",
                event.start_mark,
            )
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise Refused(f"more than {MAX_NODES} keys, values and items", event.start_mark)
        if self._deadline is not None and time.monotonic() > self._deadline:
            raise Refused(
                f"parsing the policy set took longer than {PARSE_SECONDS:.0f} s", event.start_mark
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


def load_located(text: str, *, deadline: float | None = None) -> Located:
    """Parse one YAML document. Raises yaml.YAMLError on syntax errors and Refused (a
    yaml.MarkedYAMLError) on anything policy files may not hold; both carry the line."""
    if len(text) > MAX_FILE_BYTES:
        raise Refused(f"the file is larger than {MAX_FILE_BYTES} bytes", None)
    loader = _PolicyLoader(text, deadline)
    try:
        node = loader.get_single_node()
        located = Located(None)
        if node is not None:
            located.lines[()] = node.start_mark.line + 1
            located.value = _convert(loader, node, (), located)
        return located
    except yaml.MarkedYAMLError as exc:
        _locate_plain_value(text, exc)
        raise
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


def _convert(loader: yaml.SafeLoader, node: yaml.Node, path: Path_, out: Located) -> Any:
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
