"""Keras LSTM: kernel [I, 4N], recurrent_kernel [N, 4N], bias [4N], gates i, f, c, o (LSTMCell.call).

z = x @ kernel + h @ recurrent_kernel + bias; i = ra(z_i), f = ra(z_f), c = f*c + i*a(z_c),
o = ra(z_o), h = o * a(c); a = activation, ra = recurrent_activation. go_backwards runs the
sequence reversed and returns outputs in that order; return_sequences=False returns the last one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from lstmgen.check.source.common import (
    Array,
    Cell,
    Fn,
    SourceUnsupported,
    Stated,
    Tensors,
    clip,
    f64,
    mm,
    per_gate,
    relu,
    sigmoid,
    stored,
)
from lstmgen.check.source.cudnn_lstm import Step, cudnn_tensors, keras_cudnn_step, keras_cudnn_weights

GATES = ("i", "f", "c", "o")
NAMES = {"i": "input", "f": "forget", "c": "cell", "o": "output"}  # the op's gate per Keras gate
# Keras activation names (keras.activations) -> the function; hard_sigmoid is Keras 3's relu6(x + 3) / 6.
ACTIVATIONS: dict[str, Fn] = {
    "tanh": np.tanh,
    "relu": relu,
    "relu6": lambda v: np.clip(v, 0.0, 6.0),
    "hard_tanh": lambda v: np.clip(v, -1.0, 1.0),
    "sigmoid": sigmoid,
    "hard_sigmoid": lambda v: np.clip(v + 3.0, 0.0, 6.0) / 6.0,
    "linear": lambda v: v,
}
# lstmgen's option names for the cell activation, when the file has no Keras config.
STATED = {"tanh": "tanh", "relu": "relu", "relu6": "relu6", "relu_n1_to_1": "hard_tanh"}


def _name(value: Any) -> str:
    if isinstance(value, Mapping):  # a serialized function {"class_name": "function", "config": "tanh"}
        value = value.get("config") if isinstance(value.get("config"), str) else value.get("class_name")
    return str(value)


def _fn(name: str) -> Fn:
    if name not in ACTIVATIONS:
        raise SourceUnsupported(f"Keras activation {name!r}")
    return ACTIVATIONS[name]


def keras_cell(arrays: Mapping[str, Array], attrs: Mapping[str, object], stated: Stated) -> Cell:
    config: Mapping[str, Any] = attrs.get("config") or {}  # type: ignore[assignment]
    act = _fn(_name(config["activation"]) if "activation" in config else STATED.get(stated.activation, "?"))
    ract = _fn(_name(config.get("recurrent_activation", "sigmoid")))
    kernel, recurrent = stored(arrays["kernel"]), stored(arrays["recurrent_kernel"])
    n = recurrent.shape[0]
    bias = f64(arrays["bias"]) if "bias" in arrays else np.zeros(4 * n)
    fb = stated.forget_bias or 0.0  # Keras adds nothing at run time (unit_forget_bias only initialises)
    cols = {g: slice(k * n, (k + 1) * n) for k, g in enumerate(GATES)}

    def keras_step(x: Array, h: Array, c_prev: Array) -> tuple[Array, Array]:
        z = mm(x, kernel) + mm(h, recurrent) + bias
        i, f, g, o = (z[:, cols[k]] for k in GATES)
        c = clip(ract(f + fb) * c_prev + ract(i) * act(g), stated.cell_clip)
        return ract(o) * act(c), c

    def tensors() -> dict[str, Array]:
        def blocks(g: str) -> dict[str, Array]:
            return {"input_to": kernel[:, cols[g]].T, "recurrent_to": recurrent[:, cols[g]].T, "bias": bias[cols[g]]}

        return per_gate(NAMES, blocks, fb)

    step: Step = keras_step
    view: Tensors = tensors
    # A Keras 2 CuDNNLSTM (its file's [8N] bias says so, whatever the reader made of it) runs cuDNN's
    # equations on the arrays as cuDNN reads them: tanh and sigmoid, no forget bias of its own.
    if bias.shape == (8 * n,):
        step = keras_cudnn_step(kernel, recurrent, bias, stated)
        view = cudnn_tensors(*keras_cudnn_weights(kernel, recurrent, bias), stated.forget_bias or 0.0)

    half = attrs.get("half")
    overrides: dict[str, object] = {}
    if config and half is None:  # a plain LSTM layer states its direction and what it returns
        overrides["go_backwards"] = bool(config.get("go_backwards", False))
        overrides["return_sequences"] = bool(config.get("return_sequences", False))
    elif config:
        overrides["return_sequences"] = bool(config.get("return_sequences", False))
    if config and "time_major" in config:  # Keras 2 layers can take [T, B, I]
        overrides["time_major"] = bool(config["time_major"])
    if attrs.get("merge_mode") is not None:
        overrides["merge_mode"] = attrs["merge_mode"]
    backward = None if half is None else half == "backward"
    return Cell("keras", n, n, step, input_size=kernel.shape[0], backward=backward, overrides=overrides, tensors=view)
