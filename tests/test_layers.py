"""The package layers (ARCHITECTURE.md) as a test over the import graph of nqs_cli.

app → run → setup → {vmc, models, systems}; config is read by setup, run and app only.
Fails when a module imports across a layer boundary, when two modules import each other
(directly or through others), or when a module below the command layer hides a project
import inside a function.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "nqs_cli"

# package -> the project packages its modules may import (besides their own)
ALLOWED = {
    "config": set(),
    "systems": set(),
    "vmc": set(),
    "models": set(),
    "setup": {"config", "systems", "vmc", "models"},
    "run": {"config", "setup", "systems", "vmc", "models", "nqs_cli"},
    "app": {"config", "setup", "run", "systems", "vmc", "models", "nqs_cli"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def targets(node: ast.AST) -> list[str]:
    """The project modules an import statement loads (a submodule when ``from pkg import mod``)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == "nqs_cli"]
    if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "nqs_cli":
        subs = [f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in MODULES]
        return subs or [node.module]
    return []


def imports(path: Path) -> tuple[set[str], set[str]]:
    """(every project module imported, those imported inside a function body)."""
    tree = ast.parse(path.read_text())
    everything = {t for node in ast.walk(tree) for t in targets(node)}
    local = set()
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            local |= {t for node in ast.walk(fn) for t in targets(node)}
    return everything, local


GRAPH = {name: imports(path) for name, path in MODULES.items()}


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "nqs_cli"


def test_every_package_has_a_layer():
    assert {layer(m) for m in MODULES} - {"nqs_cli", "__main__"} <= set(ALLOWED)


def test_imports_respect_the_layers():
    wrong = []
    for module, (deps, _) in GRAPH.items():
        here = layer(module)
        if here not in ALLOWED:
            continue
        for dep in deps:
            there = layer(dep)
            if there != here and there not in ALLOWED[here]:
                wrong.append(f"{module} imports {dep} ({here} may import {sorted(ALLOWED[here]) or 'nothing else'})")
    assert not wrong, "\n".join(wrong)


def test_no_function_local_project_imports_below_the_command_layer():
    hidden = [f"{module}: {sorted(local)}" for module, (_, local) in GRAPH.items() if local and layer(module) != "app"]
    assert not hidden, "\n".join(hidden)


def test_no_import_cycles():
    edges = {m: {d for d in deps if d in MODULES and d != m} for m, (deps, _) in GRAPH.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(m: str, path: list[str]):
        state[m] = 1
        for d in sorted(edges[m]):
            if state.get(d) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(d):] + [d]))
            if d not in state:
                visit(d, path + [d])
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m, [m])


def test_the_graph_sees_the_layers():
    """The checker itself: it finds known edges (a broken parser would pass vacuously)."""
    deps, _ = GRAPH["nqs_cli.setup.registry"]
    assert {"nqs_cli.config", "nqs_cli.setup.problem", "nqs_cli.models.rbm_kernels"} <= deps
    _, local = GRAPH["nqs_cli.app.cli"]
    assert local  # the command layer imports the engine lazily, so `nqs --help` starts fast
