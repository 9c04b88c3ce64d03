"""Lookup tables shared by the config, the LSTM layout and the inspector (no logic)."""

from __future__ import annotations

import numpy as np

from lstmgen.tflite.schema import ActivationFunctionType, BuiltinOperator, TensorType

# Name of the metadata entry holding lstmgen's JSON (hyperparameters, provenance) in the files it writes.
METADATA_KEY = "lstmgen"

# Activations the kernel's float path computes correctly, by lstmgen name.
ACTIVATIONS: dict[str, int] = {
    "tanh": ActivationFunctionType.TANH,
    "relu": ActivationFunctionType.RELU,
    "relu6": ActivationFunctionType.RELU6,
    "relu_n1_to_1": ActivationFunctionType.RELU_N1_TO_1,
}
ACTIVATION_NAMES: dict[int, str] = {code: name for name, code in ACTIVATIONS.items()}

# Activations users ask for that the fused kernel cannot honour, with the reason.
REFUSED_ACTIVATIONS: dict[str, str] = {
    "none": "the kernel's NONE path never writes the activated cell state and returns stale scratch "
    "memory (silently wrong output, max error 0.45 measured)",
    "linear": "TFLite encodes a linear activation as NONE, and the kernel's NONE path returns stale "
    "scratch memory (silently wrong output)",
    "sigmoid": "the fused activation field has no SIGMOID member; the gates are always sigmoid, the "
    "cell activation must be one of the supported ones",
    "hard_sigmoid": "the fused activation field has no HARD_SIGMOID member",
    "sign_bit": "SIGN_BIT is not a meaningful cell activation and is untested here",
}

# numpy dtype <-> TensorType; the inverse is derived so the two can never disagree.
NUMPY_TO_TFLITE: dict[np.dtype, int] = {
    np.dtype(np.float32): TensorType.FLOAT32,
    np.dtype(np.float16): TensorType.FLOAT16,
    np.dtype(np.int32): TensorType.INT32,
    np.dtype(np.int8): TensorType.INT8,
    np.dtype(np.int16): TensorType.INT16,
    np.dtype(np.uint8): TensorType.UINT8,
    np.dtype(np.int64): TensorType.INT64,
    np.dtype(np.bool_): TensorType.BOOL,
}
TFLITE_TO_NUMPY: dict[int, np.dtype] = {code: dt for dt, code in NUMPY_TO_TFLITE.items()}
TENSOR_TYPE_NAMES: dict[int, str] = {
    v: k for k, v in vars(TensorType).items() if not k.startswith("_") and isinstance(v, int)
}
BUILTIN_OPERATOR_NAMES: dict[int, str] = {
    v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_") and isinstance(v, int)
}

# Minimum runtime per (builtin operator, version), for the ops lstmgen emits (LiteRT
# tflite/converter/tools/versioning/runtime_version.cc at f6745779). The model's
# min_runtime_version is the maximum over its operators.
_OP = BuiltinOperator
OP_MIN_RUNTIME: dict[tuple[int, int], str] = {
    (_OP.UNIDIRECTIONAL_SEQUENCE_LSTM, 1): "1.13.1",
    (_OP.UNIDIRECTIONAL_SEQUENCE_LSTM, 2): "1.14.0",
    (_OP.UNIDIRECTIONAL_SEQUENCE_LSTM, 3): "2.3.0",
    (_OP.UNIDIRECTIONAL_SEQUENCE_LSTM, 4): "2.12.0",
    (_OP.DEQUANTIZE, 1): "1.13.1",
    (_OP.DEQUANTIZE, 2): "1.14.0",  # int8 input
    (_OP.DEQUANTIZE, 3): "1.15.0",  # float16 / int16 input
    (_OP.QUANTIZE, 1): "1.14.0",  # float32 -> int8
    (_OP.QUANTIZE, 2): "1.15.0",  # float32 -> int16
    (_OP.REVERSE_V2, 1): "1.14.0",
    (_OP.REVERSE_V2, 2): "2.2.0",  # bool
    (_OP.REVERSE_V2, 3): "2.5.0",  # int8
    (_OP.CONCATENATION, 1): "1.5.0",
    (_OP.CONCATENATION, 2): "1.14.0",  # int8 (no rescaling: inputs and output must share scale/zp)
    (_OP.CONCATENATION, 3): "2.3.0",  # int16
    (_OP.STRIDED_SLICE, 1): "1.6.0",
    (_OP.STRIDED_SLICE, 2): "1.14.0",  # int8
    (_OP.STRIDED_SLICE, 3): "2.1.0",  # bool
    (_OP.STRIDED_SLICE, 4): "2.2.0",  # more than 4 dimensions
    (_OP.STRIDED_SLICE, 6): "2.6.0",  # ellipsis / new-axis masks
    # the graph form (layout_graph.py)
    (_OP.FULLY_CONNECTED, 1): "1.5.0",
    (_OP.FULLY_CONNECTED, 3): "1.14.0",  # hybrid (int8 weights, float input)
    (_OP.FULLY_CONNECTED, 9): "2.3.0",  # hybrid with asymmetric input quantization
    (_OP.ADD, 1): "1.5.0",
    (_OP.SUB, 1): "1.6.0",
    (_OP.MUL, 1): "1.5.0",
    (_OP.LOGISTIC, 1): "1.5.0",
    (_OP.TANH, 1): "1.5.0",
    (_OP.RELU, 1): "1.5.0",
    (_OP.RELU6, 1): "1.5.0",
    (_OP.RELU_N1_TO_1, 1): "1.5.0",
    (_OP.SPLIT, 1): "1.5.0",
    (_OP.RESHAPE, 1): "1.5.0",
    (_OP.TRANSPOSE, 1): "1.6.0",
    (_OP.MINIMUM, 1): "1.14.0",
    (_OP.MAXIMUM, 1): "1.14.0",
    (_OP.MEAN, 1): "1.6.0",
    (_OP.RSQRT, 1): "1.10.0",
}


def min_runtime(ops: list[tuple[int, int]]) -> str:
    """The newest minimum runtime over (operator, version) pairs."""
    versions = [OP_MIN_RUNTIME[op] for op in ops]
    return max(versions, key=lambda v: tuple(int(p) for p in v.split(".")))
