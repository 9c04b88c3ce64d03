"""`lstmgen vectors`: golden input/output vectors for firmware tests, bit-exact per runtime flavour."""

from __future__ import annotations

from pathlib import Path

import click

from lstmgen.cli.common import EXIT_CODES_RUN, PATH, handle_errors, json_document
from lstmgen.vectors import VectorsResult, write_vectors


def vectors_text(r: VectorsResult) -> str:
    return "\n".join(
        [
            f"wrote {r.count} vectors (input {r.input_shape}, output {r.output_shape}) for {', '.join(r.flavours)} "
            f"in {r.directory}:",
            *(f"  {f}" for f in r.files),
            *(f"  no {f} vectors: {why}" for f, why in r.skipped.items()),
        ]
    )


@click.command("vectors", epilog=EXIT_CODES_RUN)
@click.argument("model", type=PATH)
@click.option("-o", "--output", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="Existing directory to write into (e.g. the one holding the embed output).")  # fmt: skip
@click.option("-n", "--count", type=int, default=4, show_default=True, help="Number of input sequences.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random inputs.")
@click.option("--name", "symbol", help="C++ name prefix [default: the model file's stem].")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@handle_errors
def vectors_cmd(model: Path, output: Path, count: int, seed: int, symbol: str | None, as_json: bool) -> None:
    """Write golden test vectors for an integer MODEL: inputs and the outputs each runtime must give, bit for bit.

    Each vector is one invoke from the zero state with the model's stored input shape; the first saturates
    every input element. The expected outputs come from lstmgen's exact emulation of each integer kernel:
    'litert' (LiteRT's 8x8->16 kernel) and 'tflm' (TFLM's reference kernels; CMSIS-NN computes the same from
    the zero state). Writes inputs.npy, expected_<flavour>.npy and NAME_vectors.h/.cc (C arrays and
    NAME_check_vectors(interpreter), which runs them in TFLM and counts the outputs that differ).

    \b
    Examples:
      # lstm_int8.tflite from the examples of lstmgen build --help; -o names an existing folder
      mkdir -p firmware && lstmgen vectors lstm_int8.tflite -o firmware/
      lstmgen embed lstm_int8.tflite -o firmware/lstm_model.cc
      lstmgen vectors lstm_int8.tflite -o firmware/ --name lstm_model -n 16
    """
    result = write_vectors(model, output, count=count, seed=seed, name=symbol)
    if as_json:
        click.echo(json_document({"ok": True, **result.to_dict()}))
    else:
        click.echo(vectors_text(result))


command = vectors_cmd
