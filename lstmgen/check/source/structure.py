"""Structural check: the options and inputs parsed back from a model file against what was asked.

The slot table below is written from the op's definition (tflite-lstm-op.md §2), not taken from
tflite/slots.py, so a wrong entry there shows up here as a difference.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lstmgen.check.source.common import Cell, Stated
from lstmgen.tflite.schema import ActivationFunctionType as A

ACTIVATION_CODES = {"tanh": A.TANH, "relu": A.RELU, "relu6": A.RELU6, "relu_n1_to_1": A.RELU_N1_TO_1}
# Input index -> (name, shape in N/I/P, the source feature that makes it present; None = always).
# "input_gate" is present unless the cell is CIFG; "peephole_input" needs peepholes and an input gate.
SLOTS: dict[int, tuple[str, str, str | None]] = {
    1: ("input_to_input_weights", "NI", "input_gate"),
    2: ("input_to_forget_weights", "NI", None),
    3: ("input_to_cell_weights", "NI", None),
    4: ("input_to_output_weights", "NI", None),
    5: ("recurrent_to_input_weights", "NP", "input_gate"),
    6: ("recurrent_to_forget_weights", "NP", None),
    7: ("recurrent_to_cell_weights", "NP", None),
    8: ("recurrent_to_output_weights", "NP", None),
    9: ("cell_to_input_weights", "N", "peephole_input"),
    10: ("cell_to_forget_weights", "N", "peephole"),
    11: ("cell_to_output_weights", "N", "peephole"),
    12: ("input_gate_bias", "N", "input_gate"),
    13: ("forget_gate_bias", "N", None),
    14: ("cell_gate_bias", "N", None),
    15: ("output_gate_bias", "N", None),
    16: ("projection_weights", "PN", "projection"),
    17: ("projection_bias", "P", "projection_bias"),
    20: ("input_layer_norm_coefficients", "N", "layer_norm_input"),
    21: ("forget_layer_norm_coefficients", "N", "layer_norm"),
    22: ("cell_layer_norm_coefficients", "N", "layer_norm"),
    23: ("output_layer_norm_coefficients", "N", "layer_norm"),
}


def _present(cell: Cell) -> set[str]:
    f = set(cell.features)
    if "cifg" not in f:
        f.add("input_gate")
        if "peephole" in f:
            f.add("peephole_input")
        if "layer_norm" in f:
            f.add("layer_norm_input")
    return f


def differences(model: Any, op_indices: Sequence[int], cells: Sequence[Cell], stated: Stated) -> list[str]:
    """Every way the file's LSTM ops differ from the source cells (in op order) and the stated options."""
    found: list[str] = []
    if len(op_indices) != len(cells):
        return [f"the file has {len(op_indices)} LSTM op(s), the source {len(cells)} cell(s)"]
    for k, (index, cell) in enumerate(zip(op_indices, cells, strict=True)):
        op = model.operators[index]
        tag = f"LSTM op {k}" if len(cells) > 1 else "LSTM op"
        defaults = {"FusedActivationFunction": 0, "CellClip": 0.0, "ProjClip": 0.0, "TimeMajor": False}
        raw = {key: (op.options.get(key, d) if op.options is not None else d) for key, d in defaults.items()}
        want: dict[str, object] = {
            "activation": ACTIVATION_CODES.get(str(cell.overrides.get("activation", stated.activation))),
            "cell_clip": float(stated.cell_clip),
            "proj_clip": float(stated.proj_clip),
            "time_major": bool(stated.time_major),
        }
        got: dict[str, object] = {
            "activation": int(raw["FusedActivationFunction"]),
            "cell_clip": float(raw["CellClip"]),
            "proj_clip": float(raw["ProjClip"]),
            "time_major": bool(raw["TimeMajor"]),
        }
        for key, value in want.items():
            if key.endswith("clip") and abs(float(got[key]) - float(value)) <= 1e-6 * max(1.0, abs(float(value))):  # type: ignore[arg-type]
                continue  # stored as float32
            if got[key] != value:
                found.append(f"{tag}: {key} is {got[key]!r} in the file, {value!r} was asked")
        diagonal = "diagonal" in cell.features
        is_float = model.tensors[op.inputs[2]].dtype.kind == "f"
        if is_float and op.version != (4 if diagonal else 1):
            found.append(f"{tag}: op version {op.version}, expected {4 if diagonal else 1} for this float cell")
        sizes = {"N": cell.num_units, "I": cell.input_size, "P": cell.output_size}
        present = _present(cell)
        inputs = list(op.inputs) + [-1] * (24 - len(op.inputs))
        for slot, (name, dims, feature) in SLOTS.items():
            wanted = feature is None or feature in present
            has = inputs[slot] >= 0
            if wanted != has:
                found.append(f"{tag}: {name} (input {slot}) is {'present' if has else 'absent'}, expected the opposite")
                continue
            if not has:
                continue
            shape = tuple(model.tensors[inputs[slot]].shape)
            expect = tuple(sizes[d] for d in dims)
            if diagonal and name.startswith("recurrent_to_"):
                expect = (cell.num_units,)
            if shape != expect:
                found.append(f"{tag}: {name} has shape {list(shape)}, expected {list(expect)}")
        for slot, size, what in ((18, cell.output_size, "output_state"), (19, cell.num_units, "cell_state")):
            shape = tuple(model.tensors[inputs[slot]].shape) if inputs[slot] >= 0 else ()
            if not shape or shape[-1] != size:
                found.append(f"{tag}: {what} (input {slot}) has shape {list(shape)}, expected [batch, {size}]")
    return found


def size_mismatches(model: Any, op_indices: Sequence[int], cells: Sequence[Cell]) -> list[str]:
    """Why the source cannot run on this file's inputs at all: another number of LSTM ops, or other sizes.

    Read from the weights' shapes (input 2 is [N, I], input 18's last axis is P), not from any option.
    """
    if len(op_indices) != len(cells):
        return [
            f"the file has {len(op_indices)} LSTM op(s), the source {len(cells)} cell(s) "
            "(choose the source's cells with --num-layers, --bidirectional or --layer)"
        ]
    found = []
    for k, (index, cell) in enumerate(zip(op_indices, cells, strict=True)):
        op = model.operators[index]
        n, i = (*tuple(model.tensors[op.inputs[2]].shape), 0, 0)[:2]
        p = (tuple(model.tensors[op.inputs[18]].shape) or (0,))[-1] if op.inputs[18] >= 0 else 0
        got, want = (n, i, p), (cell.num_units, cell.input_size, cell.output_size)
        if got != want:
            tag = f"LSTM op {k}" if len(cells) > 1 else "LSTM op"
            found.append(
                f"{tag} has num_units={n}, input_size={i}, output_size={p}; the source cell has "
                f"num_units={want[0]}, input_size={want[1]}, output_size={want[2]}"
            )
    return found
