"""NumPy evaluation of a parsed model graph (the ops lstmgen writes), in real-valued float64.

Every tensor value is the real number it stands for: quantized constants are dequantized,
QUANTIZE rounds to its grid and DEQUANTIZE is the identity. The LSTM op is computed by
reference.py, so the same evaluator checks float, float16, hybrid and int8 models.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import DTypeLike

from lstmgen.errors import ModelFileError
from lstmgen.numerics import affine
from lstmgen.numerics.reference import Jitter, lstm_reference
from lstmgen.numerics.tables import Q3_12
from lstmgen.progress import step_hook
from lstmgen.tflite.records import ModelRecord, OperatorRecord, TensorRecord
from lstmgen.tflite.schema import BuiltinOperator as Op
from lstmgen.tflite.slots import NUM_INPUTS, WEIGHT_SLOTS, Slot
from lstmgen.tflite.tables import ACTIVATION_NAMES, BUILTIN_OPERATOR_NAMES


def real_value(t: TensorRecord) -> np.ndarray:
    """A constant tensor's real value: (q - zero_point) * scale for quantized data, else as stored."""
    assert t.data is not None and isinstance(t.data, np.ndarray)
    q = t.quantization
    if q is None or t.dtype.kind == "f":
        return t.data.astype(np.float64)
    return affine.dequantize(t.data, q.scale, q.zero_point, axis=q.quantized_dimension)


def quantize_real(x: np.ndarray, t: TensorRecord) -> np.ndarray:
    """Round real values to the grid of a quantized tensor and back (what QUANTIZE then DEQUANTIZE gives)."""
    q = t.quantization
    if q is None or t.dtype.kind == "f":
        return np.asarray(x, np.float64)
    return affine.round_to_grid(x, t.dtype, q.scale[0], q.zero_point[0])


def _int_range(t: TensorRecord) -> tuple[float, float] | None:
    """Real range an integer tensor can hold (its saturation bounds); None for float tensors."""
    q = t.quantization
    if q is None or t.dtype.kind != "i":
        return None
    return affine.real_range(t.dtype, q.scale[0], q.zero_point[0])


@dataclass
class LstmSpec:
    """What the reference needs to run one LSTM op: options and which inputs are present."""

    op_index: int
    activation: str
    cell_clip: float
    proj_clip: float
    time_major: bool
    weight_inputs: dict[str, int]  # slot key -> tensor index
    h_index: int
    c_index: int
    num_units: int
    output_size: int
    h_bounds: tuple[float, float] | None = None  # integer kernels saturate h and c at their types' limits
    c_bounds: tuple[float, float] | None = None
    gate_bounds: dict[str, tuple[float, float]] | None = None  # ... and each gate's int16 pre-activation

    def reference_options(self) -> dict[str, Any]:
        """The lstm_reference keyword arguments this op's options and state types imply."""
        return {
            "activation": self.activation,
            "cell_clip": self.cell_clip,
            "proj_clip": self.proj_clip,
            "h_bounds": self.h_bounds,
            "c_bounds": self.c_bounds,
            "gate_bounds": self.gate_bounds,
        }


def lstm_spec(model: ModelRecord, op_index: int, source: str = "model") -> LstmSpec:
    op = model.operators[op_index]
    if len(op.inputs) not in (20, NUM_INPUTS):
        raise ModelFileError(f"{source}: LSTM operator {op_index} has {len(op.inputs)} inputs; expected 20 or 24.")
    opts = op.options
    if opts is None or opts.table != "UnidirectionalSequenceLSTMOptions":
        raise ModelFileError(
            f"{source}: LSTM operator {op_index} has no UnidirectionalSequenceLSTMOptions table, so the kernel "
            "runs with activation NONE, which gives silently wrong output. Rebuild the model."
        )
    act_code = int(opts.get("FusedActivationFunction", 0))
    act = ACTIVATION_NAMES.get(act_code)
    integer = model.tensors[op.inputs[Slot.INPUT]].dtype in (np.int8, np.int16)  # int8 or int16x8 kernel
    if act is None and not integer:  # the integer kernel ignores the activation (fixed-point tanh)
        raise ModelFileError(
            f"{source}: LSTM operator {op_index} has activation code {act_code}, which the float kernel does not "
            "compute correctly (NONE returns stale memory)."
        )
    inputs = {s.slot.key: op.inputs[s.slot] for s in WEIGHT_SLOTS if s.slot < len(op.inputs) and op.inputs[s.slot] >= 0}
    ro = model.tensors[op.inputs[Slot.RECURRENT_TO_OUTPUT_WEIGHTS]].shape
    gate_bounds = None
    if integer:
        # Gate pre-activations live in int16 (codes -32768..32767, saturated by the kernel's accumulating
        # stores): Q3.12 ([-8, 8 - 2^-12]) without layer norm, else the scale of intermediates 0-3
        # (input, forget, cell, output).
        layer_norm = "forget_layer_norm_coefficients" in inputs
        gate_bounds = {}
        for k, gate in enumerate(("input", "forget", "cell", "output")):
            q = model.tensors[op.intermediates[k]].quantization if len(op.intermediates) == 5 else None
            scale = q.scale[0] if layer_norm and q is not None else Q3_12
            lo, hi = affine.real_range(np.int16, scale)
            gate_bounds[gate] = (float(lo), float(hi))
    return LstmSpec(
        op_index=op_index,
        activation=act or "tanh",
        cell_clip=float(opts.get("CellClip", 0.0)),
        proj_clip=float(opts.get("ProjClip", 0.0)),
        time_major=bool(opts.get("TimeMajor", False)),
        weight_inputs=inputs,
        h_index=op.inputs[Slot.OUTPUT_STATE],
        c_index=op.inputs[Slot.CELL_STATE],
        num_units=int(model.tensors[op.inputs[Slot.INPUT_TO_OUTPUT_WEIGHTS]].shape[0]),
        output_size=int(ro[1] if len(ro) == 2 else ro[0]),
        h_bounds=_int_range(model.tensors[op.inputs[Slot.OUTPUT_STATE]]),
        c_bounds=_int_range(model.tensors[op.inputs[Slot.CELL_STATE]]),
        gate_bounds=gate_bounds,
    )


@dataclass
class Evaluation:
    """Real values of every tensor computed, and each LSTM op's final (h, c)."""

    values: dict[int, np.ndarray]
    final_states: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)


Trace = Callable[[int, dict[str, np.ndarray]], None]


def _lstm(
    model: ModelRecord,
    op_index: int,
    values: dict[int, np.ndarray],
    states: Mapping[int, Any],
    ev: Evaluation,
    trace: Trace | None,
    jitter: Jitter | None = None,
    precision: DTypeLike = np.float64,
) -> np.ndarray:
    spec = lstm_spec(model, op_index)
    op = model.operators[op_index]
    x = values[op.inputs[Slot.INPUT]]
    params = {k: values[i] for k, i in spec.weight_inputs.items()}
    h0, c0 = states.get(op_index, (None, None))
    record: dict[str, np.ndarray] | None = {} if trace is not None else None
    y, h, c = lstm_reference(
        x,
        params,
        time_major=spec.time_major,
        h0=h0,
        c0=c0,
        record=record,
        on_step=step_hook(),
        jitter=jitter,
        precision=precision,
        **spec.reference_options(),
    )
    if trace is not None and record is not None:
        trace(op_index, record)
    ev.final_states[op_index] = (h, c)
    return y


def _inconsistent(op: OperatorRecord, what: str) -> ModelFileError:
    """An op whose inputs do not allow it (a file edited or damaged past what the model checker reads)."""
    name = BUILTIN_OPERATOR_NAMES.get(op.opcode, str(op.opcode))
    return ModelFileError(f"a {name} op cannot be computed: {what}. The file is damaged or was edited; rebuild it.")


def _ints(op: OperatorRecord, v: Any, what: str) -> list[int]:
    """An op's integer parameter tensor (a shape, axes, slice bounds) as ints: whole, finite numbers only."""
    flat = np.asarray(v, np.float64).reshape(-1)
    if not np.all(np.isfinite(flat)) or np.any(flat != np.round(flat)) or np.any(np.abs(flat) > 2**62):
        raise _inconsistent(op, f"{what} {flat.tolist()[:8]} are not whole numbers")
    return [int(a) for a in flat]


def _axes(op: OperatorRecord, axes: Any, ndim: int) -> tuple[int, ...]:
    found = tuple(_ints(op, axes, "axes"))
    if any(not -ndim <= a < ndim for a in found):
        raise _inconsistent(op, f"axis {list(found)} of a {ndim}-D input")
    return found


def _reverse(op: OperatorRecord, values: Mapping[int, np.ndarray]) -> np.ndarray:
    x = values[op.inputs[0]]
    return np.flip(x, axis=_axes(op, values[op.inputs[1]], x.ndim))


def _concatenation(op: OperatorRecord, values: Mapping[int, np.ndarray]) -> np.ndarray:
    axis = int(op.options.get("Axis", 0)) if op.options is not None else 0
    parts = [values[i] for i in op.inputs]
    a = _axes(op, axis, parts[0].ndim)[0] % parts[0].ndim
    if any(p.ndim != parts[0].ndim or np.delete(p.shape, a).tolist() != np.delete(parts[0].shape, a).tolist()
           for p in parts):  # fmt: skip
        raise _inconsistent(op, f"inputs of shapes {[list(p.shape) for p in parts]} along axis {axis}")
    return np.concatenate(parts, axis=a)


def _real_valued(op: OperatorRecord, values: Mapping[int, np.ndarray]) -> np.ndarray:
    """(DE)QUANTIZE: values are real already; the output grid's rounding is applied after every op."""
    return values[op.inputs[0]]


def _strided_slice(op: OperatorRecord, values: Mapping[int, np.ndarray]) -> np.ndarray:
    x = values[op.inputs[0]]
    begin, end, strides = (np.asarray(_ints(op, values[i], "slice bounds"), np.int64) for i in op.inputs[1:4])
    if min(begin.size, end.size, strides.size) < x.ndim or not np.all(strides[: x.ndim]):
        raise _inconsistent(
            op, f"begin/end/strides {begin.tolist()}/{end.tolist()}/{strides.tolist()} for a {x.ndim}-D input"
        )
    opts = op.options
    get = (lambda k: int(opts.get(k, 0))) if opts is not None else (lambda k: 0)
    bm, em, sm = get("BeginMask"), get("EndMask"), get("ShrinkAxisMask")
    if get("EllipsisMask") or get("NewAxisMask"):
        raise ModelFileError("STRIDED_SLICE with ellipsis/new-axis masks is not supported by lstmgen's checker.")
    index: list[Any] = []
    for axis in range(x.ndim):
        if sm >> axis & 1:
            if not -x.shape[axis] <= int(begin[axis]) < x.shape[axis]:
                raise _inconsistent(op, f"index {int(begin[axis])} on an axis of {x.shape[axis]}")
            index.append(int(begin[axis]))
            continue
        start = None if bm >> axis & 1 else int(begin[axis])
        stop = None if em >> axis & 1 else int(end[axis])
        index.append(slice(start, stop, int(strides[axis])))
    return x[tuple(index)]


_FUSED: dict[int, Callable[[np.ndarray], np.ndarray]] = {  # schema ActivationFunctionType -> function
    0: lambda v: v,
    1: lambda v: np.maximum(v, 0.0),
    2: lambda v: np.clip(v, -1.0, 1.0),
    3: lambda v: np.clip(v, 0.0, 6.0),
    4: np.tanh,
}


def _fused(op: OperatorRecord, v: np.ndarray) -> np.ndarray:
    """The op's fused activation (ADD, MUL, FULLY_CONNECTED, ...)."""
    code = int(op.options.get("FusedActivationFunction", 0)) if op.options is not None else 0
    if code not in _FUSED:
        raise ModelFileError(f"fused activation code {code} is not evaluated by lstmgen's checker.")
    return _FUSED[code](v)


def _fully_connected(op: OperatorRecord, values: Mapping[int, np.ndarray]) -> np.ndarray:
    """x [..., K] flattened to rows, times W^T [K, N] (+ bias): [rows, N] (KeepNumDims keeps x's leading dims)."""
    x, w = values[op.inputs[0]], values[op.inputs[1]]
    bias = values[op.inputs[2]] if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
    if w.ndim != 2 or x.size % max(w.shape[1], 1) or (bias is not None and bias.shape not in ((w.shape[0],), (1,))):
        shapes = [list(np.shape(v)) for v in (x, w, bias) if v is not None]
        raise _inconsistent(op, f"input, weights and bias of shapes {shapes}")
    y = x.reshape(-1, w.shape[1]) @ w.T
    if bias is not None:
        y = y + bias
    if op.options is not None and op.options.get("KeepNumDims", False):
        y = y.reshape(*x.shape[:-1], w.shape[0])
    return _fused(op, y)


def _binary(fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Callable[..., np.ndarray]:
    def run(op: OperatorRecord, values: Mapping[int, np.ndarray]) -> np.ndarray:
        a, b = values[op.inputs[0]], values[op.inputs[1]]
        try:
            np.broadcast_shapes(np.shape(a), np.shape(b))
        except ValueError:
            raise _inconsistent(op, f"inputs of shapes {list(np.shape(a))} and {list(np.shape(b))}") from None
        return _fused(op, fn(a, b))

    return run


def _unary(fn: Callable[[np.ndarray], np.ndarray]) -> Callable[..., np.ndarray]:
    return lambda op, values: fn(values[op.inputs[0]])


def _reshape(op: OperatorRecord, values: Mapping[int, np.ndarray]) -> np.ndarray:
    if len(op.inputs) > 1 and op.inputs[1] >= 0:
        given = np.asarray(values[op.inputs[1]])
        if given.ndim > 1:
            raise _inconsistent(op, f"a new shape given as a tensor of shape {list(given.shape)}")
        shape = _ints(op, given, "new shape")
    else:
        shape = _ints(op, op.options.get("NewShape", []) if op.options is not None else [], "new shape")
    x = values[op.inputs[0]]
    known = math.prod(d for d in shape if d != -1)
    free = shape.count(-1)
    if free > 1 or any(d < -1 for d in shape) or (x.size != known if not free else not known or x.size % known):
        raise _inconsistent(op, f"{x.size} values reshaped to {shape}")
    return x.reshape(shape)


def _mean(op: OperatorRecord, values: Mapping[int, np.ndarray]) -> np.ndarray:
    keep = bool(op.options.get("KeepDims", False)) if op.options is not None else False
    x = values[op.inputs[0]]
    axes = _axes(op, values[op.inputs[1]], x.ndim)
    return x.mean(axis=axes, keepdims=True) if keep else np.asarray(x.mean(axis=axes))  # Literal keepdims: numpy 2.5


def _split(op: OperatorRecord, values: Mapping[int, np.ndarray]) -> tuple[np.ndarray, ...]:
    """SPLIT(axis, x) into len(outputs) equal parts."""
    x = values[op.inputs[1]]
    axis = _axes(op, np.asarray(values[op.inputs[0]]).reshape(-1)[:1], x.ndim)[0]
    if x.shape[axis] % len(op.outputs):
        raise _inconsistent(op, f"an axis of {x.shape[axis]} into {len(op.outputs)} equal parts")
    return tuple(np.split(x, len(op.outputs), axis=axis))


def _transpose(op: OperatorRecord, values: Mapping[int, np.ndarray]) -> np.ndarray:
    x, perm = values[op.inputs[0]], _ints(op, values[op.inputs[1]], "permutation")
    if sorted(perm) != list(range(x.ndim)):
        raise _inconsistent(op, f"permutation {perm} of a {x.ndim}-D input")
    return np.transpose(x, perm)


def _gather(op: OperatorRecord, values: Mapping[int, np.ndarray]) -> np.ndarray:
    axis = int(op.options.get("Axis", 0)) if op.options is not None else 0
    if op.options is not None and int(op.options.get("BatchDims", 0)):
        raise ModelFileError("GATHER with batch_dims is not evaluated by lstmgen's checker.")
    x, index = values[op.inputs[0]], np.asarray(values[op.inputs[1]]).astype(np.int64)
    if np.any(index < 0) or np.any(index >= x.shape[axis]):
        raise ModelFileError(f"GATHER index {index.tolist()} outside an axis of {x.shape[axis]}.")
    return np.take(x, index, axis=axis)


def _shape(op: OperatorRecord, values: Mapping[int, np.ndarray]) -> np.ndarray:
    return np.asarray(np.shape(values[op.inputs[0]]), np.float64)


Value = np.ndarray | tuple[np.ndarray, ...]  # one output, or one per output (SPLIT)
# The ops lstmgen writes besides the LSTM op (around it in the fused form, the whole cell in the graph form),
# each as (operator, values so far) -> its output's real value, before the output grid's rounding.
# The LSTM op itself is evaluated by the caller (reference, or a noise model).
DATA_OPS: dict[int, Callable[[OperatorRecord, Mapping[int, np.ndarray]], Value]] = {
    Op.REVERSE_V2: _reverse,
    Op.CONCATENATION: _concatenation,
    Op.STRIDED_SLICE: _strided_slice,
    Op.DEQUANTIZE: _real_valued,
    Op.QUANTIZE: _real_valued,
    Op.FULLY_CONNECTED: _fully_connected,
    Op.ADD: _binary(np.add),
    Op.SUB: _binary(np.subtract),
    Op.MUL: _binary(np.multiply),
    Op.MINIMUM: _binary(np.minimum),
    Op.MAXIMUM: _binary(np.maximum),
    Op.LOGISTIC: _unary(lambda v: 0.5 * (1.0 + np.tanh(0.5 * v))),  # sigmoid without overflow
    Op.TANH: _unary(np.tanh),
    Op.RELU: _unary(_FUSED[1]),
    Op.RELU_N1_TO_1: _unary(_FUSED[2]),
    Op.RELU6: _unary(_FUSED[3]),
    Op.RSQRT: _unary(lambda v: 1.0 / np.sqrt(v)),
    Op.RESHAPE: _reshape,
    Op.MEAN: _mean,
    Op.SPLIT: _split,
    Op.TRANSPOSE: _transpose,
    Op.GATHER: _gather,
    Op.SHAPE: _shape,
    Op.LESS: _binary(np.less),
}
MAX_ITERATIONS = 1_000_000  # a WHILE loop still running after this many steps is a corrupt file, not a model
Body = Callable[[ModelRecord, dict[int, np.ndarray]], dict[int, np.ndarray]]


def _plain_body(body: ModelRecord, values: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
    return evaluate(body, {}, constants=values).values


def while_loop(
    model: ModelRecord, op: OperatorRecord, values: Mapping[int, np.ndarray], run_body: Body = _plain_body
) -> tuple[np.ndarray, ...]:
    """WHILE: the cond subgraph on the loop variables, then the body (run_body: its values from the body's
    constants and inputs), until cond is false; the final loop variables."""
    opts = op.options
    cond, body = (
        model.subgraphs[int(opts.get(f, 0) if opts is not None else 0) - 1]
        for f in ("CondSubgraphIndex", "BodySubgraphIndex")
    )
    loop = tuple(values[i] for i in op.inputs)
    cond_consts, body_consts = constant_values(cond), constant_values(body)
    for _ in range(MAX_ITERATIONS):
        if not evaluate(cond, dict(zip(cond.inputs, loop, strict=True)), constants=cond_consts).values[cond.outputs[0]]:
            return loop
        out = run_body(body, {**body_consts, **{i: np.asarray(v) for i, v in zip(body.inputs, loop, strict=True)}})
        loop = tuple(out[i] for i in body.outputs)
    raise ModelFileError(f"a WHILE loop still runs after {MAX_ITERATIONS} iterations (corrupt loop condition).")


def data_op_outputs(model: ModelRecord, k: int, values: Mapping[int, np.ndarray]) -> tuple[np.ndarray, ...]:
    """Operator k (not an LSTM) on the real values so far: each output, rounded to its grid."""
    op = model.operators[k]
    fn = DATA_OPS.get(op.opcode)
    if op.opcode == Op.WHILE and model.subgraphs:
        result: Value = while_loop(model, op, values)
    elif fn is None:
        name = BUILTIN_OPERATOR_NAMES.get(op.opcode, str(op.opcode))
        raise ModelFileError(f"operator {k} is {name}, which lstmgen's checker does not evaluate.")
    else:
        result = fn(op, values)
    outs = result if isinstance(result, tuple) else (result,)
    if len(outs) != len(op.outputs):
        raise ModelFileError(f"operator {k} has {len(op.outputs)} outputs; its evaluation gave {len(outs)}.")
    # Real values of a quantized output are on its grid: model the rounding the kernel does.
    return tuple(quantize_real(v, model.tensors[i]) for v, i in zip(outs, op.outputs, strict=True))


def store_data_op(model: ModelRecord, k: int, values: dict[int, np.ndarray]) -> None:
    """Evaluate operator k (not an LSTM) and store every output in `values`."""
    for i, v in zip(model.operators[k].outputs, data_op_outputs(model, k, values), strict=True):
        values[i] = v


def constant_values(model: ModelRecord) -> dict[int, np.ndarray]:
    """Every constant's real value in float64, once per model (pass it to each `evaluate` of that model)."""
    return {i: real_value(t) for i, t in enumerate(model.tensors) if t.data is not None}


def evaluate(
    model: ModelRecord,
    feeds: Mapping[int, np.ndarray],
    *,
    states: Mapping[int, tuple[np.ndarray | None, np.ndarray | None]] | None = None,
    trace: Trace | None = None,
    constants: Mapping[int, np.ndarray] | None = None,
    jitter: Jitter | None = None,
    precision: DTypeLike = np.float64,
) -> Evaluation:
    """Run the graph on `feeds` (tensor index -> real input). `states` maps an LSTM op index to (h0, c0).

    `constants` are the model's constant_values (widened once and shared by several evaluations).
    `jitter` perturbs every LSTM step's (x_t, h, c) (see lstm_reference).
    `precision`: the LSTM ops' and the feeds' float type (np.float32: a screening pass, quant/calibrate.py).
    """
    values = dict(constants if constants is not None else constant_values(model))
    for i, x in feeds.items():
        values[i] = np.asarray(x, precision)
    ev = Evaluation(values)
    for k, op in enumerate(model.operators):
        if op.opcode == Op.UNIDIRECTIONAL_SEQUENCE_LSTM:
            values[op.outputs[0]] = _lstm(model, k, values, states or {}, ev, trace, jitter, precision)
        else:
            store_data_op(model, k, values)
    return ev
