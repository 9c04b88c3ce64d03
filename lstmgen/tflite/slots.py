"""The 24 input slots of UNIDIRECTIONAL_SEQUENCE_LSTM, declared once as a table."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

GATES: tuple[str, ...] = ("input", "forget", "cell", "output")


class Slot(IntEnum):
    """Operator input index of each tensor (lstm_shared.h)."""

    INPUT = 0
    INPUT_TO_INPUT_WEIGHTS = 1
    INPUT_TO_FORGET_WEIGHTS = 2
    INPUT_TO_CELL_WEIGHTS = 3
    INPUT_TO_OUTPUT_WEIGHTS = 4
    RECURRENT_TO_INPUT_WEIGHTS = 5
    RECURRENT_TO_FORGET_WEIGHTS = 6
    RECURRENT_TO_CELL_WEIGHTS = 7
    RECURRENT_TO_OUTPUT_WEIGHTS = 8
    CELL_TO_INPUT_WEIGHTS = 9
    CELL_TO_FORGET_WEIGHTS = 10
    CELL_TO_OUTPUT_WEIGHTS = 11
    INPUT_GATE_BIAS = 12
    FORGET_GATE_BIAS = 13
    CELL_GATE_BIAS = 14
    OUTPUT_GATE_BIAS = 15
    PROJECTION_WEIGHTS = 16
    PROJECTION_BIAS = 17
    OUTPUT_STATE = 18
    CELL_STATE = 19
    INPUT_LAYER_NORM_COEFFICIENTS = 20
    FORGET_LAYER_NORM_COEFFICIENTS = 21
    CELL_LAYER_NORM_COEFFICIENTS = 22
    OUTPUT_LAYER_NORM_COEFFICIENTS = 23

    @property
    def key(self) -> str:
        """The TFLite name of the slot, e.g. 'input_to_forget_weights' (also the weight-file key)."""
        return self.name.lower()


@dataclass(frozen=True)
class SlotSpec:
    """What a constant slot holds: its shape in symbols and the feature that switches it on.

    Shape symbols: N = num_units, I = input_size, P = output size (num_proj or N).
    Features: "core" (always present), "input_gate" (absent under CIFG), "peephole",
    "projection", "projection_bias", "layer_norm".
    """

    slot: Slot
    shape: tuple[str, ...]
    feature: str
    gate: str | None


def gate_slot(pattern: str, gate: str) -> Slot:
    """A per-gate slot looked up by name: gate_slot("INPUT_TO_{}_WEIGHTS", "forget") is Slot.INPUT_TO_FORGET_WEIGHTS."""
    return Slot[pattern.format(gate.upper())]


def _gates(pattern: str, shape: tuple[str, ...], feature: str | None) -> tuple[SlotSpec, ...]:
    """One slot per gate; feature None: the input gate's is "input_gate" (absent with CIFG), the others "core"."""
    return tuple(
        SlotSpec(gate_slot(pattern, g), shape, feature or ("input_gate" if g == "input" else "core"), g) for g in GATES
    )


# Constant (weight) slots in operator order; 0 (input) and 18/19 (state) are not weights.
WEIGHT_SLOTS: tuple[SlotSpec, ...] = (
    *_gates("INPUT_TO_{}_WEIGHTS", ("N", "I"), None),
    *_gates("RECURRENT_TO_{}_WEIGHTS", ("N", "P"), None),
    SlotSpec(Slot.CELL_TO_INPUT_WEIGHTS, ("N",), "peephole", "input"),
    SlotSpec(Slot.CELL_TO_FORGET_WEIGHTS, ("N",), "peephole", "forget"),
    SlotSpec(Slot.CELL_TO_OUTPUT_WEIGHTS, ("N",), "peephole", "output"),
    *_gates("{}_GATE_BIAS", ("N",), None),
    SlotSpec(Slot.PROJECTION_WEIGHTS, ("P", "N"), "projection", None),
    SlotSpec(Slot.PROJECTION_BIAS, ("P",), "projection_bias", None),
    *_gates("{}_LAYER_NORM_COEFFICIENTS", ("N",), "layer_norm"),
)
WEIGHT_SLOT_BY_KEY: dict[str, SlotSpec] = {s.slot.key: s for s in WEIGHT_SLOTS}
NUM_INPUTS = 24
