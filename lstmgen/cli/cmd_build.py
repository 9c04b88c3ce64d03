"""`lstmgen build`: write (and verify) a model from a config and weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from lstmgen import guard
from lstmgen.build import BuildResult, build
from lstmgen.cli.common import (
    EXIT_CODES,
    PATH,
    handle_errors,
    json_document,
    progress,
    progress_sink,
    runtime_option,
    verify_line,
)
from lstmgen.config import FORMS, INITIALIZERS, IO_TYPES, TARGETS, check_keys, load_config_file
from lstmgen.numerics.tables import QUANTIZE_MODES
from lstmgen.output import check_target, refuse_same, write_atomic
from lstmgen.progress import showing
from lstmgen.targets import ACCELERATORS
from lstmgen.weights import FORMATS


@click.command("build", epilog=EXIT_CODES)
@click.option("-o", "--output", type=PATH, required=True, help="Model file to write (overwritten atomically).")
@click.option(
    "--config",
    "config_file",
    type=PATH,
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
@click.option(
    "--num-layers", type=int, help="Stacked layers (with --weights: how many of the file's layers [default: all])."
)
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
    help="none (default), float16, dynamic-int8 (hybrid), int8 (full integer, needs calibration) or int16x8 "
    "(int16 activations, int8 weights, needs calibration; runs in TFLite Micro and on Ethos-U, not in TFLite).",
)
@click.option(
    "--asymmetric-inputs/--symmetric-inputs",
    default=None,
    help="dynamic-int8: how the kernel quantizes float inputs on the fly [default: asymmetric, as TF's converter: "
    "op version 3, runtime >= 2.3.0; --symmetric-inputs: version 2, runtime >= 1.14.0, less accurate].",
)
@click.option(
    "--io-type",
    type=click.Choice(IO_TYPES),
    help="int8/int16x8: model input/output type [default: the activation type, int8 or int16; "
    "float32 adds QUANTIZE/DEQUANTIZE so callers keep feeding floats].",
)
@click.option(
    "--calibration-data",
    type=click.Path(path_type=Path),
    help="int8/int16x8: representative inputs: an .npy [n, *input shape] (or [N, T, I] for batch 1), an .npz, "
    "or a directory of .npy files.",
)
@click.option(
    "--calibration",
    type=click.Choice(["data", "random"]),
    help="int8: 'random' calibrates on random inputs (a labelled smoke test, not for deployment).",
)
@click.option(
    "--target",
    type=click.Choice(TARGETS),
    help="tflite (default); micro: refuse what TensorFlow Lite Micro cannot run, and verify in TFLM too; ethos-u: "
    "refuse what vela would leave on the CPU, then compile with vela when installed (exit 1 on any CPU operator).",
)
@click.option(
    "--form",
    type=click.Choice(FORMS),
    help="fused (default): one fused LSTM op per layer and direction (TFLite, TFLM, NPUs); graph: the cell "
    "unrolled over --time-steps into FULLY_CONNECTED/ADD/LOGISTIC/... ops that XNNPACK runs on every thread "
    "(float32, float16, dynamic-int8 with per-channel scales). The fused op keeps its state between invokes; the "
    "graph form starts each invoke from zero unless built with --state-io.",
)
@click.option(
    "--state-io/--no-state-io",
    default=None,
    help="graph form: each layer's and direction's initial h and c become model inputs and its final h and c "
    "model outputs (as an ONNX LSTM's initial_h/initial_c and Y_h/Y_c), so the caller streams by feeding each "
    "invoke's final state into the next (lstmgen run --chunk does). Without it every invoke starts from zero. "
    "The fused form carries its state in variable tensors and needs no option.",
)
@click.option(
    "--embed",
    "embed_path",
    type=PATH,
    help="Also write firmware sources: DIR/NAME.cc and NAME.h (as `lstmgen embed`; needs tflite-micro).",
)
@click.option(
    "--accelerator-config",
    type=click.Choice(ACCELERATORS),
    help="ethos-u: vela's --accelerator-config [default: ethos-u55-128].",
)
@click.option(
    "--max-error",
    type=click.FloatRange(min=0, min_open=True),
    help="Quantized builds: fail (exit 1, no file written) when the max abs error against the float source "
    "(on the calibration data) exceeds this.",
)
@click.option("--verify/--no-verify", default=True, show_default=True, help="Check the file with a TFLite interpreter.")
@runtime_option("Interpreter used for verification.")
@click.option(
    "--max-weights-bytes",
    type=click.IntRange(min=1),
    help="Refuse weight files whose arrays declare more bytes than this, before reading them [default: 2 GiB].",
)
@click.option("--json", "as_json", is_flag=True, help="Print the build summary as JSON on stdout.")
@click.option(
    "--summary-md",
    "summary_md",
    type=PATH,
    help="Also write the summary as Markdown (a table of the layers, the verification): a CI job summary.",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress messages on stderr.")
@handle_errors
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
    accelerator_config: str | None,
    embed_path: Path | None,
    max_weights_bytes: int | None,
    as_json: bool,
    summary_md: Path | None,
    quiet: bool,
    max_error: float | None,
    **cell: Any,
) -> None:
    """Build a model from hyperparameters and (optionally) a weight file, then verify it.

    \b
    Examples:
      # the files are in the repository's examples/ folder
      # random (glorot_uniform) weights, dynamic time axis
      lstmgen build --num-units 64 --input-size 32 -o random.tflite
      # a TF1 LSTMCell's variables; forget_bias 1.0 (TF1's default) is folded into the forget-gate bias
      lstmgen build --weights kws_tf1.npz --cell-clip 3 -o kws.tflite
      # everything from a config file, machine-readable report for CI
      lstmgen build --config cell.toml -o lstm.tflite --json > build-report.json
      # ... and a Markdown summary for a CI job (GitHub: append it to $GITHUB_STEP_SUMMARY)
      lstmgen build --config cell.toml -o lstm.tflite --summary-md summary.md
      # a PyTorch state_dict (.pt, .safetensors or .npz): every layer and direction it holds; it does
      # not record batch_first, and nn.LSTM's default is time-major [T,B,I]
      lstmgen build --weights encoder.npz --time-major -o enc.tflite
      # full-integer int8 for a microcontroller, calibrated on representative inputs
      lstmgen build --config kws.toml --quantize int8 --calibration-data calib.npy \\
          --target micro -o lstm_int8.tflite
      # 16-bit activations (verified in TFLite Micro), for an Ethos-U NPU, checked by vela
      lstmgen build --config kws.toml --quantize int16x8 --calibration-data calib.npy \\
          --target ethos-u -o npu.tflite
      # a model for LiteRT's default XNNPACK delegate: unrolled builtin ops, per-channel hybrid
      lstmgen build --weights encoder.npz --time-steps 20 --form graph --quantize dynamic-int8 -o graph.tflite
      # ... streamable: initial and final h/c of every layer as extra inputs and outputs
      lstmgen build --weights kws_tf1.npz --cell-clip 3 --form graph --state-io -o stream.tflite
    """
    options, (file_weights, file_format, file_layer, file_calib, file_calibration) = _options(config_file, cell)
    weights_path = weights if weights is not None else (Path(file_weights) if file_weights else None)
    inputs = {"--weights": weights_path, "--config": config_file, "--calibration-data": calibration_data or file_calib}
    check_target(output, inputs)  # before any work: -o may not name an input
    if summary_md is not None:
        refuse_same({"-o": output, "--summary-md": summary_md})
        check_target(summary_md, inputs)
    with guard.byte_limit(max_weights_bytes), showing(progress_sink(quiet or as_json)):
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
            progress=progress(quiet or as_json),
            accelerator=accelerator_config,
            embed=embed_path,
            max_error=max_error,
        )
    if summary_md is not None:
        _write_markdown(summary_md, result, {**inputs, "-o": output})
    if as_json:
        click.echo(json_document({"ok": True, **result.to_dict()}))
    else:
        click.echo(_build_text(result))


# The keys of a config file that name files and readers, not the cell: build takes them as its own arguments.
_FILE_KEYS = ("weights", "weights_format", "layer", "calibration_data", "calibration")


def _options(config_file: Path | None, cell: dict[str, Any]) -> tuple[dict[str, Any], tuple[Any, ...]]:
    """(the cell options: --config's keys under the stated flags, the config's values of _FILE_KEYS in order)."""
    options: dict[str, Any] = {}
    if config_file is not None:
        options.update(load_config_file(config_file))
    check_keys(options, str(config_file))
    from_file = tuple(options.pop(key, None) for key in _FILE_KEYS)
    options.update({k: v for k, v in cell.items() if v is not None})
    return options, from_file


def _write_markdown(path: Path, result: BuildResult, inputs: dict[str, Path | str | None]) -> None:
    """--summary-md: the build's report as Markdown (a CI job summary), written atomically, onto none of `inputs`."""
    from lstmgen.cli.summary_md import build_markdown

    write_atomic(path, build_markdown(result.to_dict()).encode(), inputs=inputs)


def _shape_lines(r: BuildResult) -> list[str]:
    """One op: its cell and sizes, as before. Several: the shared settings, one line per op, the total output."""
    c = r.config
    layout = f"batch={c.batch_size} time={c.time_steps or 'dynamic'} {'time-major' if c.time_major else 'batch-major'}"
    if c.form == "graph":
        layout += "; graph form (" + (
            "unrolled builtin ops)" if c.time_steps else "builtin ops, a WHILE loop per layer)"
        )
    if len(r.layers) <= 1:
        return [
            f"  cell: num_units={c.num_units} input_size={c.input_size} num_proj={c.num_proj} "
            f"use_peepholes={c.use_peepholes} activation={c.activation} cell_clip={c.cell_clip:g} "
            f"proj_clip={c.proj_clip:g}",
            f"  output_size={c.output_size} state_size=(c={c.num_units}, h={c.output_size}); {layout}"
            + ("" if c.return_sequences else "; output: the last step only"),
        ]
    width = max(len(f"layer {ls.layer} {ls.direction}") for ls in r.layers)
    last = [ls for ls in r.layers if ls.layer == r.layers[-1].layer]
    parts = " || ".join(f"{ls.direction} {ls.output_size}" for ls in last)
    return [
        f"  cell: use_peepholes={c.use_peepholes} activation={c.activation} cell_clip={c.cell_clip:g} "
        f"proj_clip={c.proj_clip:g}; {c.num_layers} layer(s){', bidirectional' if c.bidirectional else ''}",
        *(
            f"  {f'layer {ls.layer} {ls.direction}':<{width}}  num_units={ls.num_units} input_size={ls.input_size} "
            f"output_size={ls.output_size} state_size=(c={ls.num_units}, h={ls.output_size})"
            + (f"  [{ls.source}]" if ls.source else "")
            for ls in r.layers
        ),
        f"  output: {r.output_width} features{' per step' if c.return_sequences else ' (the last step)'}"
        + (f" ({parts})" if len(last) > 1 else "")
        + f"; {layout}",
    ]


def _build_text(r: BuildResult) -> str:
    lines = [
        f"wrote {r.output} ({r.file_size:,} bytes) in {sum(r.seconds.values()):.2f} s",
        *_shape_lines(r),
        f"  weights: {r.weights_format} ({r.weights_source})"
        + (f", layer {r.weights_layer}" if r.weights_layer and len(r.layers) <= 1 else ""),
        *(f"  note: {n}" for n in r.notes),
    ]
    lines.append(verify_line(r.verification) if r.verification else "  not verified (--no-verify)")
    if r.vela is not None:
        from lstmgen.targets.ethos_u import VelaReport

        lines.append(VelaReport(**{k: v for k, v in r.vela.items() if k != "ok"}).line())
    if r.embed is not None:
        from lstmgen.cli.cmd_embed import embed_text
        from lstmgen.embed import EmbedResult

        lines.append("  " + embed_text(EmbedResult(**r.embed)).replace("\n", "\n  "))
    if r.verification and r.verification.against_source:
        lines.append(r.verification.against_source.summary())
    return "\n".join(lines)


command = build_cmd
