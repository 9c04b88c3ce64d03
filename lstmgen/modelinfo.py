"""Read side: a parsed .tflite model's LSTM ops, its input/output and what topology they form."""

from __future__ import annotations

import json
import mmap
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from lstmgen import guard
from lstmgen.errors import ModelFileError
from lstmgen.numerics.graph import DATA_OPS, LstmSpec, lstm_spec
from lstmgen.tflite.reader import read_model
from lstmgen.tflite.records import ModelRecord, TensorRecord
from lstmgen.tflite.schema import BuiltinOperator as Op
from lstmgen.tflite.tables import BUILTIN_OPERATOR_NAMES, METADATA_KEY
from lstmgen.tflite.validate import check_model

# Operators lstmgen can verify and run (graph.py evaluates exactly these).
SUPPORTED_OPS = {
    Op.UNIDIRECTIONAL_SEQUENCE_LSTM,
    Op.REVERSE_V2,
    Op.CONCATENATION,
    Op.STRIDED_SLICE,
    Op.QUANTIZE,
    Op.DEQUANTIZE,
}


@dataclass(frozen=True)
class LstmModel:
    """A model lstmgen understands: one input, one output, and one or more fused LSTM ops."""

    path: str
    model: ModelRecord
    lstms: tuple[LstmSpec, ...]
    metadata: dict[str, Any]
    # Operators around the LSTM ops that lstmgen does not evaluate (a converter's head: RESHAPE,
    # FULLY_CONNECTED, SOFTMAX, ...). Only read with head_ok=True; verify then checks the LSTM ops alone.
    head: tuple[int, ...] = ()
    mapping: mmap.mmap | None = field(default=None, repr=False, compare=False)  # the file, when read from one
    form: str = "fused"  # "graph": lstmgen's graph form (--form graph), no LSTM op (read with graph_ok=True)
    # The graph form built with --state-io: (initial h, initial c, final h, final c) tensor indices per cell, in
    # op order (model inputs 1, 2, ... and outputs 1, 2, ...); empty: every invoke starts from zero.
    state_io: tuple[tuple[int, int, int, int], ...] = ()

    def release_pages(self) -> None:
        """Drop the mapped file's pages read so far from memory (the constants stay valid, read again on use)."""
        if self.mapping is not None:
            self.mapping.madvise(mmap.MADV_DONTNEED)

    @property
    def input_index(self) -> int:
        return self.model.inputs[0]

    @property
    def output_index(self) -> int:
        return self.model.outputs[0]

    @property
    def input(self) -> TensorRecord:
        return self.model.tensors[self.input_index]

    @property
    def output(self) -> TensorRecord:
        return self.model.tensors[self.output_index]

    @property
    def time_major(self) -> bool:
        if not self.lstms:  # the graph form: its graph says (read_lstm_model refused metadata saying otherwise)
            axis = graph_time_axis(self.model)
            return axis == 0 if axis is not None else _stated_time_major(self.metadata)
        return self.lstms[0].time_major

    @property
    def input_size(self) -> int:
        return int(self.input.shape[-1])

    @property
    def has_reverse(self) -> bool:
        """A backward direction (bidirectional or go_backwards) needs the whole sequence at once."""
        if self.form == "graph":  # the unrolled form reverses by step order, with no REVERSE_V2: its metadata says
            hp = self.metadata.get("hyperparameters", {})
            return bool(hp.get("bidirectional") or hp.get("go_backwards"))
        return any(op.opcode == Op.REVERSE_V2 for op in self.model.operators)

    @property
    def output_has_time(self) -> bool:
        return len(self.output.shape) == 3

    def states(self) -> list[tuple[int, int]]:
        """(h, c) tensor indices of every LSTM op, in op order."""
        return [(s.h_index, s.c_index) for s in self.lstms]

    def state_sizes(self) -> list[tuple[int, int]]:
        """(h size, c size) of every state: each LSTM op's, or each graph-form cell's state inputs."""
        if self.form == "graph":
            return [(self.model.tensors[h].shape[-1], self.model.tensors[c].shape[-1]) for h, c, _, _ in self.state_io]
        return [(s.output_size, s.num_units) for s in self.lstms]


def read_lstm_model(path: str | Path, *, head_ok: bool = False, graph_ok: bool = False) -> LstmModel:
    """Read a .tflite file and check it is a graph lstmgen can verify and run.

    head_ok=True also accepts fused LSTM ops inside a larger graph (inspect, verify of the LSTM ops alone);
    graph_ok=True also lstmgen's graph form (form "graph", no LSTM op: verify evaluates it op by op).
    """
    path = Path(path)
    size = guard.regular_file(path, "model file", error=ModelFileError)  # no FIFO, no /dev/zero
    if size > guard.MODEL_SIZE_LIMIT:
        limit = guard.MODEL_SIZE_LIMIT
        raise ModelFileError(f"model file {path} is {size} bytes; the limit is {limit}. Pass the right file.")
    try:
        with path.open("rb") as fh:
            # Mapped, not read: constants are views of the file, paged in as the checks use them.
            data = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if size else None
    except OSError as exc:
        raise ModelFileError(f"model file {path} cannot be read ({exc.strerror}).") from None
    model = read_model(memoryview(data) if data is not None else b"", str(path))
    lm = describe_graph(model, str(path), head_ok=head_ok, graph_ok=graph_ok)
    return replace(lm, mapping=data)


GRAPH_FORM_REFUSAL = (
    "{source} is lstmgen's graph form (built with --form graph: the cell unrolled into FULLY_CONNECTED, ADD, "
    "LOGISTIC, ... ops, no fused LSTM op). `lstmgen verify` checks it (against the source with --weights); {what} "
    "needs the fused form. Rebuild with --form fused (the default) for this command."
)
GRAPH_STATE_REFUSAL = (
    "{what}: {source} is lstmgen's graph form built without --state-io: it has one input and one output, and "
    "every invoke starts from the zero state, so there is no state to set or carry. Rebuild it with --form graph "
    "--state-io (each layer's initial h and c become model inputs, its final h and c model outputs), or with "
    "--form fused (state in variable tensors)."
)


def _graph_state_io(model: ModelRecord, metadata: dict[str, Any], source: str) -> tuple[tuple[int, int, int, int], ...]:
    """The graph form's state inputs and outputs from its metadata, checked against the model's inputs/outputs:
    positions 1..2n in order, float tensors of rank 2, each final state shaped as its initial one."""
    entries = metadata.get("state_io", [])
    found: list[tuple[int, int, int, int]] = []
    ok = isinstance(entries, list) and len(model.inputs) == len(model.outputs) == 1 + 2 * len(entries)
    for k, entry in enumerate(entries if ok else []):
        want = [1 + 2 * k, 2 + 2 * k]
        ok = isinstance(entry, dict) and entry.get("inputs") == want and entry.get("outputs") == want
        if not ok:
            break
        quad = (model.inputs[want[0]], model.inputs[want[1]], model.outputs[want[0]], model.outputs[want[1]])
        ts = [model.tensors[i] for i in quad]
        ok = all(t.dtype.kind == "f" and len(t.shape) == 2 for t in ts) and ts[0].shape == ts[2].shape
        ok = ok and ts[1].shape == ts[3].shape and len(set(quad)) == 4
        found.append(quad)
    if not ok:
        raise ModelFileError(
            f"{source}: a graph-form model has one input and one output, plus with --state-io an initial h and c "
            "input and a final h and c output per cell as its metadata lists them; found "
            f"{len(model.inputs)} inputs and {len(model.outputs)} outputs that do not match. Rebuild the file."
        )
    wrong = _signature_mismatch(model, len(found))
    if wrong:
        raise ModelFileError(
            f"{source}: its signature {wrong}, while the model's inputs and outputs (what lstmgen runs and verifies) "
            "are the input, then initial_h_K and initial_c_K per cell, and the output, then final_h_K and "
            "final_c_K: a caller using the signature's names would feed or read the wrong tensors. Rebuild the file."
        )
    return tuple(found)


def _signature_mismatch(model: ModelRecord, cells: int) -> str:
    """Where a signature's state keys name other tensors than the model's state positions ('' when none does):
    callers stream through the signature's names (initial_h_K, final_c_K, ...), lstmgen through the positions."""
    for s in model.signatures:
        for side, tensors, prefix in (("inputs", model.inputs, "initial"), ("outputs", model.outputs, "final")):
            got = dict(getattr(s, side))
            want = {f"{prefix}_{v}_{k}": tensors[1 + 2 * k + j] for k in range(cells) for j, v in enumerate("hc")}
            keys = [key for key, index in want.items() if got.get(key) != index]
            if keys or sorted(got.values()) != sorted(tensors):
                return f"'{s.key}' maps its {side} {sorted(got.items())} otherwise (at {', '.join(keys) or 'the set'})"
    return ""


def is_graph_form(model: ModelRecord, metadata: dict[str, Any]) -> bool:
    """lstmgen's graph form: says so in its metadata, has no LSTM op, and only ops the checker evaluates."""
    ops = {o.opcode for g in (model, *model.subgraphs) for o in g.operators}
    known = {*DATA_OPS, Op.WHILE}  # the evaluator runs a WHILE loop's subgraphs with the same ops
    return metadata.get("form") == "graph" and Op.UNIDIRECTIONAL_SEQUENCE_LSTM not in ops and ops <= known


def _stated_time_major(metadata: dict[str, Any]) -> bool:
    return bool(metadata.get("hyperparameters", {}).get("time_major", False))


_LAYOUTS = {0: "time-major [T, B, I]", 1: "batch-major [B, T, I]"}


def graph_time_axis(model: ModelRecord) -> int | None:
    """The graph form's time axis as its graph reads the input (None: it cannot tell, e.g. one step of batch 1).

    A loop's input is dynamic along time alone (the batch is fixed). An unrolled graph transposes a batch-major
    input of batch > 1 to time-major before the input projection, and splits that projection into one piece per
    step: fed as it is, the input's outer axis is time unless it is 1 and the inner one has the steps."""
    x = model.tensors[model.inputs[0]]
    sig = list(x.shape_signature or ())
    if sig.count(-1) == 1:
        return sig.index(-1)
    users = [op for op in model.operators if model.inputs[0] in op.inputs]
    if len(x.shape) != 3:
        return None
    if any(op.opcode == Op.TRANSPOSE for op in users):
        return 1
    projected = {op.outputs[0] for op in users if op.opcode == Op.FULLY_CONNECTED}
    steps = {len(op.outputs) for op in model.operators if op.opcode == Op.SPLIT and op.inputs[-1] in projected}
    if len(steps) != 1:
        return None
    (t,) = steps
    outer, inner = int(x.shape[0]), int(x.shape[1])
    if outer == t and (inner != t or t > 1):
        return 0
    return 1 if inner == t and outer == 1 and t > 1 else None


def _check_graph_layout(model: ModelRecord, metadata: dict[str, Any], source: str) -> None:
    """The graph form's metadata must state the layout its graph reads (run, verify and the checks use it)."""
    axis = graph_time_axis(model)
    stated = 0 if _stated_time_major(metadata) else 1
    if axis is not None and axis != stated:
        raise ModelFileError(
            f"{source}: its lstmgen metadata says the input is {_LAYOUTS[stated]}, but its graph reads it "
            f"{_LAYOUTS[axis]} (input shape {list(model.tensors[model.inputs[0]].shape)}): the metadata was edited "
            "or the file is damaged, and whatever feeds it by the metadata feeds it wrongly. Rebuild it (lstmgen "
            "build --form graph ...)."
        )


def describe_graph(model: ModelRecord, source: str, *, head_ok: bool = False, graph_ok: bool = False) -> LstmModel:
    check_model(model, source)  # before anything indexes the graph or an interpreter loads it
    names = [BUILTIN_OPERATOR_NAMES.get(o.opcode, str(o.opcode)) for o in model.operators]
    lstm_ops = [k for k, o in enumerate(model.operators) if o.opcode == Op.UNIDIRECTIONAL_SEQUENCE_LSTM]
    metadata = read_metadata(model)
    if not lstm_ops and is_graph_form(model, metadata):
        if not graph_ok:
            raise ModelFileError(GRAPH_FORM_REFUSAL.format(source=source, what="this command"))
        quads = _graph_state_io(model, metadata, source)
        _check_graph_layout(model, metadata, source)
        return LstmModel(source, model, (), metadata, form="graph", state_io=quads)
    head = tuple(k for k, o in enumerate(model.operators) if o.opcode not in SUPPORTED_OPS)
    unsupported = sorted({names[k] for k in head})
    if not lstm_ops or (head and not head_ok):
        found = ", ".join(names) or "none"
        hint = (
            " This is what TF's converter makes of a Keras 3 LSTM: a WHILE loop of small ops, not the fused LSTM "
            "op, so there is no LSTM op to check or run. The way forward: build the fused op from the Keras model "
            "the file was converted from (often the .keras or .h5 beside it): lstmgen build --weights "
            "your_model.keras -o lstm.tflite (verified against the Keras weights), or convert a Keras 2 / tf.keras "
            "model, which TF's converter fuses."
            if not lstm_ops and "WHILE" in names
            else ""
        )
        around = (
            f", of which lstmgen evaluates only the LSTM ops, not {', '.join(unsupported)}. `lstmgen inspect` and "
            "`lstmgen verify` check the fused LSTM ops of such a model in isolation (on the input tensors the "
            "interpreter computes for them); this command needs a model of LSTM ops only"
            if lstm_ops
            else ""
        )
        raise ModelFileError(
            f"{source}: expected fused UNIDIRECTIONAL_SEQUENCE_LSTM ops (with REVERSE_V2, CONCATENATION, "
            f"STRIDED_SLICE, QUANTIZE or DEQUANTIZE around them); found [{found}]{around}.{hint}"
        )
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ModelFileError(
            f"{source}: has {len(model.inputs)} inputs and {len(model.outputs)} outputs; lstmgen handles one of each."
        )
    lstms = tuple(lstm_spec(model, k, source) for k in lstm_ops)
    for spec in lstms:
        for key, index in spec.weight_inputs.items():
            t = model.tensors[index]
            produced = any(index in o.outputs for o in model.operators)
            if t.data is None and not produced:
                raise ModelFileError(f"{source}: LSTM input {key} ({t.name}) has no constant data.")
    if not head and len(model.tensors[model.inputs[0]].shape) != 3:
        raise ModelFileError(f"{source}: the model input must be rank 3 ([batch, time, features] or time-major).")
    return LstmModel(source, model, lstms, metadata, head=head)


def read_metadata(model: ModelRecord) -> dict[str, Any]:
    """The 'lstmgen' metadata JSON of a model, or {} (e.g. for TF-converter output)."""
    raw = model.metadata_dict().get(METADATA_KEY)
    try:
        doc = json.loads(raw) if raw else {}
    except (ValueError, RecursionError):
        return {}
    if not isinstance(doc, dict):  # anyone can write metadata: keep only entries of the types lstmgen writes
        return {}
    doc = {k: v for k, v in doc.items() if isinstance(v, _METADATA_TYPES.get(k, object))}
    hp = doc.get("hyperparameters")
    if hp is not None:
        doc["hyperparameters"] = {k: v for k, v in hp.items() if isinstance(v, _HYPER_TYPES.get(k, object))}
    return doc


_METADATA_TYPES: dict[str, type | tuple[type, ...]] = {
    "form": str,
    "hyperparameters": dict,
    "quantization": dict,
    "provenance": dict,
    "generator": str,
    "state_io": list,
}
_HYPER_TYPES: dict[str, type | tuple[type, ...]] = {
    "time_major": bool,
    "bidirectional": bool,
    "go_backwards": bool,
    "return_sequences": bool,
    "num_layers": int,
}
