"""The float32 sensitivity of a float64 reference: re-runs with float32-sized perturbations give a per-step bound.

Steep cells (large weights, long sequences) amplify a float32 kernel's rounding step after step, so the
reference side measures it: FLOAT_RUNS re-runs of the float64 reference with float32-sized relative
perturbations of (x_t, h, c) before every step; FLOAT_MARGIN x their largest deviation per time step is
the bound where it exceeds the fixed floor (see docs/verification.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from lstmgen.numerics.reference import Jitter

FLOAT32_ROUNDOFF = 2.0**-24  # float32's unit roundoff
FLOAT_RUNS = 3  # perturbed reference runs per start state
FLOAT_MARGIN = 4.0  # the kernel's own rounding is one more draw of the same spread

Finals = list[tuple[np.ndarray, np.ndarray]]
Run = Callable[[Jitter | None], tuple[np.ndarray, Finals]]  # a reference run: output and final (h, c) per op


def float32_jitter(rng: np.random.Generator) -> Jitter:
    """Relative perturbations the size of float32 rounding: x_t and h enter dot products of fan-in
    K = I + P, whose float32 sums carry ~sqrt(K) roundings; c is rounded once per update."""

    def jitter(x_t: np.ndarray, h: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        amp = FLOAT32_ROUNDOFF * np.sqrt(x_t.shape[-1] + h.shape[-1])
        return (
            x_t * (1.0 + amp * rng.uniform(-1.0, 1.0, x_t.shape)),
            h * (1.0 + amp * rng.uniform(-1.0, 1.0, h.shape)),
            c * (1.0 + FLOAT32_ROUNDOFF * rng.uniform(-1.0, 1.0, c.shape)),
        )

    return jitter


@dataclass
class FloatBound:
    """The reference's own float32 sensitivity (FLOAT_MARGIN x the largest deviation of perturbed runs):
    per time step of the output (broadcastable to it), and per op's final h and c."""

    output: np.ndarray
    finals: list[tuple[float, float]]

    @property
    def largest(self) -> float:
        return max([float(self.output.max(initial=0.0))] + [max(hc) for hc in self.finals])


def float_bound(
    run: Run, y_ref: np.ndarray, finals_ref: Finals, time_axis: int, seed: int, runs: int = FLOAT_RUNS
) -> FloatBound:
    """Re-run the reference `runs` times with float32-sized perturbations; the spread per time step."""
    rng = np.random.default_rng(seed)
    dev = np.zeros(y_ref.shape)
    dev_finals = [(0.0, 0.0)] * len(finals_ref)
    for _ in range(runs):
        y, finals = run(float32_jitter(rng))
        dev = np.maximum(dev, np.abs(np.asarray(y, np.float64).reshape(y_ref.shape) - y_ref))
        dev_finals = [
            (max(dh, float(np.abs(h - h_ref).max(initial=0.0))), max(dc, float(np.abs(c - c_ref).max(initial=0.0))))
            for (dh, dc), (h, c), (h_ref, c_ref) in zip(dev_finals, finals, finals_ref, strict=True)
        ]
    other = tuple(a for a in range(dev.ndim) if a != time_axis) if dev.ndim == 3 else tuple(range(dev.ndim))
    per_step = dev.max(axis=other, keepdims=True, initial=0.0)
    return FloatBound(FLOAT_MARGIN * per_step, [(FLOAT_MARGIN * dh, FLOAT_MARGIN * dc) for dh, dc in dev_finals])
