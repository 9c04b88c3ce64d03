"""PyTorch nn.LSTM: weight_ih [4H, I], weight_hh [4H, H|P], bias_ih + bias_hh, gates i, f, g, o; weight_hr.

From the nn.LSTM docs: i = s(W_ii x + b_ii + W_hi h + b_hi), f, g = tanh(...), o likewise;
c = f*c + i*g; h = o*tanh(c); with proj_size: h = W_hr h. The _reverse direction runs the
reversed sequence and its outputs are re-aligned to the input positions (output[t] = fw[t] || bw[t]).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from lstmgen.check.source.common import Array, Cell, Stated, clip, f64, mm, per_gate, sigmoid, stored

GATES = ("i", "f", "g", "o")
NAMES = {"i": "input", "f": "forget", "g": "cell", "o": "output"}  # the op's gate per nn.LSTM gate


def torch_cell(arrays: Mapping[str, Array], attrs: Mapping[str, object], stated: Stated) -> Cell:
    w_ih, w_hh = stored(arrays["weight_ih"]), stored(arrays["weight_hh"])
    n = w_ih.shape[0] // 4
    bias = f64(arrays["bias_ih"]) + f64(arrays["bias_hh"]) if "bias_ih" in arrays else np.zeros(4 * n)
    w_hr = stored(arrays["weight_hr"]) if "weight_hr" in arrays else None
    fb = stated.forget_bias or 0.0
    rows = {g: slice(k * n, (k + 1) * n) for k, g in enumerate(GATES)}

    def step(x: Array, h: Array, c_prev: Array) -> tuple[Array, Array]:
        z = mm(x, w_ih.T) + mm(h, w_hh.T) + bias
        i, f, g, o = (z[:, rows[k]] for k in GATES)
        c = clip(sigmoid(f + fb) * c_prev + sigmoid(i) * np.tanh(g), stated.cell_clip)
        h = sigmoid(o) * np.tanh(c)
        if w_hr is not None:
            h = clip(mm(h, w_hr.T), stated.proj_clip)
        return h, c

    p = w_hr.shape[0] if w_hr is not None else n

    def tensors() -> dict[str, Array]:
        def blocks(g: str) -> dict[str, Array]:
            return {"input_to": w_ih[rows[g]], "recurrent_to": w_hh[rows[g]], "bias": bias[rows[g]]}

        out = per_gate(NAMES, blocks, fb)
        if w_hr is not None:
            out["projection_weights"] = w_hr
        return out

    features = frozenset({"projection"} if w_hr is not None else set())
    return Cell(
        "torch",
        n,
        p,
        step,
        input_size=w_ih.shape[1],
        features=features,
        backward=bool(attrs.get("reverse")),
        tensors=tensors,
    )
