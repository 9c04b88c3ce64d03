"""TFLM's reference integer LSTM kernel (int8 8x8->16 and int16x8), step by step in NumPy integers.

Prepare: micro/kernels/lstm_eval_common.cc PrepareGateParametersInteger, CreateInterGateMulParams,
CreateLstmCellStateInfo (multipliers from float32 scales in double). Step: micro/kernels/lstm_eval.h
LstmStep with reference_integer_ops FullyConnected, Mul, and the interpolated LUT Logistic/Tanh.
CMSIS-NN's s8/s16 kernels compute the same per step (their state handling differs: docs/embedded.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lstmgen.errors import ModelFileError
from lstmgen.numerics.emulate import fixedpoint as fx
from lstmgen.numerics.emulate.lut import lut_sigmoid, lut_tanh, sigmoid_table
from lstmgen.numerics.emulate.tensors import ACTIVATION_SIGMOID, ACTIVATION_TANH, GATES, OpTensors

Multiplier = tuple[int, int]


@dataclass(frozen=True)
class Knobs:
    """Deliberate faults, for tests that show the 0-LSB check fails on a slightly wrong emulator."""

    rounding: str = "double"  # see fixedpoint.mbqm
    activations: str = "lut"  # "gemmlowp": LiteRT's activations instead


def _checked(t: OpTensors) -> None:
    absent = [n for n, v in (("peepholes", t.peephole), ("layer norm", t.layer_norm)) if v]
    absent += ["projection"] if t.projection is not None else []
    absent += ["CIFG (no input gate)"] if t.cifg else []
    if absent:
        raise ModelFileError(
            f"LSTM operator {t.op_index} uses {', '.join(absent)}: TFLM's integer LSTM kernel takes the plain "
            "cell only (it refuses the model in Prepare)."
        )
    if t.activation not in (ACTIVATION_TANH, ACTIVATION_SIGMOID):
        raise ModelFileError(
            f"LSTM operator {t.op_index} has activation code {t.activation}; TFLM's kernel applies it to the cell "
            "gate and asserts on anything but TANH (4) or SIGMOID (6)."
        )


class TflmKernel:
    """The kernel for one op: step(x, h, c) on integer codes."""

    runtime = "tflm"

    def __init__(self, t: OpTensors, knobs: Knobs | None = None) -> None:
        _checked(t)
        self.t, self.knobs = t, knobs or Knobs()
        self.wide = t.kind == "int16x8"  # int64 bias and accumulators, the 16-bit-multiplier requantization
        gate_scale = 2.0**-12
        self.mx: dict[str, Multiplier] = {}
        self.mh: dict[str, Multiplier] = {}
        for g in GATES:  # in double: float(s_x) * float(s_W) / 2^-12
            self.mx[g] = fx.quantize_multiplier(t.x.scale * t.qx[g].scale / gate_scale)
            self.mh[g] = fx.quantize_multiplier(t.h.scale * t.qh[g].scale / gate_scale)
        self.power, _ = fx.checked_log2(t.c.scale)  # TFLM does not check that it is a power of two
        self.m_fc = fx.quantize_multiplier(2.0**-15 * t.c.scale / t.c.scale)
        self.m_ig = fx.quantize_multiplier(2.0**-15 * 2.0**-15 / t.c.scale)
        self.m_hidden = fx.quantize_multiplier(2.0**-15 * 2.0**-15 / t.h.scale)
        self.q_cell_clip = int(np.trunc(min(max(t.cell_clip / t.c.scale, -32768.0), 32767.0)))
        self.h_bits = 16 if self.wide else 8
        if self.knobs.activations == "gemmlowp":
            self._sigmoid = lambda v: fx.gemmlowp_table("sigmoid", 3)[v + 32768].astype(np.int64)
            self._tanh = lambda v, power: fx.gemmlowp_table("tanh", 15 + power)[v + 32768].astype(np.int64)
        else:
            table = sigmoid_table()[0]
            self._sigmoid = lambda v: lut_sigmoid(v, table)
            self._tanh = lambda v, power: lut_tanh(v, power, table)

    def _requantize(self, acc: np.ndarray, m: Multiplier) -> np.ndarray:
        if self.wide:
            return fx.mbqm64(acc, m[0], m[1])
        return fx.mbqm(fx.wrap(acc, 32), m[0], m[1], self.knobs.rounding)

    def _mul(self, a: np.ndarray, b: np.ndarray, m: Multiplier) -> np.ndarray:
        return fx.mbqm(a * b, m[0], m[1], self.knobs.rounding)

    def _gate(self, g: str, x: np.ndarray, h: np.ndarray) -> np.ndarray:
        t = self.t
        bias = t.bias[g] if t.bias[g] is not None else 0
        acc_x = (x - t.x.zero_point) @ (t.wx[g] - t.qx[g].zero_point).T + bias
        acc_h = (h - t.h.zero_point) @ (t.wh[g] - t.qh[g].zero_point).T
        gate = fx.clamp(
            fx.clamp(self._requantize(acc_x, self.mx[g]), 16) + fx.clamp(self._requantize(acc_h, self.mh[g]), 16), 16
        )
        if g != "cell" or t.activation == ACTIVATION_SIGMOID:
            return self._sigmoid(gate)
        return self._tanh(gate, -12)

    def step(self, x: np.ndarray, h: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One time step on [n_batch, ·] codes; returns the new (h, c)."""
        f = self._gate("forget", x, h)
        i = self._gate("input", x, h)
        z = self._gate("cell", x, h)
        c = fx.clamp(self._mul(f, c, self.m_fc), 16)
        c = fx.clamp(c + fx.clamp(self._mul(i, z, self.m_ig), 16), 16)
        if self.t.cell_clip > 0:
            c = np.clip(c, -self.q_cell_clip, self.q_cell_clip)
        o = self._gate("output", x, h)
        tc = self._tanh(c, self.power)
        return fx.clamp(self._mul(tc, o, self.m_hidden) + self.t.h.zero_point, self.h_bits), c
