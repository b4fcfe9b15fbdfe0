"""The layering of DESIGN §7 holds: lower layers never import higher ones, data never torch,
and no import cycles."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import sparsediff

PACKAGE = Path(sparsediff.__file__).parent

#: Layer of each module (longest matching prefix wins); a module may import its own
#: layer and those below it.
LAYERS: dict[str, int] = {
    "sparsediff.errors": 0,
    "sparsediff.atomic": 0,
    "sparsediff.lock": 0,
    "sparsediff.paths": 0,
    "sparsediff.rng": 0,
    "sparsediff.devices": 0,
    "sparsediff.progress": 0,
    "sparsediff.data": 1,
    "sparsediff.data.axes": 1,  # coordinate roles (cf_xarray, imported lazily)
    "sparsediff.networks": 2,
    "sparsediff.diffusion": 2,
    "sparsediff.laplace": 1,  # the Laplace fill: the scipy backend is torch-free
    "sparsediff.laplace.relaxation": 2,  # its torch backend
    "sparsediff.tensor_dir": 2,  # checksummed safetensors directories (models, checkpoints)
    "sparsediff.method": 3,
    "sparsediff.model": 3,
    "sparsediff.model_files": 3,
    "sparsediff.training": 4,
    "sparsediff.filling": 4,
    "sparsediff.evaluation": 4,
    "sparsediff.plotting": 4,
    "sparsediff.demo": 5,
    "sparsediff.accessor": 5,
    "sparsediff.cli": 5,
    "sparsediff.cli_support": 5,
    "sparsediff.__main__": 5,
    "sparsediff": 5,
}


def _layer(module: str) -> int:
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        key = ".".join(parts[:n])
        if key in LAYERS:
            return LAYERS[key]
    raise AssertionError(f"module {module} has no layer")


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports_of(node: ast.AST) -> set[str]:
    """The sparsediff modules one import statement imports."""
    found: set[str] = set()
    if isinstance(node, ast.Import):
        found.update(a.name for a in node.names if a.name.startswith("sparsediff"))
    elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sparsediff"):
        for alias in node.names:  # `from sparsediff import atomic` imports a module
            sub = f"{node.module}.{alias.name}"
            where = PACKAGE.parent / sub.replace(".", "/")
            is_module = where.with_suffix(".py").is_file() or where.is_dir()
            found.add(sub if is_module else str(node.module))
    return found


def _imports(path: Path) -> set[str]:
    """Every sparsediff module ``path`` imports (at any depth of the file)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        found.update(_imports_of(node))
    return found


def _load_time_imports(path: Path) -> set[str]:
    """The sparsediff modules ``path`` imports when it is loaded.

    Statements at module level, inside ``if``/``try`` blocks too; not those in
    functions (deferred on purpose) nor under ``if TYPE_CHECKING``.
    """
    found: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.If):
                if "TYPE_CHECKING" not in ast.unparse(node.test):
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                for block in (node.body, node.orelse, node.finalbody):
                    visit(block)
                for handler in node.handlers:
                    visit(handler.body)
            elif isinstance(node, ast.Import | ast.ImportFrom):
                found.update(_imports_of(node))

    visit(ast.parse(path.read_text()).body)
    return found


def _owner(module: str, known: set[str]) -> str:
    """The module (file) that defines ``module``: itself, or the package that holds the name."""
    while module not in known and "." in module:
        module = module.rpartition(".")[0]
    return module


def test_no_import_cycles() -> None:
    paths = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {
        name: {_owner(t, set(paths)) for t in _load_time_imports(path)} - {name}
        for name, path in paths.items()
    }
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the stack, 2: done

    def walk(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                walk(nxt, stack)
        stack.pop()
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            walk(name, [])
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)


def test_no_module_imports_a_higher_layer() -> None:
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = _module_name(path)
        for target in _imports(path):
            if target == "sparsediff":  # the package root (__version__): always loaded first
                continue
            if _layer(target) > _layer(name):
                bad.append(f"{name} (layer {_layer(name)}) imports {target} ({_layer(target)})")
    assert not bad, "\n".join(bad)


def test_the_data_layer_does_not_import_torch() -> None:
    modules = sorted(_module_name(p) for p in (PACKAGE / "data").rglob("*.py"))
    modules += ["sparsediff.laplace", "sparsediff.laplace.sparse"]  # the torch-free backend
    code = (
        f"import importlib, sys\nfor m in {modules!r}:\n    importlib.import_module(m)\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
