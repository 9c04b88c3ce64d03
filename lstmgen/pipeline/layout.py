"""Turn a cell config + per-gate weights into flatbuffer records: one fused LSTM op per layer and direction.

Topology (see README "Topologies"): layer k's output feeds layer k+1. A bidirectional layer runs a
second op over the time-reversed input (REVERSE_V2), re-reverses its output and concatenates it
after the forward output (PyTorch's layout). --last-step ends with a STRIDED_SLICE of the last
time step (for a bidirectional layer: each direction's last processed step, as Keras does).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from lstmgen.config import CellConfig
from lstmgen.errors import WeightFileError
from lstmgen.numerics.tables import F32, I32
from lstmgen.tflite.records import Deferred, ModelRecord, OperatorRecord, Options, Signature, TensorRecord
from lstmgen.tflite.schema import BuiltinOperator
from lstmgen.tflite.slots import NUM_INPUTS, WEIGHT_SLOTS, Slot, SlotSpec
from lstmgen.tflite.tables import ACTIVATIONS, METADATA_KEY, min_runtime
from lstmgen.version import __version__

OPCODE = BuiltinOperator.UNIDIRECTIONAL_SEQUENCE_LSTM
OPTIONS_TABLE = "UnidirectionalSequenceLSTMOptions"
Weights = Mapping[str, "np.ndarray | Deferred"]


@dataclass(frozen=True)
class CellShape:
    """The sizes and variant of one cell (one op): what decides which slots exist and their shapes."""

    num_units: int
    input_size: int
    num_proj: int | None = None
    use_peepholes: bool = False
    cifg: bool = False
    layer_norm: bool = False
    diagonal: bool = False  # rank-1 recurrent weights: R h becomes r * h (IndyLSTM, op version 4)
    activation: str | None = None  # this op's own (an ONNX direction's activations), else the config's

    @property
    def output_size(self) -> int:
        return self.num_proj if self.num_proj is not None else self.num_units

    def sizes(self) -> dict[str, int]:
        return {"N": self.num_units, "I": self.input_size, "P": self.output_size}

    def slot_shape(self, spec: SlotSpec) -> tuple[int, ...]:
        """The slot's shape for this cell (the table's symbols, or [N] for diagonal recurrent weights)."""
        if self.diagonal and spec.slot.key.startswith("recurrent_to_"):
            return (self.num_units,)
        sizes = self.sizes()
        return tuple(sizes[s] for s in spec.shape)

    def to_dict(self) -> dict[str, Any]:
        return {
            "num_units": self.num_units,
            "input_size": self.input_size,
            "num_proj": self.num_proj,
            "use_peepholes": self.use_peepholes,
            "cifg": self.cifg,
            "layer_norm": self.layer_norm,
            "diagonal": self.diagonal,
        }


def slot_enabled(spec: SlotSpec, shape: CellShape, weights: Weights) -> bool:
    """Whether a cell of this shape has the slot (the kernel's consistency rules, as a table lookup)."""
    input_gate_absent = shape.cifg and spec.gate == "input"
    enabled = {
        "core": True,
        "input_gate": not shape.cifg,
        "peephole": shape.use_peepholes and not input_gate_absent,
        "projection": shape.num_proj is not None,
        "projection_bias": shape.num_proj is not None and spec.slot.key in weights,
        "layer_norm": shape.layer_norm and not input_gate_absent,
    }
    return enabled[spec.feature]


_WHY_ABSENT = {
    "input_gate": "the cell is CIFG (coupled input-forget gate: no input gate), so input-gate arrays must be absent",
    "peephole": "the cell has no peepholes (use_peepholes is off)",
    "projection": "the cell has no projection (num_proj is not set)",
    "projection_bias": "the cell has no projection (num_proj is not set)",
    "layer_norm": "layer normalisation is off (pass --layer-norm)",
}


def check_weights(shape: CellShape, weights: Weights, source: str) -> None:
    """Every slot the cell needs is present with the right shape, and nothing else is."""
    specs = {s.slot.key: s for s in WEIGHT_SLOTS}
    wanted = {k: s for k, s in specs.items() if slot_enabled(s, shape, weights)}
    for key in sorted(set(weights) - set(wanted)):
        reason = _WHY_ABSENT.get(specs[key].feature, "it is not an input of this cell") if key in specs else "unknown"
        if key in specs and specs[key].feature == "peephole" and shape.cifg and specs[key].gate == "input":
            reason = _WHY_ABSENT["input_gate"]
        if key in specs and specs[key].gate == "input" and shape.cifg and "input_to_input_weights" not in weights:
            raise WeightFileError(
                f"{source}: holds '{key}' but not 'input_to_input_weights': a cell has either all input-gate arrays "
                "(input_to_input_weights, recurrent_to_input_weights, input_gate_bias) or none (CIFG, --cifg). "
                "Add the missing array or remove the others."
            )
        raise WeightFileError(f"{source}: holds '{key}' but {reason}. Remove it or change the options.")
    sizes = shape.sizes()
    for key, spec in wanted.items():
        if key not in weights:
            because = (
                "every LSTM has it" if spec.feature == "core" else f"the cell uses {spec.feature.replace('_', ' ')}"
            )
            if spec.feature == "input_gate":
                because = "the cell has an input gate (it is not CIFG; pass --cifg if it should be)"
            raise WeightFileError(f"{source}: missing '{key}' (shape {_symbolic(spec)}), needed because {because}.")
        want = shape.slot_shape(spec)
        got = tuple(weights[key].shape)
        if got != want:
            raise WeightFileError(
                f"{source}: '{key}' has shape {list(got)}, expected {list(want)} = {_symbolic(spec)} with "
                f"num_units={sizes['N']}, input_size={sizes['I']}, output_size={sizes['P']}."
            )


def _symbolic(spec: SlotSpec) -> str:
    names = {"N": "num_units", "I": "input_size", "P": "output_size"}
    return "[" + ", ".join(names[s] for s in spec.shape) + "]"


def hyperparameters(config: CellConfig, shapes: Sequence[Sequence[CellShape]] = ()) -> dict[str, Any]:
    """The JSON stored in the model's 'lstmgen' metadata (and printed by inspect)."""
    d = config.to_dict()
    if d["form"] == "fused":
        del d["form"]  # the default form: files written before the option existed stay byte-identical
    if not d["state_io"]:
        del d["state_io"]  # likewise: graph-form files without state inputs/outputs keep their bytes
    d["output_size"] = config.output_size
    d["state_size"] = config.state_size
    if shapes:
        d["layers"] = [[s.to_dict() for s in layer] for layer in shapes]
    return d


class _Graph:
    """Collects tensors and operators in creation order (which is also execution order)."""

    def __init__(self, config: CellConfig) -> None:
        self.config = config
        self.tensors: list[TensorRecord] = []
        self.ops: list[OperatorRecord] = []
        self.t_axis = 0 if config.time_major else 1
        self._axis_const: int | None = None

    def add(self, t: TensorRecord) -> int:
        self.tensors.append(t)
        return len(self.tensors) - 1

    def _dims(self, width: int, with_time: bool) -> tuple[tuple[int, ...], tuple[int, ...] | None]:
        c = self.config
        shape: tuple[int, ...]
        sig: tuple[int, ...]
        t, t_sig = (c.time_steps, c.time_steps) if c.time_steps is not None else (1, -1)
        b, b_sig = c.batch_size, (-1 if c.dynamic_batch else c.batch_size)
        if not with_time:
            shape, sig = (b, width), (b_sig, width)
        elif c.time_major:
            shape, sig = (t, b, width), (t_sig, b_sig, width)
        else:
            shape, sig = (b, t, width), (b_sig, t_sig, width)
        return shape, (sig if -1 in sig else None)

    def activation(self, name: str, width: int, with_time: bool = True) -> int:
        shape, sig = self._dims(width, with_time)
        return self.add(TensorRecord(name, shape, F32, shape_signature=sig))

    def const_i32(self, name: str, values: list[int]) -> int:
        return self.add(TensorRecord(name, (len(values),), I32, data=np.asarray(values, I32)))

    def reverse(self, x: int, name: str) -> int:
        if self._axis_const is None:
            self._axis_const = self.const_i32(f"{self.config.name}/time_axis", [self.t_axis])
        out = self.activation(name, self.tensors[x].shape[-1])
        self.ops.append(
            OperatorRecord(
                BuiltinOperator.REVERSE_V2, 1, (x, self._axis_const), (out,), Options("ReverseV2Options", ())
            )
        )
        return out

    def concat(self, parts: list[int], name: str, with_time: bool = True) -> int:
        width = sum(self.tensors[p].shape[-1] for p in parts)
        out = self.activation(name, width, with_time)
        axis = 2 if with_time else 1
        self.ops.append(
            OperatorRecord(
                BuiltinOperator.CONCATENATION,
                1,
                tuple(parts),
                (out,),
                Options("ConcatenationOptions", (("Axis", axis),)),
            )
        )
        return out

    def last_step(self, x: int, name: str) -> int:
        """Slice the last time step, dropping the time axis ([B, T, F] -> [B, F])."""
        t = self.t_axis
        other = sum(1 << a for a in range(3) if a != t)
        begin = self.const_i32(f"{name}/begin", [-1 if a == t else 0 for a in range(3)])
        end = self.const_i32(f"{name}/end", [0, 0, 0])
        strides = self.const_i32(f"{name}/strides", [1, 1, 1])
        out = self.activation(name, self.tensors[x].shape[-1], with_time=False)
        opts = Options("StridedSliceOptions", (("BeginMask", other), ("EndMask", other), ("ShrinkAxisMask", 1 << t)))
        self.ops.append(OperatorRecord(BuiltinOperator.STRIDED_SLICE, 1, (x, begin, end, strides), (out,), opts))
        return out

    def lstm(self, scope: str, shape: CellShape, weights: Weights, x: int, forget_bias: float) -> int:
        c = self.config
        inputs = [-1] * NUM_INPUTS
        inputs[Slot.INPUT] = x
        for spec in WEIGHT_SLOTS:
            if not slot_enabled(spec, shape, weights):
                continue
            data = weights[spec.slot.key]
            if spec.slot == Slot.FORGET_GATE_BIAS and forget_bias:
                data = data + np.float32(forget_bias)  # TF adds forget_bias at run time; fold it
            inputs[spec.slot] = self.add(TensorRecord(f"{scope}/{spec.slot.key}", tuple(data.shape), F32, data=data))
        # State tensors: variable, no buffer (a data vector, even empty, is rejected by the interpreter).
        inputs[Slot.OUTPUT_STATE] = self._state(f"{scope}/output_state", shape.output_size)
        inputs[Slot.CELL_STATE] = self._state(f"{scope}/cell_state", shape.num_units)
        out = self.activation(f"{scope}/output", shape.output_size)
        options = Options(
            OPTIONS_TABLE,
            (
                # Always written explicitly: a missing table parses as activation NONE (silently wrong).
                ("FusedActivationFunction", ACTIVATIONS[shape.activation or c.activation]),
                ("CellClip", float(c.cell_clip)),
                ("ProjClip", float(c.proj_clip)),
                ("TimeMajor", bool(c.time_major)),
                ("AsymmetricQuantizeInputs", False),
                ("DiagonalRecurrentTensors", bool(shape.diagonal)),
            ),
        )
        version = 4 if shape.diagonal else 1  # op_version.cc: v4 = diagonal recurrent tensors
        self.ops.append(OperatorRecord(OPCODE, version, tuple(inputs), (out,), options))
        return out

    def _state(self, name: str, width: int) -> int:
        shape, sig = self._dims(width, with_time=False)
        return self.add(TensorRecord(name, shape, F32, shape_signature=sig, is_variable=True))


def shapes_from_config(config: CellConfig) -> list[list[CellShape]]:
    """Cell shapes when every layer has the config's sizes (layer k > 0 takes layer k-1's output)."""
    shapes = []
    width = config.input_size
    for _ in range(config.num_layers):
        shape = CellShape(
            config.num_units,
            width,
            config.num_proj,
            config.use_peepholes,
            config.cifg,
            config.layer_norm,
            config.diagonal_recurrent,
        )
        shapes.append([shape] * config.directions)
        width = shape.output_size * config.directions
    return shapes


def layout(
    config: CellConfig,
    layers: Sequence[Sequence[Weights]] | Weights,
    shapes: Sequence[Sequence[CellShape]] | None = None,
    provenance: Mapping[str, Any] | None = None,
    source: str = "weights",
) -> ModelRecord:
    """Records for the whole model. `layers[k][d]` are the weights of layer k, direction d (0 fw, 1 bw);
    a single mapping means one cell. Shapes default to the config's sizes.

    config.forget_bias must be resolved (a number): it is folded into every forget-gate bias.
    """
    if config.forget_bias is None:
        raise ValueError("forget_bias must be resolved before layout")
    if isinstance(layers, Mapping):
        layers = [[layers]]
    shapes = shapes if shapes is not None else shapes_from_config(config)
    for cells, cell_shapes in zip(layers, shapes, strict=True):
        for w, shape in zip(cells, cell_shapes, strict=True):
            check_weights(shape, w, source)
    g = _Graph(config)
    prefix = config.name
    x = g.activation(f"{prefix}/input", shapes[0][0].input_size)
    cur = x
    for k, (cells, cell_shapes) in enumerate(zip(layers, shapes, strict=True)):
        last = k == len(layers) - 1
        scope = f"{prefix}/layer_{k}" if len(layers) > 1 else prefix
        outs = []
        for d, (w, shape) in enumerate(zip(cells, cell_shapes, strict=True)):
            cell_scope = f"{scope}/{'bw' if d else 'fw'}" if len(cells) > 1 else scope
            cell_in = cur
            if d == 1 or config.go_backwards:
                cell_in = g.reverse(cur, f"{cell_scope}/reversed_input")
            outs.append(g.lstm(cell_scope, shape, w, cell_in, float(config.forget_bias)))
        if len(outs) == 2:
            if last and not config.return_sequences:
                # Each direction's last processed step: the backward op's final step saw x[0].
                parts = [g.last_step(o, f"{scope}/{n}/last_step") for o, n in zip(outs, ("fw", "bw"), strict=True)]
                cur = g.concat(parts, f"{scope}/concat", with_time=False)
            else:
                cur = g.concat([outs[0], g.reverse(outs[1], f"{scope}/bw/output_reversed")], f"{scope}/concat")
        else:
            cur = outs[0]
            if last and not config.return_sequences:
                cur = g.last_step(cur, f"{scope}/last_step")
    g.tensors[cur] = replace(g.tensors[cur], name=f"{prefix}/output")
    ops = [(op.opcode, op.version) for op in g.ops]
    meta = {
        "generator": f"lstmgen {__version__}",
        "op": "UNIDIRECTIONAL_SEQUENCE_LSTM",
        "hyperparameters": hyperparameters(config, shapes),
        "provenance": dict(provenance or {}),
    }
    return ModelRecord(
        tensors=tuple(g.tensors),
        operators=tuple(g.ops),
        inputs=(x,),
        outputs=(cur,),
        subgraph_name="main",
        description=f"lstmgen {__version__}",
        signatures=(Signature("serving_default", (("input", x),), (("output", cur),)),),
        metadata=(
            ("min_runtime_version", min_runtime(ops).encode().ljust(16, b"\0")),
            (METADATA_KEY, json.dumps(meta, sort_keys=True).encode()),
        ),
    )
