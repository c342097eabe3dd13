"""The shape of the packages: no import circles, arrows point one way, modules stay small.

Imports are read from the source (``ast``), so an import inside ``TYPE_CHECKING`` or a
function counts as much as one at the top: a circle hidden behind a lazy import is still a
circle a reader has to untangle.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import agentfm

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ("agentfm", "agentfm_integrations")
MAX_LINES = 500


def _modules() -> dict[str, tuple[Path, bool]]:
    found: dict[str, tuple[Path, bool]] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            if is_package:
                parts.pop()
            found[".".join(parts)] = (path, is_package)
    return found


MODULES = _modules()


def _imported(name: str, path: Path, is_package: bool) -> Iterator[tuple[str, str | None]]:
    """Yield ``(module, imported_name)`` for every import in the module's source."""
    here = name.split(".") if is_package else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:
                yield module, alias.name


def _resolve(dotted: str) -> str | None:
    while dotted and dotted not in MODULES:
        dotted = dotted.rpartition(".")[0]
    return dotted or None


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for name, (path, is_package) in MODULES.items():
        for module, imported in _imported(name, path, is_package):
            for candidate in (f"{module}.{imported}" if imported else None, module):
                target = _resolve(candidate) if candidate else None
                if target and target != name:
                    graph[name].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (iterative Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_cycle_finder_finds_a_planted_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_no_import_circles() -> None:
    assert _cycles(_graph()) == []


def test_sdk_never_imports_the_integrations() -> None:
    graph = _graph()
    arrows = sorted(
        f"{src} -> {dst}"
        for src, targets in graph.items()
        if src.split(".")[0] == "agentfm"
        for dst in targets
        if dst.split(".")[0] == "agentfm_integrations"
    )
    assert arrows == []


# Public submodules of the SDK that the integrations may import from, besides agentfm itself.
PUBLIC_SUBMODULES = {"agentfm.mesh", "agentfm.openai", "agentfm.streaming", "agentfm.webhook"}


def test_integrations_use_only_public_sdk_names() -> None:
    public = set(agentfm.__all__)
    private_uses = []
    for name, (path, is_package) in MODULES.items():
        if not name.startswith("agentfm_integrations"):
            continue
        for module, imported in _imported(name, path, is_package):
            if module.split(".")[0] != "agentfm":
                continue
            if module == "agentfm" and (imported is None or imported in public):
                continue
            if module in PUBLIC_SUBMODULES and not (imported or "").startswith("_"):
                continue
            private_uses.append(f"{name}: from {module} import {imported}")
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "agentfm"
                and node.attr not in public
            ):
                private_uses.append(f"{name}: agentfm.{node.attr}")
    assert private_uses == []


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_is_small_or_says_why(name: str) -> None:
    path, _ = MODULES[name]
    lines = len(path.read_text(encoding="utf-8").splitlines())
    if lines <= MAX_LINES:
        return
    docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    assert "Why this module is long:" in docstring, (
        f"{name} has {lines} lines; split it, or say in its docstring "
        "('Why this module is long: ...') what keeps it whole"
    )
