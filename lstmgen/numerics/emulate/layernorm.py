"""LiteRT's integer layer norm (PortableApplyLayerNorm) and its int32 inverse square root (common.h)."""

from __future__ import annotations

import numpy as np

from lstmgen.numerics.emulate import fixedpoint as fx

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


def _srdhm(a: int, b: int) -> int:
    if a == b == INT32_MIN:
        return INT32_MAX
    return int(fx.wrap(np.array((a * b + (1 << 30)) >> 31), 32))


def _pot(x: int, exponent: int) -> int:
    """int32 SaturatingRoundingMultiplyByPOT<exponent> (exponent > 0)."""
    threshold = (1 << (31 - exponent)) - 1
    if x > threshold:
        return INT32_MAX
    if x < -threshold:
        return INT32_MIN
    return x << exponent


def inv_sqrt_multiplier(value: int) -> tuple[int, int]:
    """GetInvSqrtQuantizedMultiplierExp(value, reverse_shift=-1): Newton-Raphson in FixedPoint<int32, 3>."""
    if value <= 1:
        return INT32_MAX, 0
    shift = 11
    while value >= 1 << 29:
        value //= 4
        shift += 1
    pairs = ((32 - value.bit_length()) - 1) // 2 - 1  # CountLeadingZeros - 1, in bit pairs, minus one
    shift -= pairs
    value <<= 2 * pairs
    half_input = int(fx.rdbp(np.array(value >> 1), 1))
    half_three = (1 << 28) + (1 << 27)
    x = 1 << 28  # F3::One()
    for _ in range(5):
        x3 = _pot(_srdhm(_srdhm(x, x), x), 6)
        diff = int(fx.wrap(np.array(_srdhm(half_three, x) - _srdhm(half_input, x3)), 32))
        x = _pot(diff, 3)
    x = _srdhm(x, 1518500250)
    if shift < 0:
        x = int(fx.wrap(np.array(x << -shift), 32))
        shift = 0
    return x, -shift


def apply_layer_norm(
    gate: np.ndarray,
    weights: np.ndarray,
    bias: np.ndarray,
    multiplier: tuple[int, int],
    guard: int,
    rounding: str = "double",
) -> np.ndarray:
    """PortableApplyLayerNorm on [n_batch, n] int16 gate codes."""
    n = gate.shape[1]
    out = np.empty_like(gate)
    for b in range(gate.shape[0]):
        row = gate[b].astype(np.int64)
        total, total_sq = int(row.sum()), int((row * row).sum())
        mean = _cdiv(total * 1024, n)
        variance = _cdiv(total_sq * ((1 << 20) // n) - mean * mean, 1 << 20)
        variance = int(fx.wrap(np.array(variance), 32))
        if variance < 1:
            variance = guard
        inv_a, inv_b = inv_sqrt_multiplier(variance)
        rescaled = fx.mbqm(1024 * row - mean, inv_a, inv_b, rounding)
        val3 = fx.wrap(fx.wrap(rescaled * weights, 32) + bias, 32)  # int32 arithmetic, then widened
        val4 = np.where(val3 > 0, val3 + 512, val3 - 512)
        val4 = np.where(val4 >= 0, val4 // 1024, -(-val4 // 1024))  # C division truncates
        val5 = fx.mbqm(fx.wrap(val4, 32), multiplier[0], multiplier[1] + 12, rounding)
        out[b] = fx.clamp(val5, 16)
    return out


def _cdiv(a: int, b: int) -> int:
    """C integer division (truncates toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q
