"""The canonical per-gate .npz (the op's own input names): the op's equations (tflite-lstm-op.md §3).

A TFLiteLSTMCell checkpoint stores the same per-gate arrays (forget bias included), so it lands here
too, as do --init weights. Written again here (not numerics/reference.py, which widens every array to
float64 at once) so that matrices stay as stored and are widened a slice at a time (mm).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from lstmgen.check.source.common import (
    FORGET_ONLY,
    Array,
    Cell,
    Fn,
    SourceUnsupported,
    Stated,
    clip,
    f64,
    mm,
    relu,
    sigmoid,
)

ACTIVATIONS: dict[str, Fn] = {
    "tanh": np.tanh,
    "relu": relu,
    "relu6": lambda v: np.clip(v, 0.0, 6.0),
    "relu_n1_to_1": lambda v: np.clip(v, -1.0, 1.0),
}
LN_EPSILON = 1e-8  # added to the variance, as the kernel does


def canonical_cell(arrays: Mapping[str, Array], attrs: Mapping[str, object], stated: Stated) -> Cell:
    if stated.activation not in ACTIVATIONS:
        raise SourceUnsupported(f"activation {stated.activation!r}")
    act = ACTIVATIONS[stated.activation]
    a = {k: np.asarray(v) for k, v in arrays.items()}  # matrices as stored; vectors widened below
    vec = {k: f64(v) for k, v in a.items() if v.ndim == 1}
    if stated.forget_bias:
        vec["forget_gate_bias"] = vec["forget_gate_bias"] + stated.forget_bias
    n, i_size = a["input_to_forget_weights"].shape
    proj = a.get("projection_weights")
    p = proj.shape[0] if proj is not None else n
    cifg = "input_to_input_weights" not in a
    diagonal = a["recurrent_to_forget_weights"].ndim == 1
    layer_norm = "forget_layer_norm_coefficients" in a

    def gate(g: str, x: Array, h: Array, c: Array | None, fn: Fn) -> Array:
        r = f"recurrent_to_{g}_weights"
        pre = mm(x, a[f"input_to_{g}_weights"].T) + (h * vec[r] if diagonal else mm(h, a[r].T))
        if c is not None and f"cell_to_{g}_weights" in vec:
            pre = pre + c * vec[f"cell_to_{g}_weights"]
        if layer_norm:
            mean = pre.mean(axis=-1, keepdims=True)
            var = ((pre - mean) ** 2).mean(axis=-1, keepdims=True)
            pre = (pre - mean) / np.sqrt(var + LN_EPSILON) * vec[f"{g}_layer_norm_coefficients"]
        return fn(pre + vec[f"{g}_gate_bias"])  # the bias comes after layer norm

    def step(x: Array, h: Array, c_prev: Array) -> tuple[Array, Array]:
        f = gate("forget", x, h, c_prev, sigmoid)
        i = 1.0 - f if cifg else gate("input", x, h, c_prev, sigmoid)
        c = clip(f * c_prev + i * gate("cell", x, h, None, act), stated.cell_clip)
        m = gate("output", x, h, c, sigmoid) * act(c)  # the output peephole sees the new, clipped c
        if proj is None:
            return m, c
        out = mm(m, proj.T) + vec.get("projection_bias", 0.0)
        return clip(out, stated.proj_clip), c

    def tensors() -> dict[str, Array]:
        return {k: vec.get(k, v) for k, v in a.items()}  # the forget bias as run, with the stated one added

    present = {
        "peephole": "cell_to_forget_weights",
        "projection": "projection_weights",
        "projection_bias": "projection_bias",
        "layer_norm": "forget_layer_norm_coefficients",
    }
    features = {f for f, key in present.items() if key in a}
    features |= {"cifg"} if cifg else set()
    features |= {"diagonal"} if diagonal else set()
    return Cell(
        "tflite", n, p, step, input_size=i_size, features=frozenset(features), tensors=tensors, folded=FORGET_ONLY
    )
