"""The numeric tables every layer shares: quantization modes, Q formats, float tolerances, dtypes, gate names."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lstmgen.tflite.slots import GATES as GATES  # the op's gate order, a file-format fact: "input", "forget", ...

# dtype aliases
F32, F16 = np.dtype(np.float32), np.dtype(np.float16)
I8, I16, I32, I64 = np.dtype(np.int8), np.dtype(np.int16), np.dtype(np.int32), np.dtype(np.int64)
U8, BOOL = np.dtype(np.uint8), np.dtype(np.bool_)

QUANTIZE_MODES: tuple[str, ...] = ("none", "float16", "dynamic-int8", "int8", "int16x8")


@dataclass(frozen=True)
class IntegerMode:
    """What differs between the full-integer modes (TFLM kernels/unidirectional_sequence_lstm.cc Eval)."""

    activation: np.dtype  # input, output, h state and every activation tensor around the LSTMs
    bias: np.dtype  # gate biases: the accumulator type of the kernel's fully connected
    symmetric: bool  # int16 activations are symmetric (zero point 0), the 16x8 convention


# Full-integer (calibrated) modes. int16x8 = int16 activations, int8 weights.
INTEGER_MODES: dict[str, IntegerMode] = {
    "int8": IntegerMode(I8, I32, False),  # 8x8->16: int16 cell, 32-bit bias
    "int16x8": IntegerMode(I16, I64, True),  # 16x8->16: int16 cell, 64-bit bias
}

# The integer kernels hold gate pre-activations in int16 at this fixed scale (no layer norm) ...
Q3_12 = 2.0**-12
Q0_15 = 2.0**-15  # ... and gate outputs (sigmoid/tanh) in Q0.15

# float32 kernel vs float64 reference: each step rounds a handful of dot products of length
# I + P to float32 (relative error ~ sqrt(I+P) * 6e-8) and the recurrence carries it forward.
# For moderate weights that stays <= 5e-7 up to 2048 units, so 1e-5 absolute + 1e-5 relative is the
# floor; a swapped gate, transposed matrix or missing bias gives errors of 1e-2 and above. Steep cells
# pass where the reference's own float32 sensitivity is larger (numerics/float_bound.py).
FLOAT_ATOL = 1e-5
FLOAT_RTOL = 1e-5
