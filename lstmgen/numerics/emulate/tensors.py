"""What an integer LSTM kernel reads from the file for one UNIDIRECTIONAL_SEQUENCE_LSTM op: codes and scales."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lstmgen.errors import ModelFileError
from lstmgen.tflite.records import ModelRecord, Quantization, TensorRecord
from lstmgen.tflite.slots import Slot, gate_slot

I64 = np.int64
GATES = ("input", "forget", "cell", "output")
ACTIVATION_TANH, ACTIVATION_SIGMOID = 4, 6  # TfLiteFusedActivation codes the TFLM kernel accepts for the cell gate


@dataclass(frozen=True)
class Q:
    """A tensor's per-tensor scale (the float32 stored in the file, as a Python float) and zero point."""

    scale: float
    zero_point: int


@dataclass(frozen=True)
class OpTensors:
    """One LSTM op's integer data (int64 arrays) and quantization, exactly as stored."""

    op_index: int
    kind: str  # "int8" (8x8->16) or "int16x8"
    time_major: bool
    activation: int
    cell_clip: float  # float32 values, as Python floats
    proj_clip: float
    x: Q
    h: Q  # tensor 18, the output state
    c: Q  # tensor 19
    out: Q  # the op's output tensor
    wx: dict[str, np.ndarray]  # gate -> [N, I] (absent: CIFG input gate)
    wh: dict[str, np.ndarray]  # gate -> [N, P]
    qx: dict[str, Q]
    qh: dict[str, Q]
    bias: dict[str, np.ndarray | None]
    peephole: dict[str, np.ndarray]  # gate -> [N] int16
    qpeep: dict[str, Q]
    layer_norm: dict[str, np.ndarray]
    qln: dict[str, Q]
    projection: np.ndarray | None
    qproj: Q | None
    projection_bias: np.ndarray | None
    intermediates: tuple[Q | None, ...]  # 0-3 gate domains, 4 the hidden (None: no quantization)

    @property
    def cifg(self) -> bool:
        return "input" not in self.wx

    @property
    def num_units(self) -> int:
        return int(self.wx["forget"].shape[0])

    @property
    def output_size(self) -> int:
        return int(self.wh["forget"].shape[1])


def _q(t: TensorRecord, what: str, op_index: int) -> Q:
    q = t.quantization
    if q is None or not q.scale:
        raise ModelFileError(f"LSTM operator {op_index}: {what} (tensor '{t.name}') has no quantization parameters.")
    if len(q.scale) > 1:
        raise ModelFileError(
            f"LSTM operator {op_index}: {what} (tensor '{t.name}') is quantized per channel ({len(q.scale)} "
            "scales); the integer LSTM kernels read one per-tensor scale, so lstmgen cannot emulate it exactly."
        )
    return Q(float(np.float32(q.scale[0])), int(q.zero_point[0]) if q.zero_point else 0)


def _maybe_q(q: Quantization | None) -> Q | None:
    if q is None or not q.scale:
        return None
    return Q(float(np.float32(q.scale[0])), int(q.zero_point[0]) if q.zero_point else 0)


def _data(t: TensorRecord) -> np.ndarray:
    if not isinstance(t.data, np.ndarray):
        raise ModelFileError(f"tensor '{t.name}' should be a constant but has no data.")
    return t.data.astype(I64)


def read_op(model: ModelRecord, op_index: int) -> OpTensors:
    """The op's tensors; ModelFileError if it is not a full-integer LSTM."""
    op = model.operators[op_index]
    tensor = model.tensors

    def slot(s: Slot) -> TensorRecord | None:
        return tensor[op.inputs[s]] if s < len(op.inputs) and op.inputs[s] >= 0 else None

    x_t = tensor[op.inputs[Slot.INPUT]]
    kind = {np.dtype(np.int8): "int8", np.dtype(np.int16): "int16x8"}.get(np.dtype(x_t.dtype))
    if kind is None:
        raise ModelFileError(f"LSTM operator {op_index} has {x_t.dtype} input: not a full-integer LSTM.")
    wx: dict[str, np.ndarray] = {}
    wh: dict[str, np.ndarray] = {}
    peep: dict[str, np.ndarray] = {}
    ln: dict[str, np.ndarray] = {}
    qx: dict[str, Q] = {}
    qh: dict[str, Q] = {}
    qpeep: dict[str, Q] = {}
    qln: dict[str, Q] = {}
    bias: dict[str, np.ndarray | None] = {}
    for g in GATES:
        for table, qtable, pattern in ((wx, qx, "INPUT_TO_{}_WEIGHTS"), (wh, qh, "RECURRENT_TO_{}_WEIGHTS")):
            t = slot(gate_slot(pattern, g))
            if t is not None:
                table[g], qtable[g] = _data(t), _q(t, t.name, op_index)
        b = slot(gate_slot("{}_GATE_BIAS", g))
        bias[g] = _data(b) if b is not None else None
        for table, qtable, pattern in ((peep, qpeep, "CELL_TO_{}_WEIGHTS"), (ln, qln, "{}_LAYER_NORM_COEFFICIENTS")):
            t = slot(gate_slot(pattern, g)) if not (g == "cell" and pattern.startswith("CELL_TO")) else None
            if t is not None:
                table[g], qtable[g] = _data(t), _q(t, t.name, op_index)
    proj, pbias = slot(Slot.PROJECTION_WEIGHTS), slot(Slot.PROJECTION_BIAS)
    opts = op.options
    get = opts.get if opts is not None else (lambda _k, d=None: d)
    h_t, c_t = slot(Slot.OUTPUT_STATE), slot(Slot.CELL_STATE)
    if h_t is None or c_t is None:
        raise ModelFileError(f"LSTM operator {op_index} has no state tensors.")
    return OpTensors(
        op_index=op_index,
        kind=kind,
        time_major=bool(get("TimeMajor", False)),
        activation=int(get("FusedActivationFunction", 0)),
        cell_clip=float(np.float32(get("CellClip", 0.0))),
        proj_clip=float(np.float32(get("ProjClip", 0.0))),
        x=_q(x_t, "the input", op_index),
        h=_q(h_t, "the output state", op_index),
        c=_q(c_t, "the cell state", op_index),
        out=_q(tensor[op.outputs[0]], "the output", op_index),
        wx=wx, wh=wh, qx=qx, qh=qh, bias=bias, peephole=peep, qpeep=qpeep, layer_norm=ln, qln=qln,
        projection=_data(proj) if proj is not None else None,
        qproj=_q(proj, "the projection weights", op_index) if proj is not None else None,
        projection_bias=_data(pbias) if pbias is not None else None,
        intermediates=tuple(_maybe_q(tensor[i].quantization) for i in op.intermediates),
    )  # fmt: skip
