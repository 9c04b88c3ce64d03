"""`lstmgen export`: write a fused-LSTM model's weights as an .npz in a framework's layout."""

from __future__ import annotations

from pathlib import Path

import click

from lstmgen.cli.common import EXIT_CODES_RUN, PATH, handle_errors, json_document
from lstmgen.export import FORMATS, export_weights


@click.command("export", epilog=EXIT_CODES_RUN)
@click.argument("model", type=PATH)
@click.option("-o", "--output", type=PATH, required=True, help="The .npz to write (atomically).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), required=True, help="Whose layout and key names.")
@click.option("--layer", help="Export one layer (an index: 0, 1, ...) or one cell of it (1/backward).")
@click.option(
    "--forget-bias",
    type=float,
    help="Subtract this from every forget-gate bias (the target framework adds it at run time, e.g. 1.0 for a "
    "TF1 LSTMCell with its default). Default: write the biases as the model computes with them.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document: output, format, layers, keys, notes.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
@handle_errors
def export_cmd(
    model: Path, output: Path, fmt: str, layer: str | None, forget_bias: float | None, as_json: bool, quiet: bool
) -> None:
    """Write MODEL's LSTM weights (lstmgen's or TF's converter's .tflite) to an .npz in a framework's layout.

    Quantized weights are dequantized (with a note). The op's settings (activation, clips, layout) are
    not weights: they are printed, not written. Read the file back with `lstmgen build --weights`.

    \b
    Examples:
      # models from the examples of lstmgen build --help
      lstmgen export kws.tflite --format torch -o state_dict.npz
      lstmgen export kws.tflite --format keras -o keras_weights.npz
      lstmgen export enc.tflite --format onnx --layer 0 -o node.npz
      # a default build of an export computes what the model did (settings it cannot hold are recorded)
      lstmgen build --weights state_dict.npz -o again.tflite
    """
    result = export_weights(model, output, fmt, layer, forget_bias)
    if as_json:
        click.echo(json_document({"ok": True, **result.to_dict()}))
        return
    if quiet:
        return
    cells = sum(len(row) for row in result.layers)
    click.echo(f"wrote {result.output} ({fmt} layout: {cells} cell(s) in {len(result.layers)} layer(s))")
    click.echo(f"  keys: {', '.join(result.keys)}")
    for note in result.notes:
        click.echo(f"  note: {note}")


command = export_cmd
