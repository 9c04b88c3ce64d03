"""Accuracy per quantization mode: the same 64-unit weights and data, max abs error against the float source.

Every mode is built by lstmgen from one weight file and calibrated (int8, int16x8) on the same
representative inputs; the error is measured on held-out inputs against the float64 NumPy reference
of the float weights (the float source). float/hybrid run in LiteRT, int8 in LiteRT and TFLite Micro,
int16x8 in TFLite Micro (no TFLite release runs 16x8 LSTMs).

    python benchmarks/bench_accuracy.py [--units 64] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from lstmgen.build import build
from lstmgen.numerics.graph import evaluate
from lstmgen.run import run_model
from lstmgen.tflite.reader import read_model

# (label, build options, runtime)
MODES: tuple[tuple[str, dict[str, Any], str], ...] = (
    ("float32", {}, "auto"),
    ("dynamic-int8 (hybrid, asymmetric inputs)", {"quantize": "dynamic-int8", "asymmetric_inputs": True}, "auto"),
    ("dynamic-int8 (hybrid, symmetric inputs)", {"quantize": "dynamic-int8"}, "auto"),
    ("int8", {"quantize": "int8"}, "auto"),
    ("int8", {"quantize": "int8"}, "micro"),
    ("int16x8", {"quantize": "int16x8"}, "micro"),
)


def weights(n: int, i: int, seed: int) -> dict[str, np.ndarray]:
    """Glorot-scaled gate weights, small random biases, forget bias +1 (as Keras' unit_forget_bias)."""
    rng = np.random.default_rng(seed)
    w: dict[str, np.ndarray] = {}
    for g in ("input", "forget", "cell", "output"):
        w[f"input_to_{g}_weights"] = rng.uniform(-1, 1, (n, i)).astype(np.float32) * np.sqrt(6 / (n + i))
        w[f"recurrent_to_{g}_weights"] = rng.uniform(-1, 1, (n, n)).astype(np.float32) * np.sqrt(6 / (2 * n))
        w[f"{g}_gate_bias"] = (rng.standard_normal(n) * 0.1 + (1.0 if g == "forget" else 0.0)).astype(np.float32)
    return w


def signals(count: int, steps: int, features: int, seed: int) -> np.ndarray:
    """[count, 1, T, I] sensor-like inputs: a few sinusoids per feature plus noise, amplitude about 1."""
    rng = np.random.default_rng(seed)
    t = np.arange(steps)[None, :, None]
    x = np.zeros((count, steps, features))
    for _ in range(3):
        freq = rng.uniform(0.02, 0.3, (count, 1, features))
        phase = rng.uniform(0, 2 * np.pi, (count, 1, features))
        x += rng.uniform(0.2, 0.6, (count, 1, features)) * np.sin(2 * np.pi * freq * t + phase)
    x += 0.1 * rng.standard_normal(x.shape)
    return x[:, None].astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--units", type=int, default=64)
    ap.add_argument("--input-size", type=int, default=8)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--calibration-samples", type=int, default=64)
    ap.add_argument("--test-samples", type=int, default=16)
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    n, i, steps = args.units, args.input_size, args.steps
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        np.savez(d / "w.npz", **weights(n, i, 0))
        np.save(d / "calib.npy", signals(args.calibration_samples, steps, i, 1))
        test = signals(args.test_samples, steps, i, 2)
        cell = {"batch_size": 1, "time_steps": steps, "forget_bias": 0.0}
        build(d / "float.tflite", cell, d / "w.npz", verify=False)
        fm = read_model((d / "float.tflite").read_bytes())
        source = [evaluate(fm, {fm.inputs[0]: x}).values[fm.outputs[0]] for x in test]
        for label, options, runtime in MODES:
            path = d / f"{label.split()[0]}.tflite"
            calib = d / "calib.npy" if options.get("quantize") in ("int8", "int16x8") else None
            result = build(path, cell | options, d / "w.npz", calibration_data=calib, runtime=runtime)
            assert result.verification is not None and result.verification.passed
            errors = np.stack(
                [np.abs(run_model(path, x, runtime=runtime)[0] - y) for x, y in zip(test, source, strict=True)]
            )
            rows.append(
                {
                    "mode": label,
                    "runtime": result.verification.runtime if runtime == "auto" else "tflite-micro",
                    "size": path.stat().st_size,
                    "max_abs_error": float(errors.max()),
                    "mean_abs_error": float(errors.mean()),
                }
            )
    print(f"{n} units, input {i}, T={steps}; {args.test_samples} held-out sequences; error vs the float source")
    print("| mode | runtime | file size | max abs error | mean abs error |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['mode']} | {r['runtime']} | {r['size']:,} B | {r['max_abs_error']:.3g} | {r['mean_abs_error']:.3g} |"
        )
    if args.json:
        args.json.write_text(json.dumps({"units": n, "input_size": i, "steps": steps, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
