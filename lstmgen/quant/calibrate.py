"""Activation ranges for int8 quantization, from representative inputs run through the NumPy graph."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lstmgen.errors import ConfigError
from lstmgen.numerics.graph import evaluate
from lstmgen.progress import task
from lstmgen.tflite.records import ModelRecord
from lstmgen.tflite.schema import BuiltinOperator as Op

RANDOM_SOURCE = "random (SMOKE TEST ONLY: standard-normal inputs, not representative of real data)"


@dataclass(frozen=True)
class LstmRanges:
    """Internal ranges of one LSTM op over all calibration samples and time steps."""

    gate_pre_abs_max: dict[str, float]  # gate -> max |matmul sum + peephole| (before layer norm)
    cell_abs_max: float  # max |c_t| (after cell_clip)
    hidden: tuple[float, float]  # (min, max) of m = o * g(c), before projection
    output: tuple[float, float]  # (min, max) of h


@dataclass(frozen=True)
class CalibrationStats:
    """Real-valued (min, max) per activation tensor index of the float model, plus LSTM internals."""

    tensors: dict[int, tuple[float, float]]
    lstm: dict[int, LstmRanges]  # operator index -> ranges
    num_samples: int
    source: str = "data"
    smoke_test: bool = False
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary (for metadata and --json output)."""
        return {
            "source": self.source,
            "smoke_test": self.smoke_test,
            "num_samples": self.num_samples,
            "tensors": {str(k): list(v) for k, v in sorted(self.tensors.items())},
            "lstm": {
                str(k): {
                    "gate_pre_abs_max": dict(r.gate_pre_abs_max),
                    "cell_abs_max": r.cell_abs_max,
                    "hidden": list(r.hidden),
                    "output": list(r.output),
                }
                for k, r in sorted(self.lstm.items())
            },
        }


def _single_input(model: ModelRecord) -> int:
    if len(model.inputs) != 1:
        raise ConfigError(
            f"calibration needs a model with exactly one input; this one has {len(model.inputs)}. "
            "Calibrate each input model separately."
        )
    return model.inputs[0]


def _check_samples(model: ModelRecord, samples: Any) -> np.ndarray:
    """samples must be [n, *input shape] (time axis free when the model's is dynamic), finite, n >= 1."""
    index = _single_input(model)
    t = model.tensors[index]
    shape = tuple(t.shape)
    sig = tuple(t.shape_signature) if t.shape_signature is not None else shape
    want = "[n, " + ", ".join("T" if s == -1 else str(d) for d, s in zip(shape, sig, strict=True)) + "]"
    try:
        arr = np.asarray(samples)
    except Exception as exc:  # ragged lists and the like
        raise ConfigError(f"calibration data is not a numeric array ({exc}); expected shape {want}.") from None
    if arr.dtype.kind not in "fiu":
        raise ConfigError(f"calibration data has dtype {arr.dtype}; expected real numbers of shape {want}.")
    if arr.ndim != len(shape) + 1:
        hint = ""
        if arr.ndim == len(shape):
            hint = f" If this is one batch of samples, add a leading sample axis: x[None] has shape {[1, *arr.shape]}."
        raise ConfigError(
            f"calibration data has shape {list(arr.shape)}, expected {want} (n samples of the model input "
            f"{list(shape)}).{hint}"
        )
    if arr.shape[0] == 0:
        raise ConfigError(
            f"the calibration set is empty (shape {list(arr.shape)}). int8 ranges come from representative "
            "inputs: pass at least one sample (tens to hundreds are typical), or --calibration random for a "
            "smoke test."
        )
    for axis, (got, d, s) in enumerate(zip(arr.shape[1:], shape, sig, strict=True)):
        if s != -1 and got != d:
            raise ConfigError(
                f"calibration data has shape {list(arr.shape)}, expected {want}: axis {axis + 1} is {got}, the "
                f"model input fixes it to {d}. Reshape the samples (sample k is fed as data[k])."
            )
    arr = arr.astype(np.float64)
    bad = ~np.isfinite(arr)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ConfigError(
            f"calibration data contains {int(bad.sum())} NaN/Inf value(s), the first at index {list(first)}. "
            "Ranges computed from them would be meaningless; clean or drop those samples."
        )
    return arr


CHUNK_BYTES = 256 * 2**20  # float64 internals held per batched evaluation (the samples go in chunks below it)


def _batched(arr: np.ndarray, time_major: bool, chunk: int) -> list[np.ndarray]:
    """The samples [n, *input] as chunks of `chunk` samples stacked along the batch axis: one evaluation each.
    Every op of the graph treats batch rows independently (the LSTM's matmuls per row, the others along the
    time or feature axes), so a chunk computes exactly the per-sample values, side by side."""
    b_axis = 1 if time_major else 0
    out = []
    for start in range(0, len(arr), chunk):
        part = arr[start : start + chunk]  # [k, *input]
        out.append(np.concatenate(list(part), axis=b_axis) if len(part) > 1 else part[0])
    return out


def _chunk_size(model: ModelRecord, arr: np.ndarray, time_major: bool) -> int:
    """Samples per evaluation: what keeps the recorded internals ([T, rows, width] float64) under CHUNK_BYTES."""
    widest = max((int(np.prod(t.shape[-1:])) for t in model.tensors if t.data is None), default=1)
    per_sample = 8 * 16 * widest * int(np.prod(arr.shape[1:-1]))  # ~16 recorded tensors of the widest width
    return max(1, min(len(arr), CHUNK_BYTES // max(per_sample, 1)))


def calibrate(model: ModelRecord, samples: np.ndarray, *, source: str = "data") -> CalibrationStats:
    """Run the samples through graph.evaluate (zero initial state), batched, and record real-valued ranges."""
    arr = _check_samples(model, samples)
    index = _single_input(model)
    lo: dict[int, float] = {}
    hi: dict[int, float] = {}
    internals: dict[int, dict[str, list[float]]] = {}

    def note(i: int, v: np.ndarray) -> None:
        lo[i] = min(lo.get(i, np.inf), float(v.min()))
        hi[i] = max(hi.get(i, -np.inf), float(v.max()))

    def trace(op_index: int, rec: dict[str, np.ndarray]) -> None:
        d = internals.setdefault(op_index, {})
        for k, v in rec.items():
            if k.endswith("_gate_pre") or k == "cell_state":
                d.setdefault(k, [0.0])[0] = max(d.get(k, [0.0])[0], float(np.abs(v).max()))
            else:
                cur = d.setdefault(k, [np.inf, -np.inf])
                cur[0], cur[1] = min(cur[0], float(v.min())), max(cur[1], float(v.max()))

    lstms = [op for op in model.operators if op.opcode == Op.UNIDIRECTIONAL_SEQUENCE_LSTM]
    time_major = bool(lstms and lstms[0].options is not None and lstms[0].options.get("TimeMajor", False))
    steps = int(arr.shape[1 if time_major else 2]) if arr.ndim == 4 else 1
    chunks = _batched(arr, time_major, _chunk_size(model, arr, time_major)) if arr.ndim == 4 else list(arr)
    with task("calibrating", len(chunks) * len(lstms) * steps):
        for x in chunks:
            ev = evaluate(model, {index: x}, trace=trace)
            note(index, x)
            for op in model.operators:
                for o in op.outputs:
                    if o in ev.values:
                        note(o, ev.values[o])
            del ev
    ranges = {
        k: LstmRanges(
            gate_pre_abs_max={
                g: d[f"{g}_gate_pre"][0] for g in ("input", "forget", "cell", "output") if f"{g}_gate_pre" in d
            },
            cell_abs_max=d["cell_state"][0],
            hidden=(d["hidden"][0], d["hidden"][1]),
            output=(d["output"][0], d["output"][1]),
        )
        for k, d in internals.items()
    }
    return CalibrationStats({i: (lo[i], hi[i]) for i in lo}, ranges, int(arr.shape[0]), source, False)


RANDOM_TIME_STEPS = 32  # a dynamic time axis is calibrated over this many steps (states grow with time)


def random_calibration(model: ModelRecord, n: int = 8, seed: int = 0) -> CalibrationStats:
    """SMOKE TEST ONLY: calibrate on standard-normal inputs; the stats carry smoke_test=True and say so."""
    if n < 1:
        raise ConfigError(f"random calibration needs n >= 1 samples, got {n}.")
    t = model.tensors[_single_input(model)]
    sig = t.shape_signature or t.shape
    shape = tuple(RANDOM_TIME_STEPS if s == -1 else d for d, s in zip(t.shape, sig, strict=True))
    samples = np.random.default_rng(seed).standard_normal((n, *shape))
    stats = calibrate(model, samples, source=RANDOM_SOURCE)
    return CalibrationStats(
        stats.tensors,
        stats.lstm,
        stats.num_samples,
        RANDOM_SOURCE,
        True,
        ("ranges come from random inputs; accuracy on real data is unknown",),
    )
