"""Tensor-level equivalence: every constant input of each LSTM op against the source cell's own arrays.

The source side is each framework's own gate table (Cell.tensors in check/source/); the file side is
the tensor in the op's input slot (through a DEQUANTIZE for float16 weights), dequantized with its own
scale and zero point. What the file's type allows (docs/verification.md):
  float32 / float16: the source value rounded to nearest once (a folded bias sum: one ulp at max(|b|, 4);
  which biases are sums is the source cell's `folded`);
  integer codes: within half a quantization step of the source value clamped to the type's range
  (a folded bias: plus the float32 rounding of the sum the writer quantized).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from lstmgen.check.source.common import Cell
from lstmgen.check.source.structure import SLOTS
from lstmgen.tflite.schema import BuiltinOperator as Op

CHUNK = 1 << 18  # elements compared at a time: float64 temporaries stay a few MB for any tensor size
STEP_SLACK = 1e-3  # quantizers divide in float32 or float64: a code may sit this much past half a step
FLOAT32_EPS = 2.0**-24  # float32's unit roundoff
# A folded bias (b_ih + b_hh + forget bias) rounds each partial sum, and a partial sum can be larger than
# the result: one ulp at this magnitude at least (float32 4.8e-7, float16 0.0039; real defects are 1e-2).
BIAS_TERMS = 4.0


@dataclass(frozen=True)
class TensorCheck:
    """One constant tensor of one LSTM op against the source's array."""

    op: int  # the LSTM op's position among the file's LSTM ops
    name: str  # its slot name (tflite-lstm-op.md §2)
    dtype: str
    max_abs_error: float  # |file value - source value| at the worst element
    steps: float  # that error in steps of the file's type there (quantization step or float ulp)
    step: float  # that step
    allowed: float  # steps the type allows
    clamped: int = 0  # source values beyond the integer range, stored at its end
    shape_error: str = ""

    @property
    def passed(self) -> bool:
        return not self.shape_error and self.steps <= self.allowed

    def describe(self, ops: int = 1) -> str:
        """e.g. 'forget_gate_bias: off by 0.2 = 51 steps of 0.0039'."""
        where = f"LSTM op {self.op} " if ops > 1 else ""
        if self.shape_error:
            return f"{where}{self.name}: {self.shape_error}"
        return (
            f"{where}{self.name}: off by {self.max_abs_error:.3g} = {self.steps:.3g} steps of {self.step:.2g} "
            f"({self.dtype}; allowed {self.allowed:g} steps)"
        )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def _stored(model: Any, index: int) -> Any:
    """The tensor holding the slot's data: itself, or the input of the DEQUANTIZE that produces it."""
    t = model.tensors[index]
    if t.data is not None:
        return t
    for op in model.operators:
        if op.opcode == Op.DEQUANTIZE and op.outputs and op.outputs[0] == index:
            return model.tensors[op.inputs[0]]
    return t


def _rows(a: np.ndarray) -> Iterator[slice]:
    """Row blocks of about CHUNK elements (vectors: one block)."""
    if a.ndim < 2:
        yield slice(None)
        return
    per = max(1, CHUNK // max(1, int(np.prod(a.shape[1:]))))
    for r in range(0, a.shape[0], per):
        yield slice(r, r + per)


def _float_steps(data: np.ndarray, src: np.ndarray, floor: float = 0.0) -> tuple[float, float, float]:
    """(worst error, in ulps of the file's float type at the source value (at least at `floor`), that ulp)."""
    worst = (0.0, 0.0, 0.0)
    same_type = src.dtype == data.dtype
    for rows in _rows(data):
        if same_type and np.array_equal(data[rows], src[rows]):
            continue  # stored as the source stores it: exact (the common case, and the cheap one)
        ref = np.asarray(src[rows], np.float64)
        err = np.abs(np.asarray(data[rows], np.float64) - ref)
        ulp = np.spacing(np.maximum(np.abs(ref), floor).astype(data.dtype)).astype(np.float64)
        steps = err / ulp
        k = int(np.argmax(steps)) if steps.size else 0
        if steps.size and steps.flat[k] > worst[1]:
            worst = (float(err.flat[k]), float(steps.flat[k]), float(ulp.flat[k]))
    return worst


def _int_steps(t: Any, src: np.ndarray, folded: bool) -> tuple[float, float, float, int]:
    """(worst error against the clamped source value, in the tensor's steps, that step, clamped count).

    folded: a bias the writer summed in float32 (forget bias, two framework biases) before quantizing:
    that float32 rounding of the value is allowed on top of the half step."""
    q = t.quantization
    info = np.iinfo(t.dtype)
    scale, zero = np.asarray(q.scale, np.float64), np.asarray(q.zero_point, np.float64)
    axis = q.quantized_dimension if scale.size > 1 else None
    worst, clamped = (0.0, 0.0, 0.0), 0
    for rows in _rows(t.data):
        s, z = scale, zero
        if axis is not None:  # per channel: parameters along `axis`, cut to the rows in this block
            shape = [1] * t.data.ndim
            shape[axis] = -1
            s, z = scale.reshape(shape), zero.reshape(shape)
            if axis == 0:
                s, z = s[rows], z[rows]
        codes = np.asarray(t.data[rows], np.float64) - z
        real = codes * s
        ref = np.asarray(src[rows], np.float64)
        lo, hi = (info.min - z) * s, (info.max - z) * s
        clamped += int(np.count_nonzero((ref < lo - s / 2) | (ref > hi + s / 2)))
        # The scale is stored in float32: a quantizer that divided by the unrounded scale is off by up to
        # one float32 rounding of it per code, which matters for int32 biases with large codes.
        err = np.maximum(np.abs(real - np.clip(ref, lo, hi)) - np.abs(codes) * s * FLOAT32_EPS, 0.0)
        if folded:
            err = np.maximum(err - 2 * np.spacing(np.maximum(np.abs(ref), BIAS_TERMS).astype(np.float32)), 0.0)
        steps = err / np.broadcast_to(s, err.shape)
        k = int(np.argmax(steps)) if steps.size else 0
        if steps.size and steps.flat[k] > worst[1]:
            worst = (
                float(np.abs(real - ref).flat[k]),
                float(steps.flat[k]),
                float(np.broadcast_to(s, err.shape).flat[k]),
            )
    return (*worst, clamped)


def compare_tensor(op: int, name: str, t: Any, src: np.ndarray, folded: frozenset[str] | None = None) -> TensorCheck:
    """One file tensor (already resolved to the one holding data) against the source's array; `folded`: the
    bias names the writer may have summed from several terms (None: every bias)."""
    dtype = np.dtype(t.dtype).name
    if t.data is None or not isinstance(t.data, np.ndarray):
        return TensorCheck(op, name, dtype, float("inf"), float("inf"), 0.0, 0.5, shape_error="holds no data")
    if tuple(t.data.shape) != tuple(src.shape):
        why = f"shape {list(t.data.shape)} in the file, {list(src.shape)} in the source"
        return TensorCheck(op, name, dtype, float("inf"), float("inf"), 0.0, 0.5, shape_error=why)
    # a folded sum (forget bias, two framework biases): one more rounding; any other bias is exact (a tf1 cell
    # bias 2 float32 ulps off, an int8 layer-norm bias 30 codes off passed under the folded allowance)
    bias = name.endswith("_bias") and (folded is None or name.rsplit(" ", 1)[-1] in folded)
    if t.data.dtype.kind == "f":
        err, steps, step = _float_steps(t.data, src, BIAS_TERMS if bias else 0.0)
        return TensorCheck(op, name, dtype, err, steps, step, 1.0 if bias else 0.5)
    if t.quantization is None or not len(t.quantization.scale):
        why = "integer codes without a scale"
        return TensorCheck(op, name, dtype, float("inf"), float("inf"), 0.0, 0.5, shape_error=why)
    err, steps, step, clamped = _int_steps(t, src, bias)
    return TensorCheck(op, name, dtype, err, steps, step, 0.5 + STEP_SLACK, clamped)


def check_tensors(model: Any, op_indices: Sequence[int], cells: Sequence[Cell]) -> list[TensorCheck]:
    """Every constant input the file's LSTM ops and the source cells (in op order) both have.

    Inputs only one side has are the structural check's (check/source/structure.py)."""
    found: list[TensorCheck] = []
    for k, (index, cell) in enumerate(zip(op_indices, cells, strict=True)):
        if cell.tensors is None:
            continue
        src = cell.tensors()
        inputs = model.operators[index].inputs
        for slot, (name, _, _) in SLOTS.items():
            in_file = slot < len(inputs) and inputs[slot] >= 0
            if name in src and in_file:
                t = _stored(model, inputs[slot])
                found.append(compare_tensor(k, name, t, np.asarray(src[name]), cell.folded))
            elif name in src or in_file:
                found += _one_sided(k, name, np.asarray(src[name]) if name in src else None, model, inputs, slot)
    return found


def _one_sided(k: int, name: str, src: np.ndarray | None, model: Any, inputs: Any, slot: int) -> list[TensorCheck]:
    """A tensor only one side has: fine when it is all zeros there (an absent bias is a zero bias), else
    a failure (the structural check says which is present; this says it changes the numbers)."""
    if src is not None:
        top, where = float(np.max(np.abs(src), initial=0.0)), "in the source, absent from the file"
        dtype = np.dtype(src.dtype).name
    else:
        t = _stored(model, inputs[slot])
        if t.data is None or not isinstance(t.data, np.ndarray):
            return []
        q = t.quantization
        codes = np.asarray(t.data, np.float64) - (
            np.asarray(q.zero_point, np.float64).flat[0] if q is not None and len(q.zero_point) else 0.0
        )
        top, where = float(np.max(np.abs(codes), initial=0.0)), "in the file, absent from the source"
        dtype = np.dtype(t.dtype).name
    if top == 0.0:
        return []
    why = f"{where}, with values up to {top:.3g}" if src is not None else f"{where}, not all zero"
    return [TensorCheck(k, name, dtype, top, float("inf"), 0.0, 0.5, shape_error=why)]


def worst(checks: Sequence[TensorCheck]) -> TensorCheck | None:
    """The failing tensor furthest outside its allowance (else None)."""
    bad = [c for c in checks if not c.passed]
    return max(bad, key=lambda c: c.steps) if bad else None
