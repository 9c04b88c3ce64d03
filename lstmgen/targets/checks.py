"""Rule building blocks shared by the target tables: Rule, Problem, LSTM operand lookups and common checks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from lstmgen.numerics.tables import BOOL
from lstmgen.tflite.records import ModelRecord, OperatorRecord, TensorRecord
from lstmgen.tflite.schema import ActivationFunctionType, BuiltinOperator
from lstmgen.tflite.slots import NUM_INPUTS, Slot
from lstmgen.tflite.tables import BUILTIN_OPERATOR_NAMES

LSTM = BuiltinOperator.UNIDIRECTIONAL_SEQUENCE_LSTM
TANH = ActivationFunctionType.TANH


@dataclass(frozen=True)
class Rule:
    """One thing a target cannot run: `check` lists where the model uses it (empty = not used)."""

    feature: str
    check: Callable[[ModelRecord], list[str]]
    message: str


@dataclass(frozen=True)
class Problem:
    """One rule a model breaks, with where (operators/tensors) it breaks it."""

    target: str
    feature: str
    where: tuple[str, ...]
    message: str

    def __str__(self) -> str:
        return f"{self.feature} ({'; '.join(self.where)}): {self.message}"

    def to_dict(self) -> dict[str, object]:
        return {"target": self.target, "feature": self.feature, "where": list(self.where), "message": self.message}


# ------------------------------------------------------------------------------------ helpers


def op_name(op: OperatorRecord) -> str:
    return BUILTIN_OPERATOR_NAMES.get(op.opcode, f"builtin {op.opcode}")


def lstms(model: ModelRecord) -> Iterator[tuple[str, OperatorRecord]]:
    for k, op in enumerate(model.operators):
        if op.opcode == LSTM:
            yield f"operator {k}", op


def tensor(model: ModelRecord, op: OperatorRecord, slot: int) -> TensorRecord | None:
    if slot >= len(op.inputs) or op.inputs[slot] < 0:
        return None
    return model.tensors[op.inputs[slot]]


def present(model: ModelRecord, slots: range | tuple[int, ...]) -> list[str]:
    found = []
    for where, op in lstms(model):
        slots_here = [s for s in slots if tensor(model, op, s) is not None]
        if slots_here:
            found.append(f"{where}: inputs {', '.join(Slot(s).key for s in slots_here)}")
    return found


def type_name(t: np.dtype) -> str:
    return "bool" if t == BOOL else t.name


# ----------------------------------------------------------- checks more than one target applies


def cifg(model: ModelRecord) -> list[str]:
    gate = (Slot.INPUT_TO_INPUT_WEIGHTS, Slot.RECURRENT_TO_INPUT_WEIGHTS, Slot.INPUT_GATE_BIAS)
    found = []
    for where, op in lstms(model):
        missing = [s.key for s in gate if tensor(model, op, s) is None]
        if missing:
            found.append(f"{where}: no {', '.join(missing)}")
    return found


def diagonal(model: ModelRecord) -> list[str]:
    found = []
    for where, op in lstms(model):
        flag = bool(op.options.get("DiagonalRecurrentTensors", False)) if op.options else False
        ranks = {
            s.key: len(t.shape)
            for s in (Slot(5), Slot(6), Slot(7), Slot(8))
            if (t := tensor(model, op, s)) is not None and len(t.shape) != 2
        }
        if flag or ranks:
            found.append(f"{where}: " + (f"rank-1 {', '.join(ranks)}" if ranks else "diagonal_recurrent_tensors=true"))
    return found


def dynamic_shapes(model: ModelRecord) -> list[str]:
    return [
        f"tensor {i} '{t.name}' shape_signature {list(t.shape_signature)}"
        for i, t in enumerate(model.tensors)
        if t.data is None and t.shape_signature is not None and -1 in t.shape_signature
    ]


def input_count(model: ModelRecord) -> list[str]:
    return [f"{where}: {len(op.inputs)} inputs" for where, op in lstms(model) if len(op.inputs) != NUM_INPUTS]


def layer_norm(model: ModelRecord) -> list[str]:
    return present(model, range(Slot.INPUT_LAYER_NORM_COEFFICIENTS, Slot.OUTPUT_LAYER_NORM_COEFFICIENTS + 1))


def non_variable_state(model: ModelRecord) -> list[str]:
    found = []
    for where, op in lstms(model):
        for s in (Slot.OUTPUT_STATE, Slot.CELL_STATE):
            t = tensor(model, op, s)
            if t is None or not t.is_variable:
                found.append(f"{where}: {s.key} " + ("absent" if t is None else f"'{t.name}' is not is_variable"))
    return found


def peepholes(model: ModelRecord) -> list[str]:
    return present(model, range(Slot.CELL_TO_INPUT_WEIGHTS, Slot.CELL_TO_OUTPUT_WEIGHTS + 1))


def projection(model: ModelRecord) -> list[str]:
    return present(model, (Slot.PROJECTION_WEIGHTS, Slot.PROJECTION_BIAS))
