"""The layering contract (issue 16): the gateway's packages import each other in one direction
only, so a change to a lower layer never needs a change above it to compile, and no import
cycle between packages can come back. docs/architecture.md shows the same table."""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from collections.abc import Iterator, Mapping
from pathlib import Path

from tests.paths import REPO

ROOT = REPO
PACKAGE = ROOT / "gateway"

# Top to bottom. A package (or top-level module) imports only packages of LOWER layers; the
# packages of one layer are independent of each other. A new package must be placed here.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("__main__",),
    ("cli",),
    ("app",),
    ("console",),
    ("api", "httpserver"),
    ("runtime",),
    ("client", "report", "trace", "workspace"),
    ("policy",),
    ("aggregate", "privacy"),
    ("data",),
    ("audit", "auth"),
    ("settings",),
    ("logs", "query", "store", "tls"),
    ("integers", "model"),
    ("clock", "demo", "errors", "fsutil", "gateway", "web"),
)

# Third-party libraries only some packages may use: HTTP stays at the edge, and only auth/
# speaks OAuth and JOSE (docs/architecture.md).
CONFINED = {
    "starlette": {"api", "app", "console"},  # the console is HTML at the HTTP edge
    "uvicorn": {"api", "cli", "httpserver"},
    "h11": {"api", "httpserver"},
    "httptools": {"api", "httpserver"},
    "authlib": {"auth", "client"},  # client/: the developer's side of OAuth (docs/developers.md)
    "joserfc": {"auth", "client"},
    # The audit writer's per-entry speed-ups (signing.py, canonical.py), optional there: the
    # auditor's verifier ships those modules without them.
    "nacl": {"audit"},
    "orjson": {"audit"},
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _package(module: str) -> str:
    """gateway.audit.store -> audit; gateway.settings -> settings; gateway -> gateway."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "gateway"


def _imports(module: str, path: Path) -> Iterator[str]:
    """Every module name an import statement of `module` names (also inside functions)."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: None if is_package else -1]
                base = base[: len(base) - (node.level - 1)]
                name = ".".join([*base, *([node.module] if node.module else [])])
            else:
                name = node.module or ""
            yield name
            yield from (f"{name}.{alias.name}" for alias in node.names)


def package_graph() -> dict[str, dict[str, set[str]]]:
    """package -> imported package -> the module edges behind it (for the failure message)."""
    modules = _modules()
    graph: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for module, path in modules.items():
        for name in _imports(module, path):
            while name and name not in modules:  # `from gateway.x import Name` -> gateway.x
                name = name.rpartition(".")[0]
            if name and name != module and _package(name) != _package(module):
                graph[_package(module)][_package(name)].add(f"{module} -> {name}")
    return graph


def _cycles(graph: Mapping[str, Mapping[str, set[str]]]) -> list[list[str]]:
    """The strongly connected components of more than one package (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, {}):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    nodes = set(graph) | {n for targets in graph.values() for n in targets}
    for node in sorted(nodes):
        if node not in index:
            visit(node)
    return found


def _layer_of() -> dict[str, int]:
    return {package: depth for depth, layer in enumerate(LAYERS) for package in layer}


def test_no_import_cycle_between_packages() -> None:
    """No two packages import each other, directly or through others."""
    graph = package_graph()
    cycles = _cycles(graph)
    detail = [
        f"{a} -> {b}: {', '.join(sorted(graph[a][b]))}"
        for cycle in cycles
        for a in cycle
        for b in cycle
        if b in graph.get(a, {})
    ]
    assert not cycles, f"import cycles between packages {cycles}:\n" + "\n".join(detail)


def test_every_package_has_a_layer() -> None:
    """A new package is placed in LAYERS (and docs/architecture.md) before it is imported."""
    packages = {_package(module) for module in _modules()}
    layered = set(_layer_of())
    assert packages - layered == set(), "add these packages to LAYERS and the architecture doc"
    assert layered - packages == set(), "LAYERS names packages that no longer exist"


def test_imports_only_point_down() -> None:
    """A package imports only packages of lower layers, never one above or beside it."""
    layer = _layer_of()
    wrong = [
        f"{a} (layer {layer[a]}) imports {b} (layer {layer[b]}): {', '.join(sorted(why))}"
        for a, targets in package_graph().items()
        for b, why in targets.items()
        if a in layer and b in layer and layer[b] <= layer[a]
    ]
    assert not wrong, "imports against the layering:\n" + "\n".join(sorted(wrong))


def test_confined_libraries_stay_in_their_packages() -> None:
    """HTTP libraries only at the edge; authlib and joserfc only in auth/."""
    wrong = []
    for module, path in _modules().items():
        for name in _imports(module, path):
            top = name.split(".")[0]
            if top in CONFINED and _package(module) not in CONFINED[top]:
                wrong.append(f"{module} imports {name}")
    assert not sorted(set(wrong)), "\n".join(sorted(set(wrong)))


def test_the_architecture_doc_shows_these_layers() -> None:
    """docs/architecture.md lists the same layers, in the same order (one line per layer)."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- layers -->\n```\n(.*?)```", text, re.S)
    assert block is not None, "docs/architecture.md needs its ```layers block"
    shown = [tuple(line.split()) for line in block.group(1).splitlines() if line.strip()]
    assert shown == [tuple(sorted(layer)) for layer in LAYERS]


def test_the_contract_catches_a_cycle() -> None:
    """The cycle finder is not vacuous: a planted two-package cycle is reported."""
    graph = {"a": {"b": {"a.x -> b.y"}}, "b": {"a": {"b.y -> a.x"}}, "c": {"a": {"c -> a"}}}
    assert _cycles(graph) == [["a", "b"]]
