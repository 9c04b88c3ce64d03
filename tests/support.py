"""Test helpers: paths, the TF oracle manifest, random weights, the CLI run in-process."""

from __future__ import annotations

import json
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
    return result

