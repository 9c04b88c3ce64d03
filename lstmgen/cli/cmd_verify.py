"""`lstmgen verify`: run a model in an interpreter against the NumPy reference."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from lstmgen.arrays import load_npy
from lstmgen.check.tolerance import plot_error, require_plotting
from lstmgen.check.verify import verify_model
from lstmgen.cli.common import EXIT_CODES, PATH, handle_errors, verify_line
from lstmgen.errors import LstmgenError, VerificationError
from lstmgen.output import check_target, refuse_same, write_atomic
from lstmgen.runtimes.interpreter import CLI_RUNTIME_CHOICES
from lstmgen.runtimes.micro import import_tflm


@click.command("verify", epilog=EXIT_CODES)
@click.argument("model", type=PATH)
@click.option("--runtime", type=click.Choice(CLI_RUNTIME_CHOICES), default="auto", show_default=True)
@click.option(
    "--seed", type=click.IntRange(0, 2**32 - 1), default=0, show_default=True, help="Seed of the random test input."
)
@click.option("--batch-size", type=click.IntRange(min=1), help="Test batch size (resizes the model if it allows).")
@click.option("--time-steps", type=click.IntRange(min=1), help="Test time steps (dynamic-time models only).")
@click.option("--micro", is_flag=True, help="Also run the model in TensorFlow Lite Micro (pip install tflite-micro).")
@click.option(
    "--input",
    "input_path",
    type=PATH,
    help="Test input .npy instead of seeded random data (e.g. one calibration sample for int8 models).",
)
@click.option("--report", type=PATH, help="Also write the JSON report to this file.")
@click.option("--plot", type=PATH, help="Quantized models: draw error vs time step to this PNG (needs matplotlib).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
@handle_errors
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
    inputs = {"MODEL": model, "--input": input_path}
    refuse_same({"--report": report, "--plot": plot})
    for target in (report, plot):
        if target is not None:
            check_target(target, inputs)  # before verifying: an output may not name an input
    if plot is not None:
        require_plotting()  # before the (possibly long) verification, not after it
    if micro:
        import_tflm()
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
        click.echo(verify_line(rep))
    if not rep.passed:
        # The report (ok: false) is the JSON document; the error goes to stderr only.
        click.echo(
            f"lstmgen: error: {model}: the interpreter disagrees with the reference "
            f"(max abs error {rep.max_abs_error:.3g}).",
            err=True,
        )
        sys.exit(VerificationError.exit_code)



command = verify_cmd
