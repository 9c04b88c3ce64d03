"""Test helpers: paths, the TF oracle manifest, random weights, the CLI run in-process."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from click.testing import CliRunner, Result

ROOT = Path(__file__).resolve().parent.parent
TF_FIXTURES = ROOT / "tests" / "fixtures" / "tf"


def tf_manifest() -> dict[str, Any]:
    return json.loads((TF_FIXTURES / "manifest.json").read_text())["cases"]


def random_tflite_weights(
    n: int = 6, i: int = 5, p: int | None = None, peepholes: bool = False, seed: int = 0, projection_bias: bool = False
) -> dict[str, np.ndarray]:
    """Random weights keyed by the op's input names (random, non-zero biases)."""
    rng = np.random.default_rng(seed)
    out = p or n
    w: dict[str, np.ndarray] = {}
    for g in ("input", "forget", "cell", "output"):
        w[f"input_to_{g}_weights"] = rng.standard_normal((n, i)).astype(np.float32) * 0.5
        w[f"recurrent_to_{g}_weights"] = rng.standard_normal((n, out)).astype(np.float32) * 0.5
        w[f"{g}_gate_bias"] = rng.standard_normal(n).astype(np.float32) * 0.5
    if peepholes:
        for g in ("input", "forget", "output"):
            w[f"cell_to_{g}_weights"] = rng.standard_normal(n).astype(np.float32) * 0.5
    if p is not None:
        w["projection_weights"] = rng.standard_normal((p, n)).astype(np.float32) * 0.5
        if projection_bias:
            w["projection_bias"] = rng.standard_normal(p).astype(np.float32) * 0.5
    return w


def keras_gates_swapped(weights: Path, units: int, a: str, b: str, out: Path) -> Path:
    """Keras kernel/recurrent_kernel/bias arrays (gates i, f, c, o along the 4N axis) with gates a and b swapped."""
    w = dict(np.load(weights))
    order = {"i": 0, "f": 1, "c": 2, "o": 3}
    sa, sb = (slice(order[g] * units, (order[g] + 1) * units) for g in (a, b))
    for key in ("kernel", "recurrent_kernel", "bias"):
        arr = w[key].copy()
        arr[..., sa], arr[..., sb] = w[key][..., sb], w[key][..., sa]
        w[key] = arr
    np.savez(out, **w)
    return out


def invoke(*args: object) -> Result:
    """Run the CLI in-process; an exception escaping the command (not SystemExit) fails the test with it."""
    from lstmgen.cli.main import main

    result = CliRunner().invoke(main, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"uncaught {result.exception!r}; output:\n{result.output}") from result.exception
    assert "Traceback" not in result.output, result.output
    return result


def assert_user_error(result: Result, *names: str, code: int = 2) -> str:
    """Exit `code` (2: bad input), no traceback, one error paragraph on stderr naming every `names`; returns it.

    The paragraph starts at the one 'lstmgen: error:' (or click's 'Error:') line and runs to the end of
    stderr (a list of problems follows on indented lines). A name like 'cell_clip' also matches '--cell-clip'.
    """
    assert result.exit_code == code, f"exit {result.exit_code}, expected {code}; output:\n{result.output}"
    assert "Traceback" not in result.output and "internal error" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    starts = [k for k, ln in enumerate(lines) if ln.startswith(("lstmgen: error:", "Error:"))]
    assert len(starts) == 1, f"expected one error paragraph on stderr, got:\n{result.stderr}"
    msg = "\n".join(lines[starts[0] :])
    for name in names:
        assert name in msg or name in msg.replace("-", "_"), f"{name!r} not in the message: {msg}"
    return msg


def assert_close(
    got: Sequence[np.ndarray],
    want: Sequence[np.ndarray],
    atol: float,
    names: Sequence[str] = ("output", "final h", "final c"),
) -> None:
    """Each array of `got` within `atol` of the same-sized one of `want` (compared in `want`'s shape), none missing."""
    assert len(got) == len(want) == len(names), (len(got), len(want), names)
    for name, g, w in zip(names, got, want, strict=True):
        assert np.size(g) == np.size(w), f"{name}: shape {np.shape(g)} vs {np.shape(w)}"
        np.testing.assert_allclose(np.reshape(g, np.shape(w)), w, atol=atol, rtol=0, err_msg=name)


def json_report(result: Result, code: int = 0) -> dict[str, Any]:
    """The one JSON document a `--json` command printed: its exit code checked, `ok` true exactly when it is 0,
    and the document valid against schemas/report.schema.json (when jsonschema is installed)."""
    assert result.exit_code == code, f"exit {result.exit_code}, expected {code}; output:\n{result.output}"
    doc = json.loads(result.stdout)  # exactly one document: trailing text is a JSONDecodeError
    assert isinstance(doc, dict) and doc.get("ok") is (code == 0), doc
    try:
        import jsonschema
    except ImportError:
        return doc
    jsonschema.validate(doc, json.loads((ROOT / "schemas" / "report.schema.json").read_text()))
    return doc
