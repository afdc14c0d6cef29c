"""The k-means machinery's layout: small modules, no import circle, no module named like a function."""

import ast
import importlib.util
from pathlib import Path

import curation_assets.core as core

CORE = Path(core.__file__).parent
MAX_MODULE_LINES = 400


def core_imports(path: Path) -> set[str]:
    """The core modules a core module imports (at the top or inside a function)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("curation_assets.core"):
            tail = node.module.removeprefix("curation_assets.core").lstrip(".")
            found |= {tail} if tail else {alias.name for alias in node.names if (CORE / f"{alias.name}.py").exists()}
    return found - {""}


def test_core_modules_import_each_other_without_a_circle():
    graph = {path.stem: core_imports(path) for path in CORE.glob("*.py") if path.stem != "__init__"}
    done, active = set(), []

    def visit(module: str) -> None:
        assert module not in active, f"import circle: {' -> '.join([*active, module])}"
        if module in done:
            return
        active.append(module)
        for imported in graph.get(module, ()):
            visit(imported)
        active.pop()
        done.add(module)

    for module in graph:
        visit(module)


def test_core_modules_stay_small():
    long = {path.name: n for path in CORE.glob("*.py") if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, long


def test_no_public_name_of_the_core_is_also_a_module():
    # ``from curation_assets.core import kmeans`` must give the function, and patching a module's constant must go
    # through a module that is not shadowed by a function of the same name.
    shadowed = [name for name in core.__all__ if importlib.util.find_spec(f"curation_assets.core.{name}") is not None]
    assert not shadowed, shadowed
    assert callable(core.kmeans)
