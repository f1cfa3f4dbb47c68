#!/usr/bin/env python3
"""Checks the shape of src/: no function longer than 80 lines, no import cycle among litetrain modules.

Run from anywhere: ``python dev/check_structure.py``. It reads the sources with :mod:`ast` and never imports them,
so it needs no dependency and takes a second. Exit status 0 when both rules hold, 1 with one line per offender.

The rules, as this script reads them:

* **Function length.** A function (or method) is measured from its ``def`` line to its last line, docstring, comments
  and nested functions included; decorators are not counted. Over ``MAX_FUNCTION_LINES`` it is an offender.
* **Import cycles.** Every ``import litetrain...`` / ``from litetrain... import ...`` in a module is an edge: at module
  level, inside functions and under ``if TYPE_CHECKING:`` alike. A lazy import keeps ``import litetrain`` light, and a
  type-only import never runs, but neither makes a circle between two modules one a reader can follow in one direction.
  ``from package import name`` is an edge to ``package.name`` when that is a module, else to the package's
  ``__init__``. A package is not an implicit edge of its submodules (that Python runs a package's ``__init__`` before a
  submodule is the interpreter's business, not a dependency the code chose). Every strongly connected component of
  more than one module, and every module that imports itself, is reported once.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

MAX_FUNCTION_LINES = 80
ROOT = Path(__file__).resolve().parent.parent / "src"
PACKAGE = "litetrain"


def module_name(path: Path) -> str:
    """Dotted module name of a source file under ``ROOT`` (a package's ``__init__`` is the package)."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_files() -> dict[str, Path]:
    """Every module of the package, by dotted name."""
    return {module_name(path): path for path in sorted((ROOT / PACKAGE).rglob("*.py"))}


def long_functions(path: Path, tree: ast.Module) -> Iterator[str]:
    """One line per function in ``tree`` longer than ``MAX_FUNCTION_LINES``."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                where = path.relative_to(ROOT.parent)
                yield f"{where}:{node.lineno}: {node.name}() is {length} lines (at most {MAX_FUNCTION_LINES})"


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    """The absolute module an ``ImportFrom`` names, relative imports included."""
    if not node.level:
        return node.module or ""
    parts = module.split(".")
    # `from . import x` in a package's __init__ is relative to the package itself, elsewhere to the containing one.
    keep = len(parts) - node.level + (1 if is_package else 0)
    return ".".join(parts[:keep] + ([node.module] if node.module else []))


def imported_modules(module: str, path: Path, tree: ast.Module, modules: set[str]) -> set[str]:
    """The litetrain modules that ``module`` imports, lazily or not."""
    edges: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            target = _resolve(module, path.name == "__init__.py", node)
            names = [
                f"{target}.{alias.name}" if f"{target}.{alias.name}" in modules else target
                for alias in node.names
            ]
        for name in names:
            # `import litetrain.a.b` binds litetrain but depends on litetrain.a.b: take the longest known prefix.
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name.split(".")[0] == PACKAGE and name:
                edges.add(name)
    return edges


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module that ``start`` imports directly or through others."""
    seen: set[str] = set()
    todo = list(graph.get(start, ()))
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(graph.get(node, ()))
    return seen


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Groups of modules that import each other, directly or around a circle (a module in its own reach included)."""
    reach = {node: reachable(graph, node) for node in graph}
    found = {
        tuple(sorted(other for other in reach[node] if node in reach[other]))
        for node in graph
        if node in reach[node]
    }
    return [list(component) for component in sorted(found)]


def describe_cycle(component: list[str], graph: dict[str, set[str]]) -> str:
    """One line naming a cycle's modules and the imports that close it."""
    members = set(component)
    edges = [f"{a} -> {b}" for a in component for b in sorted(graph[a]) if b in members]
    return f"import cycle among {', '.join(component)}: " + "; ".join(edges)


def main() -> int:
    """Prints every offender and returns the exit status."""
    files = source_files()
    modules = set(files)
    graph: dict[str, set[str]] = {}
    offenders: list[str] = []
    for module, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        offenders.extend(long_functions(path, tree))
        graph[module] = imported_modules(module, path, tree, modules)
    offenders.extend(describe_cycle(component, graph) for component in cycles(graph))
    for line in offenders:
        print(line)
    if offenders:
        print(f"check_structure: {len(offenders)} offender(s)", file=sys.stderr)
        return 1
    print(
        f"check_structure: {len(files)} modules, no function over {MAX_FUNCTION_LINES} lines, no import cycle"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
