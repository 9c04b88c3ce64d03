"""`lstmgen embed`: write NAME.cc/NAME.h holding a model for firmware (TFLite Micro)."""

from __future__ import annotations

from pathlib import Path

import click

from lstmgen.cli.common import EXIT_CODES_RUN, PATH, handle_errors, json_document
from lstmgen.embed import EmbedResult, embed


def embed_text(r: EmbedResult) -> str:
    return "\n".join(
        [
            f"wrote {r.source} and {r.header}: {r.symbol}[{r.model_bytes:,}] (alignas 16), "
            f"{r.symbol}_arena_size = {r.arena_size:,} bytes (TFLM measured {r.arena_measured:,} + margin)",
            f"  register: {', '.join(r.ops)}",
            *(f"  note: {n}" for n in r.notes),
            *([f"  note: {r.cmsis_nn}"] if r.cmsis_nn else []),
        ]
    )


@click.command("embed", epilog=EXIT_CODES_RUN)
@click.argument("model", type=PATH)
@click.option("-o", "--output", type=PATH, required=True, help="C++ source to write (NAME.cc); NAME.h goes beside it.")
@click.option("--name", "symbol", help="C++ name of the array [default: the output file's stem].")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@handle_errors
def embed_cmd(model: Path, output: Path, symbol: str | None, as_json: bool) -> None:
    """Write MODEL as firmware sources NAME.cc/NAME.h with the TFLM arena size.

    NAME.cc holds `alignas(16) const unsigned char SYMBOL[]`; NAME.h declares it with the constants
    SYMBOL_len and SYMBOL_arena_size (the tensor arena TensorFlow Lite Micro used for the model, plus
    a stated margin) and lists in a comment block the ops to register and the input/output shapes,
    types and quantization. Needs tflite-micro (pip install 'lstmgen[micro]') to measure the arena.

    \b
    Examples:
      # the output folder must exist; models from the examples of lstmgen build --help
      lstmgen embed lstm_int8.tflite -o lstm_model.cc
      lstmgen embed lstm_int8.tflite -o lstm_model.cc --name g_lstm_model
      lstmgen build --config kws.toml --quantize int8 --calibration-data calib.npy \\
          --target micro -o lstm_int8.tflite --embed lstm_model.cc
    """
    result = embed(model, output, name=symbol)
    if as_json:
        click.echo(json_document({"ok": True, **result.to_dict()}))
    else:
        click.echo(embed_text(result))


command = embed_cmd
