"""Record-to-record quantization of float LSTM graphs: float16, dynamic-int8 (hybrid), int8 and int16x8."""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from lstmgen.config import IO_TYPES
from lstmgen.errors import ConfigError
from lstmgen.numerics import affine
from lstmgen.numerics.tables import F16, F32, I8, I16, I32, INTEGER_MODES, Q3_12, IntegerMode
from lstmgen.numerics.tables import QUANTIZE_MODES as MODES
from lstmgen.quant.calibrate import CalibrationStats, LstmRanges
from lstmgen.tflite.records import ModelRecord, OperatorRecord, Options, Quantization, TensorRecord
from lstmgen.tflite.schema import BuiltinOperator as Op
from lstmgen.tflite.slots import GATES, NUM_INPUTS, Slot, gate_slot
from lstmgen.tflite.tables import BUILTIN_OPERATOR_NAMES, OP_MIN_RUNTIME, min_runtime

_DATA_OPS = (Op.REVERSE_V2, Op.CONCATENATION, Op.STRIDED_SLICE)
# Slots holding matmul weights (int8 in hybrid and int8 modes).
MATMUL_SLOTS: tuple[Slot, ...] = (
    *(gate_slot(p, g) for p in ("INPUT_TO_{}_WEIGHTS", "RECURRENT_TO_{}_WEIGHTS") for g in GATES),
    Slot.PROJECTION_WEIGHTS,
)
PEEPHOLE_SLOTS: tuple[Slot, ...] = tuple(gate_slot("CELL_TO_{}_WEIGHTS", g) for g in GATES if g != "cell")
BIAS_SLOTS: tuple[Slot, ...] = tuple(gate_slot("{}_GATE_BIAS", g) for g in GATES)
LN_SLOTS: tuple[Slot, ...] = tuple(gate_slot("{}_LAYER_NORM_COEFFICIENTS", g) for g in GATES)
# The integer tanh of the cell state handles 15 - k integer bits, only 0..6 of them: 2^-15 <= s_c <= 2^-9.
CELL_K_MIN, CELL_K_MAX = 9, 15

# Cell variants the 16x8 kernel (TFLM's, the only one that exists) does not implement: quantizing them
# would give a file no interpreter can run or check.
_NOT_16X8: tuple[tuple[str, tuple[Slot, ...]], ...] = (
    ("peepholes", PEEPHOLE_SLOTS),
    ("projection", (Slot.PROJECTION_WEIGHTS,)),
    ("layer norm", LN_SLOTS),
)


# ------------------------------------------------------------------------------------------ helpers


def _check_mode(mode: str, asymmetric_inputs: bool, io_type: str) -> None:
    if mode not in MODES:
        close = difflib.get_close_matches(str(mode), MODES, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ConfigError(f"--quantize {mode!r} is not a quantization mode: expected one of {', '.join(MODES)}.{hint}")
    if io_type not in IO_TYPES:
        raise ConfigError(f"--io-type {io_type!r} is not allowed: expected one of {', '.join(IO_TYPES)}.")
    if asymmetric_inputs and mode != "dynamic-int8":
        raise ConfigError(
            f"--asymmetric-inputs only applies to --quantize dynamic-int8 (hybrid), not {mode}: it selects how the "
            "hybrid kernel quantizes its float inputs on the fly."
        )


def symmetric_scale(x: np.ndarray, qmax: int) -> float:
    """max|x| / qmax; an all-zero tensor gets scale 1 (a zero scale is invalid in the kernel)."""
    m = float(np.max(np.abs(x))) if x.size else 0.0
    return m / qmax if m > 0 else 1.0


def quantize_symmetric(x: np.ndarray, dtype: np.dtype, scale: float | None = None) -> tuple[np.ndarray, float]:
    info = np.iinfo(dtype)
    s = symmetric_scale(x, info.max) if scale is None else scale
    s = float(np.float32(s))  # the file stores float32 scales; round with exactly that scale
    return affine.quantize(x, dtype, s), s


def affine_params(lo: float, hi: float, symmetric: bool = False, dtype: np.dtype = I8) -> tuple[float, int]:
    """(scale, zero point) of `dtype` covering [lo, hi] (widened to include 0, as the kernels need)."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if symmetric or dtype != I8:
        qmax = float(np.iinfo(dtype).max)
        m = max(-lo, hi)
        return (float(np.float32(m / qmax)) if m > 0 else 1.0 / qmax), 0
    if hi - lo <= 0:
        return 1.0 / 255.0, 0
    scale = float(np.float32((hi - lo) / 255.0))
    zp = int(np.clip(round(-128 - lo / scale), -128, 127))
    return scale, zp


def cell_scale_exponent(cell_abs_max: float, cell_clip: float, op_index: int) -> int:
    """k with cell-state scale 2^-k: the smallest power-of-two bound >= max|c|, over 32768 (converter rule)."""
    bound = cell_abs_max if cell_clip <= 0 else min(cell_abs_max, cell_clip)
    if bound <= 0:
        return CELL_K_MAX
    k = 15 - math.ceil(math.log2(bound))
    if k < CELL_K_MIN:
        raise ConfigError(
            f"integer quantization: LSTM operator {op_index}'s cell state reaches |c| = {bound:.4g} on the "
            "calibration data, but the "
            f"int16 cell state of the integer kernel can hold at most |c| < {2.0 ** (15 - CELL_K_MIN):g} (scale "
            f"2^-{CELL_K_MIN}; the kernel's fixed-point tanh silently returns garbage beyond it). Set --cell-clip "
            f"to at most {2.0 ** (15 - CELL_K_MIN):g} (e.g. --cell-clip 8, which gives scale 2^-12, what TF's "
            "converter ends up with for Keras LSTMs), or use --quantize dynamic-int8 / float16 (for --target micro, "
            "which runs neither: float32, without --quantize)."
        )
    return min(k, CELL_K_MAX)


def _lstm_version(model: ModelRecord, op: OperatorRecord, t_in: np.dtype) -> int:
    opts = op.options
    if opts is not None and opts.get("DiagonalRecurrentTensors", False):
        return 4
    weights = model.tensors[op.inputs[Slot.INPUT_TO_FORGET_WEIGHTS]].dtype
    out = model.tensors[op.outputs[0]].dtype
    if t_in == I16 and weights == I8 and out == I16:
        return 5  # op_version.cc: int16 activations, int8 weights
    if t_in == F32 and weights == I8 and out == F32:
        return 3 if opts is not None and opts.get("AsymmetricQuantizeInputs", False) else 2
    return 1


def _strided_slice_version(model: ModelRecord, op: OperatorRecord, t_in: np.dtype) -> int:
    opts = op.options
    if opts is not None and (opts.get("EllipsisMask", 0) or opts.get("NewAxisMask", 0)):
        return 6
    if len(model.tensors[op.inputs[0]].shape) > 4:
        return 4
    return 2 if t_in == I8 else 1


# The op version TFLite's op_version.cc assigns, per operator lstmgen writes: (model, op, input type) -> version.
_OP_VERSIONS: dict[int, Callable[[ModelRecord, OperatorRecord, np.dtype], int]] = {
    Op.UNIDIRECTIONAL_SEQUENCE_LSTM: _lstm_version,
    Op.DEQUANTIZE: lambda _m, _op, t_in: 3 if t_in in (F16, I16) else 2 if t_in == I8 else 1,
    Op.QUANTIZE: lambda m, op, _t: 2 if m.tensors[op.outputs[0]].dtype == I16 else 1,
    Op.REVERSE_V2: lambda _m, _op, t_in: 3 if t_in == I8 else 1,
    Op.CONCATENATION: lambda _m, _op, t_in: 3 if t_in == I16 else 2 if t_in == I8 else 1,
    Op.STRIDED_SLICE: _strided_slice_version,
}


def op_version(model: ModelRecord, op: OperatorRecord) -> int:
    """The op version TFLite's op_version.cc assigns, for the operators lstmgen writes (others keep theirs)."""
    rule = _OP_VERSIONS.get(op.opcode)
    if rule is None:
        return op.version
    t_in = model.tensors[op.inputs[0]].dtype if op.inputs and op.inputs[0] >= 0 else F32
    return rule(model, op, t_in)


# runtime_version.cc has no entry for these (no TFLite release registers them; TFLM does not check
# versions): the converter then leaves the 16-byte placeholder empty, and so does lstmgen.
NO_TFLITE_RUNTIME: frozenset[tuple[int, int]] = frozenset({(Op.UNIDIRECTIONAL_SEQUENCE_LSTM, 5)})


def min_runtime_version(model: ModelRecord) -> str:
    """Max over the operators of their minimum runtime (runtime_version.cc semantics); "" if none runs it."""
    if any((op.opcode, op.version) in NO_TFLITE_RUNTIME for op in model.operators):
        return ""
    for op in model.operators:
        if (op.opcode, op.version) not in OP_MIN_RUNTIME:
            name = BUILTIN_OPERATOR_NAMES.get(op.opcode, str(op.opcode))
            raise ConfigError(f"no minimum runtime is known for {name} version {op.version}.")
    return min_runtime([(op.opcode, op.version) for op in model.operators])


def finalize(model: ModelRecord, quant_meta: dict[str, Any] | None = None) -> ModelRecord:
    """Recompute op versions and min_runtime_version; record the quantization in the lstmgen metadata."""
    ops = tuple(replace(op, version=op_version(model, op)) for op in model.operators)
    model = replace(model, operators=ops)
    meta: list[tuple[str, bytes]] = []
    seen_runtime = False
    for key, blob in model.metadata:
        if key == "min_runtime_version":
            blob, seen_runtime = min_runtime_version(model).encode().ljust(16, b"\0"), True
        elif key == "lstmgen" and quant_meta is not None:
            try:
                doc = json.loads(blob)
                doc["quantization"] = quant_meta
                blob = json.dumps(doc, sort_keys=True).encode()
            except ValueError:
                pass
        meta.append((key, blob))
    if not seen_runtime:
        meta.insert(0, ("min_runtime_version", min_runtime_version(model).encode().ljust(16, b"\0")))
    return replace(model, metadata=tuple(meta))


def _lstm_ops(model: ModelRecord) -> list[int]:
    for k, op in enumerate(model.operators):
        if op.opcode not in (Op.UNIDIRECTIONAL_SEQUENCE_LSTM, *_DATA_OPS):
            name = BUILTIN_OPERATOR_NAMES.get(op.opcode, str(op.opcode))
            raise ConfigError(
                f"operator {k} is {name}; lstmgen quantizes graphs of UNIDIRECTIONAL_SEQUENCE_LSTM, REVERSE_V2, "
                "CONCATENATION and STRIDED_SLICE only (is the model already quantized?)."
            )
    ks = [k for k, op in enumerate(model.operators) if op.opcode == Op.UNIDIRECTIONAL_SEQUENCE_LSTM]
    if not ks:
        raise ConfigError("the model has no UNIDIRECTIONAL_SEQUENCE_LSTM operator to quantize.")
    owners: dict[int, int] = {}
    for k in ks:
        op = model.operators[k]
        for slot in range(1, len(op.inputs)):
            i = op.inputs[slot]
            if i < 0 or slot in (Slot.OUTPUT_STATE, Slot.CELL_STATE):
                continue
            t = model.tensors[i]
            if t.data is None or t.dtype != F32:
                raise ConfigError(
                    f"LSTM operator {k}: input {Slot(slot).key} ({t.name}) is {t.dtype}"
                    f"{' without data' if t.data is None else ''}; quantization starts from a float32 model."
                )
            if owners.setdefault(i, k) != k:  # scales depend on the op (bias = s_x * s_W), so no sharing
                raise ConfigError(f"tensor {t.name} is shared by LSTM operators {owners[i]} and {k}; not supported.")
        if len(op.inputs) != NUM_INPUTS and len(op.inputs) != 20:
            raise ConfigError(f"LSTM operator {k} has {len(op.inputs)} inputs; expected 20 or 24.")
    return ks


def _present(op: OperatorRecord, slot: Slot) -> bool:
    return slot < len(op.inputs) and op.inputs[slot] >= 0


def _options(op: OperatorRecord) -> Options:
    if op.options is None:  # layout always writes the LSTM options table
        raise ValueError(f"operator {op.opcode} has no options table")
    return op.options


# ------------------------------------------------------------------------------------------ float16


def _float16(model: ModelRecord) -> ModelRecord:
    """Every constant LSTM input -> float16 + a DEQUANTIZE op (the LSTM kernel has no fp16 path)."""
    tensors = list(model.tensors)
    pre: list[OperatorRecord] = []
    ops = list(model.operators)
    for k in _lstm_ops(model):
        op = ops[k]
        inputs = list(op.inputs)
        for slot in range(1, len(inputs)):
            i = inputs[slot]
            if i < 0 or slot in (Slot.OUTPUT_STATE, Slot.CELL_STATE):
                continue
            t = tensors[i]
            data = np.asarray(t.data, np.float32)
            if np.abs(data).max(initial=0.0) > np.finfo(np.float16).max:
                raise ConfigError(
                    f"float16: {t.name} has values up to {np.abs(data).max():.4g}, beyond the float16 range "
                    "(65504); they would become inf. Use --quantize dynamic-int8 or none."
                )
            # The original index keeps the (now float16) constant; the op reads a new float32 tensor.
            tensors[i] = replace(t, dtype=F16, data=data.astype(np.float16), quantization=None)
            tensors.append(TensorRecord(f"{t.name}/dequantize", t.shape, F32))
            pre.append(OperatorRecord(Op.DEQUANTIZE, 3, (i,), (len(tensors) - 1,)))
            inputs[slot] = len(tensors) - 1
        ops[k] = replace(op, inputs=tuple(inputs))
    out = replace(model, tensors=tuple(tensors), operators=tuple(pre + ops))
    return finalize(out, {"mode": "float16"})


# ------------------------------------------------------------------------------------ dynamic-int8


def _hybrid(model: ModelRecord, asymmetric_inputs: bool) -> ModelRecord:
    """Weights, peepholes, projection -> int8 symmetric PER-TENSOR (per-channel is silently wrong)."""
    tensors = list(model.tensors)
    ops = list(model.operators)
    for k in _lstm_ops(model):
        op = ops[k]
        for slot in (*MATMUL_SLOTS, *PEEPHOLE_SLOTS):
            if _present(op, slot):
                i = op.inputs[slot]
                q, s = quantize_symmetric(np.asarray(tensors[i].data), I8)
                tensors[i] = replace(tensors[i], dtype=I8, data=q, quantization=Quantization((s,), (0,)))
        options = _options(op)
        fields = tuple((n, asymmetric_inputs if n == "AsymmetricQuantizeInputs" else v) for n, v in options.fields)
        if not any(n == "AsymmetricQuantizeInputs" for n, _ in fields):
            fields += (("AsymmetricQuantizeInputs", asymmetric_inputs),)
        ops[k] = replace(op, options=Options(options.table, fields))
    out = replace(model, tensors=tuple(tensors), operators=tuple(ops))
    return finalize(out, {"mode": "dynamic-int8", "asymmetric_inputs": asymmetric_inputs})


# -------------------------------------------------------------------------------- int8 and int16x8


class _Classes:
    """Union-find over activation tensors that must share (scale, zero point)."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def find(self, i: int) -> int:
        self.parent.setdefault(i, i)
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        self.parent[self.find(a)] = self.find(b)


# Which inputs of the data ops must share the output's (scale, zero point): REVERSE_V2 and STRIDED_SLICE
# copy raw integer bytes (in == out), integer CONCATENATION refuses to rescale (concatenation.cc checks
# that every input's scale/zp equals the output's).
_SHARES_OUTPUT_PARAMS: dict[int, slice] = {
    Op.REVERSE_V2: slice(0, 1),
    Op.STRIDED_SLICE: slice(0, 1),
    Op.CONCATENATION: slice(None),
}
# The intermediates the integer kernel reads, in its order: 0-3 the gates' int16 pre-activation
# scales, 4 the hidden m = o * g(c).
_GATE_INTERMEDIATE = "input_to_{}_intermediate"
_HIDDEN_INTERMEDIATE = "effective_hidden_scale_intermediate"


def _check_16x8(model: ModelRecord, lstm_ks: list[int]) -> None:
    for k in lstm_ks:
        op = model.operators[k]
        used = [name for name, slots in _NOT_16X8 if any(_present(op, s) for s in slots)]
        if not _present(op, Slot.INPUT_TO_INPUT_WEIGHTS):
            used.insert(0, "CIFG (no input gate)")
        if used:
            raise ConfigError(
                f"int16x8: LSTM operator {k} uses {', '.join(used)}. The only 16x8 LSTM kernel is TensorFlow Lite "
                "Micro's, which runs the standard cell only (LstmTensors::ValidateTensorStatus in "
                "tensorflow/lite/micro/kernels/lstm_eval.cc), and TFLite's CPU kernel has no 16x8 path at all, so "
                "no interpreter could run or check the file. Build the standard cell, or use --quantize int8 / "
                "dynamic-int8 for this variant."
            )


def _check_peephole_projection(model: ModelRecord, k: int) -> None:
    """The integer kernel's peephole + projection path is wrong unless num_proj == num_units."""
    op = model.operators[k]
    if not (_present(op, Slot.PROJECTION_WEIGHTS) and any(_present(op, s) for s in PEEPHOLE_SLOTS)):
        return
    n = model.tensors[op.inputs[Slot.INPUT_TO_OUTPUT_WEIGHTS]].shape[0]
    p = model.tensors[op.inputs[Slot.PROJECTION_WEIGHTS]].shape[0]
    if n != p:
        raise ConfigError(
            f"int8: LSTM operator {k} has peepholes and a projection (num_units {n}, num_proj {p}). The "
            "integer kernel applies the int16 peephole product with length num_proj instead of num_units "
            "(and strides the batch rows by num_proj), so its output would silently disagree with the "
            "LSTM's math. Use --quantize dynamic-int8 or float16 for this cell, or drop the peepholes."
        )


def _integer_ops(model: ModelRecord, stats: CalibrationStats, mode: str) -> list[int]:
    """The LSTM ops to quantize, after refusing what the integer kernels cannot run or the stats do not cover."""
    lstm_ks = _lstm_ops(model)
    if mode == "int16x8":
        _check_16x8(model, lstm_ks)
    missing = [k for k in lstm_ks if k not in stats.lstm]
    if missing:
        raise ConfigError(
            f"the calibration statistics have no ranges for LSTM operator(s) {missing}; calibrate this model "
            "(lstmgen.quant.calibrate.calibrate) and pass the result."
        )
    for k in lstm_ks:
        _check_peephole_projection(model, k)
    return lstm_ks


def _activations(model: ModelRecord) -> list[int]:
    """The tensors computed at run time: the model inputs and every operator output."""
    return [*model.inputs, *(o for op in model.operators for o in op.outputs)]


def _activation_params(
    model: ModelRecord, lstm_ks: list[int], stats: CalibrationStats, spec: IntegerMode
) -> dict[int, Quantization]:
    """(scale, zero point) of every activation tensor, shared across the tensors the data ops tie together."""
    classes = _Classes()
    activations = _activations(model)
    for i in activations:
        classes.find(i)
    for op in model.operators:
        for i in op.inputs[_SHARES_OUTPUT_PARAMS.get(op.opcode, slice(0))]:
            classes.union(i, op.outputs[0])
    # The kernel clips the projection symmetrically (±proj_clip), so its output grid must be symmetric too.
    symmetric = {
        classes.find(model.operators[k].outputs[0])
        for k in lstm_ks
        if _present(model.operators[k], Slot.PROJECTION_WEIGHTS)
        and float(_options(model.operators[k]).get("ProjClip", 0.0)) > 0
    }
    lo: dict[int, float] = {}
    hi: dict[int, float] = {}
    for i in activations:
        if i not in stats.tensors:
            raise ConfigError(f"the calibration statistics have no range for tensor {i} ({model.tensors[i].name}).")
        r = classes.find(i)
        lo[r] = min(lo.get(r, 0.0), stats.tensors[i][0])
        hi[r] = max(hi.get(r, 0.0), stats.tensors[i][1])
    params = {r: affine_params(lo[r], hi[r], spec.symmetric or r in symmetric, spec.activation) for r in lo}
    return {i: Quantization((params[classes.find(i)][0],), (params[classes.find(i)][1],)) for i in activations}


@dataclass(frozen=True)
class _Cell:
    """One LSTM op being quantized: what its tensors' scales depend on."""

    index: int
    op: OperatorRecord
    ranges: LstmRanges
    spec: IntegerMode
    input_q: Quantization  # the op's input activation
    output_q: Quantization  # the op's output activation (= the h state's)

    @property
    def layer_norm(self) -> bool:
        return _present(self.op, Slot.FORGET_LAYER_NORM_COEFFICIENTS)

    @property
    def projection(self) -> bool:
        return _present(self.op, Slot.PROJECTION_WEIGHTS)


def _put(tensors: list[TensorRecord], i: int, q: np.ndarray, s: float) -> None:
    """Constant tensor i becomes the codes q at scale s (zero point 0: every LSTM constant is symmetric)."""
    tensors[i] = replace(tensors[i], dtype=q.dtype, data=q, quantization=Quantization((s,), (0,)))


# Constant inputs quantized from their own range, symmetric: (slots, code type).
_WEIGHT_TYPES: tuple[tuple[tuple[Slot, ...], np.dtype], ...] = (
    (MATMUL_SLOTS, I8),
    (PEEPHOLE_SLOTS + LN_SLOTS, I16),
)


def _quantize_weights(tensors: list[TensorRecord], cell: _Cell) -> dict[Slot, float]:
    """Matmul weights to int8, peepholes and layer-norm coefficients to int16; returns every scale by slot."""
    scales: dict[Slot, float] = {}
    for slots, dtype in _WEIGHT_TYPES:
        for slot in slots:
            if _present(cell.op, slot):
                i = cell.op.inputs[slot]
                q, scales[slot] = quantize_symmetric(np.asarray(tensors[i].data), dtype)
                _put(tensors, i, q, scales[slot])
    return scales


LN_BIAS_SCALE = 2.0**-10  # the integer layer norm adds the bias in a 2^-10 * s_LN domain


def _bias_scale(cell: _Cell, gate: str, scales: dict[Slot, float]) -> float:
    """The scale the kernel adds a gate's bias at: 2^-10 * s_LN with layer norm; without, the bias seeds
    the input matmul's accumulator, s_x * s_W(input_to_gate)."""
    if cell.layer_norm:
        return scales[gate_slot("{}_LAYER_NORM_COEFFICIENTS", gate)] * LN_BIAS_SCALE
    return cell.input_q.scale[0] * scales[gate_slot("INPUT_TO_{}_WEIGHTS", gate)]


def _quantize_biases(tensors: list[TensorRecord], cell: _Cell, scales: dict[Slot, float]) -> None:
    """Gate biases at the kernel's accumulator scale, in the mode's bias type (int32 or int64)."""
    for gate, slot in zip(GATES, BIAS_SLOTS, strict=True):
        if _present(cell.op, slot):
            i = cell.op.inputs[slot]
            q, s = quantize_symmetric(np.asarray(tensors[i].data), cell.spec.bias, _bias_scale(cell, gate, scales))
            _put(tensors, i, q, s)


def _hidden_params(tensors: list[TensorRecord], cell: _Cell, scales: dict[Slot, float]) -> Quantization:
    """Intermediate 4 (hidden m = o*g(c)); quantizes the projection bias, which follows it.

    Without projection the kernel writes m straight into the output state, so it must equal the
    output's params. With projection its zero point must be 0: the kernel stores m with zp = -hidden_zp
    (b/246629213), mirroring the saturation range."""
    if not cell.projection:
        return cell.output_q
    m_abs = max(-cell.ranges.hidden[0], cell.ranges.hidden[1])
    s_m, _ = affine_params(-m_abs, m_abs, symmetric=True)
    if _present(cell.op, Slot.PROJECTION_BIAS):
        i = cell.op.inputs[Slot.PROJECTION_BIAS]
        q, s = quantize_symmetric(np.asarray(tensors[i].data), I32, scales[Slot.PROJECTION_WEIGHTS] * s_m)
        _put(tensors, i, q, s)
    return Quantization((s_m,), (0,))


def _quantize_states(tensors: list[TensorRecord], cell: _Cell) -> int:
    """h at the output's params (the kernel copies one into the other), c in int16 at 2^-k; returns k."""
    k = cell_scale_exponent(cell.ranges.cell_abs_max, float(_options(cell.op).get("CellClip", 0.0)), cell.index)
    h, c = cell.op.inputs[Slot.OUTPUT_STATE], cell.op.inputs[Slot.CELL_STATE]
    tensors[h] = replace(tensors[h], dtype=cell.spec.activation, quantization=cell.output_q)
    tensors[c] = replace(tensors[c], dtype=I16, quantization=Quantization((2.0**-k,), (0,)))
    return k


def _gate_scale(cell: _Cell, gate: str) -> float:
    """With layer norm the matmul result is rescaled to this calibrated int16 scale before layer norm;
    without it the kernel ignores the intermediate (fixed Q3.12), written so the file says what is used."""
    if not cell.layer_norm:
        return Q3_12
    return float(np.float32(symmetric_scale(np.array([cell.ranges.gate_pre_abs_max.get(gate, 0.0)]), 32767)))


def _intermediates(tensors: list[TensorRecord], cell: _Cell, hidden_q: Quantization) -> tuple[int, ...]:
    """Appends the op's 5 intermediate tensors (the gates' int16 scales, then the hidden's); their indices."""
    base = tensors[cell.op.outputs[0]].name.rsplit("/", 1)[0]
    gates = [(_GATE_INTERMEDIATE.format(g), I16, Quantization((_gate_scale(cell, g),), (0,))) for g in GATES]
    new = [
        TensorRecord(f"{base}/{name}", (0,), dtype, quantization=q)
        for name, dtype, q in (*gates, (_HIDDEN_INTERMEDIATE, cell.spec.activation, hidden_q))
    ]
    tensors.extend(new)
    return tuple(range(len(tensors) - len(new), len(tensors)))


def _quantize_lstm(tensors: list[TensorRecord], cell: _Cell) -> tuple[OperatorRecord, dict[str, Any]]:
    """One LSTM op: weights, biases at the kernel's scales, states, the 5 intermediates; its metadata."""
    scales = _quantize_weights(tensors, cell)
    _quantize_biases(tensors, cell, scales)
    hidden_q = _hidden_params(tensors, cell, scales)
    k = _quantize_states(tensors, cell)
    op = replace(cell.op, intermediates=_intermediates(tensors, cell, hidden_q))
    return op, {"cell_state_scale_exponent": -k, "layer_norm": cell.layer_norm, "projection": cell.projection}


def _rename(ops: list[OperatorRecord], old: int, new: int, outputs: bool) -> list[OperatorRecord]:
    """Every operator's inputs (and outputs, if asked) that are tensor `old` become tensor `new`."""
    swap = lambda xs: tuple(new if x == old else x for x in xs)  # noqa: E731
    return [replace(o, outputs=swap(o.outputs) if outputs else o.outputs, inputs=swap(o.inputs)) for o in ops]


def _float_io(
    model: ModelRecord, tensors: list[TensorRecord], ops: list[OperatorRecord], act: np.dtype
) -> tuple[list[OperatorRecord], list[OperatorRecord], list[OperatorRecord]]:
    """float32 I/O: QUANTIZE in front, DEQUANTIZE behind, so callers keep feeding floats.

    Each model input/output keeps its index as a float32 tensor; its integer twin is appended.
    Returns (QUANTIZE ops, the rewired ops, DEQUANTIZE ops)."""
    pre: list[OperatorRecord] = []
    post: list[OperatorRecord] = []
    for i in model.inputs:
        t = tensors[i]
        tensors.append(replace(t, name=f"{t.name}/{act.name}", shape_signature=t.shape_signature))
        j = len(tensors) - 1
        tensors[i] = replace(t, dtype=F32, quantization=None)
        ops = _rename(ops, i, j, outputs=False)
        pre.append(OperatorRecord(Op.QUANTIZE, 1, (i,), (j,)))
    for i in model.outputs:
        t = tensors[i]
        tensors.append(replace(t, name=f"{t.name}/{act.name}"))
        j = len(tensors) - 1
        tensors[i] = replace(t, dtype=F32, quantization=None)
        # Producer and any in-graph consumers move to the integer twin; only DEQUANTIZE writes the float.
        ops = _rename(ops, i, j, outputs=True)
        post.append(OperatorRecord(Op.DEQUANTIZE, 2, (j,), (i,)))  # versions are recomputed by finalize
    return pre, ops, post


def _integer(model: ModelRecord, stats: CalibrationStats, io_type: str, mode: str) -> ModelRecord:
    """Full-integer quantization (int8 or int16x8): activations, weights, biases, states, intermediates."""
    spec = INTEGER_MODES[mode]
    lstm_ks = _integer_ops(model, stats, mode)
    act_q = _activation_params(model, lstm_ks, stats, spec)
    tensors = list(model.tensors)
    for i, q in act_q.items():
        tensors[i] = replace(tensors[i], dtype=spec.activation, quantization=q)
    ops = list(model.operators)
    lstm_meta = {}
    for k in lstm_ks:
        op = ops[k]
        cell = _Cell(k, op, stats.lstm[k], spec, act_q[op.inputs[Slot.INPUT]], act_q[op.outputs[0]])
        ops[k], lstm_meta[str(k)] = _quantize_lstm(tensors, cell)
    pre: list[OperatorRecord] = []
    post: list[OperatorRecord] = []
    if io_type == "float32":
        pre, ops, post = _float_io(model, tensors, ops, spec.activation)
    out = replace(model, tensors=tuple(tensors), operators=tuple(pre + ops + post))
    meta = {
        "mode": mode,
        "io_type": io_type,
        # what kind of data, not its path: the same data under another name builds the same bytes
        "calibration": {
            "source": "random" if stats.smoke_test else "data",
            "smoke_test": stats.smoke_test,
            "num_samples": stats.num_samples,
        },
        "lstm": lstm_meta,
    }
    return finalize(out, meta)


# -------------------------------------------------------------------------------------------- API


def quantize(
    model: ModelRecord,
    mode: str,
    *,
    calibration: CalibrationStats | None = None,
    asymmetric_inputs: bool = False,
    io_type: str | None = None,
) -> ModelRecord:
    """Quantize every LSTM op of a float graph (plus its REVERSE_V2/CONCATENATION/STRIDED_SLICE tensors when
    fully integer). io_type None = the activation type (int8 for int8, int16 for int16x8)."""
    io_type = io_type or ("int16" if mode == "int16x8" else "int8")
    _check_mode(mode, asymmetric_inputs, io_type)
    if mode == "none":
        return model
    if mode == "float16":
        return _float16(model)
    if mode == "dynamic-int8":
        return _hybrid(model, asymmetric_inputs)
    if calibration is None:
        raise ConfigError(
            f"--quantize {mode} needs activation ranges: pass --calibration-data X.npy with representative inputs of "
            "shape [n, *input shape] (tens to hundreds of samples), or --calibration random for a smoke test "
            "(the model is then labelled as calibrated on random data)."
        )
    if (io_type == "int16" and mode != "int16x8") or (mode == "int16x8" and io_type == "int8"):
        raise ConfigError(
            f"--io-type {io_type} does not fit --quantize {mode}: the integer I/O type is the activation type "
            "(int8 for int8, int16 for int16x8); float32 works with both."
        )
    return _integer(model, calibration, io_type, mode)
