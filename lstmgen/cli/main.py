"""The `lstmgen` group: subcommands are imported only when they run (fast --help and --version)."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any

import click

from lstmgen.cli.common import EXIT_CODES, echo_json_error, internal_error
from lstmgen.version import __version__

# Command name -> (module exposing `command`, the one-line help `lstmgen --help` shows), in --help order.
# The help text lives here so that listing the commands imports none of them (a test keeps it in sync).
COMMANDS: dict[str, tuple[str, str]] = {
    "build": (
        "lstmgen.cli.cmd_build",
        "Build a model from hyperparameters and (optionally) a weight file, then verify it.",
    ),
    "verify": ("lstmgen.cli.cmd_verify", "Run MODEL in a TFLite interpreter and compare with the NumPy reference."),
    "inspect": (
        "lstmgen.cli.cmd_inspect",
        "Show MODEL's layers, hyperparameters, tensor slots (types, scales, zero points), op versions and sizes.",
    ),
    "run": ("lstmgen.cli.cmd_run", "Run MODEL on an input sequence from the zero (or a given) state."),
    "embed": ("lstmgen.cli.cmd_embed", "Write MODEL as firmware sources NAME.cc/NAME.h with the TFLM arena size."),
    "vectors": (
        "lstmgen.cli.cmd_vectors",
        "Write golden test vectors for an integer MODEL: inputs and the outputs each runtime must give, bit for bit.",
    ),
    "cells": (
        "lstmgen.cli.cmd_cells",
        "List the LSTM cells in WEIGHTS: the names --layer accepts, kind, sizes and direction, in model order.",
    ),
    "export": (
        "lstmgen.cli.cmd_export",
        "Write MODEL's LSTM weights (lstmgen's or TF's converter's .tflite) to an .npz in a framework's layout.",
    ),
}


class LazyGroup(click.Group):
    """A click group that imports a subcommand's module on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        command: click.Command = importlib.import_module(COMMANDS[cmd_name][0]).command
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list from the table, without importing the commands."""
        with formatter.section("Commands"):
            formatter.write_dl([(name, short) for name, (_, short) in COMMANDS.items()])

    def main(self, args: Sequence[str] | None = None, *posargs: Any, **kwargs: Any) -> Any:
        """click's own handling, except that a run with --json prints one JSON document whatever happens:
        also for usage errors (exit 2) and for bugs outside a command's own handler (exit 70)."""
        # lstmgen's NumPy work is matrix-vector products, which are memory-bound: OpenBLAS's worker threads
        # only spin against them and the interpreter (measured on 2 cores: a 96 MB verified build 3.3 s ->
        # 2.0 s, the 64-unit build 0.37 -> 0.31 s). Set before a command imports NumPy; the user's value wins.
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
        argv = list(sys.argv[1:] if args is None else args)
        if "--json" not in argv or not kwargs.get("standalone_mode", True):
            return super().main(argv, *posargs, **kwargs)
        try:
            kwargs["standalone_mode"] = False
            code = super().main(argv, *posargs, **kwargs)
        except click.ClickException as exc:  # usage: bad option, value or command, before any work
            echo_json_error(exc.format_message(), exc.exit_code)
            exc.show()
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            echo_json_error("interrupted", 130)
            click.echo("Aborted!", err=True)
            sys.exit(130)
        except Exception as exc:
            internal_error(exc, as_json=True)
        sys.exit(code if isinstance(code, int) else 0)


@click.group(
    cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}, epilog=EXIT_CODES
)
@click.version_option(__version__, prog_name="lstmgen")
def main() -> None:
    """Write TensorFlow Lite models of fused UNIDIRECTIONAL_SEQUENCE_LSTM ops from TFLiteLSTMCell
    hyperparameters and weight files (TF1, TF checkpoints, Keras, PyTorch, ONNX), without TensorFlow,
    and verify them against your weight file run in its framework's own equations.

    \b
    Examples:
      # the files are in the repository's examples/ folder
      lstmgen build --num-units 64 --input-size 32 -o random.tflite
      lstmgen build --weights model.keras -o keras.tflite --json > report.json
      lstmgen cells model.keras
      lstmgen verify keras.tflite --weights model.keras
      lstmgen inspect keras.tflite
      lstmgen build --weights kws_tf1.npz --cell-clip 3 -o kws.tflite
      lstmgen run kws.tflite --input x.npy --output y.npy --chunk 10
      lstmgen export kws.tflite --format torch -o state_dict.npz
    """


if __name__ == "__main__":  # pragma: no cover
    main()
