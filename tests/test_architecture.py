"""The layers of the code, read from its imports (docs/architecture.md, README's Layout).

``story_env`` (but ``story_env.run``) is the bottom layer; ``agents`` and ``teachers``
sit on it; the run layer ``story_env.run`` and the built-in ``plugins`` sit on top. Every
import counts, the ones inside functions included; only ``if TYPE_CHECKING:`` blocks,
which never run, are left out.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {  # repository folder -> the import name it installs as (pyproject's package-dir)
    "story_env": "story_env",
    "agents": "story_env.agents",
    "teachers": "story_env.teachers",
    "plugins": "story_env.plugins",
}
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 100


def _module_name(path: Path) -> str:
    folder, *parts = path.relative_to(ROOT).with_suffix("").parts
    if parts and parts[-1] == "__init__":
        parts.pop()
    return ".".join([FOLDERS[folder], *parts])


def _files() -> dict[str, Path]:
    return {_module_name(p): p for folder in FOLDERS for p in sorted((ROOT / folder).rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported(tree: ast.AST, module: str, is_package: bool, known: set[str]) -> set[str]:
    """Project modules ``module`` imports (``from pkg import mod`` counts as ``pkg.mod``).

    A parent package's ``__init__``, which Python runs before any of its submodules,
    is not counted: ``from pkg.mod import x`` is an edge to ``pkg.mod`` only.
    """
    found: set[str] = set()
    stack = [tree]
    while stack:
        node = stack.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                stack.extend(child.orelse)
                continue
            stack.append(child)
            if isinstance(child, ast.Import):
                found.update(a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = module.split(".")
                    anchor = anchor if is_package else anchor[:-1]
                    anchor = anchor[: len(anchor) - child.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                for alias in child.names:  # a submodule by name, else the package itself
                    sub = f"{base}.{alias.name}"
                    found.add(sub if sub in known else base)
    return {name for name in found if name in known}


def _graph() -> dict[str, set[str]]:
    files = _files()
    known = set(files)
    return {
        name: _imported(ast.parse(path.read_text("utf-8")), name, path.stem == "__init__", known)
        - {name}
        for name, path in files.items()
    }


def _layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in ("run", "agents", "teachers", "plugins"):
        return parts[1]
    return parts[0]


def test_the_import_reader_sees_function_level_imports_and_skips_type_checking():
    code = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import story_env.agents.rl.policy\n"
        "def f():\n    from story_env import registry\n    import story_env.teachers.lm\n"
    )
    known = {
        "story_env.agents.rl.policy",
        "story_env",
        "story_env.registry",
        "story_env.teachers.lm",
    }
    assert _imported(ast.parse(code), "story_env.core", False, known) == {
        "story_env.registry",
        "story_env.teachers.lm",
    }


def test_no_import_cycle_between_files():
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    assert cycles == [], f"import cycles: {cycles}"


@pytest.mark.parametrize(
    ("layer", "forbidden"),
    [
        ("story_env", {"run", "agents", "teachers", "plugins"}),
        ("agents", {"run", "teachers", "plugins"}),
        ("teachers", {"run", "agents", "plugins"}),
    ],
)
def test_layers_import_only_downward(layer, forbidden):
    wrong = sorted(
        f"{module} imports {target}"
        for module, targets in _graph().items()
        if _layer(module) == layer
        for target in targets
        if _layer(target) in forbidden
    )
    assert wrong == []


def test_modules_and_functions_stay_small():
    too_long = []
    for name, path in _files().items():
        text = path.read_text("utf-8")
        lines = len(text.splitlines())
        if lines > MAX_MODULE_LINES:
            too_long.append(f"module {name}: {lines} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"function {name}.{node.name}: {length} lines")
    assert too_long == []


def test_story_env_exports_resolve_and_stay_lazy():
    """``story_env.__all__`` names what a script needs; the names from above the bottom
    layer load on first use, so ``import story_env`` imports no run layer or model code."""
    import subprocess
    import sys

    import story_env

    assert set(story_env._LAZY) <= set(story_env.__all__)
    for name in story_env.__all__:
        assert getattr(story_env, name) is not None, name
    code = (
        "import story_env, sys; print(sorted(m for m in sys.modules if m.startswith('story_env.')))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert "story_env.run" not in loaded.stdout and "story_env.agents" not in loaded.stdout
