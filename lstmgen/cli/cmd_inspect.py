"""`lstmgen inspect`: describe a model file, optionally against a target."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from lstmgen.cli.common import EXIT_CODES, PATH, handle_errors
from lstmgen.config import TARGETS
from lstmgen.describe import describe, format_text
from lstmgen.modelinfo import read_lstm_model
from lstmgen.targets.rules import find_problems


@click.command("inspect", epilog=EXIT_CODES)
@click.argument("model", type=PATH)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON (keys in schemas/report.schema.json).")
@click.option(
    "--check",
    "check",
    type=click.Choice(TARGETS),
    help="Also tell whether the model would run on this target (exit 1 if not).",
)
@handle_errors
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



command = inspect_cmd
