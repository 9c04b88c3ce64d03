"""TF1 tf.nn.rnn_cell.LSTMCell: kernel [I+P, 4N] on concat([x, m]), gates i, j, f, o; forget_bias at run time.

From LSTMCell.call: lstm_matrix = concat([x, m_prev]) @ kernel + bias; i, j, f, o = split(4);
c = sigmoid(f + forget_bias + w_f_diag*c_prev) * c_prev + sigmoid(i + w_i_diag*c_prev) * act(j);
c clipped to cell_clip; m = sigmoid(o + w_o_diag*c) * act(c); m = m @ projection/kernel, clipped to proj_clip.

The run-time forget_bias default is the cell class's, read here from the scope name the file gives
the variables (not from the reader): tf.contrib.cudnn_rnn's CudnnCompatibleLSTMCell, whose scope
CudnnLSTM's checkpoints use, passes forget_bias=0 to LSTMBlockCell; LSTMCell, LSTMBlockCell and
LSTMBlockFusedCell default to 1.0.
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
    per_gate,
    relu,
    sigmoid,
    stored,
)

GATES = ("i", "j", "f", "o")  # the kernel's column blocks
NAMES = {"i": "input", "j": "cell", "f": "forget", "o": "output"}  # the op's gate per LSTMCell gate
PEEPHOLES = {"i": "cell_to_input_weights", "f": "cell_to_forget_weights", "o": "cell_to_output_weights"}
DEFAULT_FORGET_BIAS = 1.0  # LSTMCell(forget_bias=1.0)
# A cell's own scope segment -> its class's default forget_bias, where it is not 1.0.
CLASS_FORGET_BIAS = {"cudnn_compatible_lstm_cell": 0.0}
ACTIVATIONS: dict[str, Fn] = {  # the activation= callables TF1 users pass, by lstmgen's option names
    "tanh": np.tanh,
    "relu": relu,
    "relu6": lambda v: np.clip(v, 0.0, 6.0),
    "relu_n1_to_1": lambda v: np.clip(v, -1.0, 1.0),
}


def tf1_cell(arrays: Mapping[str, Array], attrs: Mapping[str, object], stated: Stated) -> Cell:
    if stated.activation not in ACTIVATIONS:
        raise SourceUnsupported(f"TF1 LSTMCell activation {stated.activation!r}")
    act = ACTIVATIONS[stated.activation]
    kernel, bias = stored(arrays["kernel"]), f64(arrays["bias"])
    n = kernel.shape[1] // 4
    proj = stored(arrays["projection/kernel"]) if "projection/kernel" in arrays else None
    diag = {g: f64(arrays[f"w_{g}_diag"]) for g in "ifo" if f"w_{g}_diag" in arrays}
    own = str(attrs.get("scope", "")).split("/")[-1]
    default = float(attrs.get("forget_bias", CLASS_FORGET_BIAS.get(own, DEFAULT_FORGET_BIAS)))  # type: ignore[arg-type]
    fb = default if stated.forget_bias is None else stated.forget_bias  # the file's record (lstmgen export) first
    cols = {g: slice(k * n, (k + 1) * n) for k, g in enumerate(GATES)}

    def step(x: Array, m_prev: Array, c_prev: Array) -> tuple[Array, Array]:
        z = mm(np.concatenate([x, m_prev], axis=1), kernel) + bias
        i, j, f, o = (z[:, cols[g]] for g in GATES)
        if diag:
            i, f = i + diag["i"] * c_prev, f + diag["f"] * c_prev
        c = sigmoid(f + fb) * c_prev + sigmoid(i) * act(j)
        c = clip(c, stated.cell_clip)
        if diag:
            o = o + diag["o"] * c
        m = sigmoid(o) * act(c)
        if proj is not None:
            m = clip(mm(m, proj), stated.proj_clip)
        return m, c

    p = proj.shape[1] if proj is not None else n
    i_size = kernel.shape[0] - p

    def tensors() -> dict[str, Array]:
        def blocks(g: str) -> dict[str, Array]:
            col = kernel[:, cols[g]]
            return {"input_to": col[:i_size].T, "recurrent_to": col[i_size:].T, "bias": bias[cols[g]]}

        out = per_gate(NAMES, blocks, fb)
        out |= {PEEPHOLES[g]: v for g, v in diag.items()}
        if proj is not None:
            out["projection_weights"] = proj.T
        return out

    features = frozenset({"peephole"} if diag else set()) | frozenset({"projection"} if proj is not None else set())
    return Cell("tf1", n, p, step, input_size=i_size, features=features, tensors=tensors, folded=FORGET_ONLY)
