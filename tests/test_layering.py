"""The import graph of curation/, workers/ and trainer/: no cycle, and imports point down.

The layers, bottom up: the domain (`curation/` outside `curation/cli/`), `workers/`, `trainer/`,
and the CLI (`curation/cli/`), the one place that wires them together. A module may import from
its own layer and the ones below. Every import counts, wherever it is written: at the top, inside a
function (a deferred import hides a cycle from Python, not from a reader) or under TYPE_CHECKING.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

from tests.conftest import ROOT

PACKAGES = ("curation", "workers", "trainer")
LAYERS = ("domain", "workers", "trainer", "cli")

Graph = dict[str, dict[str, int]]
"""module -> {module it imports: the line of the first such import}"""


def modules(root: Path, packages: Iterable[str] = PACKAGES) -> dict[str, Path]:
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def import_graph(root: Path, packages: Iterable[str] = PACKAGES) -> Graph:
    """Edges to the modules of `packages` only; `from package import name` goes to the submodule
    `name` when there is one, else to the package itself."""
    known = modules(root, packages)

    def resolve(name: str) -> str | None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    graph: Graph = {}
    for module, path in known.items():
        edges = graph.setdefault(module, {})
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    here = module.split(".") if is_package else module.split(".")[:-1]
                    base = ".".join([*here[: len(here) - node.level + 1], *([node.module] if node.module else [])])
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
            else:
                continue
            for target in targets:
                resolved = resolve(target)
                if resolved is not None and resolved != module:
                    edges.setdefault(resolved, node.lineno)
    return graph


def find_cycle(graph: Mapping[str, Mapping[str, int]]) -> list[str] | None:
    """One cycle as [a, b, ..., a] from its smallest name, or None. Iterative depth-first search in
    sorted order, so that the same graph always reports the same cycle."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    for start in sorted(graph):
        if start in state:
            continue
        path = [start]
        pending = [iter(sorted(graph.get(start, {})))]
        state[start] = 1
        while pending:
            step = next(pending[-1], None)
            if step is None:
                state[path.pop()] = 2
                pending.pop()
            elif state.get(step) == 1:
                cycle = path[path.index(step) :]
                first = cycle.index(min(cycle))
                return [*cycle[first:], *cycle[:first], min(cycle)]
            elif step not in state:
                state[step] = 1
                path.append(step)
                pending.append(iter(sorted(graph.get(step, {}))))
    return None


def layer(module: str) -> str:
    top = module.split(".")[0]
    if top == "curation":
        # `python -m curation` is the CLI too.
        cli = module in ("curation.cli", "curation.__main__") or module.startswith("curation.cli.")
        return "cli" if cli else "domain"
    return top


def upward_imports(graph: Mapping[str, Mapping[str, int]], files: Mapping[str, Path]) -> list[str]:
    """Each import of a higher layer than the importer's, as `path:line: a -> b (layer -> layer)`."""
    found = []
    for module, edges in sorted(graph.items()):
        for target, line in sorted(edges.items()):
            if LAYERS.index(layer(target)) > LAYERS.index(layer(module)):
                where = files[module].relative_to(ROOT) if files[module].is_relative_to(ROOT) else files[module]
                found.append(f"{where}:{line}: {module} -> {target} ({layer(module)} -> {layer(target)})")
    return found


def test_the_import_graph_has_no_cycle() -> None:
    graph = import_graph(ROOT)
    assert len(graph) > 50 and "workers.synthesis" in graph["workers.tasks"]  # the graph is the real one
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_imports_point_down_the_layers() -> None:
    graph = import_graph(ROOT)
    assert upward_imports(graph, modules(ROOT)) == []


def _write(root: Path, files: Mapping[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_checks_fail_on_a_cycle_and_an_upward_import(tmp_path: Path) -> None:
    # The shape of the cycle this test was written against: each link hidden a different way.
    _write(
        tmp_path,
        {
            "curation/__init__.py": "",
            "curation/domain.py": "def f():\n    from workers.task import run\n",
            "curation/cli/__init__.py": "from workers import task\n",
            "workers/__init__.py": "",
            "workers/task.py": "from . import lease\n",
            "workers/lease.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import workers.dispatch\n",
            "workers/dispatch.py": "import json\n\n\ndef send():\n    from workers.task import run\n",
            "workers/leaf.py": "from workers import lease, dispatch\n",
            "trainer/__init__.py": "",
        },
    )
    graph = import_graph(tmp_path)
    assert graph["workers.task"] == {"workers.lease": 1}
    assert graph["workers.leaf"] == {"workers.lease": 1, "workers.dispatch": 1}
    assert find_cycle(graph) == ["workers.dispatch", "workers.task", "workers.lease", "workers.dispatch"]
    assert upward_imports(graph, modules(tmp_path)) == [
        f"{tmp_path / 'curation/domain.py'}:2: curation.domain -> workers.task (domain -> workers)"
    ]

    # Break the cycle by a leaf module, as the real code does, and the check passes.
    _write(tmp_path, {"workers/dispatch.py": "import json\n"})
    assert find_cycle(import_graph(tmp_path)) is None
    assert find_cycle({"a": {"b": 1}, "b": {"c": 1}, "c": {}, "d": {"a": 1}}) is None
    assert find_cycle({"a": {"a": 1}}) == ["a", "a"]  # import_graph drops self-imports; the search still sees one
