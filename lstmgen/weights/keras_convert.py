"""One Keras LSTM cell's arrays and config into per-gate TFLite-layout weights (config checks, CuDNNLSTM conversion)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from lstmgen.errors import WeightFileError
from lstmgen.tflite.tables import REFUSED_ACTIVATIONS
from lstmgen.weights.base import CellWeights, as_float32, gate_tensors
from lstmgen.weights.cudnn import NO_FORGET_BIAS, is_cudnn_bias, keras_from_cudnn
from lstmgen.weights.keras_cells import _Cell
from lstmgen.weights.raw import SourceArrays

# Keras activation name -> lstmgen name (same function in the fused kernel's float path).
ACTIVATIONS: dict[str, str] = {"tanh": "tanh", "relu": "relu", "relu6": "relu6", "hard_tanh": "relu_n1_to_1"}


PLANNED = "support for stateful models is planned"


CUDNN_NOTE = (
    "Keras 2 CuDNNLSTM weights (bias [8*units]: cuDNN's input and recurrent biases): converted as tf_keras' "
    "legacy HDF5 loader does (_convert_rnn_weights): each gate's input kernel re-laid from cuDNN's layout, "
    "each gate's recurrent kernel transposed, the two biases summed; activation tanh, recurrent sigmoid"
)


NO_CLIP_NOTE = (
    "cell_clip 0: Keras LSTMs have no cell clip (TF's converter writes cell_clip=10 into the models it "
    "converts from Keras; lstmgen keeps the Keras math)"
)


def _activation(value: Any, setting: str, cell: str, source: str) -> str:
    name = value
    if isinstance(value, Mapping):  # a serialized function: {"class_name": "function", "config": "tanh", ...}
        name = value.get("config") if isinstance(value.get("config"), str) else value.get("class_name")
    name = str(name)
    if setting == "activation" and name in ACTIVATIONS:
        return ACTIVATIONS[name]
    if setting == "recurrent_activation" and name == "sigmoid":
        return name
    if setting == "recurrent_activation":
        raise WeightFileError(
            f"{source}: layer '{cell}' has recurrent_activation={name!r}, but TFLite's fused LSTM always "
            "computes its gates with the logistic sigmoid, so the model would give different outputs. "
            "Only recurrent_activation='sigmoid' (the Keras default since 2.3) can be converted; retrain or "
            "fine-tune the layer with it."
        )
    why = REFUSED_ACTIVATIONS.get(name, "the fused LSTM has no such activation")
    raise WeightFileError(
        f"{source}: layer '{cell}' has activation={name!r}, which TFLite's fused LSTM cannot express ({why}). "
        f"Supported Keras activations: {', '.join(f'{k} (lstmgen {v})' for k, v in ACTIVATIONS.items())}; "
        "retrain the layer with one of them."
    )


def _check_config(cell: _Cell, source: str, n: int, has_bias: bool, notes: list[str]) -> dict[str, object]:
    """Refuse what a single forward fused LSTM cannot reproduce; return the hyperparameters the config states."""
    cfg = cell.config
    if cfg is None:
        what = "the model config has no LSTM entry" if cell.config_missing else "no Keras layer config (weights only)"
        notes.append(
            f"{what} for '{cell.name or 'the cell'}': activation tanh, recurrent_activation sigmoid, forward "
            "direction and return_sequences=True are assumed; the .keras file (or a full-model .h5) lets "
            "lstmgen check them"
        )
        if _direction(cell) == "backward":
            notes.append(_backward_note(cell))
        return {}
    hyper: dict[str, object] = {
        "activation": _activation(cfg.get("activation", "tanh"), "activation", cell.name, source)
    }
    _activation(cfg.get("recurrent_activation", "sigmoid"), "recurrent_activation", cell.name, source)
    units = cfg.get("units")
    if units is not None and units != n:
        raise WeightFileError(
            f"{source}: layer '{cell.name}' has units={units} in its config, but its recurrent_kernel has "
            f"{n} rows. The file is inconsistent; re-save the model with Keras."
        )
    if cfg.get("use_bias", True) != has_bias:
        found = "has a bias array" if has_bias else "has no bias array"
        raise WeightFileError(
            f"{source}: layer '{cell.name}' has use_bias={cfg.get('use_bias', True)} in its config but {found}. "
            "The file is inconsistent; re-save the model with Keras."
        )
    backwards = bool(cfg.get("go_backwards", False))
    if cell.direction is None and backwards:
        # Keras returns the outputs in processing order: y[:, t] follows x[:, T-1-t] (and y[:, -1] == h).
        hyper["go_backwards"] = True
        notes.append(
            f"'{cell.name}' has go_backwards=True: Keras runs it from the last time step to the first and "
            "returns its outputs in that (reversed) order"
        )
    elif cell.direction is not None and backwards != (cell.direction == "backward"):
        raise WeightFileError(
            f"{source}: the {cell.direction} half '{cell.name}' of a Bidirectional layer has "
            f"go_backwards={backwards}: the wrapped LSTM itself runs backwards, so Keras' 'forward' half reads "
            "the sequence reversed and its 'backward' half reads it in order, which a bidirectional layer of "
            "fused ops (forward op + time-reversed op) does not compute. Rebuild the Bidirectional with "
            "go_backwards=False on the wrapped layer."
        )
    elif cell.direction == "backward":
        notes.append(_backward_note(cell))
    if cell.merge_mode not in (None, "concat"):
        notes.append(
            f"the Bidirectional wrapper has merge_mode={cell.merge_mode!r}; this cell alone is exact, but whole "
            "bidirectional layers are built with merge_mode='concat' only"
        )
    if not cfg.get("return_sequences", False):
        # Keras returns only the last step [batch, units], which is the last step of the whole sequence.
        hyper["return_sequences"] = False
        notes.append(f"'{cell.name}' has return_sequences=False: Keras returns only the last step [batch, units]")
    if cfg.get("stateful", False):
        raise WeightFileError(
            f"{source}: layer '{cell.name}' has stateful=True: Keras carries h and c from one batch to the "
            "next with a fixed batch size, a contract lstmgen's models do not state yet (their state tensors "
            f"do persist across invoke(), see the README); {PLANNED}. Until then, build from the weights-only "
            ".weights.h5 (or an .npz) and manage the state with `lstmgen run --initial-state`."
        )
    dropouts = {k: cfg.get(k) for k in ("dropout", "recurrent_dropout") if cfg.get(k)}
    if dropouts:
        shown = ", ".join(f"{k}={v}" for k, v in dropouts.items())
        notes.append(f"{shown} ignored: dropout is applied only in training")
    if cfg.get("unroll"):
        notes.append("unroll=True only changes how Keras runs the loop; the math is the same")
    # tf.keras 2 states time_major; the model is built the same way by default (--batch-major overrides).
    if cfg.get("time_major"):
        hyper["time_major"] = True
        notes.append("the Keras layer took time-major input [time, batch, input]: the model is built time-major")
    return hyper


def _backward_note(cell: _Cell) -> str:
    return (
        f"'{cell.name}' is the backward half of a Bidirectional layer: Keras feeds it the input reversed in "
        "time and flips its output back to input order (direction=backward)"
    )


def _direction(cell: _Cell) -> str:
    """'backward' for a Bidirectional backward half (by config, else by name) or a go_backwards LSTM."""
    if cell.direction is not None:
        return cell.direction
    if cell.config is None:
        return "backward" if cell.name.endswith("backward_layer") else "forward"
    return "backward" if cell.config.get("go_backwards", False) else "forward"


def _lstm_arrays(
    kernel: np.ndarray, recurrent: np.ndarray, raw: Mapping[str, np.ndarray], where: str, notes: list[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(kernel, recurrent_kernel, bias [4N]) of a Keras LSTM: a Keras 2 CuDNNLSTM's (bias [8N]) converted as
    tf_keras' legacy loader converts them, a missing bias (use_bias=False) as zeros."""
    n = recurrent.shape[0]
    if "bias" not in raw:
        notes.append("no bias (use_bias=False): gate biases are zero")
        return kernel, recurrent, np.zeros(4 * n, np.float32)  # the fused op needs the bias slots
    bias = as_float32("bias", raw["bias"], where, notes)
    if is_cudnn_bias(bias.shape, n):
        notes.append(CUDNN_NOTE)
        return keras_from_cudnn(kernel, recurrent, bias)
    if bias.shape != (4 * n,):
        raise WeightFileError(
            f"{where}: bias has shape {list(bias.shape)}, expected [{4 * n}] (a Keras LSTM) or [{8 * n}] (a Keras 2 "
            "CuDNNLSTM: cuDNN's input and recurrent biases). Check the export (or --layer)."
        )
    return kernel, recurrent, bias


def _to_weights(cell: _Cell, source: str, notes: list[str]) -> CellWeights:
    """Read the selected cell's arrays and lay them out per gate (views of the arrays as read)."""
    where = f"{source} [{cell.name}]" if cell.name else source
    if "kernel" not in cell.arrays:
        raise WeightFileError(
            f"{where}: recurrent_kernel has no matching kernel ({cell.where}). Expected kernel [input, 4*units] "
            "next to it; save all of the layer's weights."
        )
    try:
        raw = {role: np.asarray(a[()]) if not isinstance(a, np.ndarray) else a for role, a in cell.arrays.items()}
    except OSError as exc:  # a dataset whose bytes are cut off or damaged
        raise WeightFileError(
            f"{where}: the weights in {cell.where} cannot be read ({exc}): the file is truncated or corrupt. "
            "Save it again with Keras."
        ) from None
    local: list[str] = []
    kernel = as_float32("kernel", raw["kernel"], where, local)
    recurrent = as_float32("recurrent_kernel", raw["recurrent_kernel"], where, local)
    if recurrent.ndim != 2 or recurrent.shape[1] != 4 * recurrent.shape[0] or recurrent.shape[0] == 0:
        raise WeightFileError(
            f"{where}: recurrent_kernel has shape {list(recurrent.shape)}, expected [units, 4*units] (a Keras LSTM "
            "with gates i, f, c, o). A GRU has [units, 3*units] and is not an LSTM; otherwise check the export."
        )
    n = recurrent.shape[0]
    if kernel.ndim != 2 or kernel.shape[1] != 4 * n or kernel.shape[0] == 0:
        raise WeightFileError(
            f"{where}: kernel has shape {list(kernel.shape)} but recurrent_kernel has {list(recurrent.shape)}: "
            f"expected kernel [input_size, {4 * n}] for {n} units. The two arrays do not belong to one LSTM "
            "layer; check the export (or --layer)."
        )
    hyper = _check_config(cell, where, n, "bias" in raw, local)
    kernel, recurrent, bias = _lstm_arrays(kernel, recurrent, raw, where, local)
    # Keras computes x @ kernel + h @ recurrent_kernel; TFLite wants W [N, I] per gate: transposed views.
    tensors = gate_tensors("keras", kernel.T, recurrent.T, bias)
    local.append(NO_CLIP_NOTE)
    return CellWeights(
        tensors,
        "keras",
        where,
        forget_bias_default=0.0,  # Keras adds nothing at run time; unit_forget_bias only initialises
        notes=(*notes, *local),
        hyperparameters=hyper,
        layer=cell.name or None,
        direction=_direction(cell),
        origin=SourceArrays(
            "keras", raw, {"config": cell.config, "half": cell.direction, "merge_mode": cell.merge_mode}
        ),
        **_cudnn_class(raw),
    )


def _cudnn_class(raw: Mapping[str, np.ndarray]) -> dict[str, str]:
    """A Keras 2 CuDNNLSTM names its class for the build's forget_bias note."""
    n = raw["recurrent_kernel"].shape[0]
    if "bias" not in raw or not is_cudnn_bias(raw["bias"].shape, n):
        return {}
    return {"cell_class": "CuDNNLSTM", "forget_bias_why": f"Keras 2 CuDNNLSTM: {NO_FORGET_BIAS}"}
