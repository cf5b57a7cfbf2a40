"""YAML to plain data, remembering the line of every key and item (for file:line diagnostics).

PyYAML silently keeps the last of duplicated keys; a policy typo must not pass that way, so
duplicates are reported here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

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


def load_located(text: str) -> Located:
    """Parse one YAML document. Raises yaml.YAMLError on syntax errors (it carries the line)."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        located = Located(None)
        if node is not None:
            located.lines[()] = node.start_mark.line + 1
            located.value = _convert(loader, node, (), located)
        return located
    finally:
        loader.dispose()


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
