"""TensorFlow Lite Micro target: the rules TFLM's kernels and op resolver impose on an LSTM model."""

from __future__ import annotations

import numpy as np

from lstmgen.numerics.tables import BOOL, F32, I8, I16, I32, I64, U8
from lstmgen.targets.checks import (
    TANH,
    Rule,
    cifg,
    diagonal,
    dynamic_shapes,
    input_count,
    layer_norm,
    lstms,
    non_variable_state,
    op_name,
    peepholes,
    projection,
    tensor,
    type_name,
)
from lstmgen.tflite.records import ModelRecord
from lstmgen.tflite.schema import BuiltinOperator
from lstmgen.tflite.slots import Slot
from lstmgen.tflite.tables import ACTIVATION_NAMES, BUILTIN_OPERATOR_NAMES

# Builtin operators with a kernel in TFLM's all-ops resolver (python/tflite_micro/python_ops_resolver.cc,
# the Add*() calls of MicroMutableOpResolver; TFLM's signal/custom ops such as RFFT are not builtins).
# A firmware registers a subset of these with its own MicroMutableOpResolver.
_MICRO_BUILTIN_OPS_TEXT = """
    ABS ADD ADD_N ARG_MAX ARG_MIN ASSIGN_VARIABLE AVERAGE_POOL_2D BATCH_MATMUL BATCH_TO_SPACE_ND
    BROADCAST_ARGS BROADCAST_TO CALL_ONCE CAST CEIL CONCATENATION CONV_2D COS CUMSUM DEPTH_TO_SPACE
    DEPTHWISE_CONV_2D DEQUANTIZE DIV DYNAMIC_UPDATE_SLICE ELU EMBEDDING_LOOKUP EQUAL EXP EXPAND_DIMS FILL
    FLOOR FLOOR_DIV FLOOR_MOD FULLY_CONNECTED GATHER GATHER_ND GREATER GREATER_EQUAL HARD_SWISH IF
    L2_NORMALIZATION L2_POOL_2D LEAKY_RELU LESS LESS_EQUAL LOG LOG_SOFTMAX LOGICAL_AND LOGICAL_NOT
    LOGICAL_OR LOGISTIC MAX_POOL_2D MAXIMUM MEAN MINIMUM MIRROR_PAD MUL NEG NOT_EQUAL PACK PAD PADV2 PRELU
    QUANTIZE READ_VARIABLE REDUCE_ALL REDUCE_MAX REDUCE_MIN RELU RELU6 RESHAPE RESIZE_BILINEAR
    RESIZE_NEAREST_NEIGHBOR REVERSE_V2 ROUND RSQRT SELECT_V2 SHAPE SIN SLICE SOFTMAX SPACE_TO_BATCH_ND
    SPACE_TO_DEPTH SPLIT SPLIT_V SQRT SQUARE SQUARED_DIFFERENCE SQUEEZE STRIDED_SLICE SUB SUM SVDF TANH
    TRANSPOSE TRANSPOSE_CONV UNIDIRECTIONAL_SEQUENCE_LSTM UNPACK VAR_HANDLE WHILE ZEROS_LIKE"""
MICRO_BUILTIN_OPS: frozenset[str] = frozenset(_MICRO_BUILTIN_OPS_TEXT.split())


def _same(*types: np.dtype) -> frozenset[tuple[np.dtype, np.dtype]]:
    return frozenset((t, t) for t in types)


# (input 0 type, output 0 type) pairs TFLM's kernels accept, for the ops an LSTM graph around the
# fused op uses (go_backwards, last-step output, bidirectional concat, int8 I/O), with the source.
MICRO_OP_TYPES: dict[int, tuple[frozenset[tuple[np.dtype, np.dtype]], str]] = {
    BuiltinOperator.REVERSE_V2: (
        _same(F32, I32, U8, I8, I16, I64, BOOL),
        "kernels/reverse.cc ReverseV2Prepare (kernel ported in 2025, tflite-micro#3123)",
    ),
    BuiltinOperator.STRIDED_SLICE: (_same(F32, I8, I16, I32, BOOL), "kernels/strided_slice.cc StridedSliceEval"),
    BuiltinOperator.CONCATENATION: (
        _same(F32, I8, I16, I32, I64, BOOL),
        "kernels/concatenation.cc ConcatenationPrepare",
    ),
    BuiltinOperator.QUANTIZE: (
        frozenset(
            [
                (F32, I8),
                (F32, I16),
                (I16, I8),
                (I16, I16),
                (I16, I32),
                (I8, I8),
                (I8, U8),
                (I8, I16),
                (I8, I32),
                (U8, I8),
                (I32, I8),
                (I32, I16),
            ]
        ),
        "kernels/quantize_common.cc PrepareQuantizeReference / EvalQuantizeReference",
    ),
    BuiltinOperator.DEQUANTIZE: (
        frozenset([(I8, F32), (I16, F32), (U8, F32)]),
        "kernels/dequantize_common.cc DequantizePrepare (no float16: fp16 weights cannot be dequantized)",
    ),
}

# The fused LSTM's type combinations in TFLM (kernels/unidirectional_sequence_lstm.cc Prepare/Eval):
# activation (input, output, h state) type, weight type -> (cell state type, bias type).
MICRO_LSTM_TYPES: dict[tuple[np.dtype, np.dtype], tuple[np.dtype, np.dtype]] = {
    (F32, F32): (F32, F32),  # EvalLstm<float, float, float, float>
    (I8, I8): (I16, I32),  # 8x8->16, 32-bit bias
    (I16, I8): (I16, I64),  # 16x8->16, 64-bit bias (not in the TFLite builtin resolver)
}


# ------------------------------------------------------------------------------ check functions


def _ops_without_kernel(model: ModelRecord) -> list[str]:
    return [
        f"operator {k} {op_name(op)}"
        for k, op in enumerate(model.operators)
        if BUILTIN_OPERATOR_NAMES.get(op.opcode) not in MICRO_BUILTIN_OPS
    ]


def _op_types(model: ModelRecord) -> list[str]:
    found = []
    for k, op in enumerate(model.operators):
        entry = MICRO_OP_TYPES.get(op.opcode)
        if entry is None or not op.inputs or not op.outputs or op.inputs[0] < 0:
            continue
        allowed, source = entry
        pair = (model.tensors[op.inputs[0]].dtype, model.tensors[op.outputs[0]].dtype)
        if pair not in allowed:
            ok = ", ".join(sorted(f"{type_name(a)}->{type_name(b)}" for a, b in allowed))
            found.append(
                f"operator {k} {op_name(op)} {type_name(pair[0])}->{type_name(pair[1])}; {source} accepts {ok}"
            )
    return found


def _int8_concat_rescale(model: ModelRecord) -> list[str]:
    found = []
    for k, op in enumerate(model.operators):
        if op.opcode != BuiltinOperator.CONCATENATION or not op.outputs:
            continue
        out = model.tensors[op.outputs[0]]
        if out.dtype != I8:
            continue
        for i in op.inputs:
            q_in, q_out = model.tensors[i].quantization, out.quantization
            pin = (q_in.scale[0], q_in.zero_point[0]) if q_in else None
            pout = (q_out.scale[0], q_out.zero_point[0]) if q_out else None
            if pin != pout:
                found.append(f"operator {k}: input tensor {i} has (scale, zero point) {pin}, output {pout}")
    return found


def _lstm_types(model: ModelRecord) -> tuple[list[str], list[str]]:
    """(hybrid uses, other unsupported type uses) of the fused LSTMs."""
    hybrid, other = [], []
    for where, op in lstms(model):
        x, w = tensor(model, op, Slot.INPUT), tensor(model, op, Slot.INPUT_TO_FORGET_WEIGHTS)
        if x is None or w is None:
            continue
        if x.dtype == F32 and w.dtype != F32:
            hybrid.append(f"{where}: float32 input, {w.dtype.name} weights")
            continue
        want = MICRO_LSTM_TYPES.get((x.dtype, w.dtype))
        if want is None:
            other.append(f"{where}: {x.dtype.name} input with {w.dtype.name} weights")
            continue
        cell_t, bias_t = want
        checks = [
            (Slot.CELL_STATE, cell_t),
            (Slot.OUTPUT_STATE, x.dtype),
            *((Slot(s), w.dtype) for s in range(1, 9)),
            *((Slot(s), bias_t) for s in range(12, 16)),
        ]
        for slot, dtype in checks:
            t = tensor(model, op, slot)
            if t is not None and t.dtype != dtype:
                other.append(f"{where}: {slot.key} is {t.dtype.name}, expected {dtype.name}")
        out = model.tensors[op.outputs[0]] if op.outputs else None
        if out is not None and out.dtype != x.dtype:
            other.append(f"{where}: output is {out.dtype.name}, input {x.dtype.name}")
    return hybrid, other


def _hybrid(model: ModelRecord) -> list[str]:
    return _lstm_types(model)[0]


def _type_combination(model: ModelRecord) -> list[str]:
    return _lstm_types(model)[1]


def _activation(model: ModelRecord) -> list[str]:
    found = []
    for where, op in lstms(model):
        code = int(op.options.get("FusedActivationFunction", 0)) if op.options else 0
        if code != TANH:
            found.append(f"{where}: {ACTIVATION_NAMES.get(code, f'code {code}')}")
    return found


def _cell_scale(model: ModelRecord) -> list[str]:
    found = []
    for where, op in lstms(model):
        c = tensor(model, op, Slot.CELL_STATE)
        if c is None or c.dtype != I16:
            continue
        scale = c.quantization.scale[0] if c.quantization else 0.0
        exponent = np.log2(scale) if scale > 0 else np.nan
        if not np.isfinite(exponent) or exponent != round(exponent):
            found.append(f"{where}: cell_state scale {scale:g}")
    return found


def _output_shape(model: ModelRecord) -> list[str]:
    found = []
    for where, op in lstms(model):
        x, h = tensor(model, op, Slot.INPUT), tensor(model, op, Slot.OUTPUT_STATE)
        if x is None or h is None or not op.outputs or len(x.shape) != 3 or len(h.shape) != 2:
            continue
        y = model.tensors[op.outputs[0]]
        want = (x.shape[0], x.shape[1], h.shape[1])  # CreateLstmSizeInfo: state_dimension = h dims[1]
        if tuple(y.shape) != want:
            found.append(f"{where}: output shape {list(y.shape)}, expected {list(want)}")
    return found


# ------------------------------------------------------------------------------------ the table

_STANDARD = (
    "TFLM's LSTM kernel runs only the standard (Keras-style) LSTM: LstmTensors::ValidateTensorStatus "
    "(tensorflow/lite/micro/kernels/lstm_eval.cc) fails Prepare with"
)

MICRO_RULES: tuple[Rule, ...] = (
    Rule(
        "operator without a TFLM kernel",
        _ops_without_kernel,
        "TFLM's op resolver has no kernel for it (python/tflite_micro/python_ops_resolver.cc lists every "
        'builtin TFLM implements), so loading fails with "Didn\'t find op for builtin opcode". A '
        "BIDIRECTIONAL_SEQUENCE_LSTM must be written as two UNIDIRECTIONAL_SEQUENCE_LSTM + REVERSE_V2 + "
        "CONCATENATION, which TFLM runs.",
    ),
    Rule(
        "operator type TFLM's kernel does not accept",
        _op_types,
        "the kernel's Prepare/Eval rejects this input/output type pair, so loading or invoking fails.",
    ),
    Rule(
        "int8 CONCATENATION that rescales",
        _int8_concat_rescale,
        "TFLM's int8 concatenation kernel does not rescale: ConcatenationPrepare (kernels/concatenation.cc) "
        "requires every input's scale and zero point to equal the output's.",
    ),
    Rule(
        "20-input LSTM form",
        input_count,
        "UnidirectionalSequenceLstmPrepare (kernels/unidirectional_sequence_lstm.cc) requires exactly 24 "
        "inputs ('node->inputs->size != 24'); write the 24-input form (inputs 20-23 = -1).",
    ),
    Rule(
        "CIFG (no input gate)",
        cifg,
        f"{_STANDARD} 'internal_tensors_[i] != nullptr' unless all 8 gate weight matrices (inputs 1-8) and "
        "all 4 gate biases (12-15) are present; coupled input-forget gates are not implemented.",
    ),
    Rule(
        "peepholes",
        peepholes,
        f"{_STANDARD} 'internal_tensors_[i] == nullptr' when any of inputs 9-11 is present; peephole "
        "connections are not implemented. Build without --use-peepholes.",
    ),
    Rule(
        "projection",
        projection,
        f"{_STANDARD} 'internal_tensors_[i] == nullptr' when input 16 or 17 is present (and ValidateTensorSize "
        "requires [num_units, num_units] recurrent weights); projection is not implemented. Build without "
        "--num-proj.",
    ),
    Rule(
        "layer normalization",
        layer_norm,
        f"{_STANDARD} 'internal_tensors_[i] == nullptr' when any of inputs 20-23 is present; layer-normalised "
        "LSTM is not implemented.",
    ),
    Rule(
        "diagonal recurrent weights",
        diagonal,
        "ValidateTensorSize (kernels/lstm_eval_common.cc) requires rank-2 [num_units, num_units] recurrent "
        "weights, and the kernel never reads the diagonal_recurrent_tensors option.",
    ),
    Rule(
        "non-variable state",
        non_variable_state,
        f"{_STANDARD} 'is_variable was not true' unless output_state (18) and cell_state (19) are "
        "variable tensors: TFLM keeps the LSTM state only in variable tensors.",
    ),
    Rule(
        "hybrid (int8 weights, float activations)",
        _hybrid,
        "TFLM has no hybrid LSTM path (removed, tensorflow/tflite-micro#1474): "
        "UnidirectionalSequenceLstmEval dispatches on the input type alone, so a float32 input runs "
        "EvalLstm<float> over the int8 weight bytes. It loads and runs but the output is garbage (NaN "
        "measured). Use float32 weights, or quantize fully to int8.",
    ),
    Rule(
        "LSTM type combination",
        _type_combination,
        "TFLM's LSTM runs float32 (float32 weights, cell, bias), int8x8->16 (int8 input/output/h, int8 "
        "weights, int16 cell, int32 bias) or int16x8->16 (int16 activations, int8 weights, int16 cell, "
        "int64 bias) only: UnidirectionalSequenceLstmPrepare/Eval and LstmTensors::ValidateTensorStatus "
        "(h and output type = input type; weights 1-8 one type; biases 12-15 one type).",
    ),
    Rule(
        "cell activation other than TANH",
        _activation,
        "TFLM's CalculateLstmGate (kernels/lstm_eval.h) activates the cell gate with a switch that handles "
        "only sigmoid and tanh; any other value hits TFLITE_ASSERT_FALSE, which release builds compile to "
        "nothing, so the cell gate stays linear, and UpdateLstmHidden always applies tanh to the cell state. "
        "The model runs but is silently wrong (relu, relu6 and relu_n1_to_1 gave identical outputs, 1.8 off "
        "TFLite). Use --activation tanh.",
    ),
    Rule(
        "int16 cell-state scale not a power of two",
        _cell_scale,
        "CreateLstmCellStateInfo (kernels/lstm_eval_common.cc) takes log2 of the cell-state scale with "
        "CheckedLog2 and ignores its failure, so a scale other than 2^-k is silently rounded to one.",
    ),
    Rule(
        "dynamic shape",
        dynamic_shapes,
        "TFLM plans its arena once from Tensor.shape and ignores shape_signature (micro_allocator.cc: "
        '"TFLM doesn\'t allow reshaping the tensor"); MicroInterpreter has no resize, so a -1 axis runs '
        "only with the size stored in Tensor.shape (lstmgen stores 1 time step; verified). Build with "
        "fixed --time-steps and --batch-size.",
    ),
    Rule(
        "LSTM output shape not stored",
        _output_shape,
        "TFLM does not compute output shapes: ValidateTensorSize (kernels/lstm_eval_common.cc) requires "
        "the stored output shape to be rank 3 with the input's first two sizes and the state size (h dims[1]).",
    ),
)
