"""Time of lstmgen's bit-exact emulation per kernel flavour (default: 64 units, input 16, T=100, batch 1)."""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from lstmgen.build import build
from lstmgen.numerics.emulate import emulate
from lstmgen.tflite.reader import read_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--units", type=int, default=64)
    ap.add_argument("--input-size", type=int, default=16)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("int8", "int16x8"):
            path = Path(tmp) / f"{mode}.tflite"
            cell = {"num_units": args.units, "input_size": args.input_size, "batch_size": 1,
                    "time_steps": args.steps, "quantize": mode}  # fmt: skip
            build(path, cell, calibration="random", verify=False)
            model = read_model(path.read_bytes())
            t = model.tensors[model.inputs[0]]
            info = np.iinfo(t.dtype)
            x = rng.integers(info.min, info.max + 1, t.shape).astype(t.dtype)
            for flavour in ("litert", "tflm") if mode == "int8" else ("tflm",):
                start = time.perf_counter()
                emulate(model, {model.inputs[0]: x}, flavour)  # first call: builds the activation tables
                first = time.perf_counter() - start
                times = []
                for _ in range(args.repeat):
                    start = time.perf_counter()
                    emulate(model, {model.inputs[0]: x}, flavour)
                    times.append(time.perf_counter() - start)
                results[f"{mode}/{flavour}"] = {"first_s": round(first, 4), "best_s": round(min(times), 4)}
    print(json.dumps({"units": args.units, "input_size": args.input_size, "steps": args.steps} | results, indent=1))


if __name__ == "__main__":
    main()
