"""Run an emulated LSTM op over a sequence, and a whole integer model op by op, on integer codes."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from lstmgen.errors import ModelFileError
from lstmgen.numerics.emulate import litert, tflm
from lstmgen.numerics.emulate.tensors import OpTensors, read_op
from lstmgen.tflite.records import ModelRecord, OperatorRecord
from lstmgen.tflite.schema import BuiltinOperator as Op
from lstmgen.tflite.tables import BUILTIN_OPERATOR_NAMES

I64 = np.int64


class Kernel(Protocol):
    """An emulated kernel for one op."""

    runtime: str
    t: OpTensors

    def step(self, x: np.ndarray, h: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


# flavour -> (kernel class, knobs class): what `--runtime emulate` and verify can reproduce
FLAVOURS: dict[str, tuple[Callable[..., Kernel], Callable[..., Any]]] = {
    "litert": (litert.LiteRTKernel, litert.Knobs),
    "tflm": (tflm.TflmKernel, tflm.Knobs),
}


def make_kernel(model: ModelRecord, op_index: int, flavour: str, knobs: Any = None) -> Kernel:
    kernel_class, _ = FLAVOURS[flavour]
    return kernel_class(read_op(model, op_index), knobs)


def run_op(
    kernel: Kernel, x: np.ndarray, h0: np.ndarray | None = None, c0: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(output, final h, final c) codes for x codes ([B, T, I], or [T, B, I] for a time-major op).

    Time-major ops step the whole batch at once; batch-major ones run each sequence through all its
    steps with a batch of one, as both kernels loop (it matters where the peephole misaligns batches)."""
    t = kernel.t
    x = np.asarray(x, I64)
    seq = x if t.time_major else x.transpose(1, 0, 2)
    steps, batch = seq.shape[:2]
    h = np.full((batch, t.output_size), t.h.zero_point, I64) if h0 is None else np.asarray(h0, I64).reshape(batch, -1)
    c = np.zeros((batch, t.num_units), I64) if c0 is None else np.asarray(c0, I64).reshape(batch, -1)
    out = np.empty((steps, batch, t.output_size), I64)
    if t.time_major:
        for k in range(steps):
            h, c = kernel.step(seq[k], h, c)
            out[k] = h
    else:
        for b in range(batch):
            hb, cb = h[b : b + 1], c[b : b + 1]
            for k in range(steps):
                hb, cb = kernel.step(seq[k, b : b + 1], hb, cb)
                out[k, b] = hb[0]
            h[b], c[b] = hb[0], cb[0]
    return (out if t.time_major else out.transpose(1, 0, 2)), h, c


@dataclass
class Emulation:
    """Every tensor computed (integer codes; float32 after a DEQUANTIZE) and each LSTM op's final (h, c) codes."""

    flavour: str
    values: dict[int, np.ndarray]
    final_states: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)


def _half_away(v: np.ndarray) -> np.ndarray:
    """TfLiteRound (std::round): half away from zero, on exact float64 values."""
    v = np.asarray(v, np.float64)
    return np.sign(v) * np.floor(np.abs(v) + 0.5)


def _quantize(model: ModelRecord, op: OperatorRecord, x: np.ndarray, flavour: str) -> np.ndarray:
    """QUANTIZE float32 -> integer. TFLM: round(x / scale) in float32, half away from zero. LiteRT's int8
    kernel (NEON code, on x86 through NEON_2_SSE): blocks of 8 as x * float(1 / scale) rounded half to even,
    the rest as round(double(x) / scale), half away."""
    out = model.tensors[op.outputs[0]]
    if model.tensors[op.inputs[0]].dtype.kind != "f" or out.quantization is None:
        raise ModelFileError("lstmgen's emulator runs QUANTIZE from float only (no requantization).")
    scale, zp = np.float32(out.quantization.scale[0]), int(out.quantization.zero_point[0])
    flat = np.asarray(x, np.float32).reshape(-1)
    if flavour == "litert" and out.dtype == np.int8:
        n8 = flat.size // 8 * 8
        head = np.rint(flat[:n8] * np.float32(1.0 / np.float64(scale))).astype(np.float64)
        codes = np.concatenate([head, _half_away(flat[n8:].astype(np.float64) / np.float64(scale))])
    else:
        codes = _half_away(flat / scale)
    info = np.iinfo(out.dtype)
    return np.clip(codes + zp, info.min, info.max).astype(I64).reshape(np.shape(x))


def _dequantize(model: ModelRecord, op: OperatorRecord, x: np.ndarray, flavour: str) -> np.ndarray:
    """DEQUANTIZE: float(double(scale) * (q - zp)); LiteRT's int8 kernel (NEON code via NEON_2_SSE on x86)
    computes blocks of 8 in float32 as q * float(scale) + float(-zp * scale)."""
    t = model.tensors[op.inputs[0]]
    assert t.quantization is not None
    scale, zp = np.float64(t.quantization.scale[0]), int(t.quantization.zero_point[0])
    q = np.asarray(x, I64).reshape(-1)
    out = (scale * (q - zp)).astype(np.float32)
    if flavour == "litert" and t.dtype == np.int8:
        n8 = q.size // 8 * 8
        out[:n8] = q[:n8].astype(np.float32) * np.float32(scale) + np.float32(-zp * scale)
    return out.reshape(np.shape(x))


def _same_grid(model: ModelRecord, op: OperatorRecord) -> None:
    """Concatenation and slicing move codes unchanged only between tensors of one grid."""
    q_out = model.tensors[op.outputs[0]].quantization
    for i in op.inputs[:1] if op.opcode != Op.CONCATENATION else op.inputs:
        if model.tensors[i].quantization != q_out:
            raise ModelFileError(
                f"{BUILTIN_OPERATOR_NAMES.get(op.opcode, op.opcode)} requantizes between different scales; "
                "lstmgen's emulator does not reproduce that rounding."
            )


def emulate_graph(
    model: ModelRecord,
    feeds: Mapping[int, np.ndarray],
    flavour: str,
    *,
    states: Mapping[int, tuple[np.ndarray | None, np.ndarray | None]] | None = None,
    knobs: Any = None,
    data_ops: Mapping[int, Callable[[OperatorRecord, Mapping[int, np.ndarray]], np.ndarray | tuple[np.ndarray, ...]]],
) -> Emulation:
    """Run the graph from `feeds` (tensor index -> codes, or float32 for a float input) in `flavour`.
    `data_ops` evaluates the reindexing ops (REVERSE_V2, CONCATENATION, STRIDED_SLICE) on any array."""
    values: dict[int, np.ndarray] = {i: t.data.astype(I64) for i, t in enumerate(model.tensors)
                                     if isinstance(t.data, np.ndarray) and t.dtype.kind == "i"}  # fmt: skip
    values |= {i: np.asarray(v) for i, v in feeds.items()}
    em = Emulation(flavour, values)
    for k, op in enumerate(model.operators):
        if op.opcode == Op.UNIDIRECTIONAL_SEQUENCE_LSTM:
            h0, c0 = (states or {}).get(k, (None, None))
            y, h, c = run_op(make_kernel(model, k, flavour, knobs), values[op.inputs[0]], h0, c0)
            values[op.outputs[0]], em.final_states[k] = y, (h, c)
        elif op.opcode == Op.QUANTIZE:
            values[op.outputs[0]] = _quantize(model, op, values[op.inputs[0]], flavour)
        elif op.opcode == Op.DEQUANTIZE:
            values[op.outputs[0]] = _dequantize(model, op, values[op.inputs[0]], flavour)
        elif op.opcode in data_ops and op.opcode in (Op.REVERSE_V2, Op.CONCATENATION, Op.STRIDED_SLICE):
            _same_grid(model, op)
            out = data_ops[op.opcode](op, values)  # these three have one output
            values[op.outputs[0]] = out[0] if isinstance(out, tuple) else out
        else:
            name = BUILTIN_OPERATOR_NAMES.get(op.opcode, str(op.opcode))
            raise ModelFileError(f"operator {k} is {name}, which lstmgen's integer emulator does not run.")
    return em
