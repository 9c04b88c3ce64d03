"""The canonical per-gate .npz (the op's own input names): the op's equations, via check/reference.py.

A TFLiteLSTMCell checkpoint stores the same per-gate arrays (forget bias included), so it lands here too.
"""

from __future__ import annotations

from collections.abc import Mapping

from lstmgen.check.reference import lstm_reference
from lstmgen.check.source.common import Array, Cell, Stated, f64


def canonical_cell(arrays: Mapping[str, Array], attrs: Mapping[str, object], stated: Stated) -> Cell:
    params = dict(arrays)  # as stored; lstm_reference widens them for the length of one run
    if stated.forget_bias:
        params["forget_gate_bias"] = f64(params["forget_gate_bias"]) + stated.forget_bias
    n = params["input_to_forget_weights"].shape[0]
    p = params["projection_weights"].shape[0] if "projection_weights" in params else n

    def sequence(seq: Array, h: Array, c: Array) -> tuple[Array, Array, Array]:
        return lstm_reference(
            seq,
            params,
            activation=stated.activation,
            cell_clip=stated.cell_clip,
            proj_clip=stated.proj_clip,
            time_major=True,
            h0=h,
            c0=c,
        )

    def step(x: Array, h: Array, c: Array) -> tuple[Array, Array]:
        _, h_new, c_new = sequence(x[None], h, c)
        return h_new, c_new

    present = {
        "peephole": "cell_to_forget_weights",
        "projection": "projection_weights",
        "projection_bias": "projection_bias",
        "layer_norm": "forget_layer_norm_coefficients",
    }
    features = {f for f, key in present.items() if key in params}
    if "input_to_input_weights" not in params:
        features.add("cifg")
    if params["recurrent_to_forget_weights"].ndim == 1:
        features.add("diagonal")
    i = params["input_to_forget_weights"].shape[1]
    return Cell("tflite", n, p, step, input_size=i, features=frozenset(features), sequence=sequence)
