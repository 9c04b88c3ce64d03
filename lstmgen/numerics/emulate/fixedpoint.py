"""Integer primitives of the TFLite kernels (gemmlowp rounding, quantized multipliers, int16 sigmoid/tanh).

Written from gemmlowp fixedpoint/fixedpoint.h (16e8662) and TFLite kernels/internal/common.{h,cc},
quantization_util.cc; NumPy int64 arrays stand in for the C types, and every place where C converts
back to a narrower type is wrapped or clamped as C does (see docs/embedded.md, bit-exact emulation).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

I64 = np.int64
INT16_MIN, INT16_MAX = -32768, 32767


def wrap(x: np.ndarray, bits: int) -> np.ndarray:
    """Two's-complement wrap to `bits` (what a cast to int16_t/int32_t does)."""
    half = 1 << (bits - 1)
    return ((np.asarray(x, I64) + half) & ((1 << bits) - 1)) - half


def clamp(x: np.ndarray, bits: int) -> np.ndarray:
    """Saturate to the signed range of `bits`."""
    return np.clip(x, -(1 << (bits - 1)), (1 << (bits - 1)) - 1)


def rdbp(x: np.ndarray, exponent: int) -> np.ndarray:
    """gemmlowp RoundingDivideByPOT: x / 2^e rounded half away from zero."""
    if exponent == 0:
        return np.asarray(x, I64)
    x = np.asarray(x, I64)
    mask = (1 << exponent) - 1
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + ((x & mask) > threshold)


def srdhm32(a: np.ndarray, b: int) -> np.ndarray:
    """int32 SaturatingRoundingDoublingHighMul (b >= 0, so INT_MIN*INT_MIN cannot occur): round half up."""
    return (np.asarray(a, I64) * b + (1 << 30)) >> 31


def mbqm(x: np.ndarray, multiplier: int, shift: int, rounding: str = "double") -> np.ndarray:
    """MultiplyByQuantizedMultiplier for int32 x: "double" rounding (the default build), "single"
    (TFLITE_SINGLE_ROUNDING) or "half-up" (NEON's MultiplyByQuantizedMultiplier4Rows: vrshl ends half up)."""
    x = np.asarray(x, I64)
    if rounding == "single":
        total = 31 - shift
        return wrap((x * multiplier + (1 << (total - 1))) >> total, 32)
    left, right = max(shift, 0), max(-shift, 0)
    high = srdhm32(wrap(x << left, 32), multiplier)
    if rounding == "half-up":
        return (high + ((1 << right) >> 1)) >> right
    return rdbp(high, right)


def mbqm64(x: np.ndarray, multiplier: int, shift: int) -> np.ndarray:
    """The int64-input overload (16x8 fully connected): a 16-bit multiplier, one rounding, cast to int32."""
    reduced = (multiplier + (1 << 15)) >> 16 if multiplier < 0x7FFF0000 else 0x7FFF
    total = 15 - shift
    return wrap((np.asarray(x, I64) * reduced + (1 << (total - 1))) >> total, 32)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """QuantizeMultiplier(double): (significand in [2^30, 2^31), shift); 0 -> (0, 0); shift < -31 -> (0, 0)."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    v = q * float(1 << 31)
    fixed = math.floor(abs(v) + 0.5) * (1 if v >= 0 else -1)  # TfLiteRound: half away from zero
    if fixed == 1 << 31:
        fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return fixed, shift


def checked_log2(scale: float) -> tuple[int, bool]:
    """CheckedLog2(float): (rounded log2 in float32, whether the scale is a power of two within 1e-3)."""
    x = np.float32(scale)
    log2 = np.float32(np.log(x)) * (np.float32(1.0) / np.float32(np.log(np.float32(2.0))))
    rounded = np.float32(math.floor(abs(float(log2)) + 0.5) * (1 if log2 >= 0 else -1))
    return int(rounded), bool(abs(float(np.float32(log2 - rounded))) < 1e-3)


# ------------------------------------------------------------------ gemmlowp FixedPoint<int16_t, I>


def _w16(x: np.ndarray) -> np.ndarray:
    return wrap(x, 16)


def _mul16(a: np.ndarray, b: np.ndarray | int) -> np.ndarray:
    """int16 SaturatingRoundingDoublingHighMul: (a*b + 2^14) >> 15, -32768 * -32768 -> 32767."""
    both_min = (np.asarray(a) == INT16_MIN) & (np.asarray(b) == INT16_MIN)
    return np.where(both_min, INT16_MAX, _w16((np.asarray(a, I64) * b + (1 << 14)) >> 15))


def _pot(x: np.ndarray, exponent: int) -> np.ndarray:
    """SaturatingRoundingMultiplyByPOT<exponent> on int16."""
    if exponent < 0:
        return rdbp(x, -exponent)
    if exponent == 0:
        return x
    threshold = (1 << (15 - exponent)) - 1
    return np.where(x > threshold, INT16_MAX, np.where(x < -threshold, INT16_MIN, x << exponent))


def _const(raw32: int) -> int:
    """GEMMLOWP_CHECKED_FIXEDPOINT_CONSTANT for int16: the int32 constant RoundingDivideByPOT'd by 16."""
    return int(_w16(rdbp(np.array(raw32), 16)))


def _one(bits: int) -> int:
    return INT16_MAX if bits == 0 else 1 << (15 - bits)


def _exp_on_quarter_interval(a: np.ndarray) -> np.ndarray:
    """exp_on_interval_between_negative_one_quarter_and_0_excl (F0)."""
    constant_term, one_third = _const(1895147668), _const(715827883)
    x = _w16(a + (1 << 12))
    x2 = _mul16(x, x)
    x3 = _mul16(x2, x)
    x4 = _mul16(x2, x2)
    x4_over_4 = _pot(x4, -2)
    poly = _pot(_w16(_mul16(_w16(x4_over_4 + x3), one_third) + x2), -1)
    return np.clip(constant_term + _mul16(np.full_like(x, constant_term), _w16(x + poly)), INT16_MIN, INT16_MAX)


_BARREL = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308), (2, 39332535), (3, 720401), (4, 242))


def _exp_on_negative(a: np.ndarray, bits: int) -> np.ndarray:
    """exp_on_negative_values(FixedPoint<int16, bits>) -> F0."""
    frac = 15 - bits
    quarter = 1 << (frac - 2)
    a_mod = _w16((a & (quarter - 1)) - quarter)
    result = _exp_on_quarter_interval(_pot(a_mod, bits))  # Rescale<0>
    remainder = _w16(a_mod - a)
    for exponent, multiplier in _BARREL:
        if bits > exponent:
            hit = (remainder & (1 << (frac + exponent))) != 0
            result = np.where(hit, _mul16(result, _const(multiplier)), result)
    if bits > 5:
        result = np.where(a < _const(-(1 << (36 - bits))), 0, result)
    return np.where(a == 0, _one(0), result)


def _newton_reciprocal(a: np.ndarray) -> np.ndarray:
    """The shared Newton-Raphson loop of one_over_one_plus_x / one_minus_x_over_one_plus_x: (half_den, x) in F2."""
    total = np.asarray(a, I64) + INT16_MAX  # RoundingHalfSum(a, One): (sum + sign(sum)) / 2, C division
    total = total + np.where(total >= 0, 1, -1)
    half_den = _w16(np.where(total >= 0, total // 2, -(-total // 2)))
    x = _w16(_const(1515870810) + _mul16(half_den, _const(-1010580540)))
    for _ in range(3):
        one_minus = _w16(_one(2) - _mul16(half_den, x))
        x = _w16(x + _pot(_mul16(x, one_minus), 2))
    return x


def _logistic(a: np.ndarray, bits: int) -> np.ndarray:
    positive = a > 0
    abs_input = np.where(positive, a, _w16(-a))
    x = _newton_reciprocal(_exp_on_negative(_w16(-abs_input), bits))
    r_pos = _pot(x, 1)  # Rescale<0>(ExactMulByPot<-1>(x)): F1 -> F0
    r_neg = _w16(INT16_MAX - r_pos)
    return np.where(a == 0, _const(1 << 30), np.where(positive, r_pos, r_neg))


def _tanh(a: np.ndarray, bits: int) -> np.ndarray:
    negative = a < 0
    n = np.where(negative, a, _w16(-a))
    x = _newton_reciprocal(_exp_on_negative(n, bits + 1))  # ExactMulByPot<1>: same raw, one more integer bit
    t = _pot(_w16(x - _one(2)), 2)
    return np.where(a == 0, 0, np.where(negative, _w16(-t), t))


@lru_cache(maxsize=16)
def gemmlowp_table(function: str, integer_bits: int) -> np.ndarray:
    """gemmlowp::logistic/tanh on FixedPoint<int16_t, integer_bits> for all 65536 inputs (index = raw + 32768)."""
    raw = np.arange(INT16_MIN, INT16_MAX + 1, dtype=I64)
    table = _logistic(raw, integer_bits) if function == "sigmoid" else _tanh(raw, integer_bits)
    out = table.astype(np.int16)
    out.flags.writeable = False
    return out
