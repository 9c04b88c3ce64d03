"""Model checker run before any interpreter sees a file: the interpreter is not a validator.

Modelled on TFLite's own verifier (tensor indices, buffer sizes, data flow) plus what the kernels
of the ops lstmgen handles dereference without checking (absent optional inputs, option tables,
quantization parameters). A corrupt file is refused with every problem listed, never crashes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from lstmgen.errors import ModelFileError
from lstmgen.tflite.records import ModelRecord, OperatorRecord, TensorRecord
from lstmgen.tflite.schema import BuiltinOperator as Op
from lstmgen.tflite.slots import NUM_INPUTS, WEIGHT_SLOTS, Slot
from lstmgen.tflite.tables import BUILTIN_OPERATOR_NAMES

_MAX_TENSOR_BYTES = 2**31 - 1  # no tensor of a flatbuffer model can be larger; interpreters allocate them
_MAX_PROBLEMS = 8


@dataclass(frozen=True)
class OpRule:
    """What an operator's kernel needs: its options table, input counts, and which inputs may be -1."""

    options: str  # the BuiltinOptions table the kernel parses (absent is fine: defaults are used)
    inputs: tuple[int, ...]  # allowed input counts (empty: any count >= 1)
    outputs: int  # -1: as many as inputs (WHILE)
    optional: frozenset[int] = frozenset()


LSTM_OPTIONAL = frozenset(s.slot for s in WEIGHT_SLOTS if s.feature != "core")
OP_RULES: dict[int, OpRule] = {
    Op.UNIDIRECTIONAL_SEQUENCE_LSTM: OpRule("UnidirectionalSequenceLSTMOptions", (20, NUM_INPUTS), 1, LSTM_OPTIONAL),
    Op.STRIDED_SLICE: OpRule("StridedSliceOptions", (4,), 1),
    Op.REVERSE_V2: OpRule("ReverseV2Options", (2,), 1),
    Op.CONCATENATION: OpRule("ConcatenationOptions", (), 1),
    Op.QUANTIZE: OpRule("QuantizeOptions", (1,), 1),
    Op.DEQUANTIZE: OpRule("DequantizeOptions", (1,), 1),
    # the graph form's ops (SPLIT has no rule: its output count is its NumSplits)
    Op.FULLY_CONNECTED: OpRule("FullyConnectedOptions", (2, 3), 1, frozenset({2})),  # bias optional
    Op.ADD: OpRule("AddOptions", (2,), 1),
    Op.SUB: OpRule("SubOptions", (2,), 1),
    Op.MUL: OpRule("MulOptions", (2,), 1),
    Op.MINIMUM: OpRule("MaximumMinimumOptions", (2,), 1),
    Op.MAXIMUM: OpRule("MaximumMinimumOptions", (2,), 1),
    Op.RESHAPE: OpRule("ReshapeOptions", (1, 2), 1),
    Op.MEAN: OpRule("ReducerOptions", (2,), 1),
    Op.TRANSPOSE: OpRule("TransposeOptions", (2,), 1),
    # the graph form's WHILE loop (dynamic time axis): the loop, its counter and its step's input
    Op.WHILE: OpRule("WhileOptions", (), -1),
    Op.LESS: OpRule("LessOptions", (2,), 1),
    Op.GATHER: OpRule("GatherOptions", (2,), 1),
    Op.SHAPE: OpRule("ShapeOptions", (1,), 1),
    **{op: OpRule("", (1,), 1) for op in (Op.LOGISTIC, Op.TANH, Op.RELU, Op.RELU6, Op.RELU_N1_TO_1, Op.RSQRT)},
}

# LSTM slots that exist together or not at all (lstm_eval CheckInputTensorDimensions), by feature.
_S = Slot
_RECURRENT = (
    _S.RECURRENT_TO_INPUT_WEIGHTS,
    _S.RECURRENT_TO_FORGET_WEIGHTS,
    _S.RECURRENT_TO_CELL_WEIGHTS,
    _S.RECURRENT_TO_OUTPUT_WEIGHTS,
)
LSTM_GROUPS: tuple[tuple[str, tuple[Slot, ...]], ...] = (
    (
        "input gate (absent together under CIFG)",
        (_S.INPUT_TO_INPUT_WEIGHTS, _S.RECURRENT_TO_INPUT_WEIGHTS, _S.INPUT_GATE_BIAS),
    ),
    ("peepholes", (_S.CELL_TO_FORGET_WEIGHTS, _S.CELL_TO_OUTPUT_WEIGHTS)),
    (
        "layer norm",
        (_S.FORGET_LAYER_NORM_COEFFICIENTS, _S.CELL_LAYER_NORM_COEFFICIENTS, _S.OUTPUT_LAYER_NORM_COEFFICIENTS),
    ),
)


class _Problems(list[str]):
    def add(self, text: str) -> None:
        if len(self) <= _MAX_PROBLEMS:
            self.append(text)


def check_model(model: ModelRecord, source: str) -> None:
    """Refuse a model an interpreter could crash on or misread; lists up to eight problems."""
    problems = _Problems()
    _subgraph(model, problems)
    for k, sg in enumerate(model.subgraphs, 1):  # a WHILE loop's cond and body (lstmgen's graph form)
        inner = _Problems()
        _subgraph(sg, inner)
        for text in inner:
            problems.add(f"subgraph {k}: {text}")
    if problems:
        more = " (and more)" if len(problems) > _MAX_PROBLEMS else ""
        raise ModelFileError(
            f"{source}: the model is corrupt or malformed, so no interpreter is given it:\n  - "
            + "\n  - ".join(problems[:_MAX_PROBLEMS])
            + more
            + "\nRebuild the file (lstmgen build) or re-export it from its framework."
        )


def _subgraph(model: ModelRecord, problems: _Problems) -> None:
    _tensors(model, problems)
    _graph(model, problems)
    if not problems:  # per-op checks index tensors, so only on a graph whose indices are sound
        for k, op in enumerate(model.operators):
            _operator(model, k, op, problems)


def _tensors(model: ModelRecord, problems: _Problems) -> None:
    for i, t in enumerate(model.tensors):
        if "\ufffd" in t.name:  # read with errors="replace": the interpreters' Python wrappers skip such tensors
            problems.add(f"tensor {i} has a name that is not valid UTF-8")
        if any(d < 0 for d in t.shape):
            problems.add(f"tensor {i} ({t.name[:40]}) has the shape {list(t.shape)}, with a negative dimension")
            continue
        nbytes = math.prod(t.shape) * t.dtype.itemsize
        if nbytes > _MAX_TENSOR_BYTES:
            problems.add(f"tensor {i} ({t.name[:40]}) declares {nbytes} bytes, over the 2 GiB a model can hold")
        if t.shape_signature is not None and (
            len(t.shape_signature) != len(t.shape) or any(s < -1 for s in t.shape_signature)
        ):
            problems.add(f"tensor {i} has shape_signature {list(t.shape_signature)} for shape {list(t.shape)}")
        _quantization(i, t, problems)


def _quantization(i: int, t: TensorRecord, problems: _Problems) -> None:
    q = t.quantization
    if q is None:
        return
    if len(q.zero_point) != len(q.scale):
        problems.add(f"tensor {i} has {len(q.scale)} quantization scales but {len(q.zero_point)} zero points")
        return
    if not all(math.isfinite(s) and s > 0 for s in q.scale):
        problems.add(f"tensor {i} has a quantization scale that is not a positive finite number")
    if t.dtype.kind in "iu":
        info = np.iinfo(t.dtype)
        if any(not info.min <= z <= info.max for z in q.zero_point):
            problems.add(f"tensor {i} ({t.dtype}) has a zero point outside [{info.min}, {info.max}]")
    if len(q.scale) > 1:
        dim = q.quantized_dimension
        if not 0 <= dim < len(t.shape) or t.shape[dim] != len(q.scale):
            problems.add(f"tensor {i} has {len(q.scale)} per-axis scales on dimension {dim} of shape {list(t.shape)}")


def _graph(model: ModelRecord, problems: _Problems) -> None:
    """TFLite verifier's data flow: every input exists before its op runs; each tensor written once."""
    n = len(model.tensors)
    available = {i for i, t in enumerate(model.tensors) if t.data is not None or t.is_variable}
    for i in model.inputs:
        if not 0 <= i < n:
            problems.add(f"subgraph input {i} is not a tensor (the model has {n})")
        elif model.tensors[i].data is not None:
            problems.add(f"subgraph input {i} is a constant")
        available.add(i)
    written: set[int] = set()
    for k, op in enumerate(model.operators):
        name = BUILTIN_OPERATOR_NAMES.get(op.opcode, str(op.opcode))
        for i in (*op.inputs, *op.outputs, *op.intermediates):
            if not -1 <= i < n:
                problems.add(f"operator {k} ({name}) refers to tensor {i}; the model has {n}")
        for i in op.inputs:
            if 0 <= i < n and i not in available:
                problems.add(f"operator {k} ({name}) reads tensor {i} before anything writes it")
        for i in op.outputs:
            if i == -1:
                problems.add(f"operator {k} ({name}) has an absent (-1) output")
            elif 0 <= i < n:
                t = model.tensors[i]
                if t.data is not None or i in written or i in model.inputs:
                    problems.add(
                        f"operator {k} ({name}) writes tensor {i}, which is a constant, an input or written twice"
                    )
                written.add(i)
                available.add(i)
    for i in model.outputs:
        if not 0 <= i < n:
            problems.add(f"subgraph output {i} is not a tensor (the model has {n})")
        elif i not in available:
            problems.add(f"subgraph output {i} is never written")


def _operator(model: ModelRecord, k: int, op: OperatorRecord, problems: _Problems) -> None:
    name = BUILTIN_OPERATOR_NAMES.get(op.opcode, str(op.opcode))
    rule = OP_RULES.get(op.opcode)
    where = f"operator {k} ({name})"
    if rule is None:  # lstmgen refuses these ops later; never let an absent input through meanwhile
        if -1 in op.inputs:
            problems.add(f"{where} has an absent (-1) input")
        elif op.opcode == Op.SPLIT and len(op.inputs) == 2:
            _output_types(model, where, op, problems)
        return
    if (rule.inputs and len(op.inputs) not in rule.inputs) or not op.inputs:
        problems.add(f"{where} has {len(op.inputs)} inputs; its kernel takes {' or '.join(map(str, rule.inputs))}")
        return
    outputs = len(op.inputs) if rule.outputs < 0 else rule.outputs
    if len(op.outputs) != outputs:
        problems.add(f"{where} has {len(op.outputs)} outputs; its kernel writes {outputs}")
        return
    absent = [s for s, i in enumerate(op.inputs) if i == -1 and s not in rule.optional]
    if absent:
        problems.add(f"{where} has input(s) {absent} absent (-1); its kernel requires them")
        return
    table = op.options.table if op.options is not None else None
    if table not in (None, rule.options):  # another table's fields would be read as this one's
        problems.add(f"{where} has the options table {table}; its kernel reads {rule.options}")
        return
    check = _OP_CHECKS.get(op.opcode)
    if check is not None:
        check(model, where, op, problems)
    _output_types(model, where, op, problems)


def _lstm(model: ModelRecord, where: str, op: OperatorRecord, problems: _Problems) -> None:
    present = {s for s in Slot if s < len(op.inputs) and op.inputs[s] >= 0}
    for what, group in LSTM_GROUPS:
        have = [s.key for s in group if s in present]
        if have and len(have) != len(group):
            problems.add(f"{where}: {what} inputs must be all present or all absent; present: {', '.join(have)}")
    cifg = Slot.INPUT_TO_INPUT_WEIGHTS not in present
    for slot, feature in (
        (Slot.CELL_TO_INPUT_WEIGHTS, Slot.CELL_TO_FORGET_WEIGHTS),
        (Slot.INPUT_LAYER_NORM_COEFFICIENTS, Slot.FORGET_LAYER_NORM_COEFFICIENTS),
    ):
        if (slot in present) != (feature in present and not cifg):
            problems.add(f"{where}: {slot.key} must be present exactly when {feature.key} is and the input gate is")
    if Slot.PROJECTION_BIAS in present and Slot.PROJECTION_WEIGHTS not in present:
        problems.add(f"{where}: projection_bias without projection_weights")
    t = model.tensors
    x = t[op.inputs[Slot.INPUT]]
    if len(x.shape) != 3 or 0 in x.shape:
        problems.add(f"{where}: input has shape {list(x.shape)}, expected rank 3 with no empty dimension")
    w = t[op.inputs[Slot.INPUT_TO_FORGET_WEIGHTS]].shape
    r = t[op.inputs[Slot.RECURRENT_TO_FORGET_WEIGHTS]].shape
    if len(w) != 2 or len(r) not in (1, 2):
        problems.add(
            f"{where}: input_to_forget_weights {list(w)} / recurrent_to_forget_weights {list(r)} "
            "are not [N, I] / [N, P]"
        )
        return
    n, i = w
    p = int(t[op.inputs[Slot.PROJECTION_WEIGHTS]].shape[0]) if Slot.PROJECTION_WEIGHTS in present else n
    size = {"N": n, "I": i, "P": p}
    recurrent = [t[op.inputs[s]].shape for s in _RECURRENT if s in present]
    if any(len(r) == 1 for r in recurrent) and (any(len(r) != 1 for r in recurrent) or p != n):
        problems.add(
            f"{where}: recurrent weights {[list(r) for r in recurrent]} mix diagonal [N] and full [N, P] forms"
        )
    for spec in WEIGHT_SLOTS:
        if spec.slot not in present:
            continue
        tensor = t[op.inputs[spec.slot]]
        want = tuple(size[s] for s in spec.shape)
        diagonal = spec.slot in range(Slot.RECURRENT_TO_INPUT_WEIGHTS, Slot.CELL_TO_INPUT_WEIGHTS) and tensor.shape == (
            n,
        )
        if tensor.shape != want and not diagonal:
            problems.add(f"{where}: {spec.slot.key} has shape {list(tensor.shape)}, expected {list(want)}")
        if tensor.data is None and not any(op.inputs[spec.slot] in o.outputs for o in model.operators):
            problems.add(f"{where}: {spec.slot.key} has no constant data")
    for slot, width in ((Slot.OUTPUT_STATE, p), (Slot.CELL_STATE, n)):
        state = t[op.inputs[slot]]
        if not state.is_variable or state.data is not None or len(state.shape) != 2 or state.shape[-1] != width:
            problems.add(f"{where}: {slot.key} must be a variable [batch, {width}] tensor, found {list(state.shape)}")
    # The integer kernel wants five intermediates; it reads the hidden-state one (#4) always and the four gate ones
    # only with layer norm (TF's converter leaves those unquantized otherwise).
    if x.dtype.kind == "i":
        y = t[op.outputs[0]] if op.outputs and 0 <= op.outputs[0] < len(t) else None
        if y is not None and (y.dtype != x.dtype or y.quantization is None):
            problems.add(f"{where}: the output of an integer LSTM must be a quantized {x.dtype.name} tensor like its "
                         f"input, found {y.dtype.name}{'' if y.quantization else ' without quantization'}")  # fmt: skip
        layer_norm = Slot.FORGET_LAYER_NORM_COEFFICIENTS in present
        read = op.intermediates if layer_norm else op.intermediates[4:]
        if len(op.intermediates) != 5 or any(t[j].quantization is None for j in read):
            which = "#0-4" if layer_norm else "#4"
            found = len(op.intermediates)
            problems.add(f"{where}: an integer LSTM needs 5 intermediates ({which} quantized), found {found}")
    for s in present:
        tensor = t[op.inputs[s]]
        if tensor.dtype.kind in "iu" and tensor.quantization is None:
            problems.add(f"{where}: integer tensor {s.key} has no quantization parameters")


def _int_vector(model: ModelRecord, index: int, length: int | None) -> np.ndarray | None:
    t = model.tensors[index]
    if t.data is None or t.dtype != np.int32 or len(t.shape) > 1 or (length is not None and t.data.size != length):
        return None
    return np.asarray(t.data).reshape(-1)


def _strided_slice(model: ModelRecord, where: str, op: OperatorRecord, problems: _Problems) -> None:
    rank = len(model.tensors[op.inputs[0]].shape)
    if any(_int_vector(model, i, rank) is None for i in op.inputs[1:4]):
        problems.add(f"{where}: begin, end and strides must be constant int32 vectors of length {rank}")
        return
    strides = _int_vector(model, op.inputs[3], rank)
    if strides is not None and not strides.all():
        problems.add(f"{where}: a stride is 0")
    if op.options is not None and (op.options.get("EllipsisMask", 0) or op.options.get("NewAxisMask", 0)):
        problems.add(f"{where}: ellipsis and new-axis masks are not supported")


def _reverse(model: ModelRecord, where: str, op: OperatorRecord, problems: _Problems) -> None:
    rank = len(model.tensors[op.inputs[0]].shape)
    axes = _int_vector(model, op.inputs[1], None)
    if axes is None or axes.size != 1 or not -rank <= int(axes[0]) < rank:
        problems.add(f"{where}: the axis must be one constant int32 within the input's rank {rank}")


def _concatenation(model: ModelRecord, where: str, op: OperatorRecord, problems: _Problems) -> None:
    shapes = [model.tensors[i].shape for i in op.inputs]
    rank = len(shapes[0])
    axis = int(op.options.get("Axis", 0)) if op.options is not None else 0
    if not -rank <= axis < rank or any(len(s) != rank for s in shapes):
        problems.add(f"{where}: axis {axis} for inputs of shapes {[list(s) for s in shapes]}")


def _quantize(model: ModelRecord, where: str, op: OperatorRecord, problems: _Problems) -> None:
    a, b = model.tensors[op.inputs[0]], model.tensors[op.outputs[0]]
    quantized = b if op.opcode == Op.QUANTIZE else a
    if quantized.dtype.kind == "f":  # float16 -> float32 DEQUANTIZE: a cast, no parameters
        pass
    elif quantized.quantization is None or len(quantized.quantization.scale) != 1:
        problems.add(f"{where}: the quantized side needs exactly one scale and zero point")
    if a.shape != b.shape:
        problems.add(f"{where}: input shape {list(a.shape)} differs from output shape {list(b.shape)}")


def _while(model: ModelRecord, where: str, op: OperatorRecord, problems: _Problems) -> None:
    """cond and body are subgraphs of this model (not the main one, no loop inside), with matching arity."""
    if not model.subgraphs:  # a foreign loop (its subgraphs not read): refused later, naming TF's Keras 3 LSTM
        return
    n = len(op.inputs)
    for field, outputs in (("CondSubgraphIndex", 1), ("BodySubgraphIndex", n)):
        k = int(op.options.get(field, 0)) if op.options is not None else 0
        if not 1 <= k <= len(model.subgraphs):
            problems.add(f"{where}: {field} {k} is not one of the {len(model.subgraphs)} loop subgraph(s)")
            continue
        sg = model.subgraphs[k - 1]
        if len(sg.inputs) != n or len(sg.outputs) != outputs or any(o.opcode == Op.WHILE for o in sg.operators):
            problems.add(
                f"{where}: subgraph {k} takes {len(sg.inputs)} inputs and gives {len(sg.outputs)} outputs; the loop "
                f"needs {n} and {outputs} (and no loop inside)"
            )


_F32, _I32, _I64 = np.dtype(np.float32), np.dtype(np.int32), np.dtype(np.int64)
# Ops whose kernel computes in its first data input's type; several (ADD, SUB, MINIMUM, MAXIMUM, GATHER, SPLIT)
# set the output's type at Prepare without checking the file's, so a file declaring another type runs, yet
# lies to every reader that takes the declared type (TFLite Micro, NPU compilers, the caller's own code).
_SAME_TYPE_OPS = frozenset(
    {
        *(Op.ADD, Op.SUB, Op.MUL, Op.MINIMUM, Op.MAXIMUM, Op.LOGISTIC, Op.TANH, Op.RELU, Op.RELU6),
        *(Op.RELU_N1_TO_1, Op.RSQRT, Op.RESHAPE, Op.MEAN, Op.TRANSPOSE, Op.STRIDED_SLICE, Op.REVERSE_V2),
        *(Op.CONCATENATION, Op.GATHER),
    }
)  # not FULLY_CONNECTED: its kernel checks its output type itself, and takes int8 in, int16 out
_QUANTIZED_TYPES = frozenset(np.dtype(d) for d in (np.int8, np.uint8, np.int16))
# Output types by op where they do not follow the input: LiteRT's DEQUANTIZE always writes float32 (dequantize.cc
# Prepare), QUANTIZE writes an integer grid, SHAPE int32/int64, LESS bool, and a float LSTM float32 (its kernel
# sizes the output by the declared type but writes floats into it).
_FIXED_OUTPUT_TYPES: dict[int, Callable[[np.dtype], frozenset[np.dtype]]] = {
    Op.DEQUANTIZE: lambda _x: frozenset({_F32}),
    Op.QUANTIZE: lambda _x: _QUANTIZED_TYPES,
    Op.SHAPE: lambda _x: frozenset({_I32, _I64}),
    Op.LESS: lambda _x: frozenset({np.dtype(np.bool_)}),
    Op.UNIDIRECTIONAL_SEQUENCE_LSTM: lambda x: frozenset({_F32} if x.kind == "f" else _QUANTIZED_TYPES),
}


def _output_types(model: ModelRecord, where: str, op: OperatorRecord, problems: _Problems) -> None:
    """Each output's declared type is the one its kernel writes (see _SAME_TYPE_OPS, _FIXED_OUTPUT_TYPES)."""
    t = model.tensors
    first = t[op.inputs[1 if op.opcode == Op.SPLIT else 0]].dtype  # SPLIT's first input is its axis
    if op.opcode in _SAME_TYPE_OPS or op.opcode == Op.SPLIT:
        want = [frozenset({first})] * len(op.outputs)
    elif op.opcode == Op.WHILE:  # the loop's state flows through: output k has input k's type
        want = [frozenset({t[i].dtype}) for i in op.inputs]
    elif op.opcode in _FIXED_OUTPUT_TYPES:
        want = [_FIXED_OUTPUT_TYPES[op.opcode](first)] * len(op.outputs)
    else:
        return
    for k, (i, allowed) in enumerate(zip(op.outputs, want, strict=True)):
        if t[i].dtype not in allowed:
            names = " or ".join(sorted(d.name for d in allowed))
            problems.add(f"{where}: output {k} is declared {t[i].dtype.name}; the kernel writes {names}")


_OP_CHECKS = {
    Op.WHILE: _while,
    Op.UNIDIRECTIONAL_SEQUENCE_LSTM: _lstm,
    Op.STRIDED_SLICE: _strided_slice,
    Op.REVERSE_V2: _reverse,
    Op.CONCATENATION: _concatenation,
    Op.QUANTIZE: _quantize,
    Op.DEQUANTIZE: _quantize,
}
