"""Float64 NumPy reference of the TFLite LSTM kernel's math; imports nothing else from lstmgen.

It follows tflite-lstm-op.md §3 step by step, from the op's own parameter names, so that it
shares no code with the layout code it checks. `step` holds the equations of one time step and nothing
else; `lstm_reference` runs it over a sequence, with recording, jitter and progress around it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numpy.typing import DTypeLike

Array = np.ndarray
# (x_t, h, c) -> perturbed (x_t, h, c), applied before every step: float32 rounding injected into the float64 run
Jitter = Callable[[Array, Array, Array], tuple[Array, Array, Array]]


def sigmoid(x: Array) -> Array:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free logistic


def relu(x: Array) -> Array:
    return np.maximum(x, 0.0)


def relu6(x: Array) -> Array:
    return np.clip(x, 0.0, 6.0)


def relu_n1_to_1(x: Array) -> Array:
    return np.clip(x, -1.0, 1.0)


CELL_ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "tanh": np.tanh,
    "relu": relu,
    "relu6": relu6,
    "relu_n1_to_1": relu_n1_to_1,
}
TERMS_BYTES = 4 * 2**20  # input terms computed ahead of the steps, a block of steps at a time (_terms_ahead)
LAYER_NORM_EPSILON = 1e-8  # added to the variance, as the kernel does


def _layer_norm(v: Array) -> Array:
    mean = v.mean(axis=-1, keepdims=True)
    var = ((v - mean) ** 2).mean(axis=-1, keepdims=True)  # population variance over the cells
    return (v - mean) / np.sqrt(var + LAYER_NORM_EPSILON)


def saturating_sum(terms: list[Array], bounds: tuple[float, float]) -> Array:
    """Add the terms one by one, clamping to [lowest, highest] after each (an int16 accumulator's
    saturating stores: -32768 and 32767 codes, so the lower bound is one step further from 0)."""
    total = np.zeros_like(terms[0])
    for term in terms:
        total = np.clip(total + term, *bounds)
    return total


@dataclass(frozen=True)
class Cell:
    """The op's parameters (float64, keyed by its input names) and options: what `step` needs besides the state.

    Absent optional inputs are missing keys: no input_to_input_weights means CIFG, cell_to_*_weights
    peepholes, projection_weights projection, *_layer_norm_coefficients layer norm.
    """

    p: Mapping[str, Array]
    g: Callable[[Array], Array]  # the cell activation
    cell_clip: float = 0.0
    proj_clip: float = 0.0

    @classmethod
    def of(
        cls,
        params: Mapping[str, Array],
        activation: str,
        cell_clip: float,
        proj_clip: float,
        precision: DTypeLike = np.float64,
    ) -> Cell:
        p = {k: np.asarray(v, dtype=precision) for k, v in params.items()}
        return cls(p, CELL_ACTIVATIONS[activation], cell_clip, proj_clip)


@dataclass(frozen=True)
class Saturation:
    """An integer kernel's saturating stores, (lowest, highest) each; None: float arithmetic.

    `gates` (gate -> bounds) clamps each gate's pre-activation, which the integer kernel holds in int16
    ([-8, 8 - 2^-12] in Q3.12 without layer norm, the intermediate's range with it: the codes
    -32768..32767). It accumulates the terms one at a time, saturating after each: input FC (which
    carries the bias when there is no layer norm), recurrent FC, peephole; the order matters once one
    term alone passes the bound. `c` and `h` clamp the state to what its type holds (c in int16, h in int8).
    """

    gates: Mapping[str, tuple[float, float]] | None = None
    c: tuple[float, float] | None = None
    h: tuple[float, float] | None = None


FLOAT = Saturation()


class Step(NamedTuple):
    """One step's new state and the internals int8 calibration records."""

    h: Array  # the output: projected (and clipped) when the cell projects, else `hidden`
    c: Array  # the cell state, after the clip
    hidden: Array  # o * g(c), before the projection
    gate_pre: dict[str, Array]  # per gate: matmul sums + peephole, before layer norm and bias


def _activation_input(cell: Cell, gate: str, terms: list[Array], pre: Array, sat: Saturation) -> Array:
    """What a gate's activation is applied to: the sum of `terms` (= `pre`), layer-normed, plus the bias."""
    p, bias = cell.p, cell.p[f"{gate}_gate_bias"]
    layer_norm = "forget_layer_norm_coefficients" in p
    if sat.gates is not None:
        # The integer kernel accumulates the terms one by one into the int16 gate, saturating after
        # each: input FC (+ bias, without layer norm), then recurrent FC, then peephole.
        if not layer_norm:
            return saturating_sum([terms[0] + bias, *terms[1:]], sat.gates[gate])
        pre = saturating_sum(terms, sat.gates[gate])
    if layer_norm:
        pre = _layer_norm(pre) * p[f"{gate}_layer_norm_coefficients"]
    return pre + bias  # the bias comes after layer norm


def step(
    cell: Cell, x_t: Array, h: Array, c: Array, sat: Saturation = FLOAT, x_terms: Mapping[str, Array] | None = None
) -> Step:
    """One time step of the fused op (tflite-lstm-op.md §3): x_t [B, I], h [B, P], c [B, N] -> the new state.
    x_terms: each gate's x_t @ input_to_<gate>_weights.T, when the caller computed every step's at once."""
    p = cell.p
    gate_pre: dict[str, Array] = {}

    def gate(name: str, c_peep: Array | None, act: Callable[[Array], Array]) -> Array:
        r = p[f"recurrent_to_{name}_weights"]
        x_term = x_t @ p[f"input_to_{name}_weights"].T if x_terms is None else x_terms[name]
        terms = [x_term, h * r if r.ndim == 1 else h @ r.T]  # rank 1: diagonal
        if c_peep is not None and f"cell_to_{name}_weights" in p:
            terms.append(c_peep * p[f"cell_to_{name}_weights"])
        gate_pre[name] = sum(terms[1:], terms[0])
        return act(_activation_input(cell, name, terms, gate_pre[name], sat))

    f = gate("forget", c, sigmoid)
    i = 1.0 - f if "input_to_input_weights" not in p else gate("input", c, sigmoid)  # CIFG: i = 1 - f
    z = gate("cell", None, cell.g)  # the cell gate has no peephole
    c = f * c + i * z
    if cell.cell_clip > 0:
        c = np.clip(c, -cell.cell_clip, cell.cell_clip)
    if sat.c is not None:  # the int16 sum f*c + i*z saturates (before the clip, which commutes with it)
        c = np.clip(c, *sat.c)
    o = gate("output", c, sigmoid)  # the output peephole sees the new, clipped c
    m = o * cell.g(c)
    h = m
    if "projection_weights" in p:
        h = m @ p["projection_weights"].T
        if "projection_bias" in p:
            h = h + p["projection_bias"]
        if cell.proj_clip > 0:
            h = np.clip(h, -cell.proj_clip, cell.proj_clip)
    if sat.h is not None:
        h = np.clip(h, *sat.h)
    return Step(h, c, m, gate_pre)


def lstm_reference(
    x: Array,
    params: Mapping[str, Array],
    *,
    activation: str = "tanh",
    cell_clip: float = 0.0,
    proj_clip: float = 0.0,
    time_major: bool = False,
    h0: Array | None = None,
    c0: Array | None = None,
    record: dict[str, Array] | None = None,
    h_bounds: tuple[float, float] | None = None,
    c_bounds: tuple[float, float] | None = None,
    gate_bounds: Mapping[str, tuple[float, float]] | None = None,
    on_step: Callable[[], None] | None = None,
    jitter: Jitter | None = None,
    input_terms: Mapping[str, Array] | None = None,
    precision: DTypeLike = np.float64,
) -> tuple[Array, Array, Array]:
    """Run `step` over the sequence; returns (output, final h, final c) in float64 (or `precision`).

    params uses the op's input names (input_to_forget_weights [N, I], ...; see Cell). h_bounds, c_bounds
    and gate_bounds model an integer kernel's saturation (see Saturation).

    If `record` is a dict, it receives every step's internals stacked over time ([T, B, ·]):
    '<gate>_gate_pre' (matmul sums + peephole, before layer norm and bias), 'cell_state' (after
    the clip), 'hidden' (o * g(c), before projection) and 'output' (h) — what int8 calibration needs.
    on_step, if given, is called after every time step (progress of long sequences).
    jitter, if given, perturbs (x_t, h, c) before every step (float sensitivity, see numerics/float_bound.py).
    input_terms, if given, are each gate's x @ input_to_<gate>_weights.T for every step ([T, B, N], time-major),
    computed by the caller in one matmul (the steps then skip theirs; not with jitter, which moves x_t).
    precision: np.float32 runs every array in float32 (calibration's screening pass, quant/calibrate.py).
    """
    cell = Cell.of(params, activation, cell_clip, proj_clip, precision)
    sat = Saturation(gate_bounds, c_bounds, h_bounds)
    seq = np.asarray(x, dtype=precision)
    if not time_major:
        seq = seq.transpose(1, 0, 2)  # -> [T, B, I]
    batch = seq.shape[1]
    n = cell.p["input_to_forget_weights"].shape[0]
    r_out = cell.p["recurrent_to_output_weights"]
    out_size = r_out.shape[1] if r_out.ndim == 2 else r_out.shape[0]
    h = np.zeros((batch, out_size), precision) if h0 is None else np.asarray(h0, precision).reshape(batch, out_size)
    c = np.zeros((batch, n), precision) if c0 is None else np.asarray(c0, precision).reshape(batch, n)
    outputs, seen = [], []
    ahead = _terms_ahead(cell, seq) if input_terms is None and jitter is None else None
    for t, x_t in enumerate(seq):
        if jitter is not None:
            x_t, h, c = jitter(x_t, h, c)
        x_terms = {g: v[t] for g, v in input_terms.items()} if input_terms is not None else None
        out = step(cell, x_t, h, c, sat, next(ahead) if ahead is not None else x_terms)
        h, c = out.h, out.c
        outputs.append(h)
        if record is not None:
            seen.append(out)
        if on_step is not None:
            on_step()
    y = np.stack(outputs)  # [T, B, P]
    if record is not None:
        record.update(_stacked(seen))
        record["output"] = y
    return (y if time_major else y.transpose(1, 0, 2)), h, c


def _terms_ahead(cell: Cell, seq: Array) -> Iterator[dict[str, Array]]:
    """Each step's input terms x_t @ input_to_<gate>_weights.T, computed for a block of steps at once (one
    matmul per gate and block instead of one per step: x does not depend on the state), TERMS_BYTES a block."""
    gates = [k[len("input_to_") : -len("_weights")] for k in cell.p if k.startswith("input_to_")]
    per_step = 8 * seq.shape[1] * sum(cell.p[f"input_to_{g}_weights"].shape[0] for g in gates)
    block = max(1, TERMS_BYTES // max(per_step, 1))
    for start in range(0, seq.shape[0], block):
        part = seq[start : start + block]
        flat = part.reshape(-1, part.shape[2])
        terms = {g: (flat @ cell.p[f"input_to_{g}_weights"].T).reshape(*part.shape[:2], -1) for g in gates}
        for k in range(part.shape[0]):
            yield {g: v[k] for g, v in terms.items()}


def _stacked(steps: list[Step]) -> dict[str, Array]:
    """The recorded internals over time: '<gate>_gate_pre', 'cell_state', 'hidden', each [T, B, ·]."""
    out = {f"{g}_gate_pre": np.stack([s.gate_pre[g] for s in steps]) for g in steps[0].gate_pre} if steps else {}
    if steps:
        out |= {"cell_state": np.stack([s.c for s in steps]), "hidden": np.stack([s.hidden for s in steps])}
    return out
