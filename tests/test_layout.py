"""The layout rules of docs/architecture.md, checked on the source: `filters/` never imports
`pipeline`, no module imports another module's private (underscore) names, no import cycles
between the project's modules, and no module shadows the standard library."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("filters", "pipeline", "bench")


def modules() -> dict[str, ast.Module]:
    found = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            name = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
            found[name] = ast.parse(path.read_text(), filename=str(path))
    return found


def imports(tree: ast.Module) -> list[tuple[str, list[str], int]]:
    """(module imported, names taken from it, line), module-level and inside functions alike."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.module, [a.name for a in node.names], node.lineno))
        elif isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names]
    return out


def test_filters_never_import_pipeline():
    wrong = [f"{name}:{line} imports {module}" for name, tree in modules().items() if name.startswith("filters")
             for module, _, line in imports(tree) if module.split(".")[0] == "pipeline"]
    assert not wrong


def test_no_private_names_imported_across_modules():
    mods = modules()
    wrong = [f"{name}:{line} imports {n} from {module}" for name, tree in mods.items()
             for module, names, line in imports(tree) if module in mods and module != name
             for n in names if n.startswith("_") and not n.startswith("__")]
    assert not wrong


def test_no_import_cycles_at_module_level():
    mods = modules()
    graph = {name: {m for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))
                    for m, _, _ in imports(ast.Module(body=[node], type_ignores=[])) if m in mods and m != name}
             for name, tree in mods.items()}
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path + [node, nxt]
            if nxt not in state and (cycle := visit(nxt, path + [node])):
                return cycle
        state[node] = 2
        return None

    cycles = [cycle for name in sorted(graph) if name not in state and (cycle := visit(name, []))]
    assert not cycles


def test_no_module_shadows_the_standard_library():
    shadowing = [name for name in modules() if name.rsplit(".", 1)[-1] in sys.stdlib_module_names]
    assert not shadowing
