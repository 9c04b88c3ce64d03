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
