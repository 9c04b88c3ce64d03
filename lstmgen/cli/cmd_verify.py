"""`lstmgen verify`: run a model in an interpreter against the NumPy reference."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import numpy as np

from lstmgen import guard
from lstmgen.check.tolerance import plot_error, require_plotting
from lstmgen.check.verify import input_shape_for, verify_model
from lstmgen.cli.common import (
    EXIT_CODES,
    PATH,
    handle_errors,
    json_document,
    progress_sink,
    runtime_option,
    verify_line,
)
from lstmgen.config import FILE_ONLY_KEYS, check_fields, check_keys, load_config_file
from lstmgen.errors import LstmgenError, VerificationError
from lstmgen.export_graph import check_labels
from lstmgen.modelinfo import LstmModel, read_lstm_model
from lstmgen.numerics.emulate.report import emulation_lines, emulation_verdict
from lstmgen.output import check_target, refuse_same, write_atomic
from lstmgen.progress import showing, task
from lstmgen.runtimes.micro import import_tflm
from lstmgen.samples import read_samples
from lstmgen.weights import FORMATS

if TYPE_CHECKING:
    from lstmgen.check.report import VerifyReport

# The build's cell flags: the source LSTM (what the weight file does not state) and the model's topology and
# sizes, which the model records (a stated one is a cross-check: FAIL when the model differs).
_CELL_FLAGS: list[Callable[[Any], Any]] = [
    click.option(
        "--num-units",
        type=int,
        help="Cross-check: the model's cells N (layer 0); the model gives it to a file that "
        "records no sizes (a CudnnLSTM opaque_kernel).",
    ),
    click.option("--input-size", type=int, help="Cross-check: the model's input features I (as --num-units)."),
    click.option("--forget-bias", type=float, help="Added to the forget gate at run time [default: per format]."),
    click.option("--cell-clip", type=float, help="Cell-state clip of the source cell (0 = none)."),
    click.option("--proj-clip", type=float, help="Projection clip of the source cell (0 = none)."),
    click.option("--activation", help="Cell activation: tanh (default), relu, relu6, relu_n1_to_1."),
    click.option("--use-peepholes/--no-use-peepholes", default=None, help="Peephole connections."),
    click.option("--num-proj", type=int, help="Projection size P."),
    click.option("--cifg/--no-cifg", default=None, help="Coupled input-forget gate."),
    click.option("--layer-norm/--no-layer-norm", default=None, help="Layer-normalised gates."),
    click.option("--diagonal-recurrent/--full-recurrent", default=None, help="Rank-1 recurrent weights."),
    click.option("--num-layers", type=int, help="Layers the model stacks [default: the model's]."),
    click.option("--bidirectional/--no-bidirectional", default=None, help="Forward + backward per layer."),
    click.option("--go-backwards/--no-go-backwards", default=None, help="A single layer over the reversed sequence."),
    click.option(
        "--return-sequences/--last-step", default=None, help="Every step, or only the last [default: the model's]."
    ),
    click.option(
        "--time-major/--batch-major", default=None, help="Input layout [T,B,I] or [B,T,I] [default: the model's]."
    ),
    click.option("--dynamic-batch/--fixed-batch", default=None, help="Cross-check: a resizable batch axis."),
]
# What the model records, checked against a stated flag before anything runs (a difference is a FAIL).
_RECORDED: dict[str, Callable[[Any, dict[str, Any]], Any]] = {
    "num_units": lambda lm, topo: lm.lstms[0].num_units if lm.lstms else lm.metadata["hyperparameters"]["num_units"],
    "input_size": lambda lm, topo: lm.input_size,
    "num_layers": lambda lm, topo: topo["num_layers"],
    "bidirectional": lambda lm, topo: topo["bidirectional"],
    "go_backwards": lambda lm, topo: topo["go_backwards"],
    "return_sequences": lambda lm, topo: topo["return_sequences"],
    "time_major": lambda lm, topo: lm.time_major,
    "dynamic_batch": lambda lm, topo: (lm.input.shape_signature or lm.input.shape)[1 if lm.time_major else 0] == -1,
}
# Keys of a build config that are not about the source cell nor the model's topology: verify ignores them.
_BUILD_ONLY: tuple[str, ...] = ("init", "seed", "name", "dtype", "batch_size", "time_steps", "quantize", "form")
_BUILD_ONLY += ("asymmetric_inputs", "io_type", "target", "calibration_data", "calibration")


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
@click.option("--batch-size", type=click.IntRange(1, 1 << 20), help="Test batch size (resizes the model if it allows).")
@click.option("--time-steps", type=click.IntRange(1, 1 << 20), help="Test time steps (dynamic-time models only).")
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
    "--config",
    "config_file",
    type=PATH,
    help="The build's TOML/JSON config: its weights and cell keys, as build reads them (options override it).",
)
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
    config_file: Path | None,
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
      # models from the examples of lstmgen build --help
      lstmgen verify lstm.tflite
      lstmgen verify lstm.tflite --runtime litert --json > verify.json
      lstmgen verify lstm_int8.tflite --input calib.npy --report r.json --plot error.png
      lstmgen verify lstm_int8.tflite --micro
      # against the source weights: the build's config, or the file and the options it does not record
      lstmgen verify lstm.tflite --config cell.toml
      lstmgen verify kws.tflite --weights kws_tf1.npz --cell-clip 3
      lstmgen verify enc.tflite --weights encoder.npz      # layers, directions, layout: from the model
      lstmgen verify lstm_int8.tflite --config kws.toml --input calib.npy --max-error 0.05
    """
    weights, weights_format, layer, stated = _stated(config_file, weights, weights_format, layer, cell)
    inputs = {"MODEL": model, "--input": input_path, "--weights": weights, "--config": config_file}
    _preflight(report, plot, micro, inputs)
    lm = read_lstm_model(model, head_ok=True, graph_ok=True)  # once: for the cross-checks and --input
    if lm.form == "graph":
        check_labels(lm, str(model))  # a label that lies is refused before it is shown
    _check_test_size(lm, batch_size, time_steps)  # before anything of that size is allocated
    samples, reading = _inputs(lm, input_path, max_samples)
    recorded = _cross_check(lm, stated)  # a stated topology or size the model does not have: FAIL now
    recorded["form"] = lm.form
    reference = _source(weights, weights_format, layer, stated, recorded, max_error, cell)
    with showing(progress_sink(quiet or as_json)), task("verifying"):
        check = partial(verify_model, model, runtime=runtime, seed=seed, batch_size=batch_size, time_steps=time_steps)
        reports = [check(x=x, micro=micro, source=reference, max_error=max_error) for x in samples]
    worst = _worst(reports)
    rep = reports[worst]
    if plot is not None:
        _write_plot(model, rep, plot, inputs)
    payload, failure = _payload(model, rep, len(reports), worst, reading)
    if report is not None:
        write_atomic(report, json_document(payload).encode(), inputs=inputs)
    if as_json:
        click.echo(json_document(payload))
    else:
        _print_text(model, rep, len(reports), worst, reading)
    if failure is not None:
        click.echo(f"lstmgen: error: {failure}", err=True)
        sys.exit(VerificationError.exit_code)


def _source(
    weights: Path | None,
    weights_format: str,
    layer: str | None,
    stated: dict[str, Any],
    recorded: dict[str, Any],
    max_error: float | None,
    cell: dict[str, Any],
) -> Any:
    """The source reference for --weights, else None, refusing the options that only describe a source."""
    if weights is not None:
        return _reference(weights, weights_format, layer, stated, recorded)
    if max_error is not None or any(v is not None and k not in _RECORDED for k, v in cell.items()):
        raise LstmgenError("--max-error and the cell flags describe the source LSTM: they need --weights FILE.")
    return None


def _preflight(report: Path | None, plot: Path | None, micro: bool, inputs: dict[str, Path | None]) -> None:
    """Refuse bad outputs and missing extras before the (possibly long) verification, not after it."""
    refuse_same({"--report": report, "--plot": plot})
    for target in (report, plot):
        if target is not None:
            check_target(target, inputs)  # before verifying: an output may not name an input
    if plot is not None:
        if plot.suffix.lower() != ".png":  # matplotlib picks the format by suffix: '.npy' was an internal error
            raise LstmgenError(f"--plot {plot}: the plot is a PNG; give a path ending in .png, e.g. error.png.")
        require_plotting()
    if micro:
        import_tflm()


def _worst(reports: list[VerifyReport]) -> int:
    """The sample that speaks for the set: the first that fails, else the largest error."""
    worst = next((k for k, r in enumerate(reports) if not r.passed), None)
    if worst is None:
        worst = max(range(len(reports)), key=lambda k: reports[k].max_abs_error)
    return worst


def _write_plot(model: Path, rep: VerifyReport, plot: Path, inputs: dict[str, Path | None]) -> None:
    """--plot: the quantization error over time, written atomically; a float model has none to draw."""
    if not rep.quantization:
        raise LstmgenError(f"--plot draws quantization error over time; {model} is a float model.")
    quant = rep.quantization[0]
    write_atomic(plot, lambda fh: plot_error(quant, fh), inputs=inputs)


def _payload(
    model: Path, rep: VerifyReport, count: int, worst: int, reading: str | None
) -> tuple[dict[str, Any], str | None]:
    """(the JSON report, the failure's one-line reason or None)."""
    payload = {"ok": rep.passed, **rep.to_dict()}
    if reading is not None:
        payload["samples"] = {"count": count, "worst": worst, "reading": reading}
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
    return payload, failure


def _print_text(model: Path, rep: VerifyReport, count: int, worst: int, reading: str | None) -> None:
    """The human-readable report on stdout: one line per check, the verdict, scope, notes, the source check."""
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
    else:  # PASS above is the interpreter's against the file's own graph: say what it does not show
        click.echo(
            "  not compared with a source: this shows the interpreter computes what the file says, not that the "
            "file holds your LSTM; add --weights W (your weight file) for that"
        )
    if reading is not None:
        click.echo(f"  {reading}; ran {count}, the worst is sample {worst} (shown)")


def _stated(
    config_file: Path | None, weights: Path | None, weights_format: str, layer: str | None, cell: dict[str, Any]
) -> tuple[Path | None, str, str | None, dict[str, Any]]:
    """(weights, format, layer, stated cell options): --config's keys as build reads them, flags over them."""
    options: dict[str, Any] = {}
    if config_file is not None:
        options = load_config_file(config_file)
        check_keys(options, str(config_file))
        if weights is None and options.get("weights"):
            weights = Path(options["weights"])
        if weights_format == "auto":
            weights_format = options.get("weights_format") or "auto"
        layer = layer or options.get("layer")
        options = {k: v for k, v in options.items() if k not in (*FILE_ONLY_KEYS, *_BUILD_ONLY)}
    options.update({k: v for k, v in cell.items() if v is not None})
    check_fields(options)  # ranges, as build's (a --cell-clip 1e39 is bad input, not a crash)
    return weights, weights_format, layer, options


def _check_test_size(lm: LstmModel, batch_size: int | None, time_steps: int | None) -> None:
    """A test run (the model's input shape, or --batch-size x --time-steps where its axes are dynamic) within
    the byte budget (the float64 references hold a few arrays of the input and the gates per step), refused
    before any allocation: a file whose input declares 14 million steps took the model fuzzer's verify to 4 GB
    and no end."""
    shape = input_shape_for(lm, batch_size, time_steps)
    units = max((s.num_units for s in lm.lstms), default=_recorded(_RECORDED["num_units"], lm, {}) or lm.input_size)
    width = lm.input_size + 4 * int(units)
    need = math.prod(shape[:-1]) * width * 8 * 4
    if need > guard.MODEL_SIZE_LIMIT:
        given = batch_size is not None or time_steps is not None
        raise LstmgenError(
            f"{'--batch-size/--time-steps: ' if given else ''}a test run on input {shape} would hold about "
            f"{need / 2**30:.3g} GiB of arrays, over the {guard.MODEL_SIZE_LIMIT / 2**30:.0f} GiB limit. "
            + ("Test with fewer rows or steps." if given else "The file's input fixes that shape, so verify "
               "cannot run it; a model with a dynamic time axis (build without --time-steps) is verified on "
               "--time-steps of your choice.")
        )  # fmt: skip


def _cross_check(lm: LstmModel, stated: dict[str, Any]) -> dict[str, Any]:
    """What the model records (topology, sizes); a stated value that differs is a FAIL naming each difference."""
    from lstmgen.describe import topology

    topo = topology(lm)
    recorded = {key: _recorded(get, lm, topo) for key, get in _RECORDED.items()}
    differ = [
        _difference(key, stated[key], recorded[key])
        for key in _RECORDED
        if key in stated and recorded[key] is not None and stated[key] != recorded[key]
    ]
    if differ:
        raise VerificationError(
            f"{lm.path}: FAIL: the model is not the LSTM the options describe: {'; '.join(differ)}. Drop those "
            "options (verify reads them from the model), or check that MODEL is the file you meant."
        )
    return recorded


def _recorded(get: Callable[[Any, dict[str, Any]], Any], lm: LstmModel, topo: dict[str, Any]) -> Any:
    """One recorded value; None where the graph does not say (an input of another rank, inside a larger graph)."""
    try:
        return get(lm, topo)
    except (IndexError, KeyError, TypeError, ValueError):
        return None


# Boolean options by their two spellings (as the build takes them).
_SPELLED = {
    "bidirectional": ("--bidirectional", "--no-bidirectional"),
    "go_backwards": ("--go-backwards", "--no-go-backwards"),
    "return_sequences": ("--return-sequences", "--last-step"),
    "time_major": ("--time-major", "--batch-major"),
    "dynamic_batch": ("--dynamic-batch", "--fixed-batch"),
}


def _difference(key: str, stated: Any, recorded: Any) -> str:
    if key in _SPELLED:
        yes, no = _SPELLED[key]
        return f"{yes if stated else no} was stated, the model is {yes if recorded else no}"
    return f"--{key.replace('_', '-')} {stated} was stated, the model has {recorded}"


# What the source's resolved topology must share with the model's record (lstmgen's graph form records its layers and
# directions in metadata only, which `export` follows; a fused model's are its ops).
_TOPOLOGY = {False: ("go_backwards",), True: ("go_backwards", "num_layers", "bidirectional")}


def _reference(
    weights: Path, weights_format: str, layer: str | None, stated: dict[str, Any], recorded: dict[str, Any]
) -> Any:
    """The source reference for --weights, with the build's rules for what the file implies.

    The layer count and the layout come from the model unless stated (a file may hold more layers than
    the model stacks; a state_dict records neither layout nor last step); the cross-checks are not options
    of the source (the file states its sizes).
    """
    from lstmgen.errors import ConfigError
    from lstmgen.pipeline.resolve import load_stack, resolve, stated_sizes
    from lstmgen.pipeline.verify_gate import source_reference
    from lstmgen.weights import open as open_weights

    options = {k: v for k, v in stated.items() if k not in ("num_units", "input_size", "dynamic_batch")}
    # A file that records no sizes (a CudnnLSTM opaque buffer) is cut by the model's. The loaded weights stay
    # valid after the close.
    with open_weights(weights, weights_format, stated_sizes(recorded)) as source:
        listed = len(source.cells(layer))
        if "num_layers" not in options and recorded["num_layers"] is not None and recorded["num_layers"] <= listed:
            options["num_layers"] = recorded["num_layers"]
        layers = load_stack(source, layer, options.get("num_layers"))
    said = {k for cells in layers for c in cells for k in c.hyperparameters}
    for key in ("return_sequences", "time_major"):  # unless the file states it (a Keras config does)
        if key not in options and key not in said and recorded[key] is not None:
            options[key] = recorded[key]
    backward = recorded["go_backwards"]
    if backward and "go_backwards" not in options and "go_backwards" not in said:  # the model's word, as the layout
        options["go_backwards"] = True
    config, layers, _, _ = resolve(options, layers)
    differ = [
        f"{key} {getattr(config, key)} in the source, {recorded[key]} in the model"
        for key in _TOPOLOGY[recorded.get("form") == "graph"]
        if recorded[key] is not None and getattr(config, key) != recorded[key]
    ]
    if differ:
        raise VerificationError(
            f"{weights}: FAIL: the source's topology is not the one the model records ({'; '.join(differ)}): an "
            "export of the model would carry the model's. Check that MODEL is the file you meant, or rebuild it "
            "from the source."
        )
    reference, why = source_reference(config, layers, options.get("forget_bias"))
    if reference is None:
        raise ConfigError(f"{weights}: {why}; the model cannot be checked against it.")
    return reference


def _inputs(lm: LstmModel, path: Path | None, max_samples: int | None) -> tuple[list[np.ndarray | None], str | None]:
    """The test inputs: seeded random data (None), or every sample of --input read as the model's inputs."""
    if path is None:
        if max_samples is not None:
            raise LstmgenError("--samples K counts the samples of --input; pass --input too.")
        return [None], None
    samples, reading = read_samples(path, lm.input.shape, lm.input.shape_signature, lm.time_major, "input")
    if samples.shape[0] == 0:
        raise LstmgenError(f"input {path} holds no samples (shape {list(samples.shape)}).")
    return list(samples[:max_samples] if max_samples else samples), reading


command = verify_cmd
