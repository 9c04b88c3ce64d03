"""The quantized comparator against the float source, shared by whole models and LSTM ops inside a graph.

The bound follows from the file's own quantization steps (check/tolerance.py, weights=True): the kernel's
rounding and each constant's rounding to its grid, propagated through the file's reference; or the
user's --max-error when given. A --calibration random smoke build reports the error without gating it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from lstmgen.check.report import Comparison, SourceReport
from lstmgen.check.tolerance import derive_tolerance
from lstmgen.numerics.graph import constant_values, evaluate
from lstmgen.tflite.records import ModelRecord

BOUND_SAMPLES = 4  # inputs the source bound is derived on (the largest per step of them applies to all)
# The weights' rounding is one fixed draw, not a fresh one per run, and a recurrent cell carries it along:
# 4x the largest simulated deviation (measured headroom on right models: docs/verification.md).
SOURCE_SAFETY = 4.0
# Steps where the bound exceeds this fraction of max(1, max|source|) prove little: the comparison stops
# before the first of them and says so (a chaotic cell amplifies quantization as it does float32 rounding).
LOOSE_FRACTION = 0.1
SMOKE_NOTE = (
    "SMOKE TEST: calibrated on random inputs (--calibration random), so the output against the float source "
    "is reported, not gated; the tensors and the kernel check still are. Calibrate on representative data "
    "(--calibration-data) for a model to ship"
)


@dataclass
class Sample:
    """One input run: the model's graph fed `feeds` (its input on its grid) gave `y`; the source gave `y_src`."""

    feeds: dict[int, np.ndarray]
    y: np.ndarray
    y_src: np.ndarray


def _per_step(err: np.ndarray, time_axis: int) -> np.ndarray:
    if err.ndim != 3:
        return np.array([float(err.max(initial=0.0))])
    return np.moveaxis(err, time_axis, 0).reshape(err.shape[time_axis], -1).max(axis=1, initial=0.0)


def source_bound(
    model: ModelRecord,
    out: int,
    inputs: Sequence[Mapping[int, np.ndarray]],
    mode: str,
    time_axis: int,
    seed: int,
    constants: Mapping[int, np.ndarray] | None = None,
    given: Sequence[Mapping[int, np.ndarray]] | None = None,
) -> np.ndarray:
    """Per time step: how far the file may be from the float source given its own quantization steps.

    `inputs`: the feeds of the compared inputs (the file's inputs on its grid; the outputs are not needed);
    `given`: the same inputs as the source got them, when known (the runs then take the rounding from one to
    the other exactly; else they draw it). The first BOUND_SAMPLES run as one batch (one clean and RUNS noisy
    evaluations in all): the per-step maximum over the batch is the maximum over the samples."""
    use = list(inputs[:BOUND_SAMPLES])
    if not use:
        return np.zeros(1)
    exact = list(given[: len(use)]) if given is not None and len(given) >= len(use) else None
    feeds, as_given = _batch(use, 1 - time_axis), _batch(exact, 1 - time_axis) if exact is not None else None
    constants = constant_values(model) if constants is None else constants  # widened once for every run
    values = evaluate(model, feeds, constants=constants).values
    ref = {i: values[i] for i in model.outputs}  # every output (the graph form's final states too): one is `out`
    derived = derive_tolerance(
        model, feeds, ref, mode=mode, seed=seed, safety=SOURCE_SAFETY, weights=True, constants=constants,
        given=as_given,
    )  # fmt: skip
    return derived[out].per_step


def _batch(inputs: Sequence[Mapping[int, np.ndarray]], axis: int) -> dict[int, np.ndarray]:
    """Several inputs as one batch along `axis` (3-D inputs; else the first alone)."""
    if len(inputs) > 1 and all(np.ndim(v) == 3 for s in inputs for v in s.values()):
        return {i: np.concatenate([np.asarray(s[i]) for s in inputs], axis=axis) for i in inputs[0]}
    return dict(inputs[0])


def _limits(steps: np.ndarray, bound: np.ndarray | None, max_error: float | None, y_src: np.ndarray) -> np.ndarray:
    """The allowed error per step: --max-error at every step; else the derived bound over its tight steps
    (the leading ones where it stays within LOOSE_FRACTION of the output's range; shorter array)."""
    if bound is None:
        return np.full(steps.shape, max_error)
    limit = np.broadcast_to(bound if bound.shape == steps.shape else bound.max(initial=0.0), steps.shape)
    loose = np.flatnonzero(limit > LOOSE_FRACTION * max(1.0, float(np.abs(y_src).max(initial=0.0))))
    return limit[: int(loose[0])] if loose.size else limit


def _scope(tight: int, total: int) -> str:
    if tight >= total:
        return ""
    if tight:
        return (
            f"steps 1-{tight} of {total}; later steps amplify the quantization beyond {LOOSE_FRACTION:g} of the "
            "output's range (the tensors are checked whatever the step)"
        )
    return (
        f"not compared: the file's own quantization moves the output by more than {LOOSE_FRACTION:g} of its "
        "range from the first step, so nothing shows that it computes the source (a failure)"
    )


def quantized_vs_source(
    src: SourceReport,
    name: str,
    model: ModelRecord,
    out: int,
    samples: Sequence[Sample],
    *,
    mode: str,
    time_axis: int,
    seed: int,
    smoke: bool = False,
    constants: Mapping[int, np.ndarray] | None = None,
    bound: np.ndarray | None = None,
) -> np.ndarray | None:
    """Append one Comparison: the largest error over `samples`, per time step within the bound; returns the
    bound (None: --max-error). `constants`: the model's constant_values, when the caller widened them
    already; `bound`: derived already on the same inputs (another runtime checking the same file)."""
    if src.max_error is not None:
        bound = None
    elif bound is None:
        bound = source_bound(model, out, [s.feeds for s in samples], mode, time_axis, seed, constants)
    ok, tight, total, errors = True, 1 << 30, 0, []
    for s in samples:
        err = np.abs(np.asarray(s.y, np.float64).reshape(s.y_src.shape) - s.y_src)
        steps = _per_step(err, time_axis)
        limit = _limits(steps, bound, src.max_error, s.y_src)
        tight, total = min(tight, limit.size), steps.size
        ok = ok and bool(np.all(steps[: limit.size] <= limit))
        errors.append((err, float(np.abs(s.y_src).max(initial=0.0))))
    top, rel, worst, step = _worst(errors, tight if 0 < tight < total else total, time_axis)
    beyond = _worst(errors, total, time_axis) if 0 < tight < total else None
    src.worst_time_step = step
    src.samples = len(samples)
    if bound is not None:  # its largest over the compared steps (the later ones are the scope note's)
        shown = bound[:tight] if bound.size == total and 0 < tight < total else bound
        src.tolerance = f"{mode} vs float source: derived from the file's quantization steps, up to {shown.max():.3g}"
    ok = ok and (tight > 0 or not total)  # a bound too coarse from the first step proves nothing: no pass
    if smoke:
        src.notes.append(SMOKE_NOTE)
        ok = True
    scope = _scope(tight, total)
    if beyond is not None and beyond[0] > top and beyond[3] is not None:  # the numbers above are the compared steps'
        scope += f"; beyond them the largest error is {beyond[0]:.3g}, at time step {beyond[3]}"
    src.checks.append(Comparison(name, max(top, 0.0), rel, worst, ok, scope))
    return bound


def _worst(
    errors: list[tuple[np.ndarray, float]], steps: int, time_axis: int
) -> tuple[float, float, list[int], int | None]:
    """The largest error over the first `steps` time steps of every sample's: (error, relative to that sample's
    largest source value, its index ([sample, ...] with several samples), its time step)."""
    top, rel, worst, step = -1.0, 0.0, [], None
    for k, (err, reach) in enumerate(errors):
        part = np.take(err, range(steps), axis=time_axis) if err.ndim == 3 else err
        if part.size and float(part.max()) > top:
            top = float(part.max())
            rel = top / max(reach, 1e-12)
            where = [int(i) for i in np.unravel_index(int(np.argmax(part)), part.shape)]
            worst = ([k] if len(errors) > 1 else []) + where
            step = where[time_axis] if err.ndim == 3 else None
    return top, rel, worst, step
