"""An integer LSTM's state ranges judged against what the source's states reach on the test inputs.

The integer kernels hold the cell state c on an int16 grid and the hidden state h (the output) on the output's
int8/int16 grid; each saturates at its grid's ends. Where the source's c or h goes beyond them, the file cannot
compute the source there: its outputs part from the source's, and a failure against the source is then the
file's quantization range, not its wiring. Where the outputs stay within the bound anyway, or the test input
never goes there (inputs drawn like it, over the file's own input range, can), the saturation is named all the
same. The source is traced (its states after every step), never the file's reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from lstmgen.check.source import SourceModel
from lstmgen.check.source.common import Cell
from lstmgen.tflite.records import ModelRecord, TensorRecord
from lstmgen.tflite.slots import Slot

PLAUSIBLE_DRAWS = 32  # inputs drawn like calibration data (over the file's input range) the source is traced on
# The share of those whose cell state leaves the file's range beyond which the range is too narrow. A range set
# on calibration data of k inputs is left by about 1 in k + 1 fresh ones (measured: 5-14 % on right lstmgen and
# TF-converter files; 55-98 % with the scale halved).
TOO_MANY = 0.25
# cell position -> per step it ran (runs concatenated): [min c, max c, min h, max h] per batch row after the step
Traces = dict[int, list[np.ndarray]]
STATES = (("cell state", "c", Slot.CELL_STATE, 0), ("output (hidden state)", "h", Slot.OUTPUT_STATE, 2))
ADVICE = (
    "the file's quantization range, not its wiring, is what differs: rebuild it with lstmgen from the source with "
    "calibration data that covers such inputs (lstmgen build --weights ... --quantize int8 --calibration-data ...), "
    "or accept the error with --max-error"
)


@dataclass(frozen=True)
class Limit:
    """The real values an op's integer state tensor holds, [lo, hi], and the grid they come from."""

    name: str  # "cell state" or "output (hidden state)"
    symbol: str
    column: int  # where the state's (min, max) sit in a trace row
    lo: float
    hi: float
    scale: float
    zero_point: int
    dtype: str

    def grid(self) -> str:
        k = -np.log2(self.scale)
        scale = f"2^-{round(k)}" if abs(k - round(k)) < 1e-9 else f"{self.scale:.3g}"
        return f"{self.dtype} grid (scale {scale}{f', zero point {self.zero_point}' if self.zero_point else ''})"

    def beyond(self, trace: np.ndarray) -> np.ndarray:
        """How far outside [lo, hi] the state goes ([steps, rows]; 0: inside), in real units."""
        slack = 0.5 * self.scale  # within half a step of an end the kernel rounds to it anyway
        low, high = trace[:, self.column], trace[:, self.column + 1]
        return np.maximum(np.maximum(self.lo - slack - low, high - self.hi - slack), 0.0)


def _limit(t: TensorRecord, name: str, symbol: str, column: int) -> Limit | None:
    q = t.quantization
    if t.dtype.kind != "i" or q is None or len(q.scale) != 1:
        return None
    info, s, z = np.iinfo(t.dtype), float(q.scale[0]), int(q.zero_point[0])
    return Limit(name, symbol, column, s * (info.min - z), s * (info.max - z), s, z, t.dtype.name)


def state_limits(model: ModelRecord, op_indices: Sequence[int]) -> list[list[Limit]]:
    """Per LSTM op: the limits of its integer states (empty: float states, which do not saturate)."""
    found = []
    for index in op_indices:
        op = model.operators[index]
        limits = (_limit(model.tensors[op.inputs[slot]], name, sym, col) for name, sym, slot, col in STATES)
        found.append([limit for limit in limits if limit is not None])
    return found


def traced_cell(cell: Cell, pos: int, traces: Traces) -> Cell:
    """The cell, recording its states' extremes after each of its steps under traces[pos]."""
    step = cell.step
    trace = traces.setdefault(pos, [])

    def recorded(x_t: np.ndarray, h: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        h, c = step(x_t, h, c)
        trace.append(np.stack([np.min(c, axis=-1), np.max(c, axis=-1), np.min(h, axis=-1), np.max(h, axis=-1)]))
        return h, c

    return replace(cell, step=recorded)


def traced_model(source: SourceModel, traces: Traces) -> tuple[SourceModel, frozenset[int]]:
    """The source with every cell traced, keyed by its op position; and the positions that run backward."""
    pairs = [(cells, where) for cells, where in zip(source.layers, source.positions, strict=True)]
    layers = [[traced_cell(c, p, traces) for c, p in zip(cells, where, strict=True)] for cells, where in pairs]
    backward = {
        p
        for cells, where in pairs
        for c, p in zip(cells, where, strict=True)
        if (c.backward if len(cells) == 2 else bool(source.setting("go_backwards")))
    }
    return replace(source, layers=layers), frozenset(backward)


@dataclass(frozen=True)
class Saturation:
    """Where the source's state first goes beyond an op's limit, and how far it reaches."""

    op: int
    limit: Limit
    reach: float  # the source's extreme on the side it leaves the grid
    step: int  # 1-based time step within its run

    def describe(self, tag: str, on: str) -> str:
        """'<tag> <state> saturates: ...' (tag: "the LSTM's", "LSTM op 2's"); `on`: the inputs traced."""
        lim = self.limit
        return (
            f"{tag} {lim.name} saturates: the file's {lim.grid()} holds {lim.symbol} in [{lim.lo:.3g}, {lim.hi:.3g}], "
            f"the source's reaches {self.reach:.3g} on {on}, first at time step {self.step}"
        )


def saturations(
    limits: Sequence[Sequence[Limit]],
    traces: Traces,
    steps: Sequence[int],
    backward: frozenset[int] = frozenset(),
    rows: np.ndarray | None = None,
) -> list[Saturation]:
    """Each op state the source goes beyond; `steps` are the runs' lengths (each cell ran each), `backward`
    the ops whose cell ran over reversed time (their steps are counted back), `rows` the batch rows judged."""
    found = []
    ends = np.cumsum(steps)
    for op, op_limits in enumerate(limits):
        if not traces.get(op):
            continue
        trace = np.stack(traces[op])  # [steps, 4, rows]
        trace = trace if rows is None else trace[:, :, rows]
        for lim in op_limits:
            over = lim.beyond(trace).max(axis=1, initial=0.0)
            if not over.any():
                continue
            first = int(np.argmax(over > 0))
            run = int(np.searchsorted(ends, first, side="right"))
            step = first - (int(ends[run - 1]) if run else 0) + 1
            low, high = float(trace[:, lim.column].min()), float(trace[:, lim.column + 1].max())
            reach = low if lim.lo - low > high - lim.hi else high
            found.append(Saturation(op, lim, reach, steps[run] - step + 1 if op in backward else step))
    return found


def beyond_share(limits: Sequence[Sequence[Limit]], traces: Traces) -> list[tuple[int, Limit, float]]:
    """Per op state: the share of the batch rows (inputs) on which the source's state leaves the file's grid."""
    found = []
    for op, op_limits in enumerate(limits):
        for lim in op_limits:
            if traces.get(op):
                found.append((op, lim, float(np.mean(lim.beyond(np.stack(traces[op])).max(axis=0) > 0))))
    return found
