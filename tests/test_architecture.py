"""Import contracts: cli -> build/run/describe -> pipeline -> check/quant/weights -> numerics -> tflite, statically."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lstmgen"

# Unit -> the units it may import from (besides itself). A unit is a top-level module or subpackage.
# "lstmgen" is the package root: it re-exports __version__ and holds the lazy facade (its imports run on
# attribute access only, so nothing imports the facade's targets at import time). Bottom-up, the layering reads:
#   version, errors, progress, guard < tflite < numerics < config < arrays/output/modelinfo/weights/targets
#   < runtimes/quant < check < samples/embed < pipeline < build/run/describe/export < cli.
# A new module needs a row here: say where it sits before it imports anything.
BASE = {"version", "errors", "guard", "progress"}  # guard: hostile-input checks; progress: step counting
ALLOWED: dict[str, set[str]] = {
    "lstmgen": {"version"},  # module level; the facade's function-level imports: test_facade_imports_lazily
    "version": set(),
    "errors": set(),
    "progress": set(),
    "guard": {"errors"},
    "tflite": {"errors"},  # file-format facts only: test_tflite_imports_only_errors
    "numerics": BASE | {"tflite"},  # graph evaluation, the reference, the float bound, affine arithmetic, tables
    "config": BASE | {"tflite", "numerics"},
    "arrays": BASE,
    "output": BASE,
    "modelinfo": BASE | {"tflite", "numerics"},
    "weights": BASE | {"tflite", "arrays"},
    "targets": BASE | {"tflite", "config", "numerics"},
    "runtimes": BASE | {"tflite", "numerics", "targets", "arrays"},
    "quant": BASE | {"tflite", "numerics", "config"},
    "check": BASE | {"tflite", "numerics", "config", "arrays", "modelinfo", "runtimes", "weights"},
    "samples": BASE | {"arrays"},
    "vectors": BASE | {"tflite", "numerics", "modelinfo", "output", "embed"},  # golden vectors for firmware
    "embed": BASE | {"tflite", "output", "runtimes", "modelinfo", "targets"},
    "pipeline": BASE
    | {"tflite", "numerics", "config", "arrays", "output", "weights", "quant", "targets", "runtimes", "check"}
    | {"samples", "embed"},
    "build": {"pipeline"},  # the public entry point, re-exported
    "run": BASE | {"tflite", "numerics", "arrays", "output", "modelinfo", "runtimes", "check"},
    "export": BASE | {"tflite", "numerics", "config", "output", "modelinfo", "weights", "export_graph"},
    "export_graph": BASE | {"tflite", "numerics", "modelinfo"},  # the graph form's weights, found by structure
    "describe": BASE | {"tflite", "numerics", "config", "modelinfo", "targets"},
    "cli": BASE
    | {"tflite", "numerics", "config", "arrays", "output", "weights", "modelinfo", "runtimes", "targets", "quant"}
    | {"check", "pipeline", "build", "run", "describe", "embed", "export", "export_graph", "samples", "vectors"},
    # The public API (lstmgen.api): on top, beside the CLI, whose build summary it prints.
    "api": BASE | {"build", "run", "describe", "export", "config", "output", "pipeline", "weights", "check"}
    | {"cli", "modelinfo"},
    "precommit": BASE | {"api", "config"},  # the pre-commit hook's script: the public API's build
    "__main__": {"cli"},
}


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        out.append((".".join(parts), path))
    return out


def _is_module(name: str) -> bool:
    rel = Path(*name.split(".")[1:]) if name.count(".") else Path()
    return (PACKAGE / rel).with_suffix(".py").is_file() or (PACKAGE / rel / "__init__.py").is_file()


def _unit(module: str) -> str:
    """lstmgen.numerics.graph -> numerics; lstmgen.weights.keras -> weights; lstmgen -> lstmgen."""
    parts = module.split(".")[1:]
    return parts[0] if parts else "lstmgen"

def _imports(module: str, path: Path) -> list[tuple[int, str]]:
    """Every lstmgen module imported anywhere in the file (also inside functions and TYPE_CHECKING)."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            # `from lstmgen.check import graph` imports a submodule: count the submodule's unit.
            found += [(node.lineno, f"{base}.{a.name}" if _is_module(f"{base}.{a.name}") else base) for a in node.names]
    return [(line, name) for line, name in found if name == "lstmgen" or name.startswith("lstmgen.")]


MODULES = _modules()


def test_every_unit_has_a_row() -> None:
    missing = sorted({_unit(m) for m, _ in MODULES} - set(ALLOWED))
    assert not missing, f"add these to ALLOWED in {__file__} (where do they sit in the layering?): {missing}"


def test_allowed_edges_form_no_cycle() -> None:
    """The table itself is a layering: no unit can reach itself."""

    def reach(start: str) -> set[str]:
        seen: set[str] = set()
        todo = list(ALLOWED[start])
        while todo:
            u = todo.pop()
            if u not in seen:
                seen.add(u)
                todo += ALLOWED.get(u, set())
        return seen

    for unit in ALLOWED:
        assert unit not in reach(unit), f"{unit} can import itself through ALLOWED: the table has a cycle"


LAYERED = [(m, p) for m, p in MODULES if m != "lstmgen"]


def test_modules_import_no_cycle() -> None:
    """Inside a unit too: no module reaches itself through its imports (also function-level ones)."""
    names = {m for m, _ in MODULES}

    def module_of(name: str) -> str:
        while name not in names:  # `from lstmgen.x import attribute`: the module x
            name = name.rpartition(".")[0]
        return name

    edges = {m: {module_of(n) for _, n in _imports(m, p)} - {m, "lstmgen"} for m, p in LAYERED}
    for start in edges:
        seen: set[str] = set()
        todo = list(edges[start])
        while todo:
            m = todo.pop()
            assert m != start, f"{start} imports itself through a chain of imports: an import cycle"
            if m not in seen:
                seen.add(m)
                todo += edges.get(m, set())


def test_facade_imports_lazily() -> None:
    """The package root imports only __version__ at module level (`import lstmgen` stays cheap)."""
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    imports = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom)) and "lstmgen" in ast.dump(n)]
    eager = [n for n in imports if not (isinstance(n, ast.ImportFrom) and n.module == "lstmgen.version")]
    assert not eager, "lstmgen/__init__.py must import submodules lazily (inside __getattr__)"


@pytest.mark.parametrize("module,path", LAYERED, ids=[m for m, _ in LAYERED])
def test_imports_follow_the_layering(module: str, path: Path) -> None:
    unit = _unit(module)
    allowed = ALLOWED.get(unit, set()) | {unit}
    bad = []
    for line, name in _imports(module, path):
        target = _unit(name)
        if target not in allowed:
            bad.append(f"{path.name}:{line} imports {name} ({unit} -> {target})")
    assert not bad, "imports against the layering (see ALLOWED):\n" + "\n".join(bad)


def test_reference_imports_nothing_from_lstmgen() -> None:
    """The judging reference shares no code or tables with the writer."""
    path = PACKAGE / "numerics" / "reference.py"
    assert _imports("lstmgen.numerics.reference", path) == []


def test_tflite_imports_only_errors() -> None:
    for module, path in MODULES:
        if _unit(module) == "tflite":
            others = [n for _, n in _imports(module, path) if not n.startswith(("lstmgen.tflite", "lstmgen.errors"))]
            assert not others, f"{path}: tflite/ holds file-format facts only, but imports {others}"


@pytest.mark.parametrize("module,path", MODULES, ids=[m for m, _ in MODULES])
def test_no_module_shadows_the_standard_library(module: str, path: Path) -> None:
    names = [p for p in module.split(".")[1:] if not p.startswith("__")]
    clashes = [n for n in names if n in sys.stdlib_module_names]
    assert not clashes, f"{path}: {clashes} shadow standard-library modules; rename them"


@pytest.mark.parametrize("module,path", MODULES, ids=[m for m, _ in MODULES])
def test_every_module_states_its_job(module: str, path: Path) -> None:
    doc = ast.get_docstring(ast.parse(path.read_text()))
    assert doc and doc.splitlines()[0].strip(), f"{path}: add a one-line docstring stating the module's job"
