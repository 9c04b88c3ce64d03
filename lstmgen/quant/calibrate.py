"""Activation ranges for int8 quantization, from representative inputs run through the NumPy graph."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lstmgen.errors import ConfigError
from lstmgen.numerics.graph import constant_values, evaluate
from lstmgen.progress import expect, task
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


CHUNK_BYTES = 256 * 2**20  # internals held per batched evaluation (the samples go in chunks below it)
# Screening: the float32 pass picks the samples whose extremes come within SCREEN_MARGIN (relative to the
# quantity's reach) of the largest; float32's own error on the picked ones must stay under an eighth of it.
SCREEN_MARGIN = 1e-3
SCREEN_MIN_SAMPLES = 8  # fewer samples than this go straight to float64 (nothing to save)

Key = tuple[int, ...] | tuple[int, str]  # (tensor index,) or (LSTM op index, internal's name)
# Per sample: (lowest, highest) of each recorded quantity; None: a value whose samples cannot be told apart.
Extremes = dict[Key, tuple[np.ndarray, np.ndarray]]


def _batched(arr: np.ndarray, time_major: bool, chunk: int) -> Iterator[np.ndarray]:
    """The samples [n, *input] as chunks of `chunk` samples stacked along the batch axis: one evaluation each.
    Every op of the graph treats batch rows independently (the LSTM's matmuls per row, the others along the
    time or feature axes), so a chunk computes exactly the per-sample values, side by side."""
    b_axis = 1 if time_major else 0
    for start in range(0, len(arr), chunk):
        part = arr[start : start + chunk]  # [k, *input]
        yield np.concatenate(list(part), axis=b_axis) if len(part) > 1 else part[0]


def _chunk_size(model: ModelRecord, arr: np.ndarray, itemsize: int = 8) -> int:
    """Samples per evaluation: what keeps the recorded internals ([T, rows, width]) under CHUNK_BYTES
    (inputs of another rank than [batch, time, features]: one at a time)."""
    if arr.ndim != 4:
        return 1
    widest = max((int(np.prod(t.shape[-1:])) for t in model.tensors if t.data is None), default=1)
    per_sample = itemsize * 16 * widest * int(np.prod(arr.shape[1:-1]))  # ~16 recorded tensors of the widest
    return max(1, min(len(arr), CHUNK_BYTES // max(per_sample, 1)))


def _by_sample(v: np.ndarray, axis: int | None, k: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Each of the k samples' (lowest, highest) in v, whose `axis` holds them side by side, sample-major."""
    if k == 1:
        return np.array([v.min()]), np.array([v.max()])
    if axis is None or v.shape[axis] % k:
        return None
    split = v.reshape(*v.shape[:axis], k, v.shape[axis] // k, *v.shape[axis + 1 :])
    rest = tuple(a for a in range(split.ndim) if a != axis)
    return split.min(axis=rest), split.max(axis=rest)


def _sample_axis(declared: Sequence[int], shape: tuple[int, ...], k: int) -> int | None:
    """The axis of a graph value that holds the chunk's k samples: the one k times its declared size."""
    if len(declared) != len(shape):
        return None
    axes = [a for a, (d, got) in enumerate(zip(declared, shape, strict=True)) if got == k * d]
    if len(axes) > 1:  # also a dynamic time axis declared 1 (or 0) that came out k: the one whose size moved
        axes = [a for a in axes if declared[a] != shape[a]]
    return axes[0] if len(axes) == 1 else None


def _recorded(
    model: ModelRecord, feeds: dict[int, np.ndarray], k: int, constants: dict[int, np.ndarray], precision: Any
) -> list[tuple[Key, np.ndarray, int | None]]:
    """One evaluation's LSTM internals ([T, rows, ·]) and op outputs, each with the axis its k samples are on."""
    traced: list[tuple[int, dict[str, np.ndarray]]] = []
    ev = evaluate(
        model, feeds, trace=lambda op, rec: traced.append((op, rec)), constants=constants, precision=precision
    )
    found: list[tuple[Key, np.ndarray, int | None]] = [
        ((op, name), v, 1) for op, rec in traced for name, v in rec.items()
    ]
    for o in sorted({o for op in model.operators for o in op.outputs if o in ev.values}):
        v = ev.values[o]
        found.append(((o,), v, _sample_axis(model.tensors[o].shape, v.shape, k)))
    return found


def _extremes(model: ModelRecord, arr: np.ndarray, time_major: bool, precision: Any) -> Extremes | None:
    """Run the samples through graph.evaluate in `precision`, batched, and keep each sample's extremes of
    every op output and LSTM internal. None: some value does not show its samples apart (float64 then
    keeps each chunk's extremes for all of its samples, which the overall range needs alone)."""
    index, itemsize = _single_input(model), np.dtype(precision).itemsize
    constants = {i: v.astype(precision) for i, v in constant_values(model).items()}
    chunk = _chunk_size(model, arr, itemsize)
    found: dict[Key, tuple[list[np.ndarray], list[np.ndarray]]] = {}

    def keep(key: Key, pair: tuple[np.ndarray, np.ndarray] | None, k: int, v: np.ndarray) -> bool:
        if pair is None and precision != np.float64:
            return False
        lo, hi = pair if pair is not None else (np.full(k, v.min()), np.full(k, v.max()))
        los, his = found.setdefault(key, ([], []))
        los.append(lo)
        his.append(hi)
        return True

    for start, x in zip(range(0, len(arr), chunk), _batched(arr, time_major, chunk), strict=True):
        k = min(chunk, len(arr) - start)
        for key, v, axis in _recorded(model, {index: x}, k, constants, precision):
            if not keep(key, _by_sample(v, axis, k), k, v):
                return None
    return {key: (np.concatenate(los), np.concatenate(his)) for key, (los, his) in found.items()}


def _candidates(screen: Extremes) -> np.ndarray:
    """The samples whose float32 extremes come within SCREEN_MARGIN of the reach of any quantity's range."""
    pick = np.zeros(len(next(iter(screen.values()))[0]), bool)
    for lo, hi in screen.values():
        margin = SCREEN_MARGIN * max(float(np.abs(lo).max()), float(np.abs(hi).max()), 1e-30)
        # no shortcut for ties at the top: float32 ties where float64 does not (a sigmoid at 1.0, inputs
        # closer than float32's step), so every sample within the margin runs
        pick |= (hi >= hi.max() - margin) | (lo <= lo.min() + margin)
    return np.flatnonzero(pick)


def _agree(screen: Extremes, exact: Extremes, picked: np.ndarray) -> bool:
    """float32 stayed within an eighth of the margin of float64 on the picked samples, for every quantity."""
    for key, (lo, hi) in screen.items():
        margin = SCREEN_MARGIN * max(float(np.abs(lo).max()), float(np.abs(hi).max()), 1e-30)
        lo64, hi64 = exact[key]
        if not max(np.abs(lo[picked] - lo64).max(), np.abs(hi[picked] - hi64).max()) <= margin / 8:  # NaN too
            return False
    return True


def _evaluations(arr: np.ndarray, chunk: int) -> int:
    return -(-len(arr) // chunk)


def _screened(model: ModelRecord, arr: np.ndarray, time_major: bool, steps: int) -> Extremes:
    """Every sample's extremes as float64 gives them where they decide a range: a float32 pass over all
    samples picks those near an extreme and float64 runs only them (1024 units, 100 samples: 12 picked);
    the float64 pass over all when float32 cannot pick (or strays: a chaotic cell), or nothing is saved."""
    screen = None
    if len(arr) >= SCREEN_MIN_SAMPLES:
        with np.errstate(all="ignore"):  # an overflow to inf or NaN is found below, and float64 runs instead
            screen = _extremes(model, arr, time_major, np.float32)
    if screen is not None and not all(np.isfinite(lo).all() and np.isfinite(hi).all() for lo, hi in screen.values()):
        screen = None  # float32 overflowed (inputs beyond its range): it cannot tell which samples matter
    picked = _candidates(screen) if screen is not None else np.arange(len(arr))
    if screen is not None and 2 * len(picked) <= len(arr):
        exact = _extremes(model, arr[picked], time_major, np.float64)
        if exact is not None and _agree(screen, exact, picked):
            return exact
    if screen is not None:  # the progress total: float32's evaluations, the picked, then every sample's
        expect(steps * (_evaluations(arr, _chunk_size(model, arr, 4)) + 1 + _evaluations(arr, _chunk_size(model, arr))))
    full = _extremes(model, arr, time_major, np.float64)
    assert full is not None  # float64 keeps a chunk's extremes when its samples cannot be told apart
    return full


def calibrate(model: ModelRecord, samples: np.ndarray, *, source: str = "data") -> CalibrationStats:
    """Run the samples through graph.evaluate (zero initial state), batched, and record real-valued ranges:
    the extremes of every sample, exactly as float64 gives them (a float32 pass picks which to run, above)."""
    arr = _check_samples(model, samples)
    index = _single_input(model)
    lstms = [op for op in model.operators if op.opcode == Op.UNIDIRECTIONAL_SEQUENCE_LSTM]
    time_major = bool(lstms and lstms[0].options is not None and lstms[0].options.get("TimeMajor", False))
    steps = int(arr.shape[1 if time_major else 2]) if arr.ndim == 4 else 1
    screening = len(arr) >= SCREEN_MIN_SAMPLES
    evaluations = _evaluations(arr, _chunk_size(model, arr, 4 if screening else 8)) + int(screening)
    with task("calibrating", evaluations * len(lstms) * steps):  # with screening: float32's, then about one
        found = _screened(model, arr, time_major, len(lstms) * steps)
    span = {key: (float(lo.min()), float(hi.max())) for key, (lo, hi) in found.items()}
    tensors = {key[0]: v for key, v in span.items() if len(key) == 1} | {index: (float(arr.min()), float(arr.max()))}
    internals: dict[int, dict[str, tuple[float, float]]] = {}
    for key, v in span.items():
        if len(key) == 2:
            internals.setdefault(int(key[0]), {})[str(key[1])] = v
    ranges = {k: _lstm_ranges(d) for k, d in internals.items()}
    return CalibrationStats(tensors, ranges, int(arr.shape[0]), source, False)


def _lstm_ranges(d: dict[str, tuple[float, float]]) -> LstmRanges:
    def reach(name: str) -> float:
        return max(0.0, -d[name][0], d[name][1])

    gates = {g: reach(f"{g}_gate_pre") for g in ("input", "forget", "cell", "output") if f"{g}_gate_pre" in d}
    return LstmRanges(gates, reach("cell_state"), d["hidden"], d["output"])


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
