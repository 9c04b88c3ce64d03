"""`export`: the weights of a fused-LSTM .tflite model written back out in a framework's layout (.npz)."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lstmgen.config import check_fields
from lstmgen.errors import ConfigError, ModelFileError
from lstmgen.export_graph import graph_cells, graph_clips, stored_types
from lstmgen.modelinfo import LstmModel, read_lstm_model
from lstmgen.numerics.graph import real_value
from lstmgen.numerics.tables import GATES
from lstmgen.output import check_target, write_atomic
from lstmgen.tflite.records import ModelRecord
from lstmgen.tflite.schema import BuiltinOperator as Op
from lstmgen.tflite.tables import ACTIVATIONS, BUILTIN_OPERATOR_NAMES
from lstmgen.weights.base import GATE_ORDERS
from lstmgen.weights.npz import SETTINGS_KEY

PEEPHOLES = ("cell_to_input_weights", "cell_to_forget_weights", "cell_to_output_weights")
LAYER_NORM = tuple(f"{g}_layer_norm_coefficients" for g in GATES)


@dataclass(frozen=True)
class Cell:
    """One fused LSTM op's weights as real float32 values, keyed by TFLite slot name."""

    op_index: int
    direction: str  # 'backward': the op reads the time-reversed input (REVERSE_V2 in front)
    tensors: dict[str, np.ndarray]
    source: int  # the tensor the op's input comes from (before any REVERSE_V2): pairs a layer's two ops

    @property
    def features(self) -> set[str]:
        """What the cell uses beyond a plain LSTM: peephole, projection, projection bias, CIFG, ..."""
        t = self.tensors
        out = set()
        if "cell_to_forget_weights" in t:
            out.add("peepholes")
        if "projection_weights" in t:
            out.add("projection")
        if "projection_bias" in t:
            out.add("projection bias")
        if "input_to_input_weights" not in t:
            out.add("CIFG")
        if "forget_layer_norm_coefficients" in t:
            out.add("layer norm")
        if t["recurrent_to_forget_weights"].ndim == 1:
            out.add("diagonal recurrent weights")
        return out


def _through(model: ModelRecord, producers: Mapping[int, Any], index: int) -> tuple[int, bool]:
    """(the tensor an op input comes from, whether a REVERSE_V2 is on the way), skipping (DE)QUANTIZE."""
    reversed_ = False
    for _ in range(8):
        op = producers.get(index)
        if op is None or op.opcode not in (Op.REVERSE_V2, Op.QUANTIZE, Op.DEQUANTIZE):
            break
        reversed_ |= op.opcode == Op.REVERSE_V2
        index = op.inputs[0]
    return index, reversed_


def model_layers(lm: LstmModel) -> tuple[list[list[Cell]], list[str]]:
    """The model's LSTM ops as layers of (forward[, backward]) cells, with float32 weights."""
    model = lm.model
    producers = {out: op for op in model.operators for out in op.outputs}
    notes: list[str] = []
    layers: list[list[Cell]] = []
    quantized: set[str] = set()
    for spec in lm.lstms:
        op = model.operators[spec.op_index]
        source, backward = _through(model, producers, op.inputs[0])
        tensors = {}
        for key, index in spec.weight_inputs.items():
            t = model.tensors[index]
            producer = producers.get(index)
            if t.data is None and producer is not None and producer.opcode == Op.DEQUANTIZE:
                t = model.tensors[producer.inputs[0]]  # float16 weights widened at run time
            if t.data is None:
                continue
            if t.dtype != np.float32:
                quantized.add(np.dtype(t.dtype).name)
            tensors[key] = real_value(t).astype(np.float32)
        cell = Cell(spec.op_index, "backward" if backward else "forward", tensors, source)
        last = layers[-1] if layers else None
        pairs = last is not None and len(last) == 1 and last[0].direction == "forward" and last[0].source == source
        if backward and pairs and last is not None:
            last.append(cell)  # the backward half of a bidirectional layer: same input, reversed
        else:
            layers.append([cell])
    if quantized:
        notes.append(
            f"weights dequantized from {', '.join(sorted(quantized))} ((q - zero_point) * scale, as float32): "
            "they are the values the quantized model computes with, not the float weights it was made from"
        )
    return layers, notes


def _fused_layers(lm: LstmModel) -> tuple[list[list[Cell]], list[str], Options]:
    layers, notes = model_layers(lm)
    return layers, notes, {s.op_index: (s.activation, s.cell_clip, s.proj_clip) for s in lm.lstms}


# How the graph form's stored weight types become float32 (float16 has no scale or zero point).
_WIDENED = {"int8": "int8 ((q - zero_point) * scale per output row)", "float16": "float16 (each value exactly)"}


def graph_layers(lm: LstmModel) -> tuple[list[list[Cell]], list[str], Options]:
    """lstmgen's graph form as layers of cells: the gates by structure (export_graph), layers and directions as the
    file states them (checked against the cells found), the clips from its MINIMUM ops."""
    cells = graph_cells(lm)
    hp = lm.metadata.get("hyperparameters", {})
    per_layer = 2 if hp.get("bidirectional") else 1
    if len(cells) != int(hp.get("num_layers", 1)) * per_layer:
        raise ModelFileError(
            f"{lm.path}: its metadata states {hp.get('num_layers', 1)} layer(s) of {per_layer} direction(s), but "
            f"the graph holds {len(cells)} cell(s). Rebuild the file, or export the fused build of its source."
        )
    clips = graph_clips(lm)
    backward = bool(hp.get("go_backwards"))
    layers = [
        [Cell(c.order, "backward" if d or backward else "forward", c.tensors, -1) for d, c in enumerate(row)]
        for row in (cells[k : k + per_layer] for k in range(0, len(cells), per_layer))
    ]
    notes = [
        "graph form: each gate's weights identified by the graph's structure (which SPLIT output feeds which "
        "LOGISTIC/activation and what its result multiplies)"
    ]
    if kinds := stored_types(lm):
        how = " and ".join(_WIDENED[k] for k in sorted(kinds))
        notes.append(
            f"weights dequantized from {how} to float32: they are the values the quantized model computes with, not "
            "the float weights it was made from"
        )
    return layers, notes, {c.order: (c.activation, *clips) for c in cells}


# ------------------------------------------------------------------------------------ layouts


def _packed(t: Mapping[str, np.ndarray], prefix: str, suffix: str, order: str) -> np.ndarray:
    """The four per-gate arrays stacked along axis 0 in a framework's gate order."""
    return np.concatenate([t[f"{prefix}{g}{suffix}"] for g in GATE_ORDERS[order]], axis=0)


def _tflite(cell: Cell) -> dict[str, np.ndarray]:
    return dict(cell.tensors)


def _keras(cell: Cell) -> dict[str, np.ndarray]:
    t = cell.tensors
    return {
        "kernel": np.ascontiguousarray(_packed(t, "input_to_", "_weights", "keras").T),
        "recurrent_kernel": np.ascontiguousarray(_packed(t, "recurrent_to_", "_weights", "keras").T),
        "bias": _packed(t, "", "_gate_bias", "keras"),
    }


def _torch(cell: Cell) -> dict[str, np.ndarray]:
    t = cell.tensors
    bias = _packed(t, "", "_gate_bias", "torch")
    out = {
        "weight_ih": _packed(t, "input_to_", "_weights", "torch"),
        "weight_hh": _packed(t, "recurrent_to_", "_weights", "torch"),
        "bias_ih": bias,
        "bias_hh": np.zeros_like(bias),  # TFLite has one bias per gate: the sum goes to bias_ih
    }
    if "projection_weights" in t:
        out["weight_hr"] = t["projection_weights"]
    return out


def _tf1(cell: Cell) -> dict[str, np.ndarray]:
    t = cell.tensors
    w = np.concatenate([_packed(t, "input_to_", "_weights", "tf1"), _packed(t, "recurrent_to_", "_weights", "tf1")], 1)
    out = {"kernel": np.ascontiguousarray(w.T), "bias": _packed(t, "", "_gate_bias", "tf1")}
    if "cell_to_forget_weights" in t:
        out |= {f"w_{g[0]}_diag": t[f"cell_to_{g}_weights"] for g in ("input", "forget", "output")}
    if "projection_weights" in t:
        out["projection/kernel"] = np.ascontiguousarray(t["projection_weights"].T)
    return out


def _onnx(cells: list[Cell]) -> dict[str, np.ndarray]:
    """One ONNX LSTM node: W, R, B, P with a num_directions axis (forward, then reverse)."""
    out: dict[str, list[np.ndarray]] = {"W": [], "R": [], "B": [], "P": []}
    for cell in cells:
        t = cell.tensors
        bias = _packed(t, "", "_gate_bias", "onnx")
        out["W"].append(_packed(t, "input_to_", "_weights", "onnx"))
        out["R"].append(_packed(t, "recurrent_to_", "_weights", "onnx"))
        out["B"].append(np.concatenate([bias, np.zeros_like(bias)]))  # Wb holds the bias, Rb zeros
        if "cell_to_forget_weights" in t:
            out["P"].append(np.concatenate([t[k] for k in ("cell_to_input_weights", "cell_to_output_weights",
                                                           "cell_to_forget_weights")]))  # fmt: skip
    return {k: np.stack(v) for k, v in out.items() if v}


# Format -> what its layout can hold besides a plain tanh cell. The activation, clips and shapes are op
# settings, recorded beside the weights (SETTINGS_KEY) for lstmgen build; an activation other than tanh only
# where the framework has one (TF1's LSTMCell(activation=), Keras' LSTM(activation=)): nn.LSTM has only tanh,
# and an ONNX .npz holds no node attributes.
_ACTS = {f"activation {a}" for a in ACTIVATIONS if a != "tanh"}
SUPPORTED: dict[str, set[str]] = {
    "tflite": {"peepholes", "projection", "projection bias", "CIFG", "layer norm", "diagonal recurrent weights"}
    | _ACTS,
    "tf1": {"peepholes", "projection"} | _ACTS,
    "keras": set() | _ACTS,
    "torch": {"projection"},
    "onnx": {"peepholes"},
}
FORMATS = tuple(SUPPORTED)


def _keras_name(k: int, d: int, bidirectional: bool) -> str:
    suffix = f"_{k}" if k else ""
    if not bidirectional:
        return f"lstm{suffix}"
    return f"bidirectional{suffix}/{'backward' if d else 'forward'}_lstm{suffix}"


def _tf1_scope(k: int, d: int, layers: int, bidirectional: bool) -> str:
    side = "bw" if d else "fw"
    if bidirectional:
        inner = f"bidirectional_rnn/{side}/lstm_cell"
        return f"stack_bidirectional_rnn/cell_{k}/{inner}" if layers > 1 else inner
    return f"rnn/multi_rnn_cell/cell_{k}/lstm_cell" if layers > 1 else "rnn/lstm_cell"


def _keyed(fmt: str, layers: list[list[Cell]]) -> dict[str, np.ndarray]:
    """Every cell's arrays under the names the format's readers (and frameworks) give them."""
    bidirectional = any(len(row) == 2 for row in layers)
    single = len(layers) == 1 and len(layers[0]) == 1
    out: dict[str, np.ndarray] = {}
    if fmt == "onnx":
        return _onnx(layers[0])
    for k, row in enumerate(layers):
        for d, cell in enumerate(row):
            if fmt == "tflite":
                out |= _tflite(cell)
            elif fmt == "keras":
                prefix = "" if single else _keras_name(k, d, bidirectional) + "/"
                out |= {prefix + key: v for key, v in _keras(cell).items()}
            elif fmt == "torch":
                tail = f"_l{k}{'_reverse' if d else ''}"
                out |= {key + tail: v for key, v in _torch(cell).items()}
            else:
                prefix = "" if single else _tf1_scope(k, d, len(layers), bidirectional) + "/"
                out |= {prefix + key: v for key, v in _tf1(cell).items()}
    return out


Options = dict[int, tuple[str, float, float]]  # a cell's op_index -> (activation, cell_clip, proj_clip)


def _settings(lm: LstmModel, layers: list[list[Cell]], cells: list[Cell], options: Options) -> dict[str, object]:
    """The op settings a default build would not reproduce (batch 1, free time, tanh, no clips, batch-major,
    every step). Only the LSTM part: a converter's head is not exported, so its shapes are not recorded."""
    activation, cell_clip, proj_clip = options[cells[0].op_index]
    shape, sig = lm.input.shape, lm.input.shape_signature or lm.input.shape
    b, t = (1, 0) if lm.time_major else (0, 1)
    found: dict[str, object] = {
        "batch_size": int(shape[b]),
        "dynamic_batch": sig[b] == -1,
        "time_steps": None if sig[t] == -1 else int(shape[t]),
        "activation": activation,
        "cell_clip": cell_clip,
        "proj_clip": proj_clip,
        "time_major": lm.time_major,
        "return_sequences": lm.output_has_time or bool(lm.head),
        # the whole model one backward cell (go_backwards), not one half of a bidirectional layer picked by --layer
        "go_backwards": len(options) == 1 and layers[0][0].direction == "backward",
    }
    defaults: dict[str, object] = {"batch_size": 1, "dynamic_batch": False, "time_steps": None}
    defaults |= {"activation": "tanh", "cell_clip": 0.0, "proj_clip": 0.0, "time_major": False}
    defaults |= {"return_sequences": True, "go_backwards": False}
    return {k: v for k, v in found.items() if v != defaults[k]}


@dataclass
class ExportResult:
    """What `export` wrote (the CLI prints it; --json gives to_dict())."""

    output: str
    format: str
    layers: list[list[str]]  # per layer, per cell: 'forward' / 'backward'
    keys: list[str]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"output": self.output, "format": self.format, "layers": self.layers, "keys": self.keys,
                "notes": self.notes}  # fmt: skip


def _select(layers: list[list[Cell]], layer: str | None, source: str) -> list[list[Cell]]:
    """--layer K (a layer index) or K/forward, K/backward (one cell of it)."""
    if layer is None:
        return layers
    index, _, half = layer.partition("/")
    if not index.isdigit() or int(index) >= len(layers) or half not in ("", "forward", "backward"):
        raise ConfigError(
            f"--layer {layer!r}: expected a layer index 0..{len(layers) - 1}, optionally with /forward or "
            f"/backward ({source} has {len(layers)} layer(s) of "
            f"{', '.join(str(len(r)) for r in layers)} cell(s))."
        )
    row = layers[int(index)]
    if half:
        row = [c for c in row if c.direction == half]
        if not row:
            raise ConfigError(f"--layer {layer!r}: layer {index} of {source} has no {half} cell.")
    return [row]


def export_weights(
    model: str | Path, output: str | Path, fmt: str, layer: str | None = None, forget_bias: float | None = None
) -> ExportResult:
    """Write MODEL's LSTM weights to OUTPUT (.npz) in `fmt`'s layout; unsupported features are refused."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt!r} is unknown; choose one of {', '.join(FORMATS)}.")
    check_fields({"forget_bias": forget_bias})  # build's range: the result must stay a finite float32 bias
    check_target(Path(output), {"MODEL": model})  # before reading: -o may not be MODEL (nor a link to it)
    # a converter's head around the LSTM ops is left out, with a note; the graph form's cells are found by structure
    lm = read_lstm_model(model, head_ok=True, graph_ok=True)
    layers, notes, options = graph_layers(lm) if lm.form == "graph" else _fused_layers(lm)
    if lm.head:
        names = [BUILTIN_OPERATOR_NAMES.get(op.opcode, str(op.opcode)) for op in lm.model.operators]
        others = [f"{name} (op {k})" for k, name in enumerate(names) if name != "UNIDIRECTIONAL_SEQUENCE_LSTM"]
        notes.append(
            f"only the fused LSTM ops' weights are exported; the model's other ops are not LSTMs and are left out: "
            f"{', '.join(others)} (a Dense layer's weights, for one, are not in the file)"
        )
    layers = _select(layers, layer, str(model))
    cells = [c for row in layers for c in row]
    used = {f for c in cells for f in c.features} | {f"activation {options[c.op_index][0]}" for c in cells}
    used -= {"activation tanh"}
    missing = sorted(used - SUPPORTED[fmt])
    if missing:
        able = [f for f in FORMATS if not (used - SUPPORTED[f])]
        raise ConfigError(
            f"{model}: its LSTM uses {', '.join(missing)}, which the {fmt} layout cannot hold (the framework's "
            "LSTM has no such weights or setting), so the export would describe a different cell. Export with "
            f"--format {' or '.join(able)}."
        )
    if fmt == "tflite" and len(cells) > 1:
        raise ConfigError(
            f"{model} has {len(cells)} LSTM cells, but the tflite layout (.npz of slot names) holds one. Export one "
            "with --layer K (or K/forward, K/backward), or all with --format torch, keras or tf1."
        )
    if fmt == "onnx" and len(layers) > 1:
        raise ConfigError(
            f"{model} has {len(layers)} LSTM layers, but an ONNX W/R/B/P .npz holds one LSTM node (one layer). "
            "Export one with --layer K, or all with --format torch, keras or tf1."
        )
    if len(layers) == 1 and len(layers[0]) == 1 and layers[0][0].direction == "backward":
        notes.append(
            "the model runs this cell over the time-reversed input (Keras go_backwards, or one direction of a "
            "bidirectional layer): its weights are written as an ordinary cell; run it on the reversed sequence"
        )
    if forget_bias:
        for cell in cells:  # this run's own copies (model_layers made them)
            cell.tensors["forget_gate_bias"] = cell.tensors["forget_gate_bias"] - np.float32(forget_bias)
        notes.append(f"forget_bias {forget_bias:g} subtracted from every forget-gate bias (the framework adds it)")
    elif fmt == "tf1":
        notes.append(
            "the biases are complete (any forget bias is folded in), and the file records forget_bias = 0 (its "
            "'forget_bias' key), which lstmgen build uses; in TF1 itself use LSTMCell(..., forget_bias=0.0)"
        )
    arrays = _keyed(fmt, layers)
    settings = _settings(lm, layers, cells, options)
    if settings:  # what the layout cannot hold, for a default build of the file to compute what the model did
        arrays[SETTINGS_KEY] = np.array(json.dumps(settings))
        shown = ", ".join(f"{k} {v}" for k, v in settings.items())
        notes.append(
            f"the op's settings ({shown}) are not weights: they are recorded under the key '{SETTINGS_KEY}', "
            "which lstmgen build uses; drop that key when loading the file into the framework"
        )
    if fmt == "tf1":  # TF1 adds forget_bias at run time, 1.0 unless told: record what these biases need
        arrays["forget_bias"] = np.array(forget_bias or 0.0, np.float32)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]  # (numpy stubs read one key as allow_pickle)
    write_atomic(Path(output), buffer.getbuffer(), inputs={"MODEL": model})
    return ExportResult(str(output), fmt, [[c.direction for c in row] for row in layers], list(arrays), notes)
