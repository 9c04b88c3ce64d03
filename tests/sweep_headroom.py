"""Headroom of the quantized source bound on right models: bound / actual error at each compared input's worst step.

Right models built and verified by lstmgen (6 seeds x 3 cells, the quantized modes, 20 steps, 8 calibration
inputs, all compared), as docs/verification.md's table reports. A headroom below 1 is a right model that fails.

    PYTHONPATH=. python tests/sweep_headroom.py [--seeds 6] [--modes int8 int16x8 ...] [--layer-norm] [--drawn]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from lstmgen.build import build
from lstmgen.check import against
from lstmgen.errors import VerificationError

CELLS = {  # name: (units, inputs, weight std)
    "16x8 std 0.5": (16, 8, 0.5),
    "64x32 std 0.3": (64, 32, 0.3),
    "32x8 std 1.0": (32, 8, 1.0),
}
MODES = ("float16", "dynamic-int8", "int8", "int16x8")
STEPS, CALIBRATION = 20, 8


def _weights(units: int, inputs: int, std: float, seed: int, layer_norm: bool) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    w = {}
    for g in ("input", "forget", "cell", "output"):
        w[f"input_to_{g}_weights"] = (rng.standard_normal((units, inputs)) * std).astype(np.float32)
        w[f"recurrent_to_{g}_weights"] = (rng.standard_normal((units, units)) * std).astype(np.float32)
        w[f"{g}_gate_bias"] = (rng.standard_normal(units) * std).astype(np.float32)
        if layer_norm:
            w[f"{g}_layer_norm_coefficients"] = (1 + rng.standard_normal(units) * 0.5).astype(np.float32)
    return w


def headrooms(mode: str, seeds: int, layer_norm: bool, drawn: bool) -> list[float]:
    """One headroom per compared input of every right model of `mode` (drawn: the bound draws the input's
    rounding at random, as before it took it exactly)."""
    found: list[float] = []
    real, bound = against.quantized_vs_source, against.source_bound
    if drawn:
        against.source_bound = lambda *a, **k: bound(*a[:7])

    def spy(src: Any, name: str, model: Any, out: int, samples: Any, **kw: Any) -> Any:
        bound = real(src, name, model, out, samples, **kw)
        if bound is not None:
            t_axis = kw["time_axis"]
            for s in samples:
                err = np.abs(np.asarray(s.y, np.float64).reshape(s.y_src.shape) - s.y_src)
                steps = np.moveaxis(err, t_axis, 0).reshape(err.shape[t_axis], -1).max(axis=1)
                limit = np.broadcast_to(bound, steps.shape)
                k = int(np.argmax(steps))
                found.append(float(limit[k] / steps[k]) if steps[k] > 0 else float("inf"))
        return bound

    against.quantized_vs_source = spy
    from lstmgen.check import verify

    verify.quantized_vs_source = spy
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for name, (units, inputs, std) in CELLS.items():
                for seed in range(seeds):
                    npz, calib = Path(tmp) / "w.npz", Path(tmp) / "c.npy"
                    np.savez(npz, **_weights(units, inputs, std, seed, layer_norm))
                    xs = np.random.default_rng(100 + seed).standard_normal((CALIBRATION, 1, STEPS, inputs))
                    np.save(calib, xs.astype(np.float32))
                    options = {"time_steps": STEPS, "quantize": mode, "layer_norm": layer_norm}
                    integer = mode in ("int8", "int16x8")
                    try:
                        build(Path(tmp) / "m.tflite", options, npz, calibration_data=calib if integer else None)
                        ok = True
                    except VerificationError:
                        ok = False
                    print(f"  {mode} {name} seed {seed}: {'PASS' if ok else 'FAIL'}", flush=True)
    finally:
        against.quantized_vs_source = real
        verify.quantized_vs_source = real
        against.source_bound = bound
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=6)
    ap.add_argument("--modes", nargs="+", default=list(MODES))
    ap.add_argument("--layer-norm", action="store_true")
    ap.add_argument("--drawn", action="store_true", help="the input's rounding drawn at random (the old bound)")
    args = ap.parse_args()
    print("| mode | comparisons | smallest headroom | median |\n|---|---|---|---|")
    for mode in args.modes:
        h = headrooms(mode, args.seeds, args.layer_norm, args.drawn)
        print(f"| {mode} | {len(h)} | {min(h):.2g}x | {statistics.median(h):.2g}x |", flush=True)


if __name__ == "__main__":
    main()
