"""cuDNN's LSTM (CUDNN_LSTM mode) on its parameters as cuDNN reads them; gates i, f, c, o.

cuDNN's equations (cuDNN developer guide, cudnnRNNMode_t CUDNN_LSTM):
i = sigmoid(W_i x + R_i h + bW_i + bR_i), f, o likewise; c' = tanh(W_c x + R_c h + bW_c + bR_c);
c = f * c_prev + i * c'; h = o * tanh(c). Each W_k is [N, in] and each R_k [N, N], row-major.

Keras 2's CuDNNLSTM (tf_keras layers/rnn/cudnn_lstm.py) hands cuDNN, through canonical_to_params
without transposing, each gate's column block of kernel [I, 4N] and recurrent_kernel [N, 4N]
flattened row-major, then bias [8N] as bW_i..bW_o, bR_i..bR_o: cuDNN reads the block's bytes as
its [N, in] matrix. A TF CudnnLSTM opaque blob holds, per layer and direction, W_i..W_o, R_i..R_o
and the 8 biases, in that order (see weights/cudnn.py for where that layout is stated).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from lstmgen.check.source.common import (
    Array,
    Cell,
    SourceUnsupported,
    Stated,
    Tensors,
    clip,
    f64,
    mm,
    per_gate,
    sigmoid,
)

Step = Callable[[Array, Array, Array], tuple[Array, Array]]

ORDER = ("i", "f", "c", "o")
NAMES = {"i": "input", "f": "forget", "c": "cell", "o": "output"}  # the op's gate per cuDNN gate


def cudnn_tensors(
    w: Sequence[Array], r: Sequence[Array], bw: Sequence[Array], br: Sequence[Array], forget_bias: float
) -> Tensors:
    """The op's per-gate tensors from cuDNN's W_k, R_k and its two biases per gate (check/tensors.py)."""

    def tensors() -> dict[str, Array]:
        def blocks(g: str) -> dict[str, Array]:
            k = ORDER.index(g)
            return {"input_to": w[k], "recurrent_to": r[k], "bias": f64(bw[k]) + f64(br[k])}

        return per_gate(NAMES, blocks, forget_bias)

    return tensors


def cudnn_step(
    w: Sequence[Array], r: Sequence[Array], bw: Sequence[Array], br: Sequence[Array], stated: Stated
) -> Step:
    """step(x, h, c) for cuDNN's matrices W_k [N, in], R_k [N, N] and biases, k in i, f, c, o.

    cuDNN adds no forget bias; one stated explicitly (--forget-bias) is added, as asked."""
    wt = [np.ascontiguousarray(m.T) for m in w]  # x @ W_k^T
    rt = [np.ascontiguousarray(m.T) for m in r]
    b = [f64(bw[k]) + f64(br[k]) for k in range(4)]
    b[1] = b[1] + (stated.forget_bias or 0.0)
    cell_clip = stated.cell_clip

    def step(x: Array, h: Array, c_prev: Array) -> tuple[Array, Array]:
        z = [mm(x, wt[k]) + mm(h, rt[k]) + b[k] for k in range(4)]
        i, f, g, o = sigmoid(z[0]), sigmoid(z[1]), np.tanh(z[2]), sigmoid(z[3])
        c = clip(f * c_prev + i * g, cell_clip)
        return o * np.tanh(c), c

    return step


def keras_cudnn_step(kernel: Array, recurrent: Array, bias: Array, stated: Stated) -> Step:
    """step(x, h, c) of a Keras 2 CuDNNLSTM's stored kernel [I, 4N], recurrent_kernel [N, 4N], bias [8N]."""
    return cudnn_step(*keras_cudnn_weights(kernel, recurrent, bias), stated)


def keras_cudnn_weights(
    kernel: Array, recurrent: Array, bias: Array
) -> tuple[list[Array], list[Array], list[Array], list[Array]]:
    """cuDNN's W_k, R_k, bW_k, bR_k from a Keras 2 CuDNNLSTM's kernel, recurrent_kernel and [8N] bias."""
    n, i = recurrent.shape[0], kernel.shape[0]
    w = [np.asarray(kernel[:, k * n : (k + 1) * n]).reshape(-1).reshape(n, i) for k in range(4)]
    r = [np.asarray(recurrent[:, k * n : (k + 1) * n]).reshape(-1).reshape(n, n) for k in range(4)]
    b = [bias[k * n : (k + 1) * n] for k in range(8)]
    return w, r, b[:4], b[4:]


def opaque_cell(arrays: Mapping[str, Array], attrs: Mapping[str, object], stated: Stated) -> Cell:
    """One layer and direction of a TF CudnnLSTM opaque buffer, cut from the whole buffer here.

    Per layer (forward, then backward): 8 matrices W_i..W_o [N, width], R_i..R_o [N, N], then 8 biases;
    width is input_size in layer 0 and N * directions above (linear input mode).
    """
    (blob,) = arrays.values()
    n, i_size = int(attrs["units"]), int(attrs["input_size"])  # type: ignore[call-overload]
    dirs = int(attrs["directions"])  # type: ignore[call-overload]
    where: tuple[int, int] = attrs["cell"]  # type: ignore[assignment]
    layer, direction = int(where[0]), int(where[1])
    pos = 0
    for k in range(layer + 1):
        width = i_size if k == 0 else n * dirs
        for d in range(dirs):
            mats = []
            for cols in [width] * 4 + [n] * 4:
                mats.append(np.asarray(blob[pos : pos + n * cols]).reshape(n, cols))
                pos += n * cols
            biases = [blob[pos + g * n : pos + (g + 1) * n] for g in range(8)]
            pos += 8 * n
            if (k, d) == (layer, direction):
                step = cudnn_step(mats[:4], mats[4:], biases[:4], biases[4:], stated)
                view = cudnn_tensors(mats[:4], mats[4:], biases[:4], biases[4:], stated.forget_bias or 0.0)
                return Cell("cudnn", n, n, step, input_size=width, backward=bool(d), tensors=view)
    raise SourceUnsupported(f"cell {layer}/{direction} is past the end of the opaque buffer")
