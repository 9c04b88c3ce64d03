"""The shape of the code (issue 18): weight readers let lstmgen's own bugs show; no function over 80 lines."""

from __future__ import annotations

import ast
from pathlib import Path

from support import ROOT

PACKAGE = ROOT / "lstmgen"
# What only lstmgen's own code raises: a reader that catches these (or everything) must re-raise, so
# that a bug reaches exit 70 with its traceback instead of "the file is malformed" (exit 2).
BUG_CLASSES = {"Exception", "BaseException", "AttributeError", "NameError", "AssertionError"}


def _names(node: ast.expr, tuples: dict[str, ast.expr]) -> set[str]:
    """The class names an `except` clause names, through module-level tuples (`_ERRORS = (A, B)`)."""
    if isinstance(node, ast.Tuple):
        return set().union(*(_names(e, tuples) for e in node.elts))
    name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "")
    return _names(tuples[name], tuples) if name in tuples else {name}


def _caught(handler: ast.ExceptHandler, tuples: dict[str, ast.expr]) -> set[str]:
    return {"BaseException"} if handler.type is None else _names(handler.type, tuples)


def _reraises(handler: ast.ExceptHandler) -> bool:
    return any(isinstance(n, ast.Raise) and n.exc is None for n in ast.walk(handler))


def swallowing_handlers(folder: Path) -> list[str]:
    """`file:line` of every handler in `folder` that catches a bug's class and never re-raises it."""
    found = []
    for path in sorted(folder.rglob("*.py")):
        tree = ast.parse(path.read_text())
        tuples = {
            t.id: node.value
            for node in tree.body
            if isinstance(node, ast.Assign | ast.AnnAssign) and isinstance(node.value, ast.Tuple)
            for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
            if isinstance(t, ast.Name)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.ExceptHandler) and _caught(node, tuples) & BUG_CLASSES and not _reraises(node):
                found.append(f"{path.relative_to(folder)}:{node.lineno}")
    return found


def test_weight_readers_never_turn_a_bug_into_bad_input() -> None:
    assert swallowing_handlers(PACKAGE / "weights") == []


def test_the_handler_check_can_fail(tmp_path: Path) -> None:
    (tmp_path / "reader.py").write_text(
        "try:\n    f()\nexcept (KeyError, AttributeError) as exc:\n    raise ValueError(exc)\n"
        "try:\n    f()\nexcept BaseException:\n    close()\n    raise\n"
        "_BROKEN = (KeyError, TypeError, AttributeError)\ntry:\n    f()\nexcept _BROKEN:\n    pass\n"
    )
    assert [s.rsplit(":", 1)[1] for s in swallowing_handlers(tmp_path)] == ["3", "13"]


MAX_FUNCTION_LINES = 80


def long_functions(folder: Path, limit: int = MAX_FUNCTION_LINES) -> dict[str, int]:
    """'path:name' -> lines (def line to last line, nested functions included) of every function over `limit`."""
    found = {}
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > limit:
                    found[f"{path.relative_to(folder).as_posix()}:{node.name}"] = lines
    return found


def test_no_function_over_80_lines() -> None:
    assert long_functions(PACKAGE) == {}


def test_the_length_check_can_fail(tmp_path: Path) -> None:
    def body(lines: int) -> str:
        return "".join(f"    x{k} = {k}\n" for k in range(lines))

    (tmp_path / "m.py").write_text(f"def long():\n{body(80)}\n\ndef short():\n{body(79)}")
    assert long_functions(tmp_path) == {"m.py:long": 81}  # short: 80 lines, the limit


def test_no_test_imports_another_test_file() -> None:
    """Shared helpers live in support.py and the helper modules (hostile_corpus, tf_bundle_writer, fuzz_*)."""
    found = []
    for path in sorted((ROOT / "tests").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            found += [f"{path.name} imports {n}" for n in names if n.split(".")[0].startswith("test_")]
    assert found == []
