"""`lstmgen verify`: run a model in an interpreter against the NumPy reference."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import numpy as np

from lstmgen.arrays import real_values
from lstmgen.check.tolerance import plot_error, require_plotting
from lstmgen.check.verify import verify_model
from lstmgen.cli.common import (
    EXIT_CODES,
    PATH,
    handle_errors,
    json_document,
    progress_sink,
    runtime_option,
    verify_line,
)
from lstmgen.errors import LstmgenError, VerificationError
from lstmgen.modelinfo import read_lstm_model
from lstmgen.numerics.emulate.report import emulation_lines, emulation_verdict
from lstmgen.output import check_target, refuse_same, write_atomic
from lstmgen.progress import showing, task
from lstmgen.runtimes.micro import import_tflm
from lstmgen.samples import read_samples
from lstmgen.weights import FORMATS

# The build's cell flags that describe the source LSTM (what the weight file does not state).
_CELL_FLAGS: list[Callable[[Any], Any]] = [
    click.option("--forget-bias", type=float, help="Added to the forget gate at run time [default: per format]."),
    click.option("--cell-clip", type=float, help="Cell-state clip of the source cell (0 = none)."),
    click.option("--proj-clip", type=float, help="Projection clip of the source cell (0 = none)."),
    click.option("--activation", help="Cell activation: tanh (default), relu, relu6, relu_n1_to_1."),
    click.option("--use-peepholes/--no-use-peepholes", default=None, help="Peephole connections."),
    click.option("--num-proj", type=int, help="Projection size P."),
    click.option("--cifg/--no-cifg", default=None, help="Coupled input-forget gate."),
    click.option("--layer-norm/--no-layer-norm", default=None, help="Layer-normalised gates."),
    click.option("--num-units", type=int, help="Units, for a file that records no sizes (a CudnnLSTM opaque_kernel)."),
    click.option("--input-size", type=int, help="Input size, for a file that records no sizes (an opaque_kernel)."),
    click.option("--num-layers", type=int, help="How many of the file's layers the model stacks."),
    click.option("--bidirectional/--no-bidirectional", default=None, help="Forward + backward per layer."),
    click.option("--go-backwards/--no-go-backwards", default=None, help="A single layer over the reversed sequence."),
    click.option("--return-sequences/--last-step", default=None, help="Every step, or only the last."),
    click.option("--time-major/--batch-major", default=None, help="Input layout [T,B,I] or [B,T,I]."),
]


def _cell_flags(func: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(_CELL_FLAGS):
        func = option(func)
    return func


@click.command("verify", epilog=EXIT_CODES)
@click.argument("model", type=PATH)
@runtime_option("Interpreter to run MODEL in; micro = TensorFlow Lite Micro.")
@click.option(
    "--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True, help="Seed of the random test input."
)
@click.option("--batch-size", type=click.IntRange(min=1), help="Test batch size (resizes the model if it allows).")
@click.option("--time-steps", type=click.IntRange(min=1), help="Test time steps (dynamic-time models only).")
@click.option("--micro", is_flag=True, help="Also run the model in TensorFlow Lite Micro (pip install tflite-micro).")
@click.option(
    "--input",
    "input_path",
    type=click.Path(path_type=Path),
    help="Test inputs instead of seeded random data: an .npy (one sample, [n, *input] samples, or [N, T, I] "
    "sequences), an .npz or a directory of them (e.g. the calibration set). Every sample runs; the worst is reported.",
)
@click.option(
    "--samples", "max_samples", type=click.IntRange(min=1), help="With --input: run only the first K samples."
)
@click.option("--report", type=PATH, help="Also write the JSON report to this file.")
@click.option("--plot", type=PATH, help="Quantized models: draw error vs time step to this PNG (needs matplotlib).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
@click.option(
    "--weights",
    type=click.Path(path_type=Path),
    help="The source weight file: also check the model against it, in its framework's own equations.",
)
@click.option("--weights-format", type=click.Choice(FORMATS), default="auto", help="Layout of --weights.")
@click.option("--layer", help="Which layer/scope/key prefix of --weights the model holds.")
@click.option(
    "--max-error",
    type=click.FloatRange(min=0, min_open=True),
    help="Quantized models: fail (exit 1) when the max abs error against the float source exceeds this.",
)
@_cell_flags
@click.option("-q", "--quiet", is_flag=True, help="No progress on stderr.")
@handle_errors
def verify_cmd(
    model: Path,
    runtime: str,
    seed: int,
    batch_size: int | None,
    time_steps: int | None,
    micro: bool,
    input_path: Path | None,
    max_samples: int | None,
    report: Path | None,
    plot: Path | None,
    as_json: bool,
    quiet: bool,
    weights: Path | None,
    weights_format: str,
    layer: str | None,
    max_error: float | None,
    **cell: Any,
) -> None:
    """Run MODEL in a TFLite interpreter and compare with the NumPy reference.

    Works for any model of fused UNIDIRECTIONAL_SEQUENCE_LSTM ops (also TF-converter output), float or
    quantized. Without --weights the reference is fed from the file itself: that proves the interpreter
    computes what the file says, not that the file is your LSTM. With --weights (plus the cell flags
    the file does not state) the model is also run against the weight file in its framework's own
    equations: every LSTM constant must equal the source's within its type, a clip the source lacks must not
    change the numbers (else exit 1, naming it; a note with the margin if it never binds), and the outputs
    must agree. Quantized models are judged against tolerances derived per time step from the kernel's
    rounding and the file's own quantization steps (--max-error sets your own gate against the source).

    \b
    Examples:
      lstmgen verify lstm.tflite
      lstmgen verify lstm.tflite --runtime tflite-runtime --json > verify.json
      lstmgen verify lstm_int8.tflite --input calib.npy --report r.json --plot error.png
      lstmgen verify lstm_micro.tflite --micro
      lstmgen verify converted.tflite --weights model.keras            # TF converter output vs Keras
      lstmgen verify lstm.tflite --weights cell_tf1.npz --cell-clip 3 --use-peepholes
      lstmgen verify int8.tflite --weights enc.pt --input calib.npy --max-error 0.05
      lstmgen verify cudnn.tflite --weights opaque.npz --num-units 64 --input-size 32   # a CudnnLSTM buffer
    """
    samples, reading = _inputs(model, input_path, max_samples)
    inputs = {"MODEL": model, "--input": input_path}
    refuse_same({"--report": report, "--plot": plot})
    for target in (report, plot):
        if target is not None:
            check_target(target, inputs)  # before verifying: an output may not name an input
    if plot is not None:
        if plot.suffix.lower() != ".png":  # matplotlib picks the format by suffix: '.npy' was an internal error
            raise LstmgenError(f"--plot {plot}: the plot is a PNG; give a path ending in .png, e.g. error.png.")
        require_plotting()  # before the (possibly long) verification, not after it
    if micro:
        import_tflm()
    reference = None
    if weights is not None:
        reference = _reference(weights, weights_format, layer, {k: v for k, v in cell.items() if v is not None})
    elif max_error is not None or any(v is not None for v in cell.values()):
        raise LstmgenError("--max-error and the cell flags describe the source LSTM: they need --weights FILE.")
    with showing(progress_sink(quiet or as_json)), task("verifying"):
        reports = [
            verify_model(
                model,
                runtime=runtime,
                seed=seed,
                batch_size=batch_size,
                time_steps=time_steps,
                x=x,
                micro=micro,
                source=reference,
                max_error=max_error,
            )
            for x in samples
        ]
    # The worst sample speaks for the set: the first that fails, else the largest error.
    worst = next((k for k, r in enumerate(reports) if not r.passed), None)
    if worst is None:
        worst = max(range(len(reports)), key=lambda k: reports[k].max_abs_error)
    rep = reports[worst]
    if plot is not None:
        if not rep.quantization:
            raise LstmgenError(f"--plot draws quantization error over time; {model} is a float model.")
        plot_error(rep.quantization[0], plot)
    payload = {"ok": rep.passed, **rep.to_dict()}
    if reading is not None:
        payload["samples"] = {"count": len(reports), "worst": worst, "reading": reading}
    failure = None
    if not rep.passed:
        src = rep.against_source
        failure = (
            f"{model}: "
            + (
                f"does not compute the source LSTM ({src.reference}: {src.failure_reason()})."
                if src is not None and not src.passed
                else f"the interpreter disagrees with the reference (max abs error {rep.max_abs_error:.3g})."
            )
            + emulation_verdict(rep.emulation)
        )
        # The report is the one JSON document; as every failed run's, it says why and the exit status.
        payload |= {"error": failure, "exit_code": VerificationError.exit_code}
    if report is not None:
        write_atomic(report, json_document(payload).encode())
    if as_json:
        click.echo(json_document(payload))
    else:
        click.echo(f"{model}:")
        for check in rep.checks:
            click.echo(
                f"  {check.name:<32} max abs {check.max_abs_error:.3g}  max rel {check.max_rel_error:.3g}  "
                f"{'ok' if check.passed else 'FAIL'}"
            )
        click.echo(verify_line(rep))
        for line in emulation_lines(rep.emulation):
            click.echo(f"  {line}")
        for line in rep.scope:
            click.echo(f"  {line}")
        for note in rep.notes:
            click.echo(f"  note: {note}")
        if rep.against_source is not None:
            click.echo(rep.against_source.summary())
        if reading is not None:
            click.echo(f"  {reading}; ran {len(reports)}, the worst is sample {worst} (shown)")
    if failure is not None:
        click.echo(f"lstmgen: error: {failure}", err=True)
        sys.exit(VerificationError.exit_code)


def _reference(weights: Path, weights_format: str, layer: str | None, options: dict[str, Any]) -> Any:
    """The source reference for --weights, with the build's rules for what the file implies."""
    from lstmgen.errors import ConfigError
    from lstmgen.pipeline.resolve import load_stack, resolve, stated_sizes
    from lstmgen.pipeline.verify_gate import source_reference
    from lstmgen.weights import open as open_weights

    # The loaded weights stay valid after the close.
    with open_weights(weights, weights_format, stated_sizes(options)) as source:
        layers = load_stack(source, layer, options.get("num_layers"))
    config, layers, _, _ = resolve(options, layers)
    reference, why = source_reference(config, layers, options.get("forget_bias"))
    if reference is None:
        raise ConfigError(f"{weights}: {why}; the model cannot be checked against it.")
    return reference


def _inputs(model: Path, path: Path | None, max_samples: int | None) -> tuple[list[np.ndarray | None], str | None]:
    """The test inputs: seeded random data (None), or every sample of --input read as the model's inputs."""
    if path is None:
        if max_samples is not None:
            raise LstmgenError("--samples K counts the samples of --input; pass --input too.")
        return [None], None
    lm = read_lstm_model(model, head_ok=True)
    samples, reading = read_samples(path, lm.input.shape, lm.input.shape_signature, lm.time_major, "input")
    real_values(samples, "input", path)
    if samples.shape[0] == 0:
        raise LstmgenError(f"input {path} holds no samples (shape {list(samples.shape)}).")
    return list(samples[:max_samples] if max_samples else samples), reading


command = verify_cmd
