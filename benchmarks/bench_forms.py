"""--form fused vs --form graph: invoke time and peak RSS in LiteRT, XNNPACK on and off, 1 and 2 threads.

The same weights are built in both forms (float32 and dynamic-int8) for 64, 256 and 1024 units (inputs 32,
128, 512; T = 50, batch 1). Every measurement is a fresh child process (load, 3 warm-up invokes, then
INVOKES timed invokes: their median), and the two forms alternate within each round (fused, graph, graph,
fused, ...), so a busy shared machine slows both alike: the ratio graph/fused per round is what to read
(its median over the rounds is reported, with the medians of the absolute times). Peak RSS is the child's
(os.wait4 rusage): XNNPACK packs a copy of each FULLY_CONNECTED's weights per op, so the unrolled graph
holds the recurrent weights once per time step.

Hybrid accuracy: max abs error against the float64 reference of the float weights, on the same inputs,
fused hybrid (one scale per weight matrix) against graph hybrid (one scale per output row).

    python benchmarks/bench_forms.py [--rounds 3] [--units 64,256,1024] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SIZES = {64: 32, 256: 128, 1024: 512}  # units -> input size
STEPS = 50
INVOKES = 20
MODES = {"float32": {}, "dynamic-int8": {"quantize": "dynamic-int8"}}
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def child(model: str, xnnpack: bool, threads: int) -> None:
    """In the child: load, warm up, time INVOKES invokes; print {load_s, invoke_ms}."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    kw: dict[str, Any] = (
        {} if xnnpack else {"experimental_op_resolver_type": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}
    )
    t0 = time.perf_counter()
    it = Interpreter(model_path=model, num_threads=threads, **kw)
    it.allocate_tensors()
    d = it.get_input_details()[0]
    it.set_tensor(d["index"], np.random.default_rng(0).standard_normal(d["shape"]).astype(np.float32))
    it.invoke()
    load = time.perf_counter() - t0
    for _ in range(2):
        it.invoke()
    times = []
    for _ in range(INVOKES):
        a = time.perf_counter()
        it.invoke()
        times.append(time.perf_counter() - a)
    print(json.dumps({"load_s": load, "invoke_ms": 1000 * statistics.median(times)}))


def run_child(model: Path, xnnpack: bool, threads: int) -> dict[str, float]:
    argv = [sys.executable, __file__, "--child", str(model), str(int(xnnpack)), str(threads)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=CHILD_ENV)
    assert proc.stdout is not None and proc.stderr is not None
    out, err = proc.stdout.read(), proc.stderr.read()  # both small: a JSON line, LiteRT's INFO line
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak RSS
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"child failed: {' '.join(argv)}\n{err.decode()}")
    result: dict[str, float] = json.loads(out.decode().strip().splitlines()[-1])
    result["peak_rss_mb"] = round(usage.ru_maxrss / 1024, 1)
    return result


def bench_weights(units: int, uneven: bool) -> dict[str, Any]:
    """bench_accuracy's glorot weights; `uneven`: each output row scaled by a lognormal(0, 0.5) factor, so rows
    differ in range as in trained networks (where one scale per row beats one per matrix)."""
    import numpy as np

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_accuracy import weights

    w = weights(units, SIZES[units], seed=0)
    if uneven:
        rng = np.random.default_rng(7)
        for key in [k for k in w if k.endswith("_weights")]:
            w[key] = (w[key] * rng.lognormal(0.0, 0.5, (w[key].shape[0], 1))).astype(np.float32)
    return w


def build_models(tmp: Path, units: int, uneven: bool = False) -> dict[tuple[str, str], Path]:
    import numpy as np

    from lstmgen.build import build

    npz = tmp / f"w{units}{'u' if uneven else ''}.npz"
    np.savez(npz, **bench_weights(units, uneven))  # the op's own names: biases taken as complete
    out = {}
    for mode, extra in MODES.items():
        for form in ("fused", "graph"):
            path = tmp / f"{units}_{mode}_{form}{'_u' if uneven else ''}.tflite"
            opts = {"time_steps": STEPS, "form": form} | extra
            build(path, opts, npz, weights_format="tflite", verify=False)
            out[(mode, form)] = path
    return out


def accuracy(models: dict[tuple[str, str], Path], units: int, uneven: bool = False) -> dict[str, dict[str, float]]:
    """Max and mean abs error of every model against the float64 reference of the float weights."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_accuracy import signals

    from lstmgen.numerics.reference import lstm_reference

    w = bench_weights(units, uneven)
    xs = signals(8, STEPS, SIZES[units], seed=1)
    errors = {}
    for mode, form in models:
        it = Interpreter(
            model_path=str(models[(mode, form)]),
            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        )
        it.allocate_tensors()
        d, o = it.get_input_details()[0], it.get_output_details()[0]
        worst, mean = 0.0, []
        for x in xs:
            ref, _, _ = lstm_reference(x, w)
            it.reset_all_variables()  # the fused op keeps its state between invokes; each input starts from zero
            it.set_tensor(d["index"], x.astype(np.float32))
            it.invoke()
            err = np.abs(it.get_tensor(o["index"]) - ref)
            worst, mean = max(worst, float(err.max())), [*mean, float(err.mean())]
        errors[f"{mode} {form}"] = {"max_abs_error": worst, "mean_abs_error": float(np.mean(mean))}
    return errors


def prepare(tmp: Path, units: int) -> None:
    """In a child: build both forms (both weight sets), print the accuracy of each as JSON."""
    models = build_models(tmp, units)
    errors = {str(units): accuracy(models, units)}
    errors[f"{units} uneven rows"] = accuracy(build_models(tmp, units, uneven=True), units, uneven=True)
    print(json.dumps(errors))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", nargs=3)
    ap.add_argument("--prepare", nargs=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--units", default="64,256,1024")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], args.child[1] == "1", int(args.child[2]))
        return
    if args.prepare:
        prepare(Path(args.prepare[0]), int(args.prepare[1]))
        return
    rows: list[dict[str, Any]] = []
    errors = {}
    with tempfile.TemporaryDirectory() as tmp:
        for units in (int(u) for u in args.units.split(",")):
            # built and measured for accuracy in a child: the parent stays small (a child's peak RSS counts
            # what it shared with the parent before exec)
            argv = [sys.executable, __file__, "--prepare", tmp, str(units)]
            done = subprocess.run(argv, capture_output=True, env=CHILD_ENV, check=False)
            if done.returncode != 0:
                raise SystemExit(f"building the {units}-unit models failed:\n{done.stderr.decode()}")
            errors.update(json.loads(done.stdout.decode().strip().splitlines()[-1]))
            models = {(m, f): Path(tmp) / f"{units}_{m}_{f}.tflite" for m in MODES for f in ("fused", "graph")}
            for mode in MODES:
                for xnnpack in (True, False):
                    for threads in (1, 2):
                        rows.append(_paired(models, units, mode, xnnpack, threads, args.rounds))
                        print(_line(rows[-1]), file=sys.stderr)
    doc = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load": os.getloadavg()[0]},
        "steps": STEPS,
        "invokes": INVOKES,
        "rounds": args.rounds,
        "rows": rows,
        "accuracy": errors,
    }
    text = json.dumps(doc, indent=1)
    if args.json:
        args.json.write_text(text)
    else:
        print(text)


def _paired(
    models: dict[tuple[str, str], Path], units: int, mode: str, xnnpack: bool, threads: int, rounds: int
) -> dict[str, Any]:
    """Alternating runs of both forms; per-round ratio graph/fused, medians."""
    runs: dict[str, list[dict[str, float]]] = {"fused": [], "graph": []}
    ratios = []
    for r in range(rounds):
        order = ("fused", "graph") if r % 2 == 0 else ("graph", "fused")
        got = {form: run_child(models[(mode, form)], xnnpack, threads) for form in order}
        for form in order:
            runs[form].append(got[form])
        ratios.append(got["graph"]["invoke_ms"] / got["fused"]["invoke_ms"])
    row: dict[str, Any] = {"units": units, "input": SIZES[units], "mode": mode, "xnnpack": xnnpack, "threads": threads}
    for form, rs in runs.items():
        row[f"{form}_ms"] = round(statistics.median(r["invoke_ms"] for r in rs), 3)
        row[f"{form}_load_s"] = round(statistics.median(r["load_s"] for r in rs), 3)
        row[f"{form}_rss_mb"] = max(r["peak_rss_mb"] for r in rs)
    row["graph_over_fused"] = round(statistics.median(ratios), 3)
    return row


def _line(r: dict[str, Any]) -> str:
    return (
        f"{r['units']:5d} {r['mode']:13s} xnnpack={'on ' if r['xnnpack'] else 'off'} threads={r['threads']}: "
        f"fused {r['fused_ms']:.3g} ms, graph {r['graph_ms']:.3g} ms, graph/fused {r['graph_over_fused']:.2f}"
    )


if __name__ == "__main__":
    main()
