"""`inspect`: describe a fused-LSTM or graph-form model file (topology, hyperparameters, slots, versions) as a dict."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lstmgen.modelinfo import LstmModel, read_lstm_model
from lstmgen.numerics.graph import LstmSpec
from lstmgen.tflite.slots import Slot
from lstmgen.tflite.tables import BUILTIN_OPERATOR_NAMES, NUMPY_TO_TFLITE, TENSOR_TYPE_NAMES, min_runtime


def _dtype(t: Any) -> str:
    return TENSOR_TYPE_NAMES[NUMPY_TO_TFLITE[np.dtype(t.dtype)]].lower()


def _quant(t: Any) -> dict[str, Any] | None:
    q = t.quantization
    if q is None:
        return None
    return {"scale": list(q.scale), "zero_point": list(q.zero_point), "quantized_dimension": q.quantized_dimension}


def _slots(lm: LstmModel, op_index: int) -> list[dict[str, Any]]:
    op = lm.model.operators[op_index]
    out = []
    for slot in Slot:
        index = op.inputs[slot] if slot < len(op.inputs) else -1
        if index < 0:
            out.append({"slot": int(slot), "name": slot.key, "present": False})
            continue
        t = lm.model.tensors[index]
        out.append(
            {
                "slot": int(slot),
                "name": slot.key,
                "present": True,
                "tensor": t.name,
                "tensor_index": index,
                "shape": list(t.shape),
                "shape_signature": list(t.shape_signature) if t.shape_signature else None,
                "dtype": _dtype(t),
                "is_variable": t.is_variable,
                "constant": t.data is not None,
                "quantization": _quant(t),
            }
        )
    return out


def topology(lm: LstmModel) -> dict[str, Any]:
    """Layers and directions: from lstmgen's metadata, else inferred from the graph."""
    hp = lm.metadata.get("hyperparameters", {})
    ops = {BUILTIN_OPERATOR_NAMES.get(o.opcode) for o in lm.model.operators}
    bidirectional = hp.get("bidirectional", "CONCATENATION" in ops)
    directions = 2 if bidirectional else 1
    return {
        "num_layers": hp.get("num_layers", len(lm.lstms) // directions),
        "bidirectional": bidirectional,
        "go_backwards": hp.get("go_backwards", "REVERSE_V2" in ops and not bidirectional),
        # in a larger graph the fused ops return every step; the head may pick the last
        "return_sequences": hp.get("return_sequences", lm.output_has_time or bool(lm.head)),
        "directions": directions,
    }


def _layer(lm: LstmModel, topo: dict[str, Any], k: int, spec: LstmSpec) -> dict[str, Any]:
    """One LSTM op's row of `inspect`'s layers."""
    op = lm.model.operators[spec.op_index]
    w = spec.weight_inputs
    return {
        "layer": k // topo["directions"],
        "direction": "backward" if (k % topo["directions"] or topo["go_backwards"]) else "forward",
        "op_index": spec.op_index,
        "op_version": op.version,
        "num_units": spec.num_units,
        "input_size": int(lm.model.tensors[w["input_to_output_weights"]].shape[1]),
        "num_proj": spec.output_size if "projection_weights" in w else None,
        "output_size": spec.output_size,
        "use_peepholes": "cell_to_forget_weights" in w,
        "cifg": "input_to_input_weights" not in w,
        "layer_norm": "forget_layer_norm_coefficients" in w,
        "cell_clip": spec.cell_clip,
        "proj_clip": spec.proj_clip,
        "activation": spec.activation,
        "weights_dtype": _dtype(lm.model.tensors[w["input_to_output_weights"]]),
        "slots": _slots(lm, spec.op_index),
    }


def describe(path: str | Path, lm: LstmModel | None = None) -> dict[str, Any]:
    """Everything `inspect` shows; the keys are listed in schemas/report.schema.json.

    Pass `lm` when the model is already parsed (the file is then not read again).
    """
    path = Path(path)
    lm = lm or read_lstm_model(path)
    if lm.form == "graph":
        return _describe_graph_form(path, lm)
    topo = topology(lm)
    hp = lm.metadata.get("hyperparameters", {})
    sig = lm.input.shape_signature or lm.input.shape
    t_axis, b_axis = (0, 1) if lm.time_major else (1, 0)
    layers = [_layer(lm, topo, k, spec) for k, spec in enumerate(lm.lstms)]
    first = layers[0]
    raw_rt = lm.model.metadata_dict().get("min_runtime_version")
    ops = [(o.opcode, o.version) for o in lm.model.operators]
    try:
        computed = min_runtime(ops)
    except KeyError:
        computed = None
    return {
        "file": str(path),
        "file_size": path.stat().st_size,
        "generator": lm.metadata.get("generator"),
        "op": "UNIDIRECTIONAL_SEQUENCE_LSTM",
        "op_version": max(layer["op_version"] for layer in layers),
        "min_runtime_version": raw_rt.rstrip(b"\0").decode(errors="replace") if raw_rt else computed,
        "operators": [f"{BUILTIN_OPERATOR_NAMES.get(c, c)} v{v}" for c, v in ops],
        **{
            k: first[k]
            for k in (
                "num_units",
                "input_size",
                "num_proj",
                "output_size",
                "use_peepholes",
                "cifg",
                "layer_norm",
                "cell_clip",
                "proj_clip",
                "activation",
            )
        },
        "state_size": {"c": first["num_units"], "h": first["output_size"]},
        **{k: topo[k] for k in ("num_layers", "bidirectional", "go_backwards", "return_sequences")},
        "time_major": lm.time_major,
        "batch_size": None if sig[b_axis] == -1 else int(sig[b_axis]),
        "time_steps": None if sig[t_axis] == -1 else int(sig[t_axis]),
        "input": {"shape": list(lm.input.shape), "dtype": _dtype(lm.input), "quantization": _quant(lm.input)},
        "output": {"shape": list(lm.output.shape), "dtype": _dtype(lm.output), "quantization": _quant(lm.output)},
        "forget_bias_folded": hp.get("forget_bias"),
        "name": hp.get("name"),
        "provenance": lm.metadata.get("provenance"),
        "signature": [s.key for s in lm.model.signatures],
        "graph": _graph(lm),
        "layers": layers,
        "slots": first["slots"],
    }


_GRAPH_KEYS = (
    "num_units",
    "input_size",
    "num_proj",
    "output_size",
    "state_size",
    "use_peepholes",
    "cifg",
    "layer_norm",
    "cell_clip",
    "proj_clip",
    "activation",
    "num_layers",
    "bidirectional",
    "go_backwards",
    "return_sequences",
)
GRAPH_FORM_STATE = {
    False: "each invoke runs the whole sequence from the zero state and returns the output only (no state "
    "tensors): to stream, rebuild with --state-io (or --form fused)",
    True: "explicit (--state-io): each cell's initial h and c are model inputs and its final h and c model "
    "outputs; stream by feeding each invoke's final state into the next (lstmgen run --chunk does)",
}


def _graph_state_io(lm: LstmModel) -> list[dict[str, Any]]:
    """Per cell (op order): its state inputs and outputs, with their positions among the model's."""
    cells = lm.metadata.get("state_io", [])
    out = []
    for k, (quad, entry) in enumerate(zip(lm.state_io, cells, strict=True)):
        tensors = {
            f"{when}_{v}": {"name": t.name, "shape": list(t.shape), "position": pos}
            for (when, v, pos), t in zip(
                (("initial", "h", 1 + 2 * k), ("initial", "c", 2 + 2 * k), ("final", "h", 1 + 2 * k),
                 ("final", "c", 2 + 2 * k)),
                (lm.model.tensors[i] for i in quad),
                strict=True,
            )
        }  # fmt: skip
        out.append({"cell": entry.get("cell") if isinstance(entry, dict) else None, **tensors})
    return out


def _describe_graph_form(path: Path, lm: LstmModel) -> dict[str, Any]:
    """lstmgen's graph form: hyperparameters from its metadata, ops counted, the FULLY_CONNECTED weights listed."""
    from lstmgen.tflite.schema import BuiltinOperator as Op

    hp = lm.metadata.get("hyperparameters", {})
    model = lm.model
    graphs = (model, *model.subgraphs)  # a WHILE loop's cond and body subgraphs hold the recurrent ops
    ops = [(o.opcode, o.version) for g in graphs for o in g.operators]
    counts: dict[str, int] = {}
    for code, version in ops:
        key = f"{BUILTIN_OPERATOR_NAMES.get(code, code)} v{version}"
        counts[key] = counts.get(key, 0) + 1
    weights: dict[tuple[int, int], dict[str, Any]] = {}
    for k, g in enumerate(graphs):
        for o in g.operators:
            if o.opcode != Op.FULLY_CONNECTED:
                continue
            t = g.tensors[o.inputs[1]]
            entry = weights.setdefault(
                (k, o.inputs[1]),
                {"name": t.name, "shape": list(t.shape), "dtype": _dtype(t), "quantization": _quant(t), "uses": 0,
                 "constant": t.data is not None, "subgraph": k},
            )  # fmt: skip
            entry["uses"] += 1
    raw_rt = model.metadata_dict().get("min_runtime_version")
    sig = lm.input.shape_signature or lm.input.shape
    t_axis, b_axis = (0, 1) if lm.time_major else (1, 0)
    return {
        "file": str(path),
        "file_size": path.stat().st_size,
        "generator": lm.metadata.get("generator"),
        "op": "graph form",
        "form": "graph",
        "min_runtime_version": raw_rt.rstrip(b"\0").decode(errors="replace") if raw_rt else min_runtime(ops),
        "operators": counts,
        "num_operators": len(ops),
        **{k: hp.get(k) for k in _GRAPH_KEYS},
        "quantization": lm.metadata.get("quantization"),
        "time_major": lm.time_major,
        "batch_size": int(sig[b_axis]),
        "time_steps": int(sig[t_axis]) if len(sig) == 3 and sig[t_axis] > 0 else None,
        "loops": sum(o.opcode == Op.WHILE for o in model.operators),
        "input": {"shape": list(lm.input.shape), "dtype": _dtype(lm.input), "quantization": _quant(lm.input)},
        "output": {"shape": list(lm.output.shape), "dtype": _dtype(lm.output), "quantization": _quant(lm.output)},
        "forget_bias_folded": hp.get("forget_bias"),
        "name": hp.get("name"),
        "provenance": lm.metadata.get("provenance"),
        "signature": [s.key for s in model.signatures],
        "weights": list(weights.values()),
        "state": GRAPH_FORM_STATE[bool(lm.state_io)],
        "state_io": _graph_state_io(lm),
    }


def _format_graph_form(info: dict[str, Any]) -> str:
    topo = (
        f"{info['num_layers']} layer(s)"
        + (", bidirectional" if info["bidirectional"] else "")
        + (", go_backwards" if info["go_backwards"] else "")
        + ("" if info["return_sequences"] else ", last step only")
    )
    quant = info["quantization"] or {"mode": "none"}
    lines = [
        f"{info['file']}: graph form (--form graph), {topo}; {info['file_size']:,} bytes "
        f"(min runtime {info['min_runtime_version']})"
        + (f", made by {info['generator']}" if info["generator"] else ""),
        f"  {info['num_operators']} operators: " + ", ".join(f"{k} x{n}" for k, n in info["operators"].items()),
        f"  input {info['input']['dtype']} {info['input']['shape']}, output {info['output']['dtype']} "
        f"{info['output']['shape']}; batch={info['batch_size']} "
        f"time={info['time_steps'] or 'dynamic (a WHILE loop per layer and direction)'} "
        f"{'time-major' if info['time_major'] else 'batch-major'}; "
        f"signatures: {', '.join(info['signature']) or 'none'}",
        f"  num_units={info['num_units']} input_size={info['input_size']} num_proj={info['num_proj']} "
        f"peepholes={info['use_peepholes']} cifg={info['cifg']} layer_norm={info['layer_norm']} "
        f"activation={info['activation']} cell_clip={info['cell_clip']:g} proj_clip={info['proj_clip']:g}; "
        f"weights {quant.get('mode')}"
        + (f" ({quant['weights']})" if quant.get("weights") else "")
        + (
            f"; forget_bias (folded) = {info['forget_bias_folded']:g}" if info["forget_bias_folded"] is not None else ""
        ),
        f"  state: {info['state']}",
        *(
            f"    {c['cell']}: inputs {c['initial_h']['position']} {c['initial_h']['name']} {c['initial_h']['shape']}, "
            f"{c['initial_c']['position']} {c['initial_c']['name']} {c['initial_c']['shape']}; outputs "
            f"{c['final_h']['position']} {c['final_h']['name']}, {c['final_c']['position']} {c['final_c']['name']}"
            for c in info.get("state_io", [])
        ),
        "  FULLY_CONNECTED weights:",
    ]
    for w in info["weights"]:
        q = w["quantization"]
        qtext = f" {len(q['scale'])} scale(s)" if q else ""
        source = "" if w["constant"] else " (computed: DEQUANTIZE/RESHAPE output)"
        source += f" (loop subgraph {w['subgraph']})" if w["subgraph"] else ""
        lines.append(f"    {w['name']:<44} {w['dtype']:<8} {w['shape']!s:<12} used by {w['uses']} op(s){qtext}{source}")
    return "\n".join(lines)


def _tensor(lm: LstmModel, index: int) -> dict[str, Any]:
    t = lm.model.tensors[index]
    return {"index": index, "name": t.name, "shape": list(t.shape), "dtype": _dtype(t), "quantization": _quant(t)}


def _graph(lm: LstmModel) -> dict[str, Any]:
    """The graph around the fused LSTM ops: which ops lstmgen checks and which it leaves alone."""
    names = [BUILTIN_OPERATOR_NAMES.get(o.opcode, str(o.opcode)) for o in lm.model.operators]
    return {
        "operators": names,
        "lstm_ops": [
            {
                "op_index": s.op_index,
                "input": _tensor(lm, lm.model.operators[s.op_index].inputs[0]),
                "output": _tensor(lm, lm.model.operators[s.op_index].outputs[0]),
            }
            for s in lm.lstms
        ],
        "unchecked_ops": [{"op_index": k, "op": names[k]} for k in lm.head],
        "model_inputs": [_tensor(lm, i) for i in lm.model.inputs],
        "model_outputs": [_tensor(lm, i) for i in lm.model.outputs],
        "empty_subgraphs_ignored": lm.model.empty_subgraphs,
    }


def format_text(info: dict[str, Any]) -> str:
    """Human-readable form of describe()."""
    if info.get("form") == "graph":
        return _format_graph_form(info)
    topo = (
        f"{info['num_layers']} layer(s)"
        + (", bidirectional" if info["bidirectional"] else "")
        + (", go_backwards" if info["go_backwards"] else "")
        + ("" if info["return_sequences"] else ", last step only")
    )
    runtime = info["min_runtime_version"] or "none: no TFLite release, TFLite Micro only"
    lines = [
        f"{info['file']}: {topo}; {info['file_size']:,} bytes (min runtime {runtime})"
        + (f", made by {info['generator']}" if info["generator"] else ""),
        f"  operators: {', '.join(info['operators'])}",
        f"  input {info['input']['dtype']} {_shown(info, info['input']['shape'])}, output {info['output']['dtype']} "
        f"{_shown(info, info['output']['shape'])}; batch={info['batch_size'] or 'dynamic'} "
        f"time={info['time_steps'] or 'dynamic'} "
        f"{'time-major' if info['time_major'] else 'batch-major'}; "
        f"signatures: {', '.join(info['signature']) or 'none'}",
    ]
    graph = info.get("graph") or {}
    if graph.get("unchecked_ops"):
        lstm_io = "; ".join(
            f"op {o['op_index']}: {o['input']['dtype']} {o['input']['shape']} -> {o['output']['dtype']} "
            f"{o['output']['shape']}"
            for o in graph["lstm_ops"]
        )
        lines.append(
            f"  fused LSTM ops inside a larger graph ({lstm_io}); around them: "
            + ", ".join(f"{o['op']} (op {o['op_index']})" for o in graph["unchecked_ops"])
            + " (lstmgen verify checks the LSTM ops alone, not these)"
        )
    if graph.get("empty_subgraphs_ignored"):
        lines.append(f"  {graph['empty_subgraphs_ignored']} empty extra subgraph(s) ignored; described: the first")
    if info["forget_bias_folded"] is not None:
        lines.append(f"  forget_bias (folded) = {info['forget_bias_folded']:g}")
    for layer in info["layers"]:
        lines.append(
            f"  layer {layer['layer']} {layer['direction']} (op {layer['op_index']}, v{layer['op_version']}): "
            f"num_units={layer['num_units']} input_size={layer['input_size']} num_proj={layer['num_proj']} "
            f"peepholes={layer['use_peepholes']} cifg={layer['cifg']} layer_norm={layer['layer_norm']} "
            f"activation={layer['activation']} cell_clip={layer['cell_clip']:g} proj_clip={layer['proj_clip']:g}; "
            f"output_size={layer['output_size']} state_size=(c={layer['num_units']}, h={layer['output_size']})"
        )
        for s in layer["slots"]:
            if not s["present"]:
                continue
            kind = "variable" if s["is_variable"] else ("const" if s["constant"] else "")
            q = s["quantization"]
            qtext = f" scale={q['scale'][0]:.4g} zp={q['zero_point'][0]}" if q else ""
            lines.append(f"    {s['slot']:>2} {s['name']:<32} {s['dtype']:<8} {s['shape']!s:<12} {kind:<8}{qtext}")
    return "\n".join(lines)


def _shown(info: dict[str, Any], shape: list[int]) -> str:
    """A model input/output shape with its resizable axes as '?' (the file stores 1 there)."""
    t_axis, b_axis = (0, 1) if info["time_major"] else (1, 0)
    dynamic = {b_axis if len(shape) == 3 else 0} if info["batch_size"] is None else set()
    if info["time_steps"] is None and len(shape) == 3:
        dynamic.add(t_axis)
    return "[" + ", ".join("?" if k in dynamic else str(d) for k, d in enumerate(shape)) + "]"
