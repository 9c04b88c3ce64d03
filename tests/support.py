"""Test helpers: paths, the TF oracle manifest, random weights."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

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
