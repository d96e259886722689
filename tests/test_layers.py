"""The house's rules, read from the code with ``ast`` (module level and inside functions):

- no import circle among the modules of core, gui or benchmarks;
- inside core each room imports only rooms below it (README, Architecture): the ground floor,
  then data, faces, model, then photos and quality side by side, cli on top;
- core never imports gui or Qt.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = {"core": "facekp.core", "gui": "facekp.gui", "benchmarks": "benchmarks"}

#: Each room of core and the height it stands at; a room imports only lower ones (and itself).
ROOMS = {"": 0, "data": 1, "faces": 2, "model": 3, "photos": 4, "quality": 4, "cli": 5}


def module_names() -> dict[str, Path]:
    """Dotted name -> file, for every module of core, gui and benchmarks."""
    names = {}
    for folder, package in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            names[".".join([package, *parts])] = path
    return names


def _resolve(target: str, known: dict[str, Path]) -> str | None:
    """The longest known module that ``target`` names (a module, or a name inside one)."""
    while target:
        if target in known:
            return target
        target = target.rpartition(".")[0]
    return None


def import_graph(known: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the project's modules it imports (``from pkg import mod`` counts as ``mod``)."""
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = graph.setdefault(name, set())
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                elif name.startswith("benchmarks.") and base in {k.split(".")[-1] for k in known
                                                                  if k.startswith("benchmarks.")}:
                    base = "benchmarks." + base
                targets = [f"{base}.{a.name}" for a in node.names] + [base]
            for target in targets:
                if name.startswith("benchmarks.") and "." not in target:
                    target = "benchmarks." + target
                found = _resolve(target, known)
                if found and found != name:
                    edges.add(found)
                    break
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


@pytest.fixture(scope="module")
def graph():
    return import_graph(module_names())


def test_no_import_circle_in_core_gui_or_benchmarks(graph):
    assert cycles(graph) == []


def room_of(module: str) -> str:
    parts = module.split(".")
    return parts[2] if len(parts) > 3 or (len(parts) == 3 and parts[2] in ROOMS) else ""


def test_core_rooms_import_only_rooms_below(graph):
    wrong = []
    for module, targets in graph.items():
        if not module.startswith("facekp.core"):
            continue
        for target in targets:
            if target.startswith("facekp.gui"):
                wrong.append(f"{module} -> {target} (core never imports gui)")
                continue
            here, there = room_of(module), room_of(target)
            if here != there and ROOMS[there] >= ROOMS[here]:
                wrong.append(f"{module} ({here or 'ground'}) -> {target} ({there or 'ground'})")
    assert wrong == []


def test_core_never_imports_qt():
    for path in (ROOT / "core").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.split(".")[0] in ("PySide6", "pyqtgraph") for n in names), path


def test_the_checks_find_a_circle_and_an_arrow_up():
    """The checks themselves, on a made-up graph: a circle through three modules, and data
    importing model."""
    made_up = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(made_up) == [["a", "b", "c"]]
    assert room_of("facekp.core.data.dataset") == "data" and room_of("facekp.core.errors") == ""
    assert ROOMS[room_of("facekp.core.model.predict")] > ROOMS[room_of("facekp.core.data.shards")]


def test_the_graph_sees_imports_inside_functions(graph):
    """Imports inside functions are edges too (the predictor imports the architectures, which
    register the loss, only when it loads a model), and so are ``from room import module``."""
    assert "facekp.core.model.architectures" in graph["facekp.core.model.predict"]
    assert "facekp.core.data.opener" in graph["facekp.core.cli.datasets"]
    assert {"facekp.core.data.dataset", "facekp.core.data.shards"} <= \
        graph["facekp.core.data.opener"]
