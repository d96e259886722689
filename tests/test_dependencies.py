"""Every third-party module the code imports is declared in pyproject.toml.

A fresh install (README's ``pip install -e ".[test]"`` in a new virtual environment) has only
what pyproject.toml declares. A module that the machine happens to have (scipy, once) would let
the tests pass here and crash a person's install, so this reads every import with ``ast`` —
module level and inside functions alike — instead of importing the modules.
"""
from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import distributions, packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared(*extras: str) -> set[str]:
    """Normalised distribution names that pyproject.toml declares (with the given extras)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"])
    for extra in extras:
        specs += project["optional-dependencies"][extra]
    return {_normalise(re.split(r"[<>=!~;\[ ]", s, maxsplit=1)[0]) for s in specs}


def third_party_imports(folder: Path) -> dict[str, list[str]]:
    """Top-level names of every absolute import in the folder's .py files that is neither the
    standard library, facekp, nor one of the project's own script modules (tests/ and
    benchmarks/ import each other's helpers): name -> ["file:line"]."""
    found: dict[str, list[str]] = {}
    local = {p.stem for d in (folder, ROOT / "tests", ROOT / "benchmarks") for p in d.glob("*.py")}
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top == "facekp" or top in local:
                    continue
                found.setdefault(top, []).append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def _providers(module: str) -> set[str]:
    """The installed distributions that provide the importable top-level ``module``: those whose
    top_level.txt names it, else those whose RECORD lists its files (some, dlib-bin among them,
    name only part of what they install in top_level.txt)."""
    named = set(packages_distributions().get(module, []))
    if named:
        return named
    pattern = re.compile(rf"^{re.escape(module)}(/|\.[^/,]*,)", re.M)
    return {d.metadata["Name"] for d in distributions()
            if pattern.search(d.read_text("RECORD") or "")}


def undeclared(folders: list[str], declared: set[str]) -> list[str]:
    """One line per imported module that no declared distribution provides."""
    problems = []
    for folder in folders:
        for module, where in sorted(third_party_imports(ROOT / folder).items()):
            # a module not installed here counts as declared when a declared distribution
            # bears its name (matplotlib, from the bench extra, behind an ImportError guard)
            installed = {_normalise(d) for d in _providers(module)}
            if not (installed or {_normalise(module)}) & declared:
                got = f"provided by {sorted(installed)}" if installed else "not installed"
                problems.append(f"{module} ({got}) imported at {', '.join(where[:3])}")
    return problems


def test_the_package_imports_only_what_it_declares():
    assert undeclared(["core", "gui", "facekp", "resources"], _declared()) == []


def test_tests_and_benchmarks_import_only_the_test_and_bench_extras():
    assert undeclared(["tests"], _declared("test")) == []
    assert undeclared(["benchmarks"], _declared("test", "bench")) == []


def test_an_undeclared_import_inside_a_function_is_found(tmp_path, monkeypatch):
    """The check itself: scipy imported inside a function body, as it once was, is reported
    although importing the module would not have run that line."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "stats.py").write_text("import numpy as np\n\n\ndef rho(a, b):\n"
                                  "    from scipy.stats import spearmanr\n"
                                  "    return spearmanr(a, b)[0]\n")
    declared = _declared()
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    problems = undeclared(["pkg"], declared)
    assert len(problems) == 1 and problems[0].startswith("scipy (")
    assert "pkg/stats.py:5" in problems[0]
