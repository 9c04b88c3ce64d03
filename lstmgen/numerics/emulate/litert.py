"""LiteRT's full-integer 8x8->16 LSTM kernel (EvalInteger8x8_16), step by step in NumPy integers.

Prepare: unidirectional_sequence_lstm.cc PopulateQuantizedLstmParams8x8_16 (effective scales in float32)
and PopulatePrecomputedZPTimesWeightsWithBias. Step: lstm_eval.cc LstmStepInteger8x8_16 with the
Portable* tensor utils (reference/portable_tensor_utils.cc), as x86 builds run them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lstmgen.errors import ModelFileError
from lstmgen.numerics.emulate import fixedpoint as fx
from lstmgen.numerics.emulate.tensors import GATES, OpTensors

F32 = np.float32
Multiplier = tuple[int, int]


@dataclass(frozen=True)
class Knobs:
    """Build-dependent rounding (and deliberate faults, for tests that the 0-LSB check can fail)."""

    rounding: str = "double"  # "single": TFLITE_SINGLE_ROUNDING builds; "half-up": every requantization as NEON's 4Rows
    # The peephole's NEON code (the x86 wheels run it through NEON_2_SSE; measured): blocks of 16 cells per
    # batch row requantized by MultiplyByQuantizedMultiplier4Rows, whose last shift rounds half up.
    neon_peephole: bool = True
    activations: str = "gemmlowp"  # "lut": TFLM's table instead (a wrong emulator, for tests)


def _f32_scale(*factors: float, divide: float) -> float:
    """a * b / c evaluated left to right in float32, as the kernel's Prepare does."""
    acc = F32(factors[0])
    for f in factors[1:]:
        acc = F32(acc * F32(f))
    return float(F32(acc / F32(divide)))


@dataclass
class LiteRTParams:
    """Everything Prepare derives."""

    gate_scale: dict[str, float]
    mx: dict[str, Multiplier]
    mh: dict[str, Multiplier]
    mc: dict[str, Multiplier]
    mln: dict[str, Multiplier]
    guard: dict[str, int]
    bx: dict[str, np.ndarray]
    bh: dict[str, np.ndarray]
    cell_power: int
    q_cell_clip: int
    q_proj_clip: int
    m_hidden: Multiplier
    hidden_zp: int
    m_proj: Multiplier = (0, 0)
    b_proj: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)


def _cell_power(t: OpTensors) -> int:
    power, exact = fx.checked_log2(t.c.scale)
    if not exact:
        raise ModelFileError(
            f"LSTM operator {t.op_index}: the cell state scale {t.c.scale:g} is not a power of two; LiteRT's "
            "integer kernel refuses the model in Prepare (CheckedLog2)."
        )
    if not 0 <= 15 + power <= 6:
        raise ModelFileError(
            f"LSTM operator {t.op_index}: the cell state scale 2^{power} leaves {15 + power} integer bits for "
            "LiteRT's tanh of the cell, which handles 0-6 only (it then leaves the hidden buffer unwritten: "
            "the output is undefined)."
        )
    return power


def prepare(t: OpTensors) -> LiteRTParams:
    """PopulateQuantizedLstmParams8x8_16 + PopulatePrecomputedZPTimesWeightsWithBias."""
    if t.kind != "int8":
        raise ModelFileError(
            f"LSTM operator {t.op_index} is {t.kind}: LiteRT has no 16x8 LSTM kernel (it registers versions 1-4)."
        )
    if len(t.intermediates) < 5 or t.intermediates[4] is None:
        raise ModelFileError(
            f"LSTM operator {t.op_index} has no quantized intermediate 4 (the hidden state's scale): LiteRT's "
            "integer kernel refuses it in Prepare."
        )
    layer_norm = bool(t.layer_norm)
    hidden = t.intermediates[4]
    gate_scale = {}
    for k, g in enumerate(GATES):
        q = t.intermediates[k] if layer_norm else None
        if layer_norm and q is None:
            raise ModelFileError(f"LSTM operator {t.op_index}: layer norm needs quantized intermediates 0-3.")
        gate_scale[g] = q.scale if q is not None else 2.0**-12
    power = _cell_power(t)
    p = LiteRTParams(
        gate_scale=gate_scale, mx={}, mh={}, mc={}, mln={}, guard={}, bx={}, bh={}, cell_power=power,
        q_cell_clip=_clip(t.cell_clip, t.c.scale, 32767) if t.cell_clip > 0 else 0,
        q_proj_clip=_clip(t.proj_clip, t.out.scale, 127) if t.proj_clip > 0 else 0,
        m_hidden=fx.quantize_multiplier(float(F32(2.0**-15 / hidden.scale * 2.0**-15))),
        hidden_zp=hidden.zero_point,
    )  # fmt: skip
    for g in t.wx:
        s_g = gate_scale[g]
        p.mx[g] = fx.quantize_multiplier(_f32_scale(t.qx[g].scale, t.x.scale, divide=s_g))
        p.mh[g] = fx.quantize_multiplier(_f32_scale(t.qh[g].scale, t.h.scale, divide=s_g))
        if g in t.peephole:
            p.mc[g] = fx.quantize_multiplier(float(F32(2.0**power * t.qpeep[g].scale / s_g)))
        if g in t.layer_norm:
            p.mln[g] = fx.quantize_multiplier(t.qln[g].scale)
            p.guard[g] = max(1, int(F32(F32(10000) * F32(t.qln[g].scale))))
        bias = t.bias[g] if (t.bias[g] is not None and not layer_norm) else 0
        p.bx[g] = bias + (-t.x.zero_point) * t.wx[g].sum(axis=1)
        p.bh[g] = (-t.h.zero_point) * t.wh[g].sum(axis=1)
    if t.projection is not None and t.qproj is not None:
        p.m_proj = fx.quantize_multiplier(_f32_scale(t.qproj.scale, hidden.scale, divide=t.h.scale))
        pb = t.projection_bias if t.projection_bias is not None else 0
        p.b_proj = pb + hidden.zero_point * t.projection.sum(axis=1)
    return p


def _clip(clip: float, scale: float, limit: int) -> int:
    """static_cast<intN>(min(max(clip / scale, -limit - 1), limit)) in float32."""
    return int(np.trunc(min(max(F32(F32(clip) / F32(scale)), F32(-limit - 1)), F32(limit))))


class LiteRTKernel:
    """The kernel for one op: run(x codes) -> (output codes, final h, final c)."""

    runtime = "litert"

    def __init__(self, t: OpTensors, knobs: Knobs | None = None) -> None:
        self.t, self.knobs = t, knobs or Knobs()
        self.p = prepare(t)
        if t.peephole and t.output_size > t.num_units:
            raise ModelFileError(
                f"LSTM operator {t.op_index}: peepholes with an output size ({t.output_size}) above the cell "
                f"count ({t.num_units}): LiteRT's integer peephole reads past the cell state (undefined)."
            )
        if self.knobs.activations == "lut":
            from lstmgen.numerics.emulate.lut import lut_sigmoid, lut_tanh, sigmoid_table

            table = sigmoid_table()[0]
            self._sigmoid = lambda v: lut_sigmoid(v, table)
            self._tanh = lambda v, bits: lut_tanh(v, bits - 15, table)
        else:
            self._sigmoid = lambda v: fx.gemmlowp_table("sigmoid", 3)[v + 32768].astype(np.int64)
            self._tanh = lambda v, bits: fx.gemmlowp_table("tanh", bits)[v + 32768].astype(np.int64)

    def _mbqm(self, x: np.ndarray, m: Multiplier) -> np.ndarray:
        return fx.mbqm(x, m[0], m[1], self.knobs.rounding)

    def _peephole(self, gate: np.ndarray, w: np.ndarray, c: np.ndarray, m: Multiplier) -> np.ndarray:
        """VectorBatchVectorCwiseProductAccumulate(w, n_output, c, n_batch): the first n_batch * n_output
        cells of the flattened gate and cell buffers (a misalignment when the op has a projection)."""
        n_out, flat_g, flat_c = self.t.output_size, gate.reshape(-1).copy(), c.reshape(-1)
        count = gate.shape[0] * n_out
        prod = np.tile(w[:n_out], gate.shape[0]) * flat_c[:count]
        scaled = self._mbqm(prod, m)
        if self.knobs.neon_peephole:  # blocks of 16 per batch row: vqrdmulh then vrshl (half up)
            block = (np.arange(count) % n_out) < (n_out // 16) * 16
            scaled = np.where(block, fx.mbqm(prod, m[0], m[1], "half-up"), scaled)
        flat_g[:count] = fx.clamp(flat_g[:count] + scaled, 16)
        return flat_g.reshape(gate.shape)

    def _layer_norm(self, gate: np.ndarray, g: str) -> np.ndarray:
        from lstmgen.numerics.emulate.layernorm import apply_layer_norm

        bias = self.t.bias[g]
        return apply_layer_norm(
            gate, self.t.layer_norm[g], np.zeros(gate.shape[1], np.int64) if bias is None else bias,
            self.p.mln[g], self.p.guard[g], self.knobs.rounding,
        )  # fmt: skip

    def _gate(self, g: str, x: np.ndarray, h: np.ndarray, c: np.ndarray) -> np.ndarray:
        t, p = self.t, self.p
        gate = fx.clamp(self._mbqm(p.bx[g] + x @ t.wx[g].T, p.mx[g]), 16)
        gate = fx.clamp(self._mbqm(p.bh[g] + h @ t.wh[g].T, p.mh[g]) + gate, 16)
        if g in t.peephole:
            gate = self._peephole(gate, t.peephole[g], c, p.mc[g])
        if g in t.layer_norm:
            gate = self._layer_norm(gate, g)
        return self._tanh(gate, 3) if g == "cell" else self._sigmoid(gate)

    def step(self, x: np.ndarray, h: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One time step on [n_batch, ·] codes; returns the new (h, c)."""
        t, p = self.t, self.p
        f = self._gate("forget", x, h, c)
        i = (32767 - f) if t.cifg else self._gate("input", x, h, c)
        z = self._gate("cell", x, h, c)
        c = fx.wrap(fx.rdbp(f * c, 15), 16)
        c = fx.clamp(c + fx.wrap(fx.rdbp(i * z, 30 + p.cell_power), 16), 16)
        if p.q_cell_clip > 0:
            c = np.clip(c, -p.q_cell_clip, p.q_cell_clip)
        o = self._gate("output", x, h, c)
        tc = self._tanh(c, 15 + p.cell_power)
        if t.projection is None:
            return fx.clamp(self._mbqm(o * tc, p.m_hidden) + p.hidden_zp, 8), c
        m = fx.clamp(self._mbqm(o * tc, p.m_hidden) - p.hidden_zp, 8)
        assert p.b_proj is not None
        h = fx.clamp(self._mbqm(p.b_proj + m @ t.projection.T, p.m_proj) + t.h.zero_point, 8)
        if p.q_proj_clip > 0:
            h = np.clip(h, -p.q_proj_clip, p.q_proj_clip)
        return h, c
