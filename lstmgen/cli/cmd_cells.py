"""`lstmgen cells`: list the LSTM cells a weight file holds (name, kind, sizes, direction), any format."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from lstmgen.cli.common import EXIT_CODES_RUN, handle_errors, json_document
from lstmgen.errors import UnknownOrderError, WeightFileError
from lstmgen.weights import FORMATS, CellWeights
from lstmgen.weights import open as open_weights

# Variant flag -> how the kind names it, in this order.
_VARIANTS = (
    ("use_peepholes", "peephole"),
    ("num_proj", "projection"),
    ("cifg", "CIFG"),
    ("layer_norm", "layer-norm"),
    ("diagonal_recurrent", "diagonal"),
)


UNORDERED = (
    "the file does not record the layers' order in the model (weights only), so the cells are listed by "
    "storage name with no layer index; save the whole model (model.save('m.keras')) to list and build them "
    "in order, or build one layer at a time with --layer NAME"
)


def describe_cell(cell: CellWeights, layer_index: int | None) -> dict[str, Any]:
    """One cell as `cells --json` prints it."""
    t = cell.tensors
    implied = cell.implied()
    flags = {
        "use_peepholes": bool(implied["use_peepholes"]),
        "num_proj": implied["num_proj"],
        "cifg": "input_to_input_weights" not in t,
        "layer_norm": "forget_layer_norm_coefficients" in t,
        "diagonal_recurrent": t["recurrent_to_forget_weights"].ndim == 1,
    }
    kind = " ".join(["LSTM", *(word for key, word in _VARIANTS if flags[key])])
    stated = {k: v for k, v in cell.hyperparameters.items() if k not in ("num_units", "input_size", "num_proj")}
    return {
        "name": cell.layer or "",
        "layer_index": layer_index,
        "direction": cell.direction,
        "kind": kind,
        "input_size": int(implied["input_size"]),  # type: ignore[call-overload]
        "num_units": int(implied["num_units"]),  # type: ignore[call-overload]
        **flags,
        "forget_bias_added_at_run_time": cell.forget_bias_default,
        "stated": stated,
    }


def _rows(path: Path, weights_format: str, layer: str | None) -> tuple[str, list[list[CellWeights]], str | None, bool]:
    """The cells as layers, or, for files of several unrelated groups or of layers in an unknown order,
    every cell as its own row; the flag says whether the rows are in model order."""
    with open_weights(path, weights_format) as source:
        try:
            return source.format, source.load_layers(layer), None, True
        except WeightFileError as exc:
            if layer is not None:
                raise
            ordered = not isinstance(exc, UnknownOrderError)
        why = "the file holds several unrelated groups of cells, each listed alone; pick one group with --layer"
        return (
            source.format,
            [[source.load(name)] for name in source.cell_names()],
            why if ordered else UNORDERED,
            ordered,
        )


@click.command("cells", epilog=EXIT_CODES_RUN)
@click.argument("weights", type=click.Path(path_type=Path))
@click.option(
    "--weights-format", type=click.Choice(FORMATS), default="auto", show_default=True, help="The file's layout."
)
@click.option("--layer", help="List only this group (a module, nested model, scope or ONNX node).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document: format, layers of cells.")
@handle_errors
def cells_cmd(weights: Path, weights_format: str, layer: str | None, as_json: bool) -> None:
    """List the LSTM cells in WEIGHTS: the names --layer accepts, kind, sizes and direction, in model order.

    \b
    Examples:
      # the files are in the repository's examples/ folder
      lstmgen cells model.keras
      lstmgen cells model.onnx --json | jq '.layers[][].name'
      lstmgen cells encoder.npz --layer lstm
    """
    fmt, rows, why, ordered = _rows(weights, weights_format, layer)
    layers = [[describe_cell(c, k if ordered else None) for c in row] for k, row in enumerate(rows)]
    if as_json:
        doc = {"ok": True, "file": str(weights), "format": fmt, "layers": layers, "note": why}
        click.echo(json_document(doc))
        return
    count = sum(len(r) for r in layers)
    grouped = f"in {len(layers)} layer(s)" if ordered else "in an unknown layer order"
    click.echo(f"{weights}: {fmt}, {count} LSTM cell(s) {grouped}")
    for row in layers:
        for c in row:
            proj = f" proj={c['num_proj']}" if c["num_proj"] else ""
            index = "?" if c["layer_index"] is None else c["layer_index"]
            stated = ", ".join(f"{k}={v}" for k, v in c["stated"].items())
            click.echo(
                f"  [{index}] {c['name'] or '(unnamed)'}: {c['kind']}, {c['direction']}, "
                f"input={c['input_size']} units={c['num_units']}{proj}" + (f"; {stated}" if stated else "")
            )
    if why:
        click.echo(f"  note: {why}")


command = cells_cmd
