"""The `lstmgen` group: subcommands are imported only when they run (fast --help and --version)."""

from __future__ import annotations

import importlib

import click

from lstmgen import __version__
from lstmgen.cli.common import EXIT_CODES

# Command name -> module (each exposes `command`), in the order --help lists them.
COMMANDS = {
    "build": "lstmgen.cli.cmd_build",
    "verify": "lstmgen.cli.cmd_verify",
    "inspect": "lstmgen.cli.cmd_inspect",
    "run": "lstmgen.cli.cmd_run",
}


class LazyGroup(click.Group):
    """A click group that imports a subcommand's module on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMANDS.get(cmd_name)
        if module is None:
            return None
        command: click.Command = importlib.import_module(module).command
        return command


@click.group(
    cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}, epilog=EXIT_CODES
)
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



if __name__ == "__main__":  # pragma: no cover
    main()
