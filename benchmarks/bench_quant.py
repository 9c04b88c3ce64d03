"""Size and invoke() time per quantization mode for a stacked 2-layer LSTM (default 512 units, T=100)."""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

import numpy as np

from lstmgen.config import CellConfig
from lstmgen.pipeline.layout import layout
from lstmgen.quant.calibrate import random_calibration
from lstmgen.quant.quantize import quantize
from lstmgen.tflite.records import ModelRecord
from lstmgen.tflite.writer import serialize

MODES = ("none", "float16", "dynamic-int8", "dynamic-int8+asym", "int8")


def _weights(n: int, i: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    w: dict[str, np.ndarray] = {}
    for g in ("input", "forget", "cell", "output"):
        w[f"input_to_{g}_weights"] = (rng.standard_normal((n, i)) / np.sqrt(i)).astype(np.float32)
        w[f"recurrent_to_{g}_weights"] = (rng.standard_normal((n, n)) / np.sqrt(n)).astype(np.float32)
        w[f"{g}_gate_bias"] = np.zeros(n, np.float32)
    return w


def stacked(units: int, input_size: int, steps: int, layers: int = 2) -> ModelRecord:
    """layers LSTM ops chained output -> input in one graph."""
    model: ModelRecord | None = None
    for k in range(layers):
        i = input_size if k == 0 else units
        cfg = CellConfig(num_units=units, input_size=i, batch_size=1, time_steps=steps, forget_bias=0.0,
                         name=f"lstm{k}")
        rec = layout(cfg, _weights(units, i, k))
        if model is None:
            model = rec
            continue
        off = len(model.tensors)
        op = rec.operators[0]
        inputs = tuple(model.outputs[0] if s == 0 else (x + off if x >= 0 else -1) for s, x in enumerate(op.inputs))
        out = op.outputs[0] + off
        model = replace(model, tensors=model.tensors + rec.tensors, operators=(
            *model.operators, replace(op, inputs=inputs, outputs=(out,))), outputs=(out,),
            signatures=(replace(model.signatures[0], outputs=(("output", out),)),))
    assert model is not None
    return model


def bench(model: ModelRecord, x: np.ndarray, repeats: int) -> float:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_content=bytes(serialize(model)), num_threads=1,
                     experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    it.allocate_tensors()
    d = it.get_input_details()[0]
    if d["dtype"] == np.int8:
        s, z = d["quantization"]
        x = np.clip(np.round(x / s) + z, -128, 127)
    it.set_tensor(d["index"], x.astype(d["dtype"]))
    best = float("inf")
    for _ in range(repeats):
        it.reset_all_variables()
        t0 = time.perf_counter()
        it.invoke()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--units", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--input-size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = []
    for units in args.units:
        model = stacked(units, args.input_size, args.steps)
        x = np.random.default_rng(0).standard_normal((1, args.steps, args.input_size)).astype(np.float32)
        stats = random_calibration(model, 2, seed=0)  # smoke-test ranges: fine for size and speed
        base = None
        for mode in MODES:
            if mode == "int8":
                q = quantize(model, "int8", calibration=stats)
            elif mode == "dynamic-int8+asym":
                q = quantize(model, "dynamic-int8", asymmetric_inputs=True)
            else:
                q = quantize(model, mode)
            size = len(serialize(q))
            t = bench(q, x, args.repeats)
            base = base or (size, t)
            rows.append({"units": units, "mode": mode, "bytes": size, "size_ratio": size / base[0],
                         "invoke_ms": t * 1e3, "speed_ratio": t / base[1]})
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"2-layer LSTM, input {args.input_size}, T={args.steps}, batch 1, 1 thread, best of {args.repeats}")
    print("| units | mode | size (bytes) | size / float | invoke (ms) | time / float |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['units']} | {r['mode']} | {r['bytes']:,} | {r['size_ratio']:.3f}x | {r['invoke_ms']:.2f} | "
              f"{r['speed_ratio']:.2f}x |")


if __name__ == "__main__":
    main()
