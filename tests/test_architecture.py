"""Import contracts: the layering cli -> build/run/describe -> layout/quant/check -> tflite, checked statically."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lstmgen"

# Unit -> the units it may import from (besides itself). A unit is a top-level module or subpackage;
# check/ is split per module because its layers differ (the reference sits at the bottom, verify on top).
# "lstmgen" is the package root: __version__, and the lazy facade (its imports run on attribute access
# only, so nothing imports the facade's targets at import time). Bottom-up, the layering reads:
#   errors, quant.affine < tflite < config < check.reference < check.float_bound < check.report < check.graph
#   < modelinfo/layout/weights/targets/... < check.subgraph
#   < check.verify/init < build/run/describe < cli.
# A new module needs a row here: say where it sits before it imports anything.
BASE = {"lstmgen", "errors", "guard", "progress"}  # guard: hostile-input checks; progress: step counting
ALLOWED: dict[str, set[str]] = {
    "lstmgen": set(),  # module level; the facade's function-level imports: test_facade_imports_lazily
    "errors": set(),
    "progress": set(),
    "guard": {"errors"},
    "check": set(),  # the package's __init__ (a docstring)
    "quant.affine": set(),  # the affine quantization arithmetic (NumPy only): every layer may use it
    "tflite": {"errors"},
    "arrays": BASE,
    "output": BASE,
    "config": BASE | {"tflite"},
    "check.reference": set(),
    "check.graph": BASE | {"tflite", "check.reference", "quant.affine"},
    "check.tolerance": BASE | {"tflite", "check.reference", "check.graph", "quant.affine"},
    "check.source": BASE | {"tflite", "config", "weights", "arrays", "check.reference"},
    "modelinfo": BASE | {"tflite", "check.graph"},
    "layout": BASE | {"tflite", "config"},
    "weights": BASE | {"tflite", "arrays"},
    "targets": BASE | {"tflite", "config"},
    "runtimes": BASE | {"tflite", "targets", "arrays", "quant.affine"},
    "quant": BASE | {"tflite", "config", "check.graph", "check.reference", "quant.affine"},
    "init": BASE | {"tflite", "config", "layout", "weights"},
    "check.float_bound": {"check.reference"},
    "check.report": {"check.float_bound"},
    "check.subgraph": BASE
    | {"tflite", "modelinfo", "check.reference", "check.graph", "check.tolerance", "check.source"}
    | {"check.float_bound", "check.report"},
    "check.verify": BASE
    | {"tflite", "config", "arrays", "modelinfo", "runtimes", "weights", "quant.affine"}
    | {"check.reference", "check.graph", "check.tolerance", "check.source", "check.float_bound", "check.report"}
    | {"check.subgraph"},
    "resolve": BASE | {"config", "init", "layout", "weights"},
    "gate": BASE | {"tflite", "config", "weights", "check.verify", "check.source", "targets", "embed"},
    "build": BASE
    | {"tflite", "config", "arrays", "output", "layout", "init", "weights", "quant", "targets", "runtimes"}
    | {"resolve", "gate", "samples", "embed", "check.verify"},
    "run": BASE | {"tflite", "arrays", "output", "modelinfo", "runtimes", "check.graph", "check.verify"},
    "samples": BASE | {"arrays"},
    "export": BASE | {"tflite", "output", "modelinfo", "weights", "check.graph", "quant.affine"},
    "describe": BASE | {"tflite", "config", "modelinfo", "targets", "check.graph"},
    "embed": BASE | {"tflite", "output", "runtimes", "modelinfo", "targets"},
    "cli": BASE
    | {"tflite", "config", "arrays", "output", "weights", "modelinfo", "runtimes", "targets", "quant"}
    | {"check.graph", "check.tolerance", "check.report", "check.verify"}
    | {"build", "resolve", "gate", "run", "describe", "embed", "export", "samples"},
    # The public API (lstmgen.api): on top, beside the CLI, whose build summary it prints.
    "api": BASE | {"build", "run", "describe", "export", "config", "output", "resolve", "gate", "weights"}
    | {"check.verify", "cli", "modelinfo"},
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
    """lstmgen.check.graph -> check.graph; lstmgen.quant.affine -> quant.affine; lstmgen.weights.keras -> weights."""
    parts = module.split(".")[1:]
    if not parts:
        return "lstmgen"
    if parts[0] == "check" and len(parts) > 1:
        return f"check.{parts[1]}"
    if parts[:2] == ["quant", "affine"]:
        return "quant.affine"
    return parts[0]


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


def test_facade_imports_lazily() -> None:
    """The package root imports nothing from lstmgen at module level (`import lstmgen` stays cheap)."""
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    eager = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom)) and "lstmgen" in ast.dump(n)]
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
    path = PACKAGE / "check" / "reference.py"
    assert _imports("lstmgen.check.reference", path) == []


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
