"""Options decided on the source reference: a clip the file has and the source does not (or another value).

The source reference runs each test input twice, once as stated and once with the file's value. Outputs
apart by more than the float bound -> FAIL, naming the option and the first time step and element where
it binds; else a note with the margin ("cell_clip 10 in the file never binds on these inputs: max |c| 3.2").
Without --input the test inputs include a stress sequence: the random one scaled up until the gates
saturate, so a clip that can bind within the test horizon is reached.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np

from lstmgen.check.report import SourceReport
from lstmgen.check.source import SourceModel
from lstmgen.check.source.common import Cell
from lstmgen.check.source.structure import ACTIVATION_CODES
from lstmgen.numerics.float_bound import FLOAT_RUNS, Finals, float_bound
from lstmgen.numerics.reference import Jitter
from lstmgen.numerics.tables import FLOAT_ATOL, FLOAT_RTOL

# The source's stated field -> (the op's option, the quantity it clips: the recorder's name for it).
OPTIONS: dict[str, tuple[str, str]] = {"cell_clip": ("CellClip", "c"), "proj_clip": ("ProjClip", "h")}
SATURATED = 6.0  # |pre-activation| where sigmoid is within 0.25 % of 0 or 1
STRESS_LIMITS = (2.0, 1e3)  # the stress sequence's scale factor stays within these


@dataclass
class TestInput:
    """One test input: `run(model, jitter)` gives its output and final states through a source variant."""

    label: str
    run: Callable[[SourceModel, Jitter | None], tuple[np.ndarray, Finals]]
    time_axis: int
    zero_start: bool = True  # False: a given initial state, which the recorder sees before the first step


def stress_scale(x: np.ndarray, cell: Cell) -> float:
    """The factor that drives the cell's forget gate into saturation on x (median |W_f x| = 6)."""
    tensors = cell.tensors() if cell.tensors is not None else {}
    w = tensors.get("input_to_forget_weights")
    if w is None or np.shape(w)[-1] != x.shape[-1]:
        return 10.0
    pre = np.abs(np.asarray(x, np.float64).reshape(-1, x.shape[-1]) @ np.asarray(w, np.float64).T)
    typical = float(np.median(pre)) if pre.size else 0.0
    return float(np.clip(SATURATED / typical, *STRESS_LIMITS)) if typical > 0 else STRESS_LIMITS[1]


def _recorder(peaks: dict[str, float], trail: list[float] | None = None, quantity: str = "c") -> Jitter:
    """A jitter that changes nothing: it records the largest |c| and |h| each cell step starts from (and,
    with `trail`, the largest |quantity| per step, in the order the cell steps run)."""

    def record(x_t: np.ndarray, h: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        peaks["c"] = max(peaks["c"], float(np.abs(c).max(initial=0.0)))
        peaks["h"] = max(peaks["h"], float(np.abs(h).max(initial=0.0)))
        if trail is not None:
            trail.append(float(np.abs(c if quantity == "c" else h).max(initial=0.0)))
        return x_t, h, c

    return record


def _run_recorded(
    inp: TestInput, model: SourceModel, peaks: dict[str, float], trail: list[float], quantity: str
) -> tuple[np.ndarray, Finals]:
    """One run through `model`, its peaks (final states and outputs included) and per-step trail recorded."""
    y, finals = inp.run(model, _recorder(peaks, trail, quantity))
    for _, c in finals:
        peaks["c"] = max(peaks["c"], float(np.abs(c).max(initial=0.0)))
        if quantity == "c":
            trail.append(float(np.abs(c).max(initial=0.0)))
    peaks["h"] = max(peaks["h"], float(np.abs(y).max(initial=0.0)))
    if quantity == "h":
        trail.append(float(np.abs(y).max(initial=0.0)))
    return y, finals


def _file_values(model: object, op_indices: Sequence[int], option: str) -> set[float]:
    ops = [model.operators[i] for i in op_indices]  # type: ignore[attr-defined]
    return {float(op.options.get(option, 0.0)) if op.options is not None else 0.0 for op in ops}


@dataclass
class _Variant:
    """The option's two values: the source's stated one and the file's (0 = none), and what it clips."""

    quantity: str  # "c" (cell_clip) or "h" (proj_clip: the output)
    stated: float
    value: float

    @property
    def tight(self) -> float:
        """The tighter clip (0 = neither clips)."""
        return min((v for v in (self.stated, self.value) if v), default=0.0)

    @property
    def file_looser(self) -> bool:
        return not self.value or (bool(self.stated) and self.value > self.stated)


def _binds(
    inp: TestInput, base: SourceModel, other: SourceModel, seed: int, peaks: dict[str, float], v: _Variant
) -> str | None:
    """Where the option binds on `inp` (None: nowhere): the two variants' outputs apart beyond the float
    bound, or, where float32 is chaotic and the outputs cannot show it, the looser variant's clipped
    quantity going beyond the tighter clip (the state differs there whatever the outputs say)."""
    trail_a: list[float] = []
    trail_b: list[float] = []
    y_a, finals_a = _run_recorded(inp, base, peaks, trail_a, v.quantity)
    y_b, _ = _run_recorded(inp, other, {"c": 0.0, "h": 0.0}, trail_b, v.quantity)
    bound = float_bound(partial(inp.run, base), y_a, finals_a, inp.time_axis, seed, FLOAT_RUNS)
    diff = np.abs(np.asarray(y_b, np.float64).reshape(y_a.shape) - y_a)
    over = diff > np.maximum(FLOAT_ATOL + FLOAT_RTOL * np.abs(y_a), bound.output)
    if over.any():
        idx = np.argwhere(over)
        first = idx[np.argmin(idx[:, inp.time_axis])] if y_a.ndim == 3 else idx[0]
        step = f"time step {int(first[inp.time_axis]) + 1}, " if y_a.ndim == 3 else ""
        return (
            f"on {inp.label}, first at {step}element {[int(i) for i in first]} (output apart by up to {diff.max():.3g})"
        )
    trail = trail_b if v.file_looser else trail_a
    beyond = [k for k, peak in enumerate(trail) if v.tight and peak > v.tight * (1 + 1e-6)]
    if not beyond or not inp.zero_start:
        return None
    steps = y_a.shape[inp.time_axis] if y_a.ndim == 3 else len(trail)
    who = "the file's" if v.file_looser else "the source's"
    return (
        f"on {inp.label}: {who} |{v.quantity}| reaches {max(trail):.3g}, beyond {v.tight:g}, first at time step "
        f"{beyond[0] % max(steps, 1) + 1} (the state differs from there on, even where the outputs stay within "
        "the float bound)"
    )


def _unreached(key: str, quantity: str, value: float, source: SourceModel, inputs: Sequence[TestInput]) -> list[str]:
    """A clip both sides have that the test inputs never reach: the outputs cannot show that it works."""
    if not value:
        return []
    peaks = {"c": 0.0, "h": 0.0}
    for inp in inputs:
        y, finals = inp.run(source, _recorder(peaks))
        peaks["c"] = max([peaks["c"]] + [float(np.abs(c).max(initial=0.0)) for _, c in finals])
        peaks["h"] = max(peaks["h"], float(np.abs(y).max(initial=0.0)))
    if peaks[quantity] >= value * (1 - 1e-6):
        return []
    return [
        f"{key} {value:g} (the file's and the source's) is never reached on these inputs: max |{quantity}| "
        f"{peaks[quantity]:.3g}, so the outputs do not exercise it (the option itself was compared)"
    ]


def input_notes(x: np.ndarray) -> list[str]:
    """Parts of the cell the test input leaves unexercised: an all-zero input, or features zero throughout."""
    flat = np.asarray(x).reshape(-1, np.shape(x)[-1])
    if not np.any(flat):
        return [
            "the test input is all zeros: the input weights (input_to_*) do not reach the outputs, so only the "
            "tensor check covers them; use random or representative inputs to test the cell"
        ]
    zero = np.flatnonzero(~np.any(flat, axis=0))
    if zero.size:
        return [
            f"input features {zero.tolist()[:10]}{' ...' if zero.size > 10 else ''} are zero throughout the test "
            "input: their input weights are covered by the tensor check only"
        ]
    return []


def decide_options(
    model: object,
    op_indices: Sequence[int],
    src: SourceReport,
    source: SourceModel,
    inputs: Sequence[TestInput],
    seed: int,
) -> None:
    """Clips that differ from the source's, decided on the source reference; this replaces the structural
    note about them. Our own builds (where any difference is already a structure error) are decided."""
    if src.incompatible:
        return
    src.options += integer_failures(model, op_indices, str(source.stated.activation))
    if src.structure_is_error:
        return
    failures, notes = check_options(model, op_indices, source, inputs, seed)
    src.options += failures
    src.notes += notes
    src.structure = [d for d in src.structure if not any(f": {key} is " in d for key in OPTIONS)]


def check_options(
    model: object, op_indices: Sequence[int], source: SourceModel, inputs: Sequence[TestInput], seed: int
) -> tuple[list[str], list[str]]:
    """(failures, notes) for every clip whose file value differs from the source's stated one."""
    failures: list[str] = []
    notes: list[str] = []
    for key, (option, quantity) in OPTIONS.items():
        values = _file_values(model, op_indices, option)
        stated = float(getattr(source.stated, key))
        if len(values) > 1:
            failures.append(
                f"{key}: the file's LSTM ops differ among themselves ({sorted(values)}); the source: {stated:g}"
            )
            continue
        (value,) = values
        if abs(value - stated) <= 1e-6 * max(1.0, abs(stated)):  # stored as float32
            notes += _unreached(key, quantity, value, source, inputs)
            continue
        other = source.restated(**{key: value})
        peaks = {"c": 0.0, "h": 0.0}
        v = _Variant(quantity, stated, value)
        where = next((w for inp in inputs if (w := _binds(inp, source, other, seed, peaks, v)) is not None), None)
        src_text = f"{stated:g}" if stated else "none"
        if where is not None:
            failures.append(f"{key} {value:g} in the file (the source's: {src_text}) changes the numbers {where}")
        elif not stated:
            notes.append(
                f"{key} {value:g} in the file never binds on these inputs: max |{quantity}| {peaks[quantity]:.3g}"
            )
        elif not value:
            notes.append(
                f"the source's {key} {stated:g} (the file has none) never binds on these inputs: "
                f"max |{quantity}| {peaks[quantity]:.3g}"
            )
        else:
            notes.append(
                f"{key}: {value:g} in the file, {src_text} in the source: the same numbers on these inputs "
                f"(max |{quantity}| {peaks[quantity]:.3g})"
            )
    return failures, notes


def integer_failures(model: object, op_indices: Sequence[int], activation: str) -> list[str]:
    """What an integer LSTM op's fields say that its kernels do not compute from: the output's grid, and
    the cell activation (outputs alone miss both: every output one step off, or a TFLM-only change)."""
    found: list[str] = []
    for k, index in enumerate(op_indices):
        op = model.operators[index]  # type: ignore[attr-defined]
        tensors = model.tensors  # type: ignore[attr-defined]
        if tensors[op.inputs[2]].dtype.kind == "f" or tensors[op.inputs[0]].dtype.kind == "f":
            continue  # float and hybrid kernels read the output's own grid / apply the activation field
        tag = f"LSTM op {k}" if len(op_indices) > 1 else "LSTM op"
        out, state = _grid(tensors[op.outputs[0]]), _grid(tensors[op.inputs[18]])
        if out != state:
            found.append(
                f"{tag}: the output's grid (scale, zero point) {out} is not the output state's {state}; "
                "the integer kernels copy the hidden state's codes into the output, so every output is read on "
                "the wrong grid. Give the output the output state's scale and zero point."
            )
        code = int(op.options.get("FusedActivationFunction", 0)) if op.options is not None else 0
        want = ACTIVATION_CODES.get(activation)
        if code != want:
            found.append(
                f"{tag}: cell activation code {code} in the file, the source's {activation} is {want}; LiteRT's "
                "integer kernel applies tanh whatever the field says and TFLM's applies the field (tanh or "
                "sigmoid), so the file does not compute one LSTM. Integer LSTMs are tanh cells."
            )
    return found


def _grid(t: object) -> tuple[float, int] | None:
    q = t.quantization  # type: ignore[attr-defined]
    return (float(q.scale[0]), int(q.zero_point[0])) if q is not None and len(q.scale) else None
