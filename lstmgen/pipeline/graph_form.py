"""The graph form's model (--form graph): unrolled steps (layout_graph) or WHILE loops (layout_loop), with metadata."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from lstmgen.config import CellConfig
from lstmgen.pipeline.layout import CellShape, Weights, check_weights, hyperparameters, shapes_from_config
from lstmgen.pipeline.layout_graph import unrolled
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
    meta = {
        "generator": f"lstmgen {__version__}",
        "op": "graph",
        "form": "graph",
        "hyperparameters": hyperparameters(config, shapes),
        "provenance": dict(provenance or {}),
    }
    if config.quantize != "none":
        meta["quantization"] = {
            "mode": config.quantize,
            "weights": "per-channel" if config.quantize != "float16" else "float16",
        }
    ops = [(o.opcode, o.version) for o in (*b.ops, *(o for g in subgraphs for o in g.operators))]
    return ModelRecord(
        tensors=tuple(b.tensors),
        operators=tuple(b.ops),
        inputs=(x,),
        outputs=(y,),
        subgraph_name="main",
        description=f"lstmgen {__version__}",
        signatures=(Signature("serving_default", (("input", x),), (("output", y),)),),
        metadata=(
            ("min_runtime_version", min_runtime(ops).encode().ljust(16, b"\0")),
            (METADATA_KEY, json.dumps(meta, sort_keys=True).encode()),
        ),
        subgraphs=tuple(subgraphs),
    )
