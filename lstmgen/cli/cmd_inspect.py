"""`lstmgen inspect`: describe a model file, optionally against a target."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from lstmgen.cli.common import EXIT_CODES_CHECK, PATH, handle_errors, json_document
from lstmgen.config import TARGETS
from lstmgen.describe import describe, format_text
from lstmgen.export_graph import check_labels
from lstmgen.modelinfo import read_lstm_model
from lstmgen.targets import ACCELERATORS
from lstmgen.targets.rules import find_problems


@click.command("inspect", epilog=EXIT_CODES_CHECK)
@click.argument("model", type=PATH)
@click.option("--json", "as_json", is_flag=True, help="Print as JSON (keys in schemas/report.schema.json).")
@click.option(
    "--check",
    "check",
    type=click.Choice(TARGETS),
    help="Also tell whether the model would run on this target (exit 1 if not); ethos-u also runs vela when installed.",
)
@click.option(
    "--accelerator-config",
    type=click.Choice(ACCELERATORS),
    help="--check ethos-u: vela's --accelerator-config [default: ethos-u55-128].",
)
@handle_errors
def inspect_cmd(model: Path, as_json: bool, check: str | None, accelerator_config: str | None) -> None:
    """Show MODEL's layers, hyperparameters, tensor slots (types, scales, zero points), op versions and sizes.

    \b
    Examples:
      # models from the examples of lstmgen build --help
      lstmgen inspect lstm.tflite
      lstmgen inspect lstm.tflite --json | jq .num_units
      lstmgen inspect lstm_int8.tflite --check micro
      lstmgen inspect npu.tflite --check ethos-u
    """
    lm = read_lstm_model(model, head_ok=True, graph_ok=True)  # fused LSTM ops in a larger graph; the graph form
    if lm.form == "graph":
        check_labels(lm, str(model))  # a label that lies is refused before it is shown
    info = describe(model, lm)
    problems = None
    vela = None
    if check is not None:
        problems = [p.to_dict() for p in find_problems(lm.model, check)]
        if lm.form == "graph" and check != "tflite":  # the rules look at LSTM ops; the graph form has none
            problems.insert(0, _graph_form_problem(check))
        info["target_check"] = {"target": check, "ok": not problems, "problems": problems}
        vela = _vela(model, check, accelerator_config) if not problems else None
        if vela is not None:
            info["target_check"]["vela"] = vela.to_dict()
            if not vela.ok:
                problems = [
                    {
                        "target": check,
                        "feature": "operator vela runs on the CPU",
                        "where": [f"{vela.cpu_operators} CPU operator(s), {vela.npu_operators} NPU operator(s)"],
                        "message": f"vela {vela.vela_version} put {vela.cpu_operators} operator(s) on the CPU.",
                    }
                ]
                info["target_check"].update(ok=False, problems=problems)
    if as_json:
        click.echo(json_document({"ok": True, **info}))
    else:
        click.echo(format_text(info))
        if problems is not None:
            verdict = "runs" if not problems else "does NOT run"
            reasons = "".join(f"\n    - {p['feature']}: {p['message']}" for p in problems)
            click.echo(f"  target {check}: {verdict} there{reasons}")
            if vela is not None:
                click.echo(vela.line())
    if problems:
        sys.exit(1)


def _graph_form_problem(target: str) -> dict[str, Any]:
    return {
        "target": target,
        "feature": "graph form",
        "where": ["the whole model (no UNIDIRECTIONAL_SEQUENCE_LSTM op)"],
        "message": "the graph form is for TFLite and its delegates (per-channel hybrid FULLY_CONNECTED v12, "
        "unrolled steps); TFLite Micro and Ethos-U run the fused op: rebuild with --form fused.",
    }


def _vela(model: Path, target: str, accelerator: str | None) -> Any:
    """vela's report for --check ethos-u when vela is installed, else None."""
    if target != "ethos-u":
        return None
    from lstmgen.targets.ethos_u import DEFAULT_ACCELERATOR, run_vela, vela_installed

    return run_vela(model, accelerator or DEFAULT_ACCELERATOR) if vela_installed() else None


command = inspect_cmd
