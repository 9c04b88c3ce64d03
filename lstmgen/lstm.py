"""Turn a cell config + per-gate weights into flatbuffer records, and read them back from a model."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import tflite

from . import __version__
from .config import CellConfig
from .errors import ModelFileError, WeightFileError
from .flatbuf import ModelRecord, OperatorRecord, Options, Signature, TensorRecord
from .slots import NUM_INPUTS, WEIGHT_SLOTS, Slot, SlotSpec
from .tables import ACTIVATION_NAMES, ACTIVATIONS, MIN_RUNTIME_VERSION

OPCODE = tflite.BuiltinOperator.UNIDIRECTIONAL_SEQUENCE_LSTM
OPTIONS_TABLE = "UnidirectionalSequenceLSTMOptions"
METADATA_KEY = "lstmgen"
F32 = np.dtype(np.float32)


def enabled_features(config: CellConfig, weights: Mapping[str, np.ndarray]) -> set[str]:
    """The slot features this cell uses (see slots.SlotSpec)."""
    features = {"core", "input_gate"}
    if config.use_peepholes:
        features.add("peephole")
    if config.num_proj is not None:
        features.add("projection")
        if "projection_bias" in weights:
            features.add("projection_bias")
    return features


def check_weights(config: CellConfig, weights: Mapping[str, np.ndarray], source: str) -> None:
    """Every slot the config needs is present with the right shape, and nothing else is."""
    features = enabled_features(config, weights)
    sizes = {"N": config.num_units, "I": config.input_size, "P": config.output_size}
    wanted = {s.slot.key: s for s in WEIGHT_SLOTS if s.feature in features}
    extra = sorted(set(weights) - set(wanted))
    if extra:
        why = {
            "peephole": "the cell has no peepholes (use_peepholes is off)",
            "projection": "the cell has no projection (num_proj is not set)",
            "projection_bias": "the cell has no projection (num_proj is not set)",
            "layer_norm": "layer normalisation is not supported yet",
        }
        spec = {s.slot.key: s for s in WEIGHT_SLOTS}
        k = extra[0]
        reason = why.get(spec[k].feature, "it is not an input of this cell") if k in spec else "unknown key"
        raise WeightFileError(
            f"{source}: holds '{k}' but {reason}. Remove it from the file or enable the feature "
            "(--use-peepholes / --num-proj)."
        )
    for key, spec in wanted.items():
        if key not in weights:
            because = "every LSTM has it" if spec.feature in ("core", "input_gate") else f"the cell uses {spec.feature}"
            raise WeightFileError(f"{source}: missing '{key}' (shape {_symbolic(spec)}), needed because {because}.")
        want = tuple(sizes[s] for s in spec.shape)
        got = tuple(weights[key].shape)
        if got != want:
            raise WeightFileError(
                f"{source}: '{key}' has shape {list(got)}, expected {list(want)} = {_symbolic(spec)} with "
                f"num_units={sizes['N']}, input_size={sizes['I']}, output_size={sizes['P']}."
            )


def _symbolic(spec: SlotSpec) -> str:
    names = {"N": "num_units", "I": "input_size", "P": "output_size"}
    return "[" + ", ".join(names[s] for s in spec.shape) + "]"


def _io_shape(config: CellConfig, features: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Shape and shape_signature of input/output; an unknown time axis is 1 in shape, -1 in signature."""
    t = config.time_steps if config.time_steps is not None else 1
    t_sig = config.time_steps if config.time_steps is not None else -1
    if config.time_major:
        return (t, config.batch_size, features), (t_sig, config.batch_size, features)
    return (config.batch_size, t, features), (config.batch_size, t_sig, features)


def hyperparameters(config: CellConfig) -> dict[str, Any]:
    """The JSON stored in the model's 'lstmgen' metadata (and printed by inspect)."""
    d = config.to_dict()
    d["output_size"] = config.output_size
    d["state_size"] = config.state_size
    return d


def layout(
    config: CellConfig,
    weights: Mapping[str, np.ndarray],
    source: str = "weights",
    provenance: Mapping[str, Any] | None = None,
) -> ModelRecord:
    """Records for one UNIDIRECTIONAL_SEQUENCE_LSTM model. config.forget_bias is folded in here."""
    if config.forget_bias is None:
        raise ValueError("forget_bias must be resolved before layout")
    check_weights(config, weights, source)
    features = enabled_features(config, weights)
    prefix = config.name
    tensors: list[TensorRecord] = []
    inputs = [-1] * NUM_INPUTS

    def add(t: TensorRecord) -> int:
        tensors.append(t)
        return len(tensors) - 1

    in_shape, in_sig = _io_shape(config, config.input_size)
    inputs[Slot.INPUT] = add(
        TensorRecord(f"{prefix}/input", in_shape, F32, shape_signature=in_sig if -1 in in_sig else None)
    )
    for spec in WEIGHT_SLOTS:
        if spec.feature not in features:
            continue
        data = weights[spec.slot.key]
        if spec.slot == Slot.FORGET_GATE_BIAS and config.forget_bias:
            data = data + np.float32(config.forget_bias)  # TF adds forget_bias at run time; fold it
        inputs[spec.slot] = add(TensorRecord(f"{prefix}/{spec.slot.key}", tuple(data.shape), F32, data=data))
    # State tensors: variable, no buffer (a data vector, even empty, is rejected by the interpreter).
    b = config.batch_size
    inputs[Slot.OUTPUT_STATE] = add(
        TensorRecord(f"{prefix}/output_state", (b, config.output_size), F32, is_variable=True)
    )
    inputs[Slot.CELL_STATE] = add(TensorRecord(f"{prefix}/cell_state", (b, config.num_units), F32, is_variable=True))
    out_shape, out_sig = _io_shape(config, config.output_size)
    output = add(TensorRecord(f"{prefix}/output", out_shape, F32, shape_signature=out_sig if -1 in out_sig else None))

    version = 1
    options = Options(
        OPTIONS_TABLE,
        (
            # Always written explicitly: a missing table parses as activation NONE (silently wrong).
            ("FusedActivationFunction", ACTIVATIONS[config.activation]),
            ("CellClip", float(config.cell_clip)),
            ("ProjClip", float(config.proj_clip)),
            ("TimeMajor", bool(config.time_major)),
            ("AsymmetricQuantizeInputs", False),
            ("DiagonalRecurrentTensors", False),
        ),
    )
    op = OperatorRecord(OPCODE, version, tuple(inputs), (output,), options)
    meta = {
        "generator": f"lstmgen {__version__}",
        "op": "UNIDIRECTIONAL_SEQUENCE_LSTM",
        "hyperparameters": hyperparameters(config),
        "provenance": dict(provenance or {}),
    }
    return ModelRecord(
        tensors=tuple(tensors),
        operators=(op,),
        inputs=(inputs[Slot.INPUT],),
        outputs=(output,),
        subgraph_name="main",
        description=f"lstmgen {__version__}",
        signatures=(Signature("serving_default", (("input", inputs[Slot.INPUT]),), (("output", output),)),),
        metadata=(
            ("min_runtime_version", MIN_RUNTIME_VERSION[version].encode().ljust(16, b"\0")),
            (METADATA_KEY, json.dumps(meta, sort_keys=True).encode()),
        ),
    )


# --------------------------------------------------------------------------------------- read back


@dataclass(frozen=True)
class LstmOp:
    """One UNIDIRECTIONAL_SEQUENCE_LSTM found in a model, with everything derived from its tensors."""

    model: ModelRecord
    op: OperatorRecord
    weights: dict[str, np.ndarray]  # slot key -> read-only view into the file
    activation: str
    cell_clip: float
    proj_clip: float
    time_major: bool
    num_units: int
    input_size: int
    output_size: int
    num_proj: int | None
    use_peepholes: bool
    metadata: dict[str, Any]

    def tensor(self, slot: Slot) -> TensorRecord:
        return self.model.tensors[self.op.inputs[slot]]

    @property
    def input_index(self) -> int:
        return self.op.inputs[Slot.INPUT]

    @property
    def output_index(self) -> int:
        return self.op.outputs[0]

    @property
    def state_indices(self) -> tuple[int, int]:
        """Tensor indices of (h, c)."""
        return self.op.inputs[Slot.OUTPUT_STATE], self.op.inputs[Slot.CELL_STATE]


def find_lstm(model: ModelRecord, source: str) -> LstmOp:
    """The model's single float LSTM op, or a ModelFileError saying what is there instead."""
    from .tables import BUILTIN_OPERATOR_NAMES

    ops = [o for o in model.operators if o.opcode == OPCODE]
    if len(model.operators) != 1 or len(ops) != 1:
        names = ", ".join(BUILTIN_OPERATOR_NAMES.get(o.opcode, str(o.opcode)) for o in model.operators)
        raise ModelFileError(
            f"{source}: expected exactly one UNIDIRECTIONAL_SEQUENCE_LSTM operator, found [{names or 'none'}]. "
            "lstmgen verifies single fused-LSTM models."
        )
    op = ops[0]
    if len(op.inputs) not in (20, NUM_INPUTS):
        raise ModelFileError(f"{source}: the LSTM has {len(op.inputs)} inputs; the kernel expects 20 or 24.")
    weights: dict[str, np.ndarray] = {}
    for spec in WEIGHT_SLOTS:
        if spec.slot >= len(op.inputs) or op.inputs[spec.slot] < 0:
            continue
        t = model.tensors[op.inputs[spec.slot]]
        if t.data is None:
            raise ModelFileError(f"{source}: LSTM input {spec.slot.key} has no constant data.")
        if t.dtype != F32:
            raise ModelFileError(
                f"{source}: LSTM input {spec.slot.key} is {t.dtype}; only float32 models can be verified "
                "so far (quantized verification is not available yet)."
            )
        weights[spec.slot.key] = t.data
    opts = op.options
    if opts is None or opts.table != OPTIONS_TABLE:
        raise ModelFileError(
            f"{source}: the LSTM has no UnidirectionalSequenceLSTMOptions table, so the kernel runs with "
            "activation NONE, which gives silently wrong output. Rebuild the model."
        )
    act_code = int(opts.get("FusedActivationFunction", 0))
    if act_code not in ACTIVATION_NAMES:
        raise ModelFileError(
            f"{source}: the LSTM's activation code {act_code} is not one the kernel computes correctly "
            f"(supported: {', '.join(ACTIVATIONS)})."
        )
    meta_raw = model.metadata_dict().get(METADATA_KEY)
    try:
        meta = json.loads(meta_raw) if meta_raw else {}
    except ValueError:
        meta = {}
    ro = model.tensors[op.inputs[Slot.RECURRENT_TO_OUTPUT_WEIGHTS]]
    n = int(model.tensors[op.inputs[Slot.INPUT_TO_OUTPUT_WEIGHTS]].shape[0])
    p = int(ro.shape[1] if len(ro.shape) == 2 else ro.shape[0])
    has_proj = len(op.inputs) > Slot.PROJECTION_WEIGHTS and op.inputs[Slot.PROJECTION_WEIGHTS] >= 0
    return LstmOp(
        model=model,
        op=op,
        weights=weights,
        activation=ACTIVATION_NAMES[act_code],
        cell_clip=float(opts.get("CellClip", 0.0)),
        proj_clip=float(opts.get("ProjClip", 0.0)),
        time_major=bool(opts.get("TimeMajor", False)),
        num_units=n,
        input_size=int(model.tensors[op.inputs[Slot.INPUT_TO_OUTPUT_WEIGHTS]].shape[1]),
        output_size=p,
        num_proj=p if has_proj else None,
        use_peepholes="cell_to_forget_weights" in weights,
        metadata=meta,
    )
