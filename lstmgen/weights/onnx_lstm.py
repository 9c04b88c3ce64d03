"""Reader for ONNX LSTM weights: an LSTM node of an .onnx model, or an .npz with W, R, B, P."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from lstmgen import guard
from lstmgen.errors import WeightFileError
from lstmgen.weights.base import (
    CellWeights,
    FrameworkReader,
    WeightFile,
    as_float32,
    gate_tensors,
    npz_file,
)
from lstmgen.weights.detect import ONNX_KEYS
from lstmgen.weights.onnx_fold import ZEROS, Folder, Unfoldable
from lstmgen.weights.raw import SourceArrays

KEYS = ONNX_KEYS
DIRECTIONS = ("forward", "reverse", "bidirectional")
# Peephole blocks along P's 3H axis, in ONNX order i, o, f (o before f, unlike the gates' i, o, f, c).
PEEPHOLE_SLOTS = ("cell_to_input_weights", "cell_to_output_weights", "cell_to_forget_weights")
# (f, g, h) activation triples the TFLite kernel can express: sigmoid gates, one activation for g and h.
ACTIVATION_TRIPLES = {("sigmoid", "tanh", "tanh"): "tanh", ("sigmoid", "relu", "relu"): "relu"}
_INSTALL = "pip install 'lstmgen[onnx]'"


@dataclass
class _Node:
    """One ONNX LSTM node: its stable name, attributes and the constant arrays behind its inputs."""

    name: str
    direction: str
    attrs: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # W, R, B, P, initial_h, initial_c
    notes: list[str] = field(default_factory=list)

    @property
    def cells(self) -> list[str]:
        halves = ("forward", "reverse") if self.direction == "bidirectional" else (self.direction,)
        return [f"{self.name}/{d}" for d in halves]


def _import_onnx() -> Any:
    try:
        import onnx
        import onnx.external_data_helper
        import onnx.numpy_helper
    except ImportError:
        raise WeightFileError(
            f"reading .onnx weight files needs the onnx package, which is not installed. Install it with "
            f"{_INSTALL}, or save the LSTM's W, R, B, P arrays to an .npz (numpy.savez) and pass that instead."
        ) from None
    return onnx


def _load_model(path: Path) -> Any:
    onnx = _import_onnx()
    from google.protobuf.message import DecodeError

    try:
        # External data is loaded per tensor later, and only for the LSTM's own inputs.
        model = onnx.load(str(path), load_external_data=False)
    except DecodeError as exc:
        raise WeightFileError(
            f"weights file {path} is not a readable ONNX model (expected an onnx.ModelProto, found bytes that "
            f"do not parse: {exc}). The file is truncated or corrupt, or not an ONNX file; export or copy it again."
        ) from None
    except OSError as exc:
        raise WeightFileError(f"weights file {path} cannot be read ({exc.strerror or exc}).") from None
    if not model.HasField("graph") or not model.graph.node:
        raise WeightFileError(
            f"weights file {path} holds no graph nodes (expected an ONNX model with an LSTM node, found an "
            "empty model). The file is empty or not an ONNX model; export it again."
        )
    return model


def _attrs(onnx: Any, node: Any) -> dict[str, Any]:
    out = {}
    for a in node.attribute:
        value = onnx.helper.get_attribute_value(a)
        if isinstance(value, bytes):
            value = value.decode()
        elif isinstance(value, list):
            value = [v.decode() if isinstance(v, bytes) else v for v in value]
        out[a.name] = value
    return out


def _lstm_nodes(onnx: Any, model: Any, path: Path) -> list[tuple[Any, _Node]]:
    """The main graph's LSTM nodes with stable names: the node name, or LSTM_<k> when empty or repeated."""
    raw = [n for n in model.graph.node if n.op_type == "LSTM" and n.domain in ("", "ai.onnx")]
    if not raw:
        ops = sorted({n.op_type for n in model.graph.node})
        raise WeightFileError(
            f"weights file {path} has no LSTM node in its main graph (expected an ONNX 'LSTM' operator, found "
            f"only: {', '.join(ops)}). Export the model with a fused LSTM op (torch.onnx.export of nn.LSTM, "
            "tf2onnx, keras2onnx produce one), or save W, R, B, P to an .npz."
        )
    given = [n.name for n in raw]
    nodes = []
    for k, n in enumerate(raw):
        name = n.name if n.name and given.count(n.name) == 1 else f"LSTM_{k}"
        attrs = _attrs(onnx, n)
        direction = attrs.get("direction", "forward")
        if direction not in DIRECTIONS:
            raise WeightFileError(
                f"weights file {path}: LSTM node '{name}' has direction={direction!r}, expected one of "
                f"{', '.join(DIRECTIONS)}. The model is invalid; export it again."
            )
        nodes.append((n, _Node(name, direction, attrs)))
    return nodes


class _Graph:
    """The main graph's constants: initializers, Constant nodes, and what is fed at run time."""

    def __init__(self, onnx: Any, model: Any, path: Path) -> None:
        self.onnx, self.path = onnx, path
        self.inits = {t.name: t for t in model.graph.initializer}
        self.producers = {out: n for n in model.graph.node for out in n.output if out}
        self.inputs = {i.name for i in model.graph.input}
        self.what = ("", "")
        self.folder = Folder(onnx, model, lambda t: self._tensor(*self.what, t))

    def constant(self, node: str, what: str, value: str, notes: list[str]) -> np.ndarray | None:
        """The array behind one LSTM input; None when it is fed at run time (or zeros of a run-time shape)."""
        if value in self.inits and value in self.inputs:
            # IR < 4 lists initializers as inputs too: the initializer is the default value.
            notes.append(f"{what} '{value}' is also a graph input; using its initializer (the default)")
        if value in self.inputs and value not in self.inits:
            return None
        self.what = (node, what)
        try:
            array = self.folder.value(value)
        except Unfoldable as exc:
            raise WeightFileError(
                f"weights file {self.path}: LSTM node '{node}' input {what} ('{value}') cannot be read from the "
                f"file: {exc}, so its values are only known at run time (expected an initializer, a Constant "
                "node or a constant subgraph). Export with constant folding (torch.onnx.export(..., "
                "do_constant_folding=True), or onnxsim), or save W, R, B, P to an .npz."
            ) from None
        if array is ZEROS:
            if what not in ("initial_h", "initial_c"):
                raise WeightFileError(
                    f"weights file {self.path}: LSTM node '{node}' input {what} ('{value}') is zeros whose shape "
                    "depends on the run-time input, which no weight array can be. The model is unusual; export "
                    "it with constant folding, or save W, R, B, P to an .npz."
                )
            notes.append(f"{what} is zeros whatever the batch size (the exporter's zero initial state)")
            return np.zeros(0, np.float32)
        if value not in self.inits and self.producers.get(value) is not None:
            op = self.producers[value].op_type
            if op not in ("Constant", "Identity"):
                notes.append(f"{what} folded from a constant subgraph (ending in {op})")
        return np.asarray(array)

    def _tensor(self, node: str, what: str, tensor: Any) -> np.ndarray:
        helper = self.onnx.external_data_helper
        # Declared size first (dims x at least 4 bytes), and no external read longer than that.
        need = guard.declared_bytes(tensor.dims, 4, f"weights file {self.path}: initializer '{tensor.name}'")
        if helper.uses_external_data(tensor):
            length = {e.key: e.value for e in tensor.external_data}.get("length", "0")
            if not length.isdigit() or int(length) > 2 * need:
                raise WeightFileError(
                    f"weights file {self.path}: initializer '{tensor.name}' declares {length!r} bytes of external "
                    f"data for dims {list(tensor.dims)}; refused before reading. Re-export the model."
                )
            try:
                # Loaded per tensor, and only for the LSTM's inputs: the rest of a big model is never read.
                helper.load_external_data_for_tensor(tensor, str(self.path.parent))
            except (OSError, ValueError, self.onnx.checker.ValidationError) as exc:
                # a missing/short data file, or a location outside the model's folder
                raise WeightFileError(
                    f"weights file {self.path}: LSTM node '{node}' input {what} ('{tensor.name}') is stored as "
                    f"external data that cannot be read ({exc}). Keep the external data file(s) beside the "
                    ".onnx, as they were saved."
                ) from None
        try:
            return self.onnx.numpy_helper.to_array(tensor)
        except (KeyError, ValueError) as exc:  # onnx's parse of the tensor: an unknown data type, a bad size
            raise WeightFileError(
                f"weights file {self.path}: LSTM node '{node}' input {what} ('{tensor.name}') is malformed: "
                f"data type {tensor.data_type} with dims {list(tensor.dims)} does not parse as an ONNX tensor "
                f"({type(exc).__name__}: {' '.join(str(exc).split())[:200]}). Export the model again."
            ) from None


class OnnxReader(FrameworkReader):
    name = "onnx"

    # --- .npz ---------------------------------------------------------------------------------

    def read(self, arrays: Mapping[str, np.ndarray], source: str, layer: str | None = None) -> CellWeights:
        full, dirs = _npz_directions(arrays, source)
        half = _npz_half(dirs, layer, source)
        d = int(half == "reverse")  # a one-direction .npz is always 'forward'
        if dirs == 2:
            notes = [f"W holds two directions (a bidirectional node): reading the {half} one (direction {d})"]
        else:
            notes = ["W holds one direction, taken as forward (an .npz does not record the ONNX direction)"]
        # ONNX's default layout 0 is time-major, but an .npz does not say: keep lstmgen's default, and say so.
        notes.append("an .npz does not record the ONNX layout: pass --time-major for [T,B,I] input (layout=0)")
        cell = _to_cell(self.name, source, full, d, dirs, {}, notes, half if dirs == 2 else None)
        return replace(cell, direction="backward") if d else cell

    def npz_layers(
        self, arrays: Mapping[str, np.ndarray], source: str, layer: str | None = None
    ) -> list[tuple[str, ...]]:
        """The cells of an .npz: [('forward', 'reverse')] or [('forward',)]."""
        _, dirs = _npz_directions(arrays, source)
        if layer is None:
            return [("forward", "reverse")] if dirs == 2 else [("forward",)]
        return [(_npz_half(dirs, layer, source),)]

    def npz_cells(self, arrays: Mapping[str, np.ndarray], source: str) -> list[str]:
        w = arrays.get("W")
        return ["forward", "reverse"] if w is not None and w.ndim == 3 and w.shape[0] == 2 else ["forward"]

    # --- .onnx --------------------------------------------------------------------------------

    def open_file(self, path: Path) -> WeightFile:
        return npz_file(self, path) if path.suffix.lower() == ".npz" else OnnxFile(path)


class OnnxFile:
    """An .onnx model, parsed once (external data left on disk): its LSTM nodes and their constant inputs.

    A cell's inputs are evaluated (and external data read, per tensor) when it is loaded.
    """

    def __init__(self, path: Path) -> None:
        onnx = _import_onnx()
        self.path = path
        model = _load_model(path)
        self.nodes = _lstm_nodes(onnx, model, path)
        self.graph = _Graph(onnx, model, path)

    def cells(self, layer: str | None = None) -> list[tuple[str, ...]]:
        """One layer per LSTM node, in graph (topological) order: ('<node>/forward',), ('<node>/reverse',)
        or ('<node>/forward', '<node>/reverse') for a bidirectional node.

        `layer` names one node (its layer) or one cell ('<node>/reverse').
        """
        return _node_layers(self.nodes, layer, self.path)

    def load(self, cell: str | None = None) -> CellWeights:
        return _read_node(self.graph, *_pick(self.nodes, cell, self.path))

    def load_layers(self, layer: str | None = None) -> list[list[CellWeights]]:
        return [[self.load(cell) for cell in names] for names in self.cells(layer)]

    def cell_names(self) -> list[str]:
        """Every cell in the file: '<node>/forward' and/or '<node>/reverse' per LSTM node, in graph order."""
        return [c for _, n in self.nodes for c in n.cells]

    def release(self) -> bool:
        self.close()
        return False

    def close(self) -> None:
        """Drop the parsed model (the loaded weights are copies of its tensors)."""
        self.nodes = []
        for table in (self.graph.inits, self.graph.producers, self.graph.folder.inits, self.graph.folder.memo):
            table.clear()


def _npz_directions(arrays: Mapping[str, np.ndarray], source: str) -> tuple[dict[str, np.ndarray], int]:
    """The arrays with a leading num_directions axis, and its size; unknown or missing keys are errors."""
    unknown = sorted(set(arrays) - set(KEYS))
    if unknown:
        raise WeightFileError(
            f"{source}: unknown key(s) {', '.join(unknown)} for --weights-format onnx. Allowed keys: "
            "W [dirs,4H,I], R [dirs,4H,H], B [dirs,8H], P [dirs,3H] (the ONNX LSTM inputs)."
        )
    for k in ("W", "R"):
        if k not in arrays:
            raise WeightFileError(
                f"{source}: missing key '{k}' for --weights-format onnx (found: {', '.join(sorted(arrays))}). "
                "Save the ONNX LSTM's W and R (and optionally B, P) with numpy.savez."
            )
    # The leading num_directions axis is optional in an .npz: W [4H, I] is one direction.
    full = {k: v[None] for k, v in arrays.items()} if arrays["W"].ndim == 2 else dict(arrays)
    return full, full["W"].shape[0] if full["W"].ndim == 3 else 1


def _npz_half(dirs: int, layer: str | None, source: str) -> str:
    cells = ["forward", "reverse"] if dirs == 2 else ["forward"]
    if layer not in (None, *cells):
        raise WeightFileError(
            f"--layer {layer!r}: {source} holds the cell(s) {', '.join(cells)} (W's num_directions axis has "
            f"size {dirs}). Pass one of them, or drop --layer."
        )
    return layer or "forward"


def _node_layers(nodes: list[tuple[Any, _Node]], layer: str | None, path: Path) -> list[tuple[str, ...]]:
    """Each node's cells as one layer; `layer` picks a node (all its cells) or a single cell."""
    if layer is None:
        return [tuple(n.cells) for _, n in nodes]
    found = [tuple(n.cells) for _, n in nodes if n.name == layer]
    if found:
        return found
    if any(layer in n.cells for _, n in nodes):
        return [(layer,)]
    cells = [c for _, n in nodes for c in n.cells]
    raise WeightFileError(
        f"--layer {layer!r} is not an LSTM node or cell of {path}. Its nodes are: "
        f"{', '.join(n.name for _, n in nodes)}; its cells: {', '.join(cells)}."
    )


def _pick(nodes: list[tuple[Any, _Node]], layer: str | None, path: Path) -> tuple[Any, _Node, str]:
    """The node and half ('forward' / 'reverse') `layer` names; a node name alone needs a one-cell node."""
    cells = [c for _, n in nodes for c in n.cells]
    if layer is None:
        if len(nodes) > 1:
            names = ", ".join(f"'{n.name}' ({n.direction})" for _, n in nodes)
            raise WeightFileError(
                f"weights file {path} has {len(nodes)} LSTM nodes ({names}); expected one, or --layer to pick "
                f"one. Pass --layer with one of: {', '.join(cells)}."
            )
        proto, node = nodes[0]
        half = None
    else:
        base, _, half = layer.rpartition("/")
        if half not in ("forward", "reverse"):
            base, half = layer, None
        found = [(p, n) for p, n in nodes if n.name == base]
        if not found or (half is not None and f"{base}/{half}" not in cells):
            raise WeightFileError(
                f"--layer {layer!r} is not a cell of {path}. Its cells are: {', '.join(cells)} "
                "(LSTM node name / direction); the name alone picks a single-direction node."
            )
        proto, node = found[0]
    if half is None:
        if node.direction == "bidirectional":
            raise WeightFileError(
                f"weights file {path}: LSTM node '{node.name}' is bidirectional, so it holds two cells; pass "
                f"--layer {node.name}/forward or --layer {node.name}/reverse for one of them."
            )
        half = node.direction
    return proto, node, half


def _read_node(graph: _Graph, proto: Any, node: _Node, half: str) -> CellWeights:
    """One direction of an LSTM node: its constant inputs checked and laid out in TFLite order."""
    path = graph.path
    _check_attributes(path, node)
    d = 1 if half == "reverse" and node.direction == "bidirectional" else 0  # reverse is direction 1 of a pair
    act = _activation(path, node, d)
    layout = node.attrs.get("layout", 0)
    arrays: dict[str, np.ndarray] = {}
    node_notes = list(node.notes)
    names = list(proto.input) + [""] * (8 - len(proto.input))
    slots = ("X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P")
    for what, value in zip(slots, names, strict=False):
        if what == "X" or not value:
            continue
        if what == "sequence_lens":
            raise WeightFileError(
                f"weights file {path}: LSTM node '{node.name}' has a sequence_lens input ('{value}'). ONNX "
                "stops each batch row at its own length; the TFLite op always runs every time step of every "
                "row, so padded rows would give different outputs and final states. Remove sequence_lens "
                "from the node (feed equal-length sequences), then build."
            )
        array = graph.constant(node.name, what, value, node_notes)
        if array is None:
            if what in ("initial_h", "initial_c"):
                node_notes.append(
                    f"{what} is a graph input fed at run time; the TFLite model starts from zeros unless "
                    "you pass lstmgen run --initial-state"
                )
                continue
            raise WeightFileError(
                f"weights file {path}: LSTM node '{node.name}' input {what} ('{value}') is a graph input, "
                "fed at run time, so its values are not in the file (expected an initializer). Export "
                "with the weights stored as initializers (the default of torch.onnx.export), or save W, R, "
                "B, P to an .npz."
            )
        arrays[what] = array
    for what in ("W", "R"):
        if what not in arrays:
            raise WeightFileError(
                f"weights file {path}: LSTM node '{node.name}' has no {what} input (expected W and R, both "
                "required by the ONNX LSTM). The model is invalid; export it again."
            )
    for what in ("initial_h", "initial_c"):
        state = arrays.pop(what, None)
        if state is not None and state.ndim == 3:
            # [dirs, B, H] (layout 0) or [B, dirs, H] (layout 1): only this direction's state matters.
            state = np.take(state, d, axis=0 if layout == 0 else 1)
        if state is not None and np.any(state):
            raise WeightFileError(
                f"weights file {path}: LSTM node '{node.name}' has a non-zero constant {what} (max |value| "
                f"{float(np.abs(state).max()):.3g}). A TFLite model's state starts at zero; pass the state "
                f"with lstmgen run --initial-state (keys h, c) instead, or zero the initializer."
            )
    dirs = 2 if node.direction == "bidirectional" else 1
    hyper: dict[str, object] = {"activation": act}
    model_layout = _model_layout(graph, proto.input[0] if proto.input else "", layout)
    if model_layout is not None:
        hyper["time_major"] = model_layout
    if node.direction == "reverse":
        # A reverse-only node's Y is aligned to input positions (Y[t] follows x[t..T-1]), unlike Keras'
        # go_backwards (processing order). A bidirectional node's reverse half is aligned the same way.
        hyper["onnx_reverse"] = True
    node_layout = "time-major [T,B,I]" if layout == 0 else "batch-major [B,T,I]"
    if model_layout is None:
        how = "its input comes from another node, so it does not set the model's layout"
    elif model_layout == (layout == 0):
        how = "fed straight from the graph input"
    else:
        how = f"behind a Transpose of the graph input, which is {'time' if model_layout else 'batch'}-major"
    notes = [*node_notes, f"ONNX node '{node.name}' ({half}), layout={layout}: {node_layout} ({how})"]
    cell = _to_cell(
        "onnx", str(path), arrays, d, dirs, hyper, notes, f"{node.name}/{half}", node.attrs.get("hidden_size")
    )
    cell = replace(cell, origin=SourceArrays("onnx", arrays, {"direction_index": d, **node.attrs}))
    return replace(cell, direction="backward") if half == "reverse" else cell


def _model_layout(graph: _Graph, x: str, layout: int) -> bool | None:
    """Whether the model input is time-major: the node's layout, flipped by a Transpose [1,0,2] in front
    (what torch.onnx.export writes for batch_first=True); None when X is not fed from a graph input."""
    flipped = False
    for _ in range(16):
        if x in graph.inputs and x not in graph.inits:
            return (layout == 0) != flipped
        producer = graph.producers.get(x)
        if producer is None or not producer.input:
            return None
        if producer.op_type == "Transpose":
            perm = [a.ints for a in producer.attribute if a.name == "perm"]
            if not perm or list(perm[0]) != [1, 0, 2]:
                return None
            flipped = not flipped
        elif producer.op_type not in ("Identity", "Cast"):
            return None
        x = producer.input[0]
    return None


def _check_attributes(path: Path, node: _Node) -> None:
    """Refuse what the TFLite op computes differently, with the difference spelled out."""
    a = node.attrs
    where = f"weights file {path}: LSTM node '{node.name}'"
    if "clip" in a:
        raise WeightFileError(
            f"{where} has clip={a['clip']:g}. ONNX clips every gate's pre-activation to ±clip, while TFLite's "
            "cell_clip clips the cell state c_t (and proj_clip the projected output), so no TFLite setting "
            "computes the same thing. Remove the attribute if it never binds (then check the outputs), or "
            "retrain without clip; lstmgen does not approximate it."
        )
    if a.get("input_forget", 0):
        raise WeightFileError(
            f"{where} has input_forget={a['input_forget']}. ONNX couples the gates as f = 1 - i (the input "
            "gate is computed, the forget gate derived), while TFLite's CIFG computes f and derives i = 1 - f, "
            "with different weights and peepholes involved, so the model cannot be mapped. Export with "
            "input_forget=0."
        )
    layout = a.get("layout", 0)
    if layout not in (0, 1):
        raise WeightFileError(f"{where} has layout={layout}, expected 0 (time-major) or 1 (batch-major).")


def _activation(path: Path, node: _Node, d: int) -> str:
    acts = node.attrs.get("activations")
    if acts is None:
        return "tanh"
    dirs = 2 if node.direction == "bidirectional" else 1
    if len(acts) != 3 * dirs:
        raise WeightFileError(
            f"weights file {path}: LSTM node '{node.name}' has {len(acts)} activations, expected {3 * dirs} "
            f"(f, g, h per direction, {node.direction}). The model is invalid; export it again."
        )
    triple = tuple(s.lower() for s in acts[3 * d : 3 * d + 3])
    if triple not in ACTIVATION_TRIPLES:
        raise WeightFileError(
            f"weights file {path}: LSTM node '{node.name}' has activations {', '.join(acts[3 * d : 3 * d + 3])} "
            "(f, g, h). The TFLite kernel always uses sigmoid for the gates and applies one activation to both "
            "the cell input g and the output h, so only Sigmoid, Tanh, Tanh (default) or Sigmoid, Relu, Relu "
            "can be built. Retrain or export with one of those."
        )
    return ACTIVATION_TRIPLES[triple]


def _to_cell(
    fmt: str,
    source: str,
    arrays: Mapping[str, np.ndarray],
    d: int,
    dirs: int,
    hyper: dict[str, object],
    notes: list[str],
    layer: str | None,
    hidden_size: int | None = None,
) -> CellWeights:
    """Direction d of W, R, B, P (each with a leading num_directions axis) in TFLite layout."""
    arrs = {k: as_float32(k, arrays[k], source, notes) for k in KEYS if k in arrays}
    w, r = arrs["W"], arrs["R"]
    if w.ndim != 3 or w.shape[0] != dirs or w.shape[1] % 4 or w.shape[1] == 0 or w.shape[2] == 0:
        raise WeightFileError(
            f"{source}: W has shape {list(w.shape)}, expected [{dirs}, 4*hidden_size, input_size] "
            "(num_directions, the four gates i, o, f, c stacked, input features)."
        )
    h = w.shape[1] // 4
    if hidden_size is not None and hidden_size != h:
        raise WeightFileError(
            f"{source}: the node's hidden_size={hidden_size} disagrees with W of shape {list(w.shape)} "
            f"(4*hidden_size = {w.shape[1]}). The model is inconsistent; export it again."
        )
    expected = {"R": (dirs, 4 * h, h), "B": (dirs, 8 * h), "P": (dirs, 3 * h)}
    for k, shape in expected.items():
        if k in arrs and arrs[k].shape != shape:
            raise WeightFileError(
                f"{source}: {k} has shape {list(arrs[k].shape)}, but W {list(w.shape)} implies hidden_size {h} "
                f"and {dirs} direction(s), so {k} must be {list(shape)}. W and {k} come from different cells "
                "or layers; export them together."
            )
    if "B" in arrs:
        # ONNX adds Wb and Rb separately; TFLite has one bias per gate, so sum them (a new array).
        bias = arrs["B"][d][: 4 * h] + arrs["B"][d][4 * h :]
        notes.append("bias = Wb + Rb per gate (ONNX B holds both halves)")
    else:
        bias = np.zeros(4 * h, np.float32)
        notes.append("no B: biases are zero")
    # ONNX stores [out, in] like TFLite: no transpose, only the i, o, f, c row blocks to split.
    tensors = gate_tensors("onnx", w[d], r[d], bias)
    if "P" in arrs:
        for slot, block in zip(PEEPHOLE_SLOTS, np.split(arrs["P"][d], 3), strict=True):
            tensors[slot] = block
    return CellWeights(
        tensors,
        fmt,
        source,
        forget_bias_default=0.0,
        notes=tuple(notes),
        hyperparameters=hyper,
        layer=layer,
        origin=SourceArrays("onnx", arrays, {"direction_index": d}),
    )


def list_cells(path: str | Path) -> list[str]:
    """Every cell an .onnx (or ONNX-layout .npz) holds, e.g. ['lstm_1/forward', 'lstm_1/reverse']."""
    from lstmgen.weights import open as open_weights

    with open_weights(path, "onnx") as source:
        return source.cell_names()
