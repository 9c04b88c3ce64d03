"""Float64 NumPy reference of the TFLite LSTM kernel's math; imports nothing else from lstmgen.

It follows tflite-lstm-op.md §3 step by step, from the op's own parameter names, so that it
shares no code with the layout code it checks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

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
) -> tuple[Array, Array, Array]:
    """Run the sequence; returns (output, final h, final c) in float64.

    params uses the op's input names (input_to_forget_weights [N, I], ...); absent optional
    inputs are simply missing keys: no input_to_input_weights means CIFG, cell_to_*_weights
    means peepholes, projection_weights means projection, *_layer_norm_coefficients means LN.

    h_bounds/c_bounds (lowest, highest) model an integer kernel's state saturation (h stored in int8,
    c in int16): the state is clamped to what its type can hold each step, as the kernel's saturating
    stores do; gate_bounds (gate -> (lowest, highest)) likewise clamps each gate's pre-activation, which
    the integer kernel holds in int16 ([-8, 8 - 2^-12] in Q3.12 without layer norm, the intermediate's
    range with it: the codes -32768..32767). It accumulates
    the terms one at a time, saturating after each: input FC (which carries the bias when there is no
    layer norm), recurrent FC, peephole; the order matters once one term alone passes the bound.

    If `record` is a dict, it receives every step's internals stacked over time ([T, B, ·]):
    '<gate>_gate_pre' (matmul sums + peephole, before layer norm and bias), 'cell_state' (after
    the clip), 'hidden' (o * g(c), before projection) and 'output' (h) — what int8 calibration needs.
    on_step, if given, is called after every time step (progress of long sequences).
    jitter, if given, perturbs (x_t, h, c) before every step (float sensitivity, see numerics/float_bound.py).
    """
    p = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    g = CELL_ACTIVATIONS[activation]
    seq = np.asarray(x, dtype=np.float64)
    if not time_major:
        seq = seq.transpose(1, 0, 2)  # -> [T, B, I]
    steps, batch, _ = seq.shape
    n = p["input_to_forget_weights"].shape[0]
    r_out = p["recurrent_to_output_weights"]
    out_size = r_out.shape[1] if r_out.ndim == 2 else r_out.shape[0]
    h = np.zeros((batch, out_size)) if h0 is None else np.asarray(h0, np.float64).reshape(batch, out_size)
    c = np.zeros((batch, n)) if c0 is None else np.asarray(c0, np.float64).reshape(batch, n)
    cifg = "input_to_input_weights" not in p
    layer_norm = "forget_layer_norm_coefficients" in p

    def recurrent(gate: str, h_prev: Array) -> Array:
        r = p[f"recurrent_to_{gate}_weights"]
        return h_prev * r if r.ndim == 1 else h_prev @ r.T  # rank 1: diagonal recurrence

    steps_seen: dict[str, list[Array]] = {}

    def keep(name: str, value: Array) -> None:
        if record is not None:
            steps_seen.setdefault(name, []).append(value)

    def gate_value(gate: str, x_t: Array, h_prev: Array, c_peep: Array | None, act: Callable[[Array], Array]) -> Array:
        bias = p[f"{gate}_gate_bias"]
        terms = [x_t @ p[f"input_to_{gate}_weights"].T, recurrent(gate, h_prev)]
        if c_peep is not None and f"cell_to_{gate}_weights" in p:
            terms.append(c_peep * p[f"cell_to_{gate}_weights"])
        keep(f"{gate}_gate_pre", sum(terms[1:], terms[0]))
        if gate_bounds is not None:
            # The integer kernel accumulates the terms one by one into the int16 gate, saturating after
            # each: input FC (+ bias, without layer norm), then recurrent FC, then peephole.
            if not layer_norm:
                terms[0] = terms[0] + bias
            pre = saturating_sum(terms, gate_bounds[gate])
            if not layer_norm:
                return act(pre)
        else:
            pre = sum(terms[1:], terms[0])
        if layer_norm:
            pre = _layer_norm(pre) * p[f"{gate}_layer_norm_coefficients"]
        return act(pre + bias)  # the bias comes after layer norm

    outputs = []
    for t in range(steps):
        x_t = seq[t]
        if jitter is not None:
            x_t, h, c = jitter(x_t, h, c)
        f = gate_value("forget", x_t, h, c, sigmoid)
        i = 1.0 - f if cifg else gate_value("input", x_t, h, c, sigmoid)
        z = gate_value("cell", x_t, h, None, g)  # the cell gate has no peephole
        c = f * c + i * z
        if cell_clip > 0:
            c = np.clip(c, -cell_clip, cell_clip)
        if c_bounds is not None:  # the int16 sum f*c + i*z saturates (before the clip, which commutes with it)
            c = np.clip(c, *c_bounds)
        o = gate_value("output", x_t, h, c, sigmoid)  # output peephole sees the new, clipped c
        m = o * g(c)
        keep("cell_state", c)
        keep("hidden", m)
        if "projection_weights" in p:
            h = m @ p["projection_weights"].T
            if "projection_bias" in p:
                h = h + p["projection_bias"]
            if proj_clip > 0:
                h = np.clip(h, -proj_clip, proj_clip)
        else:
            h = m
        if h_bounds is not None:
            h = np.clip(h, *h_bounds)
        outputs.append(h)
        if on_step is not None:
            on_step()
    y = np.stack(outputs)  # [T, B, P]
    if record is not None:
        record.update({k: np.stack(v) for k, v in steps_seen.items()})
        record["output"] = y
    if not time_major:
        y = y.transpose(1, 0, 2)
    return y, h, c
