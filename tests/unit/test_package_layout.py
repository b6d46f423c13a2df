"""The layout rules of the code base, checked on the source (no import is executed).

Import cycles hide behind imports inside functions and only bite when the wrong module happens to
load first; two modules with one file name make tracebacks and history ambiguous; a library module
that imports Dagster cannot be reused outside it. These rules are cheap to break by accident, so
a test reads every module's imports and fails on any breach.
"""

from __future__ import annotations

import ast
import subprocess
from collections import Counter
from pathlib import Path

from tests.conftest import REPO

PACKAGES = ("fin_assets", "fin_resources", "fin_sensors")
ASSET_MODULES = {
    f"fin_assets.{group}"
    for group in ("ingestion", "features", "training", "validation", "governance", "monitoring")
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            found[_module_name(path)] = path
    return found


MODULES = _modules()


def imports_of(path: Path) -> set[str]:
    """Project modules that ``path`` imports anywhere in its body (functions included).

    ``from a.b import c`` counts as importing ``a.b.c`` when that is a module, else ``a.b``; every
    import also loads the enclosing packages, so those count too.
    """
    wanted: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            wanted.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                wanted.add(child if child in MODULES else node.module)
    found: set[str] = set()
    for name in wanted:
        parts = name.split(".")
        found.update(
            prefix
            for prefix in (".".join(parts[:i]) for i in range(1, len(parts) + 1))
            if prefix in MODULES
        )
    return found


def import_graph() -> dict[str, set[str]]:
    """Module → the project modules it imports (itself excluded)."""
    return {name: imports_of(path) - {name} for name, path in MODULES.items()}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_cycle_finder_finds_a_planted_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert import_cycles(graph) == [["a", "b", "c"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles() -> None:
    assert import_cycles(import_graph()) == []


def test_imports_inside_functions_are_seen() -> None:
    graph = import_graph()
    assert "fin_assets.lib.common.names" in graph["fin_assets.jobs"]
    assert "fin_assets.cli.arguments" in graph["fin_assets.cli"]
    assert "fin_assets.cli" in graph["fin_assets.cli.demo"], "enclosing packages count"


def test_library_is_one_package_per_asset_group() -> None:
    lib = REPO / "fin_assets" / "lib"
    loose = sorted(p.name for p in lib.glob("*.py") if p.name != "__init__.py")
    assert loose == []
    packages = sorted(p.name for p in lib.iterdir() if (p / "__init__.py").exists())
    assert packages == [
        "common",
        "features",
        "governance",
        "ingestion",
        "monitoring",
        "serving",
        "training",
        "validation",
    ]


def test_module_file_names_are_unique() -> None:
    names = Counter(path.name for path in MODULES.values() if path.name != "__init__.py")
    assert sorted(name for name, count in names.items() if count > 1) == []


def test_dependency_directions() -> None:
    graph = import_graph()
    for name, targets in graph.items():
        if name.startswith("fin_resources"):
            assert not {t for t in targets if not t.startswith("fin_resources")}, name
        if name.startswith("fin_assets.lib"):
            source = MODULES[name].read_text()
            assert "import dagster" not in source and "from dagster" not in source, name
            outside = {
                t for t in targets if t != "fin_assets" and not t.startswith("fin_assets.lib")
            }
            assert not outside, (name, outside)
        if name.startswith("fin_sensors"):
            assert "fin_assets.definitions" not in targets, name
        if name in ASSET_MODULES:
            assert not (targets & ASSET_MODULES), (name, targets & ASSET_MODULES)
    assert not {t for t in graph["fin_assets.cli.demo"] if t.startswith("fin_assets.cli.")} - {
        "fin_assets.cli.run_helpers",
        "fin_assets.cli.stores",
        "fin_assets.cli.arguments",
    }, "the demo uses the run helpers, never the commands"


def test_the_repository_stands_alone() -> None:
    """No tracked file cites the founders' design file, which is not part of the repository."""
    files = subprocess.run(
        ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    needle = "DESIGN" + ".md"
    citing = [
        f
        for f in files
        if (REPO / f).is_file() and needle in (REPO / f).read_text("utf-8", "ignore")
    ]
    assert citing == []
    assert (REPO / "docs" / "architecture.md").is_file()
