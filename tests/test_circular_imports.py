"""Each module imports on its own, the core never imports a front end, no import cycles.

Dependency direction ``ari_app -> callrec <- agi``; only ``callrec.cli`` (the
composition root) may reach the front ends, and only lazily.

Importing alone catches only the cycles that break at import time. The
static graph below also sees the ones hidden behind a function-level import
or an ``if TYPE_CHECKING:`` block: they still tie two modules together, so
neither can be read, tested or moved without the other.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("callrec", "ari_app", "agi")


def _module_files(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    """Dotted module name -> file, a package named by its ``__init__``."""
    found = {}
    for pkg in packages:
        for path in sorted((root / pkg).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _modules() -> list[str]:
    return [m for m in _module_files(ROOT, PACKAGES) if not m.endswith(".__main__")]


@pytest.mark.parametrize("module", _modules())
def test_module_imports_alone_and_core_stays_core(module: str) -> None:
    code = (
        "import sys, importlib\n"
        f"importlib.import_module({module!r})\n"
        "fronts = ('ari_app', 'agi')\n"
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in fronts)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert out.returncode == 0, out.stderr
    if module.split(".")[0] == "callrec":
        assert out.stdout.strip() == "", f"{module} pulls in front ends: {out.stdout.strip()}"


# --- the static import graph ----------------------------------------------------------


@dataclass(frozen=True)
class Edge:
    """``source`` imports ``target`` at ``line`` (of the source's file)."""

    source: str
    target: str
    line: int


def _is_package(module: str, files: dict[str, Path]) -> bool:
    return files[module].name == "__init__.py"


def _imported_names(module: str, files: dict[str, Path]) -> Iterator[tuple[str, int]]:
    """Every module name ``module`` imports anywhere in its file, with the line.

    ``ast.walk`` visits function bodies and ``if TYPE_CHECKING:`` blocks too;
    ``importlib.import_module("literal")`` counts as an import.
    """
    tree = ast.parse(files[module].read_bytes(), filename=str(files[module]))
    package = module if _is_package(module, files) else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                # `from pkg import sub` imports the submodule when there is one.
                sub = f"{base}.{alias.name}"
                yield (sub if sub in files else base), node.lineno
        elif isinstance(node, ast.Call) and _is_import_module(node):
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                yield arg.value, node.lineno


def _is_import_module(node: ast.Call) -> bool:
    func = node.func
    return (
        isinstance(func, ast.Attribute)
        and func.attr == "import_module"
        and isinstance(func.value, ast.Name)
        and func.value.id == "importlib"
        and bool(node.args)
    )


def import_graph(root: Path, packages: Iterable[str]) -> dict[str, list[Edge]]:
    """Project module -> its imports of other project modules (first line per target)."""
    files = _module_files(root, packages)
    graph: dict[str, list[Edge]] = {}
    for module in files:
        seen: dict[str, Edge] = {}
        for name, line in _imported_names(module, files):
            if name in files and name != module and name not in seen:
                seen[name] = Edge(module, name, line)
        graph[module] = sorted(seen.values(), key=lambda e: e.line)
    return graph


def _components(graph: dict[str, list[Edge]]) -> list[list[str]]:
    """Strongly connected components (Tarjan), each as a sorted list of modules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for edge in graph[node]:
            if edge.target not in index:
                visit(edge.target)
                low[node] = min(low[node], low[edge.target])
            elif edge.target in on_stack:
                low[node] = min(low[node], index[edge.target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            out.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return out


def _cycle_path(graph: dict[str, list[Edge]], component: list[str]) -> list[Edge]:
    """One shortest cycle through the component's first module (breadth first)."""
    members, start = set(component), component[0]
    came_by: dict[str, Edge] = {}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for edge in graph[node]:
            if edge.target not in members or edge.target in came_by:
                continue
            came_by[edge.target] = edge
            if edge.target == start:
                path = [edge]
                while path[0].source != start:
                    path.insert(0, came_by[path[0].source])
                return path
            queue.append(edge.target)
    raise AssertionError(f"{component} is not strongly connected")  # pragma: no cover


def find_cycles(root: Path, packages: Iterable[str]) -> list[list[Edge]]:
    """One cycle per group of modules that import each other, directly or not."""
    graph = import_graph(root, packages)
    return [_cycle_path(graph, c) for c in _components(graph) if len(c) > 1]


def describe(cycle: list[Edge]) -> str:
    steps = " -> ".join(f"{e.source} (line {e.line})" for e in cycle)
    return f"{steps} -> {cycle[0].source}"


def test_no_import_cycles_in_the_static_graph() -> None:
    # Each entry reads "a (line of its import of b) -> b (line ...) -> a".
    assert [describe(c) for c in find_cycles(ROOT, PACKAGES)] == []


SIMULATOR = "callrec.ari.sim"
# Who may import the simulator besides itself: the demo (the tests are not in the graph).
SIMULATOR_USERS = {"ari_app.demo"}


def test_only_the_demo_imports_the_simulator() -> None:
    """Production code talks to a PBX through the client, never to the simulator."""
    graph = import_graph(ROOT, PACKAGES)
    users = [
        f"{edge.source} (line {edge.line})"
        for edges in graph.values()
        for edge in edges
        if (edge.target == SIMULATOR or edge.target.startswith(SIMULATOR + "."))
        and not edge.source.startswith(SIMULATOR)
        and edge.source not in SIMULATOR_USERS
    ]
    assert users == []
    assert any(e.target.startswith(SIMULATOR) for e in graph["ari_app.demo"])


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_cycle_finder_sees_lazy_type_checking_and_package_imports(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg.a import run\n",
            # Function level: invisible to a plain import, still a cycle.
            "pkg/a.py": "def run():\n    from pkg import b\n    return b\n",
            "pkg/b.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .c import Thing\n"
            ),
            # `from pkg import VERSION` (not a submodule) imports pkg's __init__.
            "pkg/c.py": "from pkg import VERSION\nThing = VERSION\n",
            "pkg/free.py": "import importlib\nimportlib.import_module('pkg.a')\n",
        },
    )
    cycles = find_cycles(tmp_path, ["pkg"])
    assert len(cycles) == 1
    assert describe(cycles[0]) == (
        "pkg (line 1) -> pkg.a (line 2) -> pkg.b (line 3) -> pkg.c (line 1) -> pkg"
    )


def test_cycle_finder_passes_a_layered_package(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg.top import run\n",
            "pkg/top.py": "import importlib\nfrom pkg import low\n"
            "def run():\n    return importlib.import_module('pkg.low')\n",
            "pkg/low.py": "import json\nfrom . import base\n",
            "pkg/base.py": "VALUE = 1\n",
        },
    )
    graph = import_graph(tmp_path, ["pkg"])
    assert [e.target for e in graph["pkg.top"]] == ["pkg.low"]
    assert [e.target for e in graph["pkg.low"]] == ["pkg.base"]
    assert find_cycles(tmp_path, ["pkg"]) == []
