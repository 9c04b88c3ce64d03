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


def _spec(slot: Slot, shape: tuple[str, ...], feature: str, gate: str | None) -> SlotSpec:
    return SlotSpec(slot, shape, feature, gate)


# Constant (weight) slots in operator order; 0 (input) and 18/19 (state) are not weights.
WEIGHT_SLOTS: tuple[SlotSpec, ...] = (
    *(_spec(Slot(1 + k), ("N", "I"), "input_gate" if g == "input" else "core", g) for k, g in enumerate(GATES)),
    *(_spec(Slot(5 + k), ("N", "P"), "input_gate" if g == "input" else "core", g) for k, g in enumerate(GATES)),
    _spec(Slot.CELL_TO_INPUT_WEIGHTS, ("N",), "peephole", "input"),
    _spec(Slot.CELL_TO_FORGET_WEIGHTS, ("N",), "peephole", "forget"),
    _spec(Slot.CELL_TO_OUTPUT_WEIGHTS, ("N",), "peephole", "output"),
    *(_spec(Slot(12 + k), ("N",), "input_gate" if g == "input" else "core", g) for k, g in enumerate(GATES)),
    _spec(Slot.PROJECTION_WEIGHTS, ("P", "N"), "projection", None),
    _spec(Slot.PROJECTION_BIAS, ("P",), "projection_bias", None),
    *(_spec(Slot(20 + k), ("N",), "layer_norm", g) for k, g in enumerate(GATES)),
)
WEIGHT_SLOT_BY_KEY: dict[str, SlotSpec] = {s.slot.key: s for s in WEIGHT_SLOTS}
NUM_INPUTS = 24
