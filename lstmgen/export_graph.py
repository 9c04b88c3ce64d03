"""The weights of lstmgen's graph form (--form graph), found by the graph's structure: which gate is which.

There is no LSTM op whose slots name the weights. Each cell has one input-projection FULLY_CONNECTED (the
stacked input weights and bias) and, per step, a SPLIT of the gate pre-activations into G row blocks; each
SPLIT output reaches a LOGISTIC or the activation (through any peephole ADD, layer-norm MUL and bias ADD,
read from the path). The roles follow from what each gate's result multiplies: the activation's result
(not a LOGISTIC) is the cell gate z; the LOGISTIC multiplied by z is the input gate; the one multiplied by
the activation of the new c is the output gate; the other LOGISTIC is the forget gate (CIFG: 1 - f is the
input). Row block k of the stacked weights is gate k's. The recurrent weights are the FULLY_CONNECTED on h
added before the SPLIT, the projection the FULLY_CONNECTED on o * act(c). WHILE loops: the SPLIT is in the
body, the input projection in the main graph (feeding the loop). Layers and directions follow the file's
stated topology (its metadata), checked against the number of cells found.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lstmgen.errors import ModelFileError
from lstmgen.modelinfo import LstmModel
from lstmgen.numerics.graph import real_value
from lstmgen.tflite.records import ModelRecord, OperatorRecord
from lstmgen.tflite.schema import BuiltinOperator as Op

# The activation ops a gate may end in besides LOGISTIC, and the cell activation each stands for.
ACTIVATION_OF: dict[int, str] = {Op.TANH: "tanh", Op.RELU: "relu", Op.RELU6: "relu6", Op.RELU_N1_TO_1: "relu_n1_to_1"}
_PASS_THROUGH = (Op.DEQUANTIZE, Op.RESHAPE)  # float16 weights widened, a shared recurrent matrix


class GraphExportError(ModelFileError):
    """The graph form's structure is not the one lstmgen writes: its weights cannot be identified."""


@dataclass
class _View:
    """One subgraph with its producers and consumers by tensor index."""

    g: ModelRecord
    producer: dict[int, OperatorRecord] = field(default_factory=dict)
    consumers: dict[int, list[OperatorRecord]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for op in self.g.operators:
            for i in op.outputs:
                self.producer[i] = op
            for i in op.inputs:
                self.consumers.setdefault(i, []).append(op)

    def made_by(self, index: int, *codes: int) -> OperatorRecord | None:
        op = self.producer.get(index)
        return op if op is not None and op.opcode in codes else None

    def const(self, index: int) -> np.ndarray | None:
        """A constant's real value (per-row scales applied), through DEQUANTIZE and RESHAPE; None if computed."""
        for _ in range(4):
            t = self.g.tensors[index]
            if t.data is not None:
                return real_value(t)
            op = self.made_by(index, *_PASS_THROUGH)
            if op is None:
                return None
            index = op.inputs[0]
        return None


@dataclass
class GraphCell:
    """One cell's arrays by TFLite slot name, and what the graph says about it."""

    tensors: dict[str, np.ndarray]
    activation: str
    order: int  # the input projection's op index in the main graph: the cells' op order


def _fail(what: str) -> GraphExportError:
    return GraphExportError(
        f"graph form: {what}, which is not the structure lstmgen writes, so its gate weights cannot be told "
        "apart. Export the fused build of the same source instead (lstmgen build --form fused)."
    )


def _gate_path(v: _View, act: OperatorRecord) -> tuple[int, int, dict[str, np.ndarray]] | None:
    """From a gate's LOGISTIC/activation back to the SPLIT output it came from: (the SPLIT output tensor, its
    position, the per-gate constants on the way: peephole, layer-norm coefficients, bias)."""
    found: dict[str, np.ndarray] = {}
    index = act.inputs[0]
    for _ in range(16):
        op = v.producer.get(index)
        if op is None:
            return None
        if op.opcode == Op.SPLIT:
            return index, list(op.outputs).index(index), found
        if op.opcode not in (Op.ADD, Op.MUL, Op.SUB):
            return None
        other = op.inputs[1]
        value = v.const(other)
        peep = v.made_by(other, Op.MUL)
        if op.opcode == Op.ADD and peep is not None and (w := v.const(peep.inputs[1])) is not None:
            found["peephole"] = w
        elif value is not None and value.size > 1:
            found["layer_norm" if op.opcode == Op.MUL else "bias"] = value.reshape(-1)
        index = op.inputs[0]
    return None


def _roles(v: _View, split: OperatorRecord, acts: dict[int, tuple[OperatorRecord, dict[str, np.ndarray]]]) -> list[str]:
    """Each SPLIT output's gate, from what its LOGISTIC/activation result multiplies (module doc)."""
    cell = [k for k, (a, _) in acts.items() if a.opcode != Op.LOGISTIC]
    if len(cell) != 1 or len(acts) != len(split.outputs):
        raise _fail(f"a gate SPLIT of {len(split.outputs)} outputs reaches {len(cell)} non-LOGISTIC activations")
    z = acts[cell[0]][0].outputs[0]
    roles = {cell[0]: "cell"}
    for k, (a, _) in acts.items():
        if k in roles:
            continue
        partners = {i for op in v.consumers.get(a.outputs[0], []) if op.opcode == Op.MUL for i in op.inputs}
        partners.discard(a.outputs[0])
        if z in partners:
            roles[k] = "input"
        elif any(v.made_by(i, *ACTIVATION_OF) is not None for i in partners):
            roles[k] = "output"
        else:
            roles[k] = "forget"
    want = {"forget", "cell", "output"} | ({"input"} if len(acts) == 4 else set())
    if set(roles.values()) != want or len(roles) != len(acts):
        raise _fail(f"the gates of a SPLIT play {sorted(roles.values())}, expected {sorted(want)}")
    return [roles[k] for k in range(len(acts))]


def _gate_splits(v: _View) -> list[tuple[OperatorRecord, dict[int, tuple[OperatorRecord, dict[str, np.ndarray]]]]]:
    """Every gate SPLIT of a subgraph with, per output position, its gate's activation op and constants."""
    by_split: dict[int, tuple[OperatorRecord, dict[int, tuple[OperatorRecord, dict[str, np.ndarray]]]]] = {}
    for op in v.g.operators:
        if op.opcode != Op.LOGISTIC and op.opcode not in ACTIVATION_OF:
            continue
        path = _gate_path(v, op)
        if path is None:
            continue  # the activation of c, or an op that no gate feeds
        out, k, consts = path
        split = v.producer[out]
        by_split.setdefault(id(split), (split, {}))[1][k] = (op, consts)
    return list(by_split.values())


def _through(v: _View, index: int, codes: Sequence[int]) -> int:
    """The tensor behind `index` past any ops of `codes` (RESHAPE, REVERSE_V2 between the projection and a loop)."""
    for _ in range(4):
        op = v.made_by(index, *codes)
        if op is None:
            break
        index = op.inputs[0]
    return index


def _input_projection(main: _View, v: _View, xs: int, loops: dict[int, OperatorRecord]) -> OperatorRecord:
    """The main graph's FULLY_CONNECTED whose output a step's gate input `xs` is a row block (unrolled: a SPLIT
    over time) or a GATHER of (WHILE body: the loop variable fed by that FULLY_CONNECTED)."""
    if v is main and (whole := main.made_by(xs, Op.FULLY_CONNECTED)) is not None:
        return whole  # one time step: the projection is the step's input
    step = v.made_by(xs, Op.SPLIT, Op.GATHER)
    if step is None:
        raise _fail("a gate SPLIT's input is not one step of an input projection")
    proj = step.inputs[1] if step.opcode == Op.SPLIT else step.inputs[0]
    if step.opcode == Op.GATHER:  # the body's input k is the WHILE op's input k
        loop = loops.get(id(v.g))
        if loop is None or proj not in v.g.inputs:
            raise _fail("a loop body's gate input is not a loop variable")
        proj, v = loop.inputs[list(v.g.inputs).index(proj)], main
    fc = main.made_by(_through(main, proj, (Op.RESHAPE, Op.REVERSE_V2)), Op.FULLY_CONNECTED)
    if fc is None:
        raise _fail("a gate input does not come from a FULLY_CONNECTED input projection")
    return fc


def _projection(v: _View, o: int, recurrent: int) -> Any:
    """The FULLY_CONNECTED on m = o * act(c) (a projection), or None: not the next step's recurrent one (whose
    weights are the `recurrent` tensor), which m feeds when there is no projection."""
    for m_op in v.consumers.get(o, []):
        for op in v.consumers.get(m_op.outputs[0], []):
            if op.opcode == Op.FULLY_CONNECTED and op.inputs[0] == m_op.outputs[0] and op.inputs[1] != recurrent:
                return op
    return None


def _cell_arrays(main: _View, v: _View, split: OperatorRecord, acts: Any, fc_x: OperatorRecord) -> GraphCell:
    """One cell's slot arrays from its input projection and one of its gate SPLITs (one with a recurrent term)."""
    roles = _roles(v, split, acts)
    pre = v.made_by(split.inputs[1], Op.ADD)
    fc_h = v.made_by(pre.inputs[1], Op.FULLY_CONNECTED) if pre is not None else None
    w_x = main.const(fc_x.inputs[1])
    w_h = v.const(fc_h.inputs[1]) if fc_h is not None else None
    if w_x is None or w_h is None:
        raise _fail("an input or recurrent FULLY_CONNECTED has no constant weights")
    n = w_x.shape[0] // len(roles)
    bias = main.const(fc_x.inputs[2]) if fc_x.inputs[2] >= 0 else None
    out: dict[str, np.ndarray] = {}
    for k, g in enumerate(roles):
        rows = slice(k * n, (k + 1) * n)
        consts = acts[k][1]
        out[f"input_to_{g}_weights"] = w_x[rows]
        out[f"recurrent_to_{g}_weights"] = w_h[rows]
        out[f"{g}_gate_bias"] = bias[rows] if bias is not None else consts.get("bias", np.zeros(n))
        for key, slot in (("peephole", f"cell_to_{g}_weights"), ("layer_norm", f"{g}_layer_norm_coefficients")):
            if key in consts:
                out[slot] = consts[key]
    proj = _projection(v, acts[roles.index("output")][0].outputs[0], fc_h.inputs[1] if fc_h is not None else -1)
    if proj is not None:
        out["projection_weights"] = v.const(proj.inputs[1])  # type: ignore[assignment]
        if proj.inputs[2] >= 0:
            out["projection_bias"] = v.const(proj.inputs[2])  # type: ignore[assignment]
    tensors = {key: np.asarray(a, np.float64).astype(np.float32) for key, a in out.items()}
    activation = ACTIVATION_OF[acts[roles.index("cell")][0].opcode]
    return GraphCell(tensors, activation, main.g.operators.index(fc_x))


def graph_cells(lm: LstmModel) -> list[GraphCell]:
    """Every cell of a graph-form model, in op order (module doc)."""
    main = _View(lm.model)
    loops: dict[int, OperatorRecord] = {}
    views = [main]
    for op in lm.model.operators:
        if op.opcode == Op.WHILE and op.options is not None:
            body = lm.model.subgraphs[int(op.options.get("BodySubgraphIndex", 0)) - 1]
            loops[id(body)] = op
            views.append(_View(body))
    chosen: dict[int, GraphCell] = {}
    seen: dict[int, list[str]] = {}  # input projection -> the gate roles its steps' SPLITs give
    for v in views:
        for split, acts in _gate_splits(v):
            pre = split.inputs[1]
            add = v.made_by(pre, Op.ADD)
            xs = add.inputs[0] if add is not None and v.made_by(add.inputs[1], Op.FULLY_CONNECTED) else pre
            fc_x = _input_projection(main, v, xs, loops)
            if seen.setdefault(id(fc_x), _roles(v, split, acts)) != _roles(v, split, acts):
                raise _fail("two steps of one cell wire their gates to different row blocks")
            if id(fc_x) not in chosen and xs != pre:  # a step with a recurrent term names every weight
                chosen[id(fc_x)] = _cell_arrays(main, v, split, acts, fc_x)
    if not seen or len(chosen) != len(seen):
        raise _fail(
            "a cell never adds a recurrent term (one time step from the zero state: the file does not use its "
            "recurrent weights)"
            if seen
            else "no gate SPLIT reaching LOGISTIC and activation ops was found"
        )
    return sorted(chosen.values(), key=lambda c: c.order)


def graph_clips(lm: LstmModel) -> tuple[float, float]:
    """(cell_clip, proj_clip) from the MINIMUM ops: one after a FULLY_CONNECTED clips the projection, others c."""
    found = {"cell": 0.0, "proj": 0.0}
    for g in (lm.model, *lm.model.subgraphs):
        v = _View(g)
        for op in g.operators:
            bound = v.const(op.inputs[1]) if op.opcode == Op.MINIMUM else None
            if bound is not None:
                key = "proj" if v.made_by(op.inputs[0], Op.FULLY_CONNECTED) else "cell"
                found[key] = float(np.asarray(bound, np.float32).reshape(-1)[0])
    return found["cell"], found["proj"]


def stored_types(lm: LstmModel) -> set[str]:
    """The types of the weights other than float32 (int8 per channel, float16): the export dequantizes them."""
    kinds = {np.dtype(t.dtype) for g in (lm.model, *lm.model.subgraphs) for t in g.tensors if t.data is not None}
    return {d.name for d in kinds if d in (np.dtype(np.int8), np.dtype(np.float16))}


def _facts(cell: GraphCell) -> dict[str, object]:
    """What a cell's arrays say of it, in the metadata's words."""
    t = cell.tensors
    matrices = {k: t[k] for k in ("input_to_forget_weights", "projection_weights") if k in t}
    bent = {k: list(np.shape(v)) for k, v in matrices.items() if np.ndim(v) != 2}
    if bent:  # a damaged graph: no cell the metadata could describe
        return {"weights": ", ".join(f"{k} of shape {shape}" for k, shape in bent.items())}
    n, i = t["input_to_forget_weights"].shape
    proj = t.get("projection_weights")
    return {
        "num_units": int(n),
        "input_size": int(i),
        "num_proj": int(proj.shape[0]) if proj is not None else None,
        "use_peepholes": "cell_to_forget_weights" in t,
        "layer_norm": "forget_layer_norm_coefficients" in t,
        "cifg": "input_to_input_weights" not in t,
    }


def label_differences(lm: LstmModel) -> list[str]:
    """What a graph-form file's metadata says of its cells and clips that its graph does not do (inspect
    prints the metadata: a label edited to lie would be shown as fact), each as 'what: metadata X, graph Y'."""
    hp = lm.metadata.get("hyperparameters", {})
    layers = hp.get("layers")
    said = [c for layer in layers for c in layer if isinstance(c, dict)] if isinstance(layers, list) else []
    try:
        found = [_facts(c) for c in graph_cells(lm)]
    except GraphExportError:  # cells not found by structure: export refuses such a file, inspect still shows it
        return []
    out = [f"cells: metadata {len(said)}, graph {len(found)}"] if said and len(said) != len(found) else []
    for k, (s, f) in enumerate(zip(said, found, strict=False)):
        where = f"cell {k} " if len(found) > 1 else ""
        out += [
            f"{where}{key}: metadata {s[key]!r}, graph {value!r}"
            for key, value in f.items()
            if key in s and s[key] != value
        ]
        out += [f"{where}{f['weights']} in the graph"] if "weights" in f else []
    for key, value in zip(("cell_clip", "proj_clip"), graph_clips(lm), strict=True):
        stated = hp.get(key)
        if isinstance(stated, (int, float)) and np.float32(stated) != np.float32(value):
            out.append(f"{key}: metadata {stated:g}, graph {value:g}")
    return out


def check_labels(lm: LstmModel, source: str) -> None:
    """Refuse a graph-form file whose metadata describes another cell than its graph computes (exit 2)."""
    found = label_differences(lm)
    if found:
        raise ModelFileError(
            f"{source}: its lstmgen metadata describes another cell than its graph computes ({'; '.join(found)}): "
            "the metadata was edited or the file is damaged, and inspect, verify and export would report the "
            "label, not the model. Rebuild it (lstmgen build --form graph)."
        )
