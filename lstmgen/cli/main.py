"""The `lstmgen` command line: a thin click layer over build, verify, inspect and run."""

from __future__ import annotations

import io
import json
import os
import re
import sys
import traceback
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import click
import numpy as np

from lstmgen import __version__
from lstmgen.arrays import load_npy, load_npz
from lstmgen.build import BuildResult, build
from lstmgen.check.tolerance import plot_error
from lstmgen.check.verify import VerifyReport, verify_model
from lstmgen.config import INITIALIZERS, IO_TYPES, QUANTIZE_MODES, TARGETS, check_keys, load_config_file
from lstmgen.describe import describe, format_text
from lstmgen.errors import LstmgenError, VerificationError
from lstmgen.modelinfo import read_lstm_model
from lstmgen.output import check_target, write_atomic
from lstmgen.run import run_model_states
from lstmgen.runtimes.interpreter import RUNTIME_CHOICES
from lstmgen.targets.rules import find_problems
from lstmgen.weights import FORMATS

EXIT_CODES = "Exit status: 0 success, 1 verification failed, 2 bad input or usage, 70 internal error."
_PATH = click.Path(path_type=Path, dir_okay=False)


def _handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn LstmgenError into a one-paragraph message and its exit status; never a traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        as_json = kwargs.get("as_json", False)
        try:
            return func(*args, **kwargs)
        except LstmgenError as exc:
            if as_json:
                payload = getattr(exc, "payload", None) or {}
                click.echo(
                    json.dumps({"ok": False, "error": str(exc), "exit_code": exc.exit_code, **payload}, indent=2)
                )
            click.echo(f"lstmgen: error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except (click.exceptions.Exit, click.ClickException, KeyboardInterrupt):
            raise
        except Exception as exc:  # a bug, not bad input: say so plainly
            if os.environ.get("LSTMGEN_DEBUG"):
                traceback.print_exc()
            click.echo(
                f"lstmgen: internal error: {type(exc).__name__}: {exc}. This is a bug in lstmgen; "
                "please report it (set LSTMGEN_DEBUG=1 for the traceback).",
                err=True,
            )
            sys.exit(70)

    return wrapper


def _progress(quiet: bool) -> Callable[[str], None]:
    if quiet:
        return lambda _msg: None
    return lambda msg: click.echo(f"lstmgen: {msg}...", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}, epilog=EXIT_CODES)
@click.version_option(__version__, prog_name="lstmgen")
def main() -> None:
    """Write verified TensorFlow Lite LSTM models (one fused UNIDIRECTIONAL_SEQUENCE_LSTM op)
    from TFLiteLSTMCell hyperparameters and weight files, without TensorFlow.

    \b
    Examples:
      lstmgen build --num-units 64 --input-size 32 -o lstm.tflite
      lstmgen build --config cell.toml --weights cell.npz -o lstm.tflite --json > report.json
      lstmgen inspect lstm.tflite
      lstmgen verify lstm.tflite --runtime tflite-runtime
      lstmgen run lstm.tflite --input x.npy --output y.npy --chunk 10
    """


@main.command(epilog=EXIT_CODES)
@click.option("-o", "--output", type=_PATH, required=True, help="Model file to write (overwritten atomically).")
@click.option(
    "--config",
    "config_file",
    type=_PATH,
    help="TOML or JSON file with the same keys as the options (num_units = 64, ...). Command-line options override it.",
)
@click.option(
    "--weights",
    type=click.Path(path_type=Path),
    help="Weight file: .npz, .h5/.keras, .pt/.pth/.safetensors, "
    ".onnx, or a TF checkpoint (prefix, .index or directory). Without it, weights come from --init.",
)
@click.option(
    "--weights-format", type=click.Choice(FORMATS), help="Layout of --weights [default: auto, from the keys]."
)
@click.option("--layer", help="Which layer/scope/key prefix to read when the weight file holds several.")
@click.option("--num-units", type=int, help="Cells N (inferred from --weights).")
@click.option("--input-size", type=int, help="Input features I (inferred from --weights).")
@click.option("--use-peepholes/--no-use-peepholes", default=None, help="Diagonal peephole connections.")
@click.option("--cell-clip", type=float, help="Clip the cell state to ±value; 0 or absent = no clip.")
@click.option("--num-proj", type=int, help="Projection size P (h and output become P wide).")
@click.option("--proj-clip", type=float, help="Clip the projected output to ±value (needs --num-proj).")
@click.option(
    "--forget-bias",
    type=float,
    help="Added to the forget-gate bias [default: 1.0 for tf1 weights, TF1 LSTMCell checkpoints and --init (TF adds "
    "it at run time); 0.0 for tflite, Keras, PyTorch, ONNX and TFLiteLSTMCell weights].",
)
@click.option("--activation", help="Cell activation: tanh (default), relu, relu6, relu_n1_to_1.")
@click.option(
    "--init", type=click.Choice(INITIALIZERS), help="Initializer when no --weights [default: glorot_uniform]."
)
@click.option("--seed", type=int, help="Seed for --init and for verification inputs [default: 0].")
@click.option("--name", help="Tensor-name prefix [default: lstm].")
@click.option("--dtype", type=click.Choice(["float32"]), help="Weight type [default: float32].")
@click.option("--batch-size", type=int, help="Batch size B [default: 1].")
@click.option("--time-steps", type=int, help="Fixed time steps T; omit for a resizable (dynamic) time axis.")
@click.option(
    "--time-major/--batch-major", default=None, help="Input layout [T,B,I] or [B,T,I] [default: batch-major]."
)
@click.option("--dynamic-batch/--fixed-batch", default=None, help="Resizable batch axis (shape_signature -1).")
@click.option("--num-layers", type=int, help="Stacked layers (with --weights: how many of the file's layers).")
@click.option(
    "--bidirectional/--no-bidirectional",
    default=None,
    help="Forward + backward op per layer, outputs concatenated (forward ‖ backward, as PyTorch).",
)
@click.option("--cifg/--no-cifg", default=None, help="Coupled input-forget gate (no input-gate tensors; i = 1 - f).")
@click.option(
    "--diagonal-recurrent/--full-recurrent",
    default=None,
    help="Rank-1 recurrent weights, r * h (IndyLSTM, op version 4, runtime >= 2.12).",
)
@click.option("--layer-norm/--no-layer-norm", default=None, help="Layer-normalised gates (coefficient vectors).")
@click.option(
    "--return-sequences/--last-step",
    default=None,
    help="Output every step, or only the last (Keras return_sequences=False) [default: every step].",
)
@click.option(
    "--go-backwards/--no-go-backwards",
    default=None,
    help="Run a single layer over the reversed sequence (Keras go_backwards: output in processing order).",
)
@click.option(
    "--quantize",
    type=click.Choice(QUANTIZE_MODES),
    help="none (default), float16, dynamic-int8 (hybrid) or int8 (full integer, needs calibration).",
)
@click.option(
    "--asymmetric-inputs/--symmetric-inputs",
    default=None,
    help="dynamic-int8: quantize inputs asymmetrically on the fly (op version 3).",
)
@click.option(
    "--io-type",
    type=click.Choice(IO_TYPES),
    help="int8: model input/output type [default: int8; "
    "float32 adds QUANTIZE/DEQUANTIZE so callers keep feeding floats].",
)
@click.option("--calibration-data", type=_PATH, help="int8: .npy of representative inputs [n, *input shape].")
@click.option(
    "--calibration",
    type=click.Choice(["data", "random"]),
    help="int8: 'random' calibrates on random inputs (a labelled smoke test, not for deployment).",
)
@click.option(
    "--target",
    type=click.Choice(TARGETS),
    help="tflite (default) or micro: refuse what TensorFlow Lite Micro cannot run, and verify in TFLM too.",
)
@click.option("--verify/--no-verify", default=True, show_default=True, help="Check the file with a TFLite interpreter.")
@click.option(
    "--runtime",
    type=click.Choice(RUNTIME_CHOICES),
    default="auto",
    show_default=True,
    help="Interpreter used for verification.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the build summary as JSON on stdout.")
@click.option("-q", "--quiet", is_flag=True, help="No progress messages on stderr.")
@_handle_errors
def build_cmd(
    output: Path,
    config_file: Path | None,
    weights: Path | None,
    weights_format: str | None,
    layer: str | None,
    calibration_data: Path | None,
    calibration: str | None,
    verify: bool,
    runtime: str,
    as_json: bool,
    quiet: bool,
    **cell: Any,
) -> None:
    """Build a model from hyperparameters and (optionally) a weight file, then verify it.

    \b
    Examples:
      # random (glorot_uniform) weights, dynamic time axis
      lstmgen build --num-units 64 --input-size 32 -o lstm.tflite
      # a TF1 LSTMCell's variables; forget_bias 1.0 is folded into the forget-gate bias
      lstmgen build --weights cell_tf1.npz --use-peepholes --cell-clip 3 -o lstm.tflite
      # everything from a config file, machine-readable report for CI
      lstmgen build --config cell.toml -o lstm.tflite --json > build-report.json
      # a 2-layer bidirectional PyTorch LSTM (state_dict), batch-first input
      lstmgen build --weights enc.pt --layer encoder.lstm --num-layers 2 --bidirectional -o enc.tflite
      # full-integer int8 for a microcontroller, calibrated on representative inputs
      lstmgen build --weights model.keras --time-steps 50 --quantize int8 \\
          --calibration-data calib.npy --target micro -o mcu.tflite
    """
    options: dict[str, Any] = {}
    if config_file is not None:
        options.update(load_config_file(config_file))
    check_keys(options, str(config_file))
    file_weights = options.pop("weights", None)
    file_format = options.pop("weights_format", None)
    file_layer = options.pop("layer", None)
    file_calib = options.pop("calibration_data", None)
    file_calibration = options.pop("calibration", None)
    options.update({k: v for k, v in cell.items() if v is not None})
    weights_path = weights if weights is not None else (Path(file_weights) if file_weights else None)
    result = build(
        output,
        options,
        weights_path,
        weights_format=weights_format or file_format or "auto",
        layer=layer or file_layer,
        calibration_data=calibration_data or file_calib,
        calibration=calibration or file_calibration or "data",
        verify=verify,
        runtime=runtime,
        progress=_progress(quiet or as_json),
    )
    if as_json:
        click.echo(json.dumps({"ok": True, **result.to_dict()}, indent=2, default=str))
    else:
        click.echo(_build_text(result))


build_cmd.name = "build"


def _build_text(r: BuildResult) -> str:
    c = r.config
    lines = [
        f"wrote {r.output} ({r.file_size:,} bytes) in {sum(r.seconds.values()):.2f} s",
        f"  cell: num_units={c.num_units} input_size={c.input_size} num_proj={c.num_proj} "
        f"use_peepholes={c.use_peepholes} activation={c.activation} cell_clip={c.cell_clip:g} "
        f"proj_clip={c.proj_clip:g}",
        f"  output_size={c.output_size} state_size=(c={c.num_units}, h={c.output_size}); batch={c.batch_size} "
        f"time={c.time_steps or 'dynamic'} {'time-major' if c.time_major else 'batch-major'}",
        f"  weights: {r.weights_format} ({r.weights_source})"
        + (f", layer {r.weights_layer}" if r.weights_layer else ""),
        *(f"  note: {n}" for n in r.notes),
    ]
    lines.append(_verify_line(r.verification) if r.verification else "  not verified (--no-verify)")
    return "\n".join(lines)


def _verify_line(v: VerifyReport) -> str:
    verdict = "PASS" if v.passed else "FAIL"
    return (
        f"  verified with {v.runtime} {v.runtime_version} on input {v.input_shape}: max abs error "
        f"{v.max_abs_error:.3g}, max rel error {v.max_rel_error:.3g} (tolerance {v.tolerance_text()})"
        + (f", also in {', '.join(v.runtimes)}" if v.runtimes else "")
        + f": {verdict}"
    )


@main.command("verify", epilog=EXIT_CODES)
@click.argument("model", type=_PATH)
@click.option("--runtime", type=click.Choice(RUNTIME_CHOICES), default="auto", show_default=True)
@click.option(
    "--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True, help="Seed of the random test input."
)
@click.option("--batch-size", type=click.IntRange(min=1), help="Test batch size (resizes the model if it allows).")
@click.option("--time-steps", type=click.IntRange(min=1), help="Test time steps (dynamic-time models only).")
@click.option("--micro", is_flag=True, help="Also run the model in TensorFlow Lite Micro (pip install tflite-micro).")
@click.option(
    "--input",
    "input_path",
    type=_PATH,
    help="Test input .npy instead of seeded random data (e.g. one calibration sample for int8 models).",
)
@click.option("--report", type=_PATH, help="Also write the JSON report to this file.")
@click.option("--plot", type=_PATH, help="Quantized models: draw error vs time step to this PNG (needs matplotlib).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
@_handle_errors
def verify_cmd(
    model: Path,
    runtime: str,
    seed: int,
    batch_size: int | None,
    time_steps: int | None,
    micro: bool,
    input_path: Path | None,
    report: Path | None,
    plot: Path | None,
    as_json: bool,
) -> None:
    """Run MODEL in a TFLite interpreter and compare with the NumPy reference.

    Works for any model of fused UNIDIRECTIONAL_SEQUENCE_LSTM ops (also TF-converter output), float or
    quantized: the weights are read back from the file. Quantized models are judged against a
    tolerance derived per time step from the kernel's rounding (see the README).

    \b
    Examples:
      lstmgen verify lstm.tflite
      lstmgen verify lstm.tflite --runtime tflite-runtime --json > verify.json
      lstmgen verify lstm_int8.tflite --input calib.npy --report r.json --plot error.png
      lstmgen verify lstm_micro.tflite --micro
    """
    x = None
    if input_path is not None:
        x = load_npy(input_path, "input")
        if x.ndim == 4:  # a calibration set [n, *input shape]: verify on its first sample
            x = x[0]
    if plot is not None:
        check_target(plot)
    rep = verify_model(
        model, runtime=runtime, seed=seed, batch_size=batch_size, time_steps=time_steps, x=x, micro=micro
    )
    if plot is not None:
        if not rep.quantization:
            raise LstmgenError(f"--plot draws quantization error over time; {model} is a float model.")
        plot_error(rep.quantization[0], plot)
    payload = {"ok": rep.passed, **rep.to_dict()}
    if report is not None:
        write_atomic(report, json.dumps(payload, indent=2).encode())
    if as_json:
        click.echo(json.dumps(payload, indent=2))
    else:
        click.echo(f"{model}:")
        for check in rep.checks:
            click.echo(
                f"  {check.name:<32} max abs {check.max_abs_error:.3g}  max rel {check.max_rel_error:.3g}  "
                f"{'ok' if check.passed else 'FAIL'}"
            )
        click.echo(_verify_line(rep))
    if not rep.passed:
        # The report (ok: false) is the JSON document; the error goes to stderr only.
        click.echo(
            f"lstmgen: error: {model}: the interpreter disagrees with the reference "
            f"(max abs error {rep.max_abs_error:.3g}).",
            err=True,
        )
        sys.exit(VerificationError.exit_code)


@main.command("inspect", epilog=EXIT_CODES)
@click.argument("model", type=_PATH)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON (keys in schemas/report.schema.json).")
@click.option(
    "--check",
    "check",
    type=click.Choice(TARGETS),
    help="Also tell whether the model would run on this target (exit 1 if not).",
)
@_handle_errors
def inspect_cmd(model: Path, as_json: bool, check: str | None) -> None:
    """Show MODEL's layers, hyperparameters, tensor slots (types, scales, zero points), op versions and sizes.

    \b
    Examples:
      lstmgen inspect lstm.tflite
      lstmgen inspect lstm.tflite --json | jq .num_units
      lstmgen inspect lstm.tflite --check micro
    """
    lm = read_lstm_model(model)
    info = describe(model, lm)
    problems = None
    if check is not None:
        problems = [p.to_dict() for p in find_problems(lm.model, check)]
        info["target_check"] = {"target": check, "ok": not problems, "problems": problems}
    if as_json:
        click.echo(json.dumps({"ok": True, **info}, indent=2))
    else:
        click.echo(format_text(info))
        if problems is not None:
            verdict = "runs" if not problems else "does NOT run"
            click.echo(f"  target {check}: {verdict} there" + "".join(f"\n    - {p['message']}" for p in problems))
    if problems:
        sys.exit(1)


def _load_state(path: Path) -> dict[str, np.ndarray]:
    state = load_npz(path, "initial state")
    unknown = sorted(k for k in state if not STATE_KEY.match(k))
    if unknown:
        raise LstmgenError(
            f"initial state {path}: unknown key(s) {', '.join(unknown)}; expected 'h' and/or 'c' (one LSTM op), or "
            "h_0, c_0, h_1, ... (one pair per LSTM op, in the order inspect lists them)."
        )
    return state


STATE_KEY = re.compile(r"^[hc](_\d+)?$")


def _state_list(state: dict[str, np.ndarray]) -> list[tuple[np.ndarray | None, np.ndarray | None]]:
    """{'h': .., 'c': ..} or {'h_0': .., 'c_1': ..} -> [(h0, c0) per LSTM op]."""
    if not state:
        return []
    index = {k: int(k[2:]) if "_" in k else 0 for k in state}
    count = max(index.values()) + 1
    return [
        (
            state.get(f"h_{k}", state.get("h") if k == 0 else None),
            state.get(f"c_{k}", state.get("c") if k == 0 else None),
        )
        for k in range(count)
    ]


@main.command("run", epilog=EXIT_CODES)
@click.argument("model", type=_PATH)
@click.option("--input", "input_path", type=_PATH, required=True, help="Input sequence .npy ([B,T,I] or [T,B,I]).")
@click.option("--output", "output_path", type=_PATH, required=True, help="Where to write the output .npy.")
@click.option(
    "--initial-state",
    type=_PATH,
    help=".npz with 'h' [B,P] and/or 'c' [B,N] (default zeros); for several LSTM ops h_0, c_0, h_1, ... in op order.",
)
@click.option("--final-state", type=_PATH, help="Write the final state as .npz: 'c' and 'h' (one op) or c_0, h_0, ...")
@click.option(
    "--chunk",
    type=click.IntRange(min=1),
    help="Feed N time steps per invoke, carrying the state (last chunk may be shorter).",
)
@click.option("--runtime", type=click.Choice(RUNTIME_CHOICES), default="auto", show_default=True)
@_handle_errors
def run_cmd(
    model: Path,
    input_path: Path,
    output_path: Path,
    initial_state: Path | None,
    final_state: Path | None,
    chunk: int | None,
    runtime: str,
) -> None:
    """Run MODEL on an input sequence from the zero (or a given) state.

    Inputs whose batch or time size differ from the model's are resized when the model allows it.

    \b
    Examples:
      lstmgen run lstm.tflite --input x.npy --output y.npy
      lstmgen run lstm.tflite --input x.npy --output y.npy --chunk 10 --final-state s.npz
    """
    x = load_npy(input_path, "input")
    state = _load_state(initial_state) if initial_state else {}
    for target in (output_path, final_state):
        if target is not None:
            check_target(target)  # before running, so one bad path cannot leave the other file behind
    y, finals = run_model_states(
        model,
        x,
        initial=_state_list(state),
        chunk=chunk,
        runtime=runtime,
        input_label=f"input {input_path}",
        state_label=f"initial state {initial_state}",
    )
    buf = io.BytesIO()
    np.save(buf, y)
    write_atomic(output_path, buf.getbuffer())
    if final_state is not None:
        sbuf = io.BytesIO()
        if len(finals) == 1:
            np.savez(sbuf, c=finals[0][1], h=finals[0][0])
        else:
            np.savez(sbuf, **{f"{key}_{k}": v for k, (h, c) in enumerate(finals) for key, v in (("h", h), ("c", c))})
        write_atomic(final_state, sbuf.getbuffer())
    click.echo(f"wrote {output_path} {list(y.shape)}" + (f" and {final_state}" if final_state else ""), err=True)


if __name__ == "__main__":  # pragma: no cover
    main()
