"""Affine quantization arithmetic (real = scale * (q - zero_point)), the one place it is written.

Rounding is NumPy's round-half-to-even on float64 (what TFLite's reference quantizer does), and
codes saturate at the integer type's limits. Scale and zero point are per tensor (scalars) or per
channel (sequences, laid along `axis`). The arithmetic keeps the caller's scalar types as they are,
so results are bit-identical to writing the formula inline. Imports only NumPy: every layer may use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

Param = Any  # a Python or NumPy scalar (per tensor), or a sequence/array of them (per channel)


def _along(param: Param, ndim: int, axis: int | None) -> Param:
    """Per-channel parameters reshaped to broadcast along `axis`; scalars pass through unchanged."""
    if axis is None or not isinstance(param, (Sequence, np.ndarray)):
        return param
    values: np.ndarray = np.asarray(param, np.float64)
    if values.size == 1:
        return values.reshape(-1)
    shape = [1] * ndim
    shape[axis] = -1
    return values.reshape(shape)


def _codes(x: Any, dtype: Any, scale: Param, zero_point: Param, axis: int | None) -> np.ndarray:
    """round(x / scale) + zero_point saturated to the type's range, still float64 (NaN stays NaN)."""
    info = np.iinfo(dtype)
    real = np.asarray(x, np.float64)
    s, z = _along(scale, real.ndim, axis), _along(zero_point, real.ndim, axis)
    return np.clip(np.round(real / s) + z, info.min, info.max)


def quantize(x: Any, dtype: Any, scale: Param = 1.0, zero_point: Param = 0, axis: int | None = None) -> np.ndarray:
    """Real values -> integer codes of `dtype`: round(x / scale) + zero_point, saturated to the type's range."""
    return _codes(x, dtype, scale, zero_point, axis).astype(dtype)


def dequantize(codes: Any, scale: Param = 1.0, zero_point: Param = 0, axis: int | None = None) -> np.ndarray:
    """Integer codes -> real values in float64: (q - zero_point) * scale."""
    data = np.asarray(codes).astype(np.float64)
    return (data - _along(zero_point, data.ndim, axis)) * _along(scale, data.ndim, axis)


def round_to_grid(x: Any, dtype: Any, scale: Param = 1.0, zero_point: Param = 0) -> np.ndarray:
    """Real values rounded (and saturated) to a quantized tensor's grid, as reals: quantize then dequantize."""
    return (_codes(x, dtype, scale, zero_point, None) - zero_point) * scale


def real_range(dtype: Any, scale: Param = 1.0, zero_point: Param = 0) -> tuple[Any, Any]:
    """(lowest, highest) real value a per-tensor quantized `dtype` can hold: its saturation bounds."""
    info = np.iinfo(dtype)
    return (info.min - zero_point) * scale, (info.max - zero_point) * scale
