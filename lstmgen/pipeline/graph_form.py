"""The graph form's model (--form graph): unrolled steps (layout_graph) or WHILE loops (layout_loop), with metadata."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from lstmgen.config import CellConfig
from lstmgen.pipeline.layout import CellShape, Weights, check_weights, hyperparameters, shapes_from_config
from lstmgen.pipeline.layout_graph import _Builder, unrolled
from lstmgen.pipeline.layout_loop import loop_graph
from lstmgen.tflite.records import ModelRecord, Signature
from lstmgen.tflite.tables import METADATA_KEY, min_runtime
from lstmgen.version import __version__


def layout_graph(
    config: CellConfig,
    layers: Sequence[Sequence[Weights]],
    shapes: Sequence[Sequence[CellShape]] | None = None,
    provenance: Mapping[str, Any] | None = None,
    source: str = "weights",
) -> ModelRecord:
    """Records of the graph form for the whole model (same arguments as layout.layout)."""
    if config.form != "graph":
        raise ValueError("layout_graph writes the graph form (config.form == 'graph')")
    if config.forget_bias is None:
        raise ValueError("forget_bias must be resolved before layout")
    shapes = shapes if shapes is not None else shapes_from_config(config)
    for cells, cell_shapes in zip(layers, shapes, strict=True):
        for w, shape in zip(cells, cell_shapes, strict=True):
            check_weights(shape, w, source)
    if config.time_steps is None:  # a dynamic time axis: the recurrent part in a WHILE loop
        b, x, y, subgraphs = loop_graph(config, layers, shapes)
    else:
        (b, x, y), subgraphs = unrolled(config, layers, shapes), []
    b.tensors[y] = replace(b.tensors[y], name=f"{config.name}/output")
    state_in, state_out, state_meta = _state_io(b, y, _cell_scopes(config, shapes))
    meta: dict[str, Any] = {
        "generator": f"lstmgen {__version__}",
        "op": "graph",
        "form": "graph",
        "hyperparameters": hyperparameters(config, shapes),
        "provenance": dict(provenance or {}),
    }
    if state_meta:
        meta["state_io"] = state_meta
    if config.quantize != "none":
        meta["quantization"] = {
            "mode": config.quantize,
            "weights": "per-channel" if config.quantize != "float16" else "float16",
        }
    ops = [(o.opcode, o.version) for o in (*b.ops, *(o for g in subgraphs for o in g.operators))]
    return ModelRecord(
        tensors=tuple(b.tensors),
        operators=tuple(b.ops),
        inputs=(x, *(i for _, i in state_in)),
        outputs=(y, *(i for _, i in state_out)),
        subgraph_name="main",
        description=f"lstmgen {__version__}",
        signatures=(Signature("serving_default", (("input", x), *state_in), (("output", y), *state_out)),),
        metadata=(
            ("min_runtime_version", min_runtime(ops).encode().ljust(16, b"\0")),
            (METADATA_KEY, json.dumps(meta, sort_keys=True).encode()),
        ),
        subgraphs=tuple(subgraphs),
    )


def _cell_scopes(config: CellConfig, shapes: Sequence[Sequence[CellShape]]) -> list[str]:
    """Each cell's tensor-name scope in op order (as layout_graph and layout_loop name them)."""
    out = []
    for k, cells in enumerate(shapes):
        scope = f"{config.name}/layer_{k}" if len(shapes) > 1 else config.name
        out += [f"{scope}/{'bw' if d else 'fw'}" if len(cells) > 1 else scope for d in range(len(cells))]
    return out


def _state_io(
    b: _Builder, y: int, scopes: Sequence[str]
) -> tuple[list[tuple[str, int]], list[tuple[str, int]], list[dict[str, Any]]]:
    """state_io: the (signature key, tensor) model inputs and outputs after the main ones, h then c per cell in
    op order, and their metadata (positions in the model's inputs and outputs). Final tensors are renamed
    {scope}/final_h and final_c; a final h that is also the model output (one direction, last step) gets its
    own copy (a RESHAPE), so every output is its own tensor."""
    ins: list[tuple[str, int]] = []
    outs: list[tuple[str, int]] = []
    meta: list[dict[str, Any]] = []
    for k, ((h_in, c_in, h_out, c_out), scope) in enumerate(zip(b.states, scopes if b.states else [], strict=True)):
        if h_out == y:
            h_out = b.reshape(y, b.tensors[y].shape, f"{scope}/final_h")
        for index, name in ((h_out, "final_h"), (c_out, "final_c")):
            b.tensors[index] = replace(b.tensors[index], name=f"{scope}/{name}")
        ins += [(f"initial_h_{k}", h_in), (f"initial_c_{k}", c_in)]
        outs += [(f"final_h_{k}", h_out), (f"final_c_{k}", c_out)]
        meta.append({"cell": scope, "inputs": [1 + 2 * k, 2 + 2 * k], "outputs": [1 + 2 * k, 2 + 2 * k]})
    return ins, outs, meta
