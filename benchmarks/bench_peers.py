"""lstmgen against its peers (onnx2tf, TF's converter) on one machine in one run: invoke time, hybrid error, build cost.

The peers live in a throwaway venv of their own (TensorFlow, tf-keras, onnx2tf and what onnx2tf needs;
never lstmgen dependencies), named by --peer-python or LSTMGEN_PEER_PYTHON; without one this script says
"skipped: no peer venv" and exits 0 (it never installs anything). One way to make it (Python 3.11):

    python3.11 -m venv /work/peers-venv && /work/peers-venv/bin/pip install onnx2tf==1.29.24 --no-deps
    /work/peers-venv/bin/pip install tensorflow-cpu==2.19.0 tf-keras==2.19.0 onnx==1.19.1 onnx-graphsurgeon==0.5.8 \
        sng4onnx simple-onnx-processing-tools==1.1.32 psutil==5.9.5 ai-edge-litert==2.1.0 numpy==1.26.4 \
        protobuf==4.25.5 h5py ml-dtypes==0.5.1 onnxruntime==1.23.0 onnxsim onnxoptimizer requests

For 64 units (input 32) and 1024 units (input 512), T = 50, batch 1, bench_accuracy.py's glorot weights
(the same file bench_forms.py builds from):
  invoke   lstmgen's fused op, --form graph unrolled (--time-steps 50), --form graph WHILE loop (no
           --time-steps, run at T = 50) and onnx2tf's conversion of an ONNX LSTM node holding the same
           weights (`-kat X`, and `-odrqt` for its dynamic-range hybrid), float32 and hybrid (lstmgen
           --quantize dynamic-int8); LiteRT of this interpreter's environment with its default XNNPACK
           delegate, 1 and 2 threads. Every measurement is a fresh process (bench_forms.py's child: 3 warm-up
           invokes, median of 20); the four models alternate within each round (order reversed every other
           round), and the ratios graph/onnx2tf and loop/onnx2tf are taken per round (their medians reported).
  error    max and mean abs error against the float64 reference of the float weights (8 sequences), for
           every model, XNNPACK and builtin kernels; the peers' float models (onnx2tf's file, the Keras
           model) must match the reference before anything is timed.
  build    `lstmgen build --quantize int8 --calibration-data` (100 sequences; verified, the default, and
           with --no-verify, as TF's converter verifies nothing) against
           TF's converter on a tf.keras LSTM holding the same weights (Optimize.DEFAULT, the same 100
           sequences as representative dataset, int8 ops and int8 input/output), each a whole process from
           the weight file to the model file: wall time and peak RSS (os.wait4), one unmeasured warm-up each,
           then paired alternating rounds, medians.

    python benchmarks/bench_peers.py --peer-python /work/peers-venv/bin/python [--rounds 3] [--json out.json]

docs/update_numbers.py puts the JSON's tables between the bench:peers markers of docs/measurements.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SIZES = {64: 32, 1024: 512}  # units -> input size
STEPS = 50
TESTS = 8  # sequences the error is measured on (bench_forms.py's: signals seed 1)
CALIBRATION = 100  # representative sequences for both int8 builds (signals seed 3)
MODES = ("float32", "dynamic-int8")
FORMS = ("fused", "graph", "loop", "onnx2tf")  # fused/graph/loop: bench_forms.py's file names
ONNX_GATES = ("input", "output", "forget", "cell")  # the ONNX LSTM's gate order (i, o, f, c)
KERAS_GATES = ("input", "forget", "cell", "output")
PEER_MODULES = ("tensorflow", "tf_keras", "onnx", "onnx2tf", "ai_edge_litert")
PEER_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"} | {
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "CUDA_VISIBLE_DEVICES": "",
}
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
PROBE = """
import importlib, importlib.metadata as m, json, sys
for name in sys.argv[1:]:
    importlib.import_module(name)
print(json.dumps({p: m.version(p) for p in ("tensorflow", "tf-keras", "onnx", "onnx2tf", "ai-edge-litert")}))
"""


# ---- in the peer venv (numpy, onnx, onnx2tf, TensorFlow; no lstmgen) ----


def peer_make(tmp: Path, units: int) -> None:
    """ONNX LSTM node -> onnx2tf (float32 and dynamic-range files); the Keras model checked against the reference."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from onnx2tf import convert

    w = {k: v.astype(np.float32) for k, v in np.load(tmp / f"w{units}.npz").items()}  # (numpy 2 saved float64)
    n, i = units, SIZES[units]
    stack = {k: np.concatenate([w[f"{k}_to_{g}_weights"] for g in ONNX_GATES])[None] for k in ("input", "recurrent")}
    bias = np.concatenate([*(w[f"{g}_gate_bias"] for g in ONNX_GATES), np.zeros(4 * n, np.float32)])[None]
    init = [numpy_helper.from_array(a, name) for a, name in ((stack["input"], "W"), (stack["recurrent"], "R"))]
    init.append(numpy_helper.from_array(bias.astype(np.float32), "B"))
    # zero initial states given explicitly: onnx2tf 1.29 passes an empty state list to Keras without them
    init += [numpy_helper.from_array(np.zeros((1, 1, n), np.float32), name) for name in ("h0", "c0")]
    graph = helper.make_graph(
        [helper.make_node("LSTM", ["X", "W", "R", "B", "", "h0", "c0"], ["Y"], hidden_size=n)],
        "lstm",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [STEPS, 1, i])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [STEPS, 1, 1, n])],
        initializer=init,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, tmp / f"{units}.onnx")
    out = tmp / f"onnx2tf{units}"
    convert(
        input_onnx_file_path=str(tmp / f"{units}.onnx"),
        output_folder_path=str(out),
        keep_shape_absolutely_input_names=["X"],
        output_dynamic_range_quantized_tflite=True,
        non_verbose=True,
    )
    shutil.copy(out / f"{units}_float32.tflite", tmp / f"{units}_float32_onnx2tf.tflite")
    shutil.copy(out / f"{units}_dynamic_range_quant.tflite", tmp / f"{units}_dynamic-int8_onnx2tf.tflite")
    model_k = keras_model(w, units)
    x, ref = np.load(tmp / f"x{units}.npy"), np.load(tmp / f"ref{units}.npy")
    got = model_k.predict(x[:, 0], batch_size=1, verbose=0)
    print(json.dumps({"keras_float_max_abs_error": float(np.abs(got - ref[:, 0]).max())}))


def keras_model(w: dict[str, Any], units: int) -> Any:
    """A tf.keras (Keras 2) LSTM, [1, T, I] -> [1, T, N], holding the op-named weights."""
    import numpy as np
    import tf_keras as keras

    inp = keras.Input(shape=(STEPS, SIZES[units]), batch_size=1)
    layer = keras.layers.LSTM(units, return_sequences=True)
    model = keras.Model(inp, layer(inp))
    layer.set_weights(
        [
            np.concatenate([w[f"input_to_{g}_weights"].T for g in KERAS_GATES], axis=1),
            np.concatenate([w[f"recurrent_to_{g}_weights"].T for g in KERAS_GATES], axis=1),
            np.concatenate([w[f"{g}_gate_bias"] for g in KERAS_GATES]),
        ]
    )
    return model


def tf_int8(npz: str, calibration: str, output: str) -> None:
    """The timed TF process: weights -> Keras model -> TF's converter, full int8, calibrated -> model file."""
    import numpy as np
    import tensorflow as tf

    w = {k: v.astype(np.float32) for k, v in np.load(npz).items()}
    units = w["input_to_input_weights"].shape[0]
    calib = np.load(calibration).astype(np.float32)
    converter = tf.lite.TFLiteConverter.from_keras_model(keras_model(w, units))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([c[None]] for c in calib)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    Path(output).write_bytes(converter.convert())


# ---- in lstmgen's environment ----


def prepare(tmp: Path, units: int) -> None:
    """Weights, lstmgen's six float/hybrid models (bench_forms.py's), test and calibration inputs, the reference."""
    import numpy as np

    sys.path.insert(0, str(HERE))
    from bench_accuracy import signals
    from bench_forms import bench_weights, build_models

    from lstmgen.numerics.reference import lstm_reference

    build_models(tmp, units)  # writes w{units}.npz too
    w = {k: v.astype(np.float32) for k, v in bench_weights(units, uneven=False).items()}  # as the models hold them
    xs = signals(TESTS, STEPS, SIZES[units], seed=1)
    np.save(tmp / f"x{units}.npy", xs)
    np.save(tmp / f"ref{units}.npy", np.stack([lstm_reference(x, w)[0] for x in xs]))
    np.save(tmp / f"calib{units}.npy", signals(CALIBRATION, STEPS, SIZES[units], seed=3)[:, 0])


def score(tmp: Path, units: int, names: list[str]) -> None:
    """Max and mean abs error of each model against the float64 reference, XNNPACK and builtin kernels."""
    import numpy as np

    xs, ref = np.load(tmp / f"x{units}.npy"), np.load(tmp / f"ref{units}.npy")
    errors: dict[str, dict[str, float]] = {}
    for name in names:
        for xnnpack in (True, False):
            model = tmp / f"{units}_{name}.tflite"
            err = np.stack([np.abs(_outputs(model, xnnpack, x) - r[0]) for x, r in zip(xs, ref, strict=True)])
            kernels = "xnnpack" if xnnpack else "builtin"
            errors[f"{name} {kernels}"] = {"max_abs_error": float(err.max()), "mean_abs_error": float(err.mean())}
    print(json.dumps(errors))


def _outputs(model: Path, xnnpack: bool, x: Any) -> Any:
    """[T, N] float outputs of one [1, T, I] sequence from a fresh state; quantized inputs/outputs converted."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    sys.path.insert(0, str(HERE))
    from bench_forms import _steps

    kw = {} if xnnpack else {"experimental_op_resolver_type": OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}
    it = Interpreter(model_path=str(model), **kw)
    _steps(it)
    d, o = it.get_input_details()[0], it.get_output_details()[0]
    x = x.transpose(1, 0, 2) if list(d["shape"][:2]) == [STEPS, 1] else x  # onnx2tf keeps ONNX's [T, B, I]
    if d["dtype"] != np.float32:
        scale, zero = d["quantization"]
        info = np.iinfo(d["dtype"])
        x = np.clip(np.round(x / scale) + zero, info.min, info.max)
    it.set_tensor(d["index"], x.astype(d["dtype"]))
    it.invoke()
    y = it.get_tensor(o["index"]).astype(np.float64)
    if o["dtype"] != np.float32:
        scale, zero = o["quantization"]
        y = (y - zero) * scale
    return y.reshape(STEPS, -1)


# ---- the parent (stdlib only: a child's peak RSS counts what it shared with the parent before exec) ----


def _child(argv: list[str], env: dict[str, str], what: str) -> str:
    done = subprocess.run(argv, capture_output=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{what} failed ({done.returncode}): {' '.join(argv)}\n{done.stderr.decode()[-4000:]}")
    return done.stdout.decode()


def _last_json(text: str) -> Any:
    return json.loads(text.strip().splitlines()[-1])


def run_timed(argv: list[str], env: dict[str, str]) -> dict[str, float]:
    """Wall time (fork to exit), CPU time (user + system: moves less than wall when others share the machine)
    and peak RSS of one whole process (bench_process.py's child runner)."""
    from bench_process import run

    wall, rss_mb, cpu = run(argv, env)
    return {"wall_s": wall, "cpu_s": cpu, "peak_rss_mb": rss_mb}


def bench_builds(tmp: Path, units: int, peer: str, rounds: int) -> dict[str, Any]:
    """lstmgen's int8 build (verified, and --no-verify: TF's converter verifies nothing) against TF's converter:
    a warm-up each, then alternating rounds; medians, and per-round ratios TF / each."""
    npz, calib = str(tmp / f"w{units}.npz"), str(tmp / f"calib{units}.npy")
    lstmgen_argv = [sys.executable, "-m", "lstmgen", "build", "--weights", npz, "--weights-format", "tflite"]
    lstmgen_argv += ["--time-steps", str(STEPS), "--quantize", "int8", "--calibration-data", calib, "-q"]
    argvs = {
        "lstmgen": ([*lstmgen_argv, "-o", str(tmp / f"{units}_int8_lstmgen.tflite")], CHILD_ENV),
        "lstmgen --no-verify": ([*lstmgen_argv, "--no-verify", "-o", str(tmp / f"{units}_nv.tflite")], CHILD_ENV),
        "tf": ([peer, __file__, "--tf-int8", npz, calib, str(tmp / f"{units}_int8_tf.tflite")], PEER_ENV),
    }
    for argv, env in argvs.values():
        run_timed(argv, env)  # warm-up: bytecode caches, TensorFlow's libraries in the page cache
    runs: dict[str, list[dict[str, float]]] = {k: [] for k in argvs}
    for r in range(rounds):
        for name in tuple(argvs) if r % 2 == 0 else tuple(reversed(argvs)):
            runs[name].append(run_timed(*argvs[name]))
    builders = {}
    for name, rs in runs.items():
        ratios = [t["wall_s"] / g["wall_s"] for t, g in zip(runs["tf"], rs, strict=True)]  # under one round's load
        builders[name] = {
            "wall_s": round(statistics.median(r["wall_s"] for r in rs), 2),
            "walls_s": [round(r["wall_s"], 2) for r in rs],
            "cpu_s": round(statistics.median(r["cpu_s"] for r in rs), 2),
            "rss_mb": round(max(r["peak_rss_mb"] for r in rs)),
            "tf_over_this": round(statistics.median(ratios), 2),
        }
    return {"units": units, "input": SIZES[units], "calibration_sequences": CALIBRATION, "builders": builders}


def paired_invokes(tmp: Path, units: int, mode: str, threads: int, rounds: int) -> dict[str, Any]:
    """The four models alternating within each round (XNNPACK); per-round ratios to onnx2tf, medians."""
    sys.path.insert(0, str(HERE))
    from bench_forms import run_child

    runs: dict[str, list[dict[str, float]]] = {form: [] for form in FORMS}
    ratios: dict[str, list[float]] = {form: [] for form in FORMS[:-1]}
    for r in range(rounds):
        order = FORMS if r % 2 == 0 else tuple(reversed(FORMS))
        got = {form: run_child(tmp / f"{units}_{mode}_{form}.tflite", True, threads) for form in order}
        for form in order:
            runs[form].append(got[form])
        for form, values in ratios.items():
            values.append(got[form]["invoke_ms"] / got["onnx2tf"]["invoke_ms"])
    row: dict[str, Any] = {"units": units, "input": SIZES[units], "mode": mode, "threads": threads}
    for form, rs in runs.items():
        row[f"{form}_ms"] = round(statistics.median(r["invoke_ms"] for r in rs), 3)
        row[f"{form}_rss_mb"] = max(r["peak_rss_mb"] for r in rs)
    for form, values in ratios.items():
        row[f"{form}_over_onnx2tf"] = round(statistics.median(values), 3)
    return row


def peer_versions(peer: str | None) -> tuple[dict[str, str] | None, str]:
    """The peer venv's package versions, or None and why it cannot be used."""
    if not peer:
        return None, "no --peer-python and LSTMGEN_PEER_PYTHON is unset"
    if not Path(peer).is_file():
        return None, f"{peer} does not exist"
    done = subprocess.run([peer, "-c", PROBE, *PEER_MODULES], capture_output=True, env=PEER_ENV, check=False)
    if done.returncode != 0:
        return None, f"{peer} cannot import {', '.join(PEER_MODULES)}: {done.stderr.decode().strip()[-300:]}"
    return _last_json(done.stdout.decode()), ""


def measure(tmp: Path, peer: str, units_list: list[int], threads: list[int], rounds: int) -> dict[str, Any]:
    rows, builds, errors, fair = [], [], {}, {}
    here = [sys.executable, __file__]
    for units in units_list:
        _child([*here, "--prepare", str(tmp), str(units)], CHILD_ENV, f"building lstmgen's {units}-unit models")
        made = _child([peer, __file__, "--peer-make", str(tmp), str(units)], PEER_ENV, f"onnx2tf ({units} units)")
        builds.append(bench_builds(tmp, units, peer, rounds))
        print(_build_line(builds[-1]), file=sys.stderr)
        names = [f"{m}_{f}" for m in MODES for f in FORMS] + ["int8_lstmgen", "int8_tf"]
        errors[str(units)] = _last_json(_child([*here, "--score", str(tmp), str(units), *names], CHILD_ENV, "scoring"))
        fair[str(units)] = _last_json(made) | {
            "onnx2tf_float_max_abs_error": errors[str(units)]["float32_onnx2tf builtin"]["max_abs_error"]
        }
        if max(fair[str(units)].values()) > 1e-4:  # float32 against float64 over 50 steps: ~1e-6
            raise SystemExit(f"the peers' float models do not compute the reference LSTM: {fair[str(units)]}")
        for mode in MODES:
            for t in threads:
                rows.append(paired_invokes(tmp, units, mode, t, rounds))
                print(_invoke_line(rows[-1]), file=sys.stderr)
    return {"rows": rows, "builds": builds, "accuracy": errors, "peer_float_check": fair}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--peer-python",
        default=os.environ.get("LSTMGEN_PEER_PYTHON"),
        help="the peer venv's python [default: $LSTMGEN_PEER_PYTHON; neither: skipped]",
    )
    ap.add_argument("--rounds", type=int, default=3, help="paired rounds per invoke row and per build")
    ap.add_argument("--units", default="64,1024")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--json", type=Path, help="write the results here (else to stdout)")
    for flag, n in (("--prepare", 2), ("--peer-make", 2), ("--tf-int8", 3)):
        ap.add_argument(flag, nargs=n, help=argparse.SUPPRESS)
    ap.add_argument("--score", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    for task, given in ((prepare, args.prepare), (peer_make, args.peer_make)):
        if given:
            task(Path(given[0]), int(given[1]))
            return
    if args.tf_int8:
        tf_int8(*args.tf_int8)
        return
    if args.score:
        score(Path(args.score[0]), int(args.score[1]), args.score[2:])
        return
    versions, why = peer_versions(args.peer_python)
    if versions is None:
        print(f"skipped: no peer venv ({why}); see `python benchmarks/bench_peers.py --help` to make one")
        return
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        units = [int(u) for u in args.units.split(",")]
        results = measure(Path(tmp), args.peer_python, units, [int(t) for t in args.threads.split(",")], args.rounds)
    from importlib.metadata import version

    doc = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_before": load,
            "load_after": os.getloadavg(),
        },
        "versions": {"peer": versions, "litert": version("ai-edge-litert")},
        "steps": STEPS,
        "rounds": args.rounds,
        **results,
    }
    text = json.dumps(doc, indent=1)
    if args.json:
        args.json.write_text(text)
    else:
        print(text)


def _invoke_line(r: dict[str, Any]) -> str:
    return (
        f"{r['units']:5d} {r['mode']:13s} threads={r['threads']}: fused {r['fused_ms']:.3g} ms, graph "
        f"{r['graph_ms']:.3g} ms, loop {r['loop_ms']:.3g} ms, onnx2tf {r['onnx2tf_ms']:.3g} ms; graph/onnx2tf "
        f"{r['graph_over_onnx2tf']:.2f}, loop/onnx2tf {r['loop_over_onnx2tf']:.2f}"
    )


def _build_line(b: dict[str, Any]) -> str:
    return f"{b['units']:5d} int8 build: " + ", ".join(
        f"{name} {r['wall_s']} s (CPU {r['cpu_s']} s) {r['rss_mb']} MB" for name, r in b["builders"].items()
    )


if __name__ == "__main__":
    main()
