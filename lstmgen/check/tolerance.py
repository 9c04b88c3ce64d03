"""Per-mode tolerances for quantized models (derived by propagating the kernel's rounding) and error reports."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from lstmgen.errors import ModelFileError
from lstmgen.numerics import affine
from lstmgen.numerics.graph import constant_values, evaluate, lstm_spec, store_data_op, while_loop
from lstmgen.numerics.reference import lstm_reference
from lstmgen.numerics.tables import FLOAT_ATOL, FLOAT_RTOL, INTEGER_MODES, Q0_15, Q3_12
from lstmgen.progress import step_hook
from lstmgen.tflite.records import ModelRecord, Quantization, TensorRecord
from lstmgen.tflite.schema import BuiltinOperator as Op
from lstmgen.tflite.slots import Slot

RUNS = 8  # Monte-Carlo trajectories per derivation
SAFETY = 2.0  # multiplies the largest simulated deviation (the kernel's error is one more draw of it)
ROW_BUDGET = 64 * 2**20  # bytes of float64 rows the noisy runs side by side may hold (_run_groups)
MIN_INT8_LSB = 1  # the output is rounded to its grid and ties may break either way: never below 1 step
INTEGER = tuple(m.activation for m in INTEGER_MODES.values())  # activation types of the full-integer modes
# int16x8: the int16 sigmoid/tanh are approximations a few Q0.15 steps off; they enter h through
# o * tanh(c) and c through f * c and i * z, modelled as this many extra Q0.15 steps of noise.
ACTIVATION_LSB = 4


def labelled_mode(model: ModelRecord) -> str | None:
    """The quantization mode lstmgen's metadata claims (anyone can write it: it only ever adds a note)."""
    raw = model.metadata_dict().get("lstmgen")
    if not raw:
        return None
    try:
        meta = json.loads(raw)
        q = meta.get("quantization") if isinstance(meta, dict) else None
        mode = q.get("mode") if isinstance(q, dict) else None
    except (ValueError, RecursionError):  # foreign or damaged metadata
        return None
    return str(mode) if mode else "none" if isinstance(meta, dict) else None


def model_mode(model: ModelRecord) -> str:
    """The quantization mode, from the LSTM tensor types alone (the types decide the tolerances)."""
    for op in model.operators:
        if op.opcode == Op.UNIDIRECTIONAL_SEQUENCE_LSTM:
            if model.tensors[op.inputs[Slot.INPUT]].dtype == np.int8:
                return "int8"
            if model.tensors[op.inputs[Slot.INPUT]].dtype == np.int16:
                return "int16x8"
            if model.tensors[op.inputs[Slot.INPUT_TO_FORGET_WEIGHTS]].dtype == np.int8:
                return "dynamic-int8"
        hybrid_fc = op.opcode == Op.FULLY_CONNECTED and model.tensors[op.inputs[1]].dtype == np.int8
        if hybrid_fc and model.tensors[op.inputs[0]].dtype == np.float32:  # the graph form's hybrid
            return "dynamic-int8"
    if any(op.opcode == Op.DEQUANTIZE and model.tensors[op.inputs[0]].dtype == np.float16 for op in model.operators):
        return "float16"
    return "none"


def output_scale(model: ModelRecord, index: int) -> float | None:
    """The integer grid step of a graph output (looking through a trailing DEQUANTIZE)."""
    t = model.tensors[index]
    if t.dtype in INTEGER and t.quantization is not None:
        return float(t.quantization.scale[0])
    for op in model.operators:
        if op.opcode == Op.DEQUANTIZE and op.outputs[0] == index:
            src = model.tensors[op.inputs[0]]
            if src.dtype in INTEGER and src.quantization is not None:
                return float(src.quantization.scale[0])
    return None


def _quantization(t: TensorRecord) -> Quantization:
    if t.quantization is None:
        raise ModelFileError(f"tensor {t.name} of an integer model has no quantization parameters.")
    return t.quantization


def _int_params(model: ModelRecord, index: int) -> tuple[float, int, np.dtype]:
    t = model.tensors[index]
    if t.dtype not in INTEGER:
        t = next(
            model.tensors[op.inputs[0]]
            for op in model.operators
            if op.opcode == Op.DEQUANTIZE and op.outputs[0] == index
        )
    q = _quantization(t)
    return float(q.scale[0]), int(q.zero_point[0]), t.dtype


def to_real(t: TensorRecord, value: np.ndarray) -> np.ndarray:
    """Interpreter value -> real value (dequantize integer codes)."""
    if t.dtype in INTEGER and t.quantization is not None:
        return affine.dequantize(value, t.quantization.scale[0], t.quantization.zero_point[0])
    return np.asarray(value, np.float64)


def to_codes(t: TensorRecord, x: np.ndarray) -> np.ndarray:
    """Real input -> what to feed the interpreter (integer codes for an int8/int16 input)."""
    if t.dtype in INTEGER and t.quantization is not None:
        return affine.quantize(x, t.dtype, t.quantization.scale[0], t.quantization.zero_point[0])
    return np.asarray(x, t.dtype)


def _time_major(model: ModelRecord) -> bool:
    for op in model.operators:
        if op.opcode == Op.UNIDIRECTIONAL_SEQUENCE_LSTM and op.options is not None:
            return bool(op.options.get("TimeMajor", False))
    try:  # the graph form has no LSTM op: its metadata says (the per-step report only groups by it)
        return bool(json.loads(model.metadata_dict().get("lstmgen", b"{}"))["hyperparameters"]["time_major"])
    except (ValueError, RecursionError, KeyError, TypeError):
        return False


def _per_step(err: np.ndarray, time_axis: int | None) -> np.ndarray:
    """max over everything but the time axis -> [T] (a single step for outputs without a time axis)."""
    if time_axis is None or err.ndim != 3:
        return np.array([float(np.max(err, initial=0.0))])
    return np.max(np.moveaxis(err, time_axis, 0).reshape(err.shape[time_axis], -1), axis=1, initial=0.0)


# ------------------------------------------------------------------------------- noise propagation


def _row_step(v: np.ndarray, asymmetric: bool) -> np.ndarray:
    """The hybrid kernel's per-row on-the-fly int8 step for a [rows, k] float operand."""
    if asymmetric:
        span = np.maximum(v.max(axis=-1, keepdims=True), 0) - np.minimum(v.min(axis=-1, keepdims=True), 0)
        return span / 255.0
    return np.abs(v).max(axis=-1, keepdims=True) / 127.0


def weight_step(model: ModelRecord, index: int, value: np.ndarray) -> np.ndarray | float:
    """The grid step a constant was rounded to when written: its scale (integer codes, per channel too),
    its float16 ulp (float16 weights behind a DEQUANTIZE), else 0 (float32: a rounding too small to matter)."""
    t = model.tensors[index]
    if t.data is None:
        t = next(
            (
                model.tensors[o.inputs[0]]
                for o in model.operators
                if o.opcode == Op.DEQUANTIZE and o.outputs[0] == index
            ),
            t,
        )
    q = t.quantization
    if t.dtype.kind in "iu" and q is not None and len(q.scale):
        scale = np.asarray(q.scale, np.float64)
        if scale.size == 1 or value.ndim == 0:
            return float(scale.flat[0])
        shape = [1] * value.ndim
        shape[q.quantized_dimension] = -1
        return scale.reshape(shape)
    if t.dtype == np.float16:
        return np.spacing(np.abs(value).astype(np.float16)).astype(np.float64)
    return 0.0


def _input_grid(model: ModelRecord, index: int) -> TensorRecord | None:
    """The integer tensor a graph input is rounded to: itself (integer input) or a QUANTIZE's right after it."""
    t = model.tensors[index]
    if t.dtype in INTEGER and t.quantization is not None:
        return t
    for op in model.operators:
        if op.opcode == Op.QUANTIZE and op.inputs[0] == index:
            q = model.tensors[op.outputs[0]]
            return q if q.quantization is not None else None
    return None


def _input_step(model: ModelRecord, index: int) -> float:
    """The step of the grid a graph input is rounded to (0: none)."""
    grid = _input_grid(model, index)
    return float(grid.quantization.scale[0]) if grid is not None and grid.quantization is not None else 0.0


def _within_grid(model: ModelRecord, index: int, x: np.ndarray) -> np.ndarray:
    """x as given, clipped to the real range of the input's grid (the clipping stays an error to be found)."""
    grid = _input_grid(model, index)
    if grid is None or grid.quantization is None:
        return np.asarray(x, np.float64)
    q = grid.quantization
    return np.clip(np.asarray(x, np.float64), *affine.real_range(grid.dtype, q.scale[0], q.zero_point[0]))


@dataclass
class _Noise:
    """Uniform rounding noise, one generator per Monte-Carlo run. Several runs go side by side on the batch
    axis (equal blocks of rows, in order): each generator draws its own block exactly as it would alone."""

    rngs: list[np.random.Generator]

    def __call__(self, step: np.ndarray | float, shape: tuple[int, ...]) -> np.ndarray:
        if len(self.rngs) == 1:
            return (self.rngs[0].random(shape) - 0.5) * step
        block = (shape[0] // len(self.rngs), *shape[1:])
        return (np.concatenate([g.random(block) for g in self.rngs]) - 0.5) * step

    @property
    def rng(self) -> np.random.Generator:
        """The generator of a single run: whole-tensor draws (weights, inputs, graph ops) are never side by side."""
        if len(self.rngs) != 1:
            raise AssertionError("whole-tensor noise drawn for several runs side by side")
        return self.rngs[0]


def _rounded(v: np.ndarray, step: np.ndarray | float, rng: np.random.Generator) -> np.ndarray:
    """v plus its rounding when written, as uniform noise of ± half its step: v + (u - 0.5) * step, the same
    operations in place (no temporary copies of a large matrix)."""
    noisy = rng.random(v.shape)
    noisy -= 0.5
    noisy *= step
    noisy += v
    return noisy


def _input_terms(x: np.ndarray, params: Mapping[str, np.ndarray]) -> dict[str, np.ndarray] | None:
    """Each gate's input term x @ W.T for every step of x [T, B, I] at once (one matmul per gate instead of
    one per step), or None when they would pass ROW_BUDGET (the steps then compute their own)."""
    gates = [g for g in ("input", "forget", "cell", "output") if f"input_to_{g}_weights" in params]
    rows = x.shape[0] * x.shape[1]
    if 8 * rows * sum(params[f"input_to_{g}_weights"].shape[0] for g in gates) > ROW_BUDGET:
        return None
    flat = x.reshape(rows, x.shape[2])
    return {g: (flat @ params[f"input_to_{g}_weights"].T).reshape(*x.shape[:2], -1) for g in gates}


def _noisy_lstm(
    model: ModelRecord, k: int, values: dict[int, np.ndarray], mode: str, noise: _Noise, weights: bool
) -> np.ndarray:
    """One LSTM op, step by step, with the kernel's rounding injected as uniform noise of its step size
    (weights=True, one run only: also each constant's own rounding when the file was written, ± half its step)."""
    spec = lstm_spec(model, k)
    op = model.operators[k]
    params = {key: values[i] for key, i in spec.weight_inputs.items()}
    if weights:
        params = {k: _rounded(v, weight_step(model, spec.weight_inputs[k], v), noise.rng) for k, v in params.items()}
    asym = bool(op.options.get("AsymmetricQuantizeInputs", False)) if op.options is not None else False
    x = values[op.inputs[Slot.INPUT]]
    x = x if spec.time_major else x.transpose(1, 0, 2)  # [T, B, I]
    steps, batch = x.shape[0], x.shape[1]
    h = np.zeros((batch, spec.output_size))
    c = np.zeros((batch, spec.num_units))
    proj = params.get("projection_weights")
    integer = mode in INTEGER_MODES
    if integer:
        s_out = float(_quantization(model.tensors[op.outputs[0]]).scale[0])
        s_c = float(_quantization(model.tensors[spec.c_index]).scale[0])
        s_m = float(_quantization(model.tensors[op.intermediates[4]]).scale[0]) if proj is not None else 0.0
    u = noise
    want_m = proj is not None and mode != "float16"  # the only internal the noise needs: m before the projection
    terms = _input_terms(x, params) if mode != "dynamic-int8" else None  # hybrid: x_t is rounded afresh each step

    outs = []
    on_step = step_hook()
    for t in range(steps):
        if on_step is not None:
            for _ in noise.rngs:  # one progress step per run, as when they ran one by one
                on_step()
        x_t = x[t]
        h_in = h
        if mode == "dynamic-int8":  # x_t and h_{t-1} are quantized per batch row before each matmul
            x_t = x_t + u(_row_step(x_t, asym), x_t.shape)
            h_in = h + u(_row_step(h, asym), h.shape)
        rec: dict[str, np.ndarray] | None = {} if want_m else None
        step_params = params
        if mode == "int16x8":  # each gate's input and recurrent FC round to Q3.12 before the sum: the dominant error
            step_params = dict(params)
            for g in ("input", "forget", "cell", "output"):
                key = f"{g}_gate_bias"
                if key in params:
                    shape = (batch, spec.num_units)
                    step_params[key] = params[key] + u(Q3_12, shape) + u(Q3_12, shape)
        y, h, c = lstm_reference(
            x_t[None], step_params, time_major=True, h0=h_in, c0=c, record=rec, **spec.reference_options(),
            input_terms=None if terms is None else {g: v[t : t + 1] for g, v in terms.items()},
        )  # fmt: skip
        y = y[0]
        if rec is not None and proj is not None:  # m is rounded (hybrid: per row; int8: intermediate 4) first
            m = rec["hidden"][0]
            step = _row_step(m, asym) if mode == "dynamic-int8" else s_m
            y = y + u(step, m.shape) @ proj.T
        if integer:  # h (= output) is on the output grid (int8 or int16), c is int16 on 2^-k
            y = y + u(s_out, y.shape)
            c = c + u(s_c, c.shape)
            if mode == "int16x8":  # f*c and i*z round separately; the int16 activations' own error
                c = c + u(s_c, c.shape) + u(ACTIVATION_LSB * Q0_15, c.shape) * np.maximum(np.abs(c), 1.0)
                y = y + u(ACTIVATION_LSB * Q0_15, y.shape)
        h = y
        outs.append(y)
    out = np.stack(outs)
    return out if spec.time_major else out.transpose(1, 0, 2)


def _row_axis(model: ModelRecord, feeds: Mapping[int, np.ndarray]) -> int | None:
    """The batch axis of a model of LSTM ops only, all of one layout, fed 3-D inputs (rows never mix); else None."""
    ops = model.operators
    if not ops or any(op.opcode != Op.UNIDIRECTIONAL_SEQUENCE_LSTM for op in ops):
        return None
    if any(np.ndim(x) != 3 for x in feeds.values()):
        return None
    majors = {bool(op.options.get("TimeMajor", False)) if op.options is not None else False for op in ops}
    return (1 if majors.pop() else 0) if len(majors) == 1 else None


def _run_groups(
    model: ModelRecord, feeds: Mapping[int, np.ndarray], runs: int, seed: int, weights: bool
) -> list[range]:
    """The noisy runs' seeds, in groups run side by side on the batch axis (one pass over the weights per
    group instead of per run): only the kernel's noise (weights=True draws whole weights per run), a model
    of LSTM ops only, the group's float64 rows within ROW_BUDGET; else one run at a time."""
    size = 1
    if not weights and _row_axis(model, feeds) is not None:
        specs = [lstm_spec(model, k) for k in range(len(model.operators))]
        width = sum(s.output_size + s.num_units for s in specs)  # per row: each op's output and c
        per_run = sum(8 * np.size(x) // max(np.shape(x)[-1], 1) * (np.shape(x)[-1] + width) for x in feeds.values())
        size = max(1, min(runs, ROW_BUDGET // max(per_run, 1)))
    return [range(seed + r, seed + min(r + size, runs)) for r in range(0, runs, size)]


def _noisy_evaluate(
    model: ModelRecord,
    feeds: Mapping[int, np.ndarray],
    mode: str,
    seeds: range,
    weights: bool = False,
    constants: Mapping[int, np.ndarray] | None = None,
    given: Mapping[int, np.ndarray] | None = None,
) -> dict[int, np.ndarray]:
    """One noisy evaluation per seed; several seeds run side by side (_run_groups), the feeds repeated on the
    batch axis, one block of rows per seed. `given` (weights=True): the inputs as the source got them."""
    noise = _Noise([np.random.default_rng(s) for s in seeds])
    values = dict(constants) if constants is not None else constant_values(model)
    axis = _row_axis(model, feeds) if len(seeds) > 1 else None
    for i, x in feeds.items():
        x64 = np.asarray(x, np.float64)
        values[i] = x64 if axis is None else np.concatenate([x64] * len(seeds), axis=axis)
    if weights:  # against the source: the source ran on the input as given, the file on its grid
        for i, x in feeds.items():
            # drawn whether used or not, so that every later draw (the weights') is the one it always was
            drawn = (noise.rng.random(np.shape(x)) - 0.5) * _input_step(model, i)
            if given is not None and i in given:  # that rounding exactly, not a draw of it (layer norm amplifies
                values[i] = _within_grid(model, i, given[i])  # some draws by 4x on a small cell's first step)
            else:
                values[i] = values[i] + drawn
    return _noisy_ops(model, values, mode, noise, weights)


def _noisy_ops(
    model: ModelRecord,
    values: dict[int, np.ndarray],
    mode: str,
    noise: _Noise,
    weights: bool,
    fixed: Mapping[int, np.ndarray] | None = None,
) -> dict[int, np.ndarray]:
    """Every op of one (sub)graph with the kernels' rounding as noise; a WHILE loop's body the same way, its
    weights' own rounding drawn once for the whole loop."""
    fc_weights = {op.inputs[1] for op in model.operators if op.opcode == Op.FULLY_CONNECTED} if weights else set()
    for i in fc_weights & set(values):  # the graph form's constant weights, each rounded once when written
        values[i] = values[i] + (noise.rng.random(values[i].shape) - 0.5) * weight_step(model, i, values[i])
    drawn: dict[int, dict[int, np.ndarray]] = {}  # per body: its weights as rounded when written

    def body(sub: ModelRecord, vals: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
        kept = drawn.get(id(sub))
        out = _noisy_ops(sub, {**vals, **(kept or {})}, mode, noise, weights and kept is None, kept)
        if kept is None:  # the first iteration drew them: constants and float16 weights' DEQUANTIZE outputs
            dequantized = {o.outputs[0] for o in sub.operators if o.opcode == Op.DEQUANTIZE}
            drawn[id(sub)] = {i: out[i] for i in out if sub.tensors[i].data is not None or i in dequantized}
        return out

    for k, op in enumerate(model.operators):
        if op.opcode == Op.WHILE and model.subgraphs:
            values.update(zip(op.outputs, while_loop(model, op, values, body), strict=True))
            continue
        if op.opcode == Op.UNIDIRECTIONAL_SEQUENCE_LSTM:
            values[op.outputs[0]] = _noisy_lstm(model, k, values, mode, noise, weights)
        elif (
            op.opcode == Op.FULLY_CONNECTED and mode == "dynamic-int8" and model.tensors[op.inputs[1]].dtype == np.int8
        ):
            _noisy_hybrid_fc(model, k, values, noise.rng)
        else:
            store_data_op(model, k, values)
            if op.opcode == Op.DEQUANTIZE and op.outputs[0] in fc_weights:  # float16 weights of the graph form
                v = values[op.outputs[0]]
                values[op.outputs[0]] = v + (noise.rng.random(v.shape) - 0.5) * weight_step(model, op.outputs[0], v)
            elif fixed and op.outputs[0] in fixed:  # a loop body's weights, as drawn in its first iteration
                values[op.outputs[0]] = fixed[op.outputs[0]]
    return values


def _noisy_hybrid_fc(model: ModelRecord, k: int, values: dict[int, np.ndarray], rng: np.random.Generator) -> None:
    """A hybrid FULLY_CONNECTED (the graph form): its float input rounded per row to int8 as noise of one step."""
    op = model.operators[k]
    asym = bool(op.options.get("AsymmetricQuantizeInputs", False)) if op.options is not None else False
    x = values[op.inputs[0]]
    rows = x.reshape(-1, x.shape[-1])
    noisy = dict(values)
    noisy[op.inputs[0]] = (rows + (rng.random(rows.shape) - 0.5) * _row_step(rows, asym)).reshape(x.shape)
    store_data_op(model, k, noisy)
    for i in op.outputs:
        values[i] = noisy[i]


@dataclass
class Tolerance:
    """Allowed |interpreter - reference| per time step for one output."""

    per_step: np.ndarray  # [T]
    method: str
    lsb: float | None = None  # int8: the output grid step
    n_lsb: int | None = None  # int8: tolerance in output steps (max over time)

    def to_dict(self) -> dict[str, Any]:
        return {
            "per_step": [float(v) for v in self.per_step],
            "method": self.method,
            "lsb": self.lsb,
            "n_lsb": self.n_lsb,
        }


def _runs(
    model: ModelRecord,
    feeds: Mapping[int, np.ndarray],
    mode: str,
    seeds: range,
    weights: bool,
    constants: Mapping[int, np.ndarray],
    reference: Mapping[int, np.ndarray],
    given: Mapping[int, np.ndarray] | None = None,
) -> list[dict[int, np.ndarray]]:
    """Each run's outputs: a group run side by side, cut back into its runs on the batch axis; one at a time
    where an output does not hold the group's rows as whole copies of the reference's (a file whose output
    shape does not follow its input's: it must still get a verdict, not a crash)."""
    noisy = _noisy_evaluate(model, feeds, mode, seeds, weights, constants, given)
    axis = _row_axis(model, feeds)
    if len(seeds) == 1 or axis is None:
        return [noisy]
    n = len(seeds)
    if all(np.ndim(noisy[i]) == np.ndim(reference[i]) and np.shape(noisy[i])[axis] == n * np.shape(reference[i])[axis]
           for i in model.outputs):  # fmt: skip
        cut = {i: np.split(noisy[i], n, axis=axis) for i in model.outputs}
        return [{i: cut[i][r] for i in model.outputs} for r in range(n)]
    return [_noisy_evaluate(model, feeds, mode, range(r, r + 1), weights, constants, given) for r in seeds]


def derive_tolerance(
    model: ModelRecord,
    feeds: Mapping[int, np.ndarray],
    reference: Mapping[int, np.ndarray],
    *,
    mode: str | None = None,
    runs: int = RUNS,
    seed: int = 0,
    safety: float = SAFETY,
    weights: bool = False,
    constants: Mapping[int, np.ndarray] | None = None,
    given: Mapping[int, np.ndarray] | None = None,
) -> dict[int, Tolerance]:
    """Tolerance per graph output for `model` on real-valued `feeds` against `reference` (graph.evaluate).

    weights=True gives the bound against the float SOURCE instead: every constant's own rounding to its
    grid when the file was written (± half its scale; float16: ± half its ulp) is injected too, on top of
    the kernel's, so the bound follows from the file's own quantization steps (docs/verification.md).

    float16 / none: the kernel computes in float32 on exactly the dequantized weights, so the float
    bound applies (1e-5 + 1e-5 |ref|). dynamic-int8 and int8: the reference (dequantized parameters,
    real arithmetic) lacks the kernel's rounding of activations — hybrid: x_t, h_{t-1} (and m before
    a projection) per batch row to int8; int8: h (= output) to its grid, c to 2^-k, m to intermediate
    4. Those roundings are injected as uniform noise of one step into `runs` re-evaluations; the
    tolerance is `safety` x the largest deviation seen up to each step (a running max, so it never
    shrinks over time), plus the float bound; int8 rounds up to whole output steps, at least 1.
    `constants`: the model's constant_values, widened once for every run. `given` (weights=True): the inputs
    as the source got them; the file's are their rounding to its input grid, which the runs then take exactly.
    """
    mode = mode or model_mode(model)
    time_axis = 0 if _time_major(model) else 1
    floor = {i: FLOAT_ATOL + FLOAT_RTOL * _per_step(np.abs(reference[i]), time_axis) for i in model.outputs}
    if mode == "none" or (mode == "float16" and not weights):
        return {
            i: Tolerance(floor[i], "float32 arithmetic on the dequantized weights: 1e-5 + 1e-5|ref|")
            for i in model.outputs
        }
    constants = constant_values(model) if constants is None else constants
    dev = {i: np.zeros_like(floor[i]) for i in model.outputs}
    for seeds in _run_groups(model, feeds, runs, seed, weights):
        for run in _runs(model, feeds, mode, seeds, weights, constants, reference, given):
            for i in model.outputs:
                dev[i] = np.maximum(dev[i], _per_step(np.abs(run[i] - reference[i]), time_axis))
    result = {}
    for i in model.outputs:
        tol = floor[i] + safety * np.maximum.accumulate(dev[i])
        what = {
            "float16": "float16: float32 arithmetic",
            "dynamic-int8": "hybrid: per-row int8 rounding of x, h (and m)",
            "int8": "int8: rounding of h/output, c (2^-k) and m",
            "int16x8": "int16x8: rounding of the Q3.12 gate pre-activations (input and recurrent FC), h/output "
            "(int16), c (2^-k, twice) and the int16 sigmoid/tanh approximations",
        }[mode]
        what += "; each constant's rounding to its own grid" if weights else ""
        method = f"{what} propagated through the reference, {runs} runs, x{safety:g} + float bound"
        s = output_scale(model, i)
        if mode in INTEGER_MODES and s:
            n = np.maximum(np.ceil(tol / s), MIN_INT8_LSB)
            result[i] = Tolerance(n * s, method + f", whole output steps (>= {MIN_INT8_LSB})", s, int(n.max()))
        else:
            result[i] = Tolerance(tol, method)
    return result


# -------------------------------------------------------------------------------------------- report


def error_report(
    model: ModelRecord,
    actual: Mapping[int, np.ndarray],
    reference: Mapping[int, np.ndarray],
    tolerance: Mapping[int, Tolerance],
    *,
    mode: str | None = None,
) -> dict[str, Any]:
    """Per output: max abs error, worst time step, max error per step, fitted slope, tolerance, ok (JSON-ready)."""
    time_axis = 0 if _time_major(model) else 1
    outputs = []
    for i in model.outputs:
        err = np.abs(np.asarray(actual[i], np.float64) - np.asarray(reference[i], np.float64))
        steps = _per_step(err, time_axis)
        tol = tolerance[i]
        slope = float(np.polyfit(np.arange(steps.size), steps, 1)[0]) if steps.size > 1 else 0.0
        s = tol.lsb
        saturated = 0.0
        if s:  # outputs pinned at the integer limits: the input went beyond the calibrated range
            q = _int_params(model, i)
            lo_r, hi_r = affine.real_range(q[2], q[0], q[1])
            ref = np.asarray(reference[i])
            saturated = float(np.mean((ref <= lo_r + q[0] / 2) | (ref >= hi_r - q[0] / 2)))
        outputs.append(
            {
                "index": int(i),
                "name": model.tensors[i].name,
                "max_abs_error": float(err.max(initial=0.0)),
                "mean_abs_error": float(err.mean()) if err.size else 0.0,
                "worst_step": int(np.argmax(steps)),
                "max_error_per_step": [float(v) for v in steps],
                "error_slope_per_step": slope,  # least-squares slope of the per-step max: growth over time
                "max_error_lsb": float(err.max(initial=0.0) / s) if s else None,
                "tolerance": tol.to_dict(),
                "saturated_fraction": saturated,  # > 0: input outside the calibrated range (recalibrate)
                "ok": bool(np.all(steps <= tol.per_step)),
            }
        )
    return {"mode": mode or model_mode(model), "ok": all(o["ok"] for o in outputs), "outputs": outputs}


def check(
    model: ModelRecord,
    feeds: Mapping[int, np.ndarray],
    actual: Mapping[int, np.ndarray],
    *,
    mode: str | None = None,
    runs: int = RUNS,
    seed: int = 0,
    constants: Mapping[int, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Reference (graph.evaluate on the quantized record, real-valued feeds) + tolerance + report;
    `constants`: the model's constant_values when the caller has them already."""
    constants = constant_values(model) if constants is None else constants
    ref = evaluate(model, feeds, constants=constants).values
    reference = {i: ref[i] for i in model.outputs}
    tol = derive_tolerance(model, feeds, reference, mode=mode, runs=runs, seed=seed, constants=constants)
    return error_report(model, actual, reference, tol, mode=mode)


def require_plotting() -> None:
    """Raise ConfigError, saying how to install it, when matplotlib is missing (call before any long work)."""
    if importlib.util.find_spec("matplotlib") is None:
        from lstmgen.errors import ConfigError

        raise ConfigError(
            "--plot needs matplotlib, which is not installed: pip install 'lstmgen[plot]' (or pip install "
            "matplotlib), or drop --plot; the report (--report, --json) has the same numbers."
        )


def plot_error(report: Mapping[str, Any], path: str | Path | BinaryIO) -> None:
    """Per-step max error vs tolerance for every output, as PNG to a path or an open file (needs matplotlib)."""
    require_plotting()
    # A Figure of its own (no pyplot): the caller's matplotlib backend and open figures stay as they are.
    from matplotlib.figure import Figure

    outs = report["outputs"]
    fig = Figure(figsize=(7, 3 * len(outs)))
    axes = fig.subplots(len(outs), 1, squeeze=False)
    for ax, o in zip(axes[:, 0], outs, strict=True):
        ax.plot(o["max_error_per_step"], label="max |tflite - reference|")
        ax.plot(o["tolerance"]["per_step"], "--", label="tolerance")
        ax.set_title(f"{o['name']} ({report['mode']})")
        ax.set_xlabel("time step")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path if not isinstance(path, (str, Path)) else str(path), format="png")
