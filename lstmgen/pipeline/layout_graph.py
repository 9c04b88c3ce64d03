"""The graph form (--form graph): the cell unrolled over a fixed time axis into builtin ops XNNPACK delegates.

Per layer and direction: ONE batched FULLY_CONNECTED projects the inputs of all time steps ([T*B, I] x
[G*N, I]^T, bias folded in unless layer norm needs it after the norm); per step, only the recurrent part
runs: FULLY_CONNECTED on h, ADD, SPLIT into the G gates, LOGISTIC/activation, MUL, ADD (peepholes MUL+ADD,
clips MINIMUM/MAXIMUM, layer norm MEAN/SUB/MUL/RSQRT, projection a FULLY_CONNECTED). Activations run
time-major and flat ([T*B, width]) between layers, so a stack needs no transposes. The model keeps no state
between invokes: each starts from the zero state (step 0 has no recurrent term), or with state_io from each
cell's initial h and c fed as model inputs, its final h and c returned as model outputs (graph_form.py wires them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lstmgen.config import CellConfig
from lstmgen.pipeline.layout import CellShape, Weights
from lstmgen.tflite.records import Deferred, ModelRecord, OperatorRecord, Options, Quantization, TensorRecord
from lstmgen.tflite.schema import BuiltinOperator as Op

F32 = np.dtype(np.float32)
I32 = np.dtype(np.int32)
# Float recurrent weights x time steps above this: one shared copy. XNNPACK's per-step copies are fastest while
# they stay in cache (64 units, T=50: 3 MB, 0.7x the fused op's time); past it they lose to one shared copy
# (256 units: 50 MB, 1.5-2x the fused op's time, shared 0.8x) and cost T x the memory (1024 units: 873 MB).
SHARED_RECURRENT_BYTES = 8 * 2**20
GATE_ORDER = ("input", "forget", "cell", "output")  # the row blocks of the stacked matrices (CIFG: no input)
ACT_OPS: dict[str, int] = {"tanh": Op.TANH, "relu": Op.RELU, "relu6": Op.RELU6, "relu_n1_to_1": Op.RELU_N1_TO_1}
_NO_OPTS: dict[int, Options] = {
    Op.ADD: Options("AddOptions", (("FusedActivationFunction", 0),)),
    Op.SUB: Options("SubOptions", (("FusedActivationFunction", 0),)),
    Op.MUL: Options("MulOptions", (("FusedActivationFunction", 0),)),
    Op.TRANSPOSE: Options("TransposeOptions", ()),
    Op.DEQUANTIZE: Options("DequantizeOptions", ()),
}


def _array(value: np.ndarray | Deferred) -> np.ndarray:
    if isinstance(value, Deferred):
        out = np.empty(value.shape, F32)
        value.fill(out)
        return out
    return np.asarray(value, F32)


def per_channel_int8(w: np.ndarray) -> tuple[np.ndarray, Quantization]:
    """Symmetric int8 with one scale per output row (what TF's converter gives FULLY_CONNECTED weights)."""
    peak = np.abs(w).max(axis=1).astype(np.float64)
    scale = np.where(peak > 0, peak / 127.0, 1.0)
    q = np.clip(np.rint(w / scale[:, None]), -127, 127).astype(np.int8)
    return q, Quantization(tuple(float(s) for s in scale), (0,) * len(scale), 0)


class _Builder:
    """Tensors and operators in execution order, with the config's weight type and batch."""

    def __init__(self, config: CellConfig) -> None:
        self.c = config
        self.tensors: list[TensorRecord] = []
        self.ops: list[OperatorRecord] = []
        self.batch = config.batch_size
        self.steps = int(config.time_steps or 1)
        self._consts: dict[tuple[str, Any], int] = {}
        self.states: list[tuple[int, int, int, int]] = []  # state_io: (h in, c in, h out, c out) per cell, op order

    def tensor(self, name: str, shape: Sequence[int], dtype: np.dtype = F32, **kw: Any) -> int:
        self.tensors.append(TensorRecord(name, tuple(int(d) for d in shape), dtype, **kw))
        return len(self.tensors) - 1

    def const(self, name: str, data: np.ndarray) -> int:
        return self.tensor(name, data.shape, data.dtype, data=data)

    def scalar(self, value: float) -> int:
        """A shared float32 constant of shape [1] (clip bounds, 1 for CIFG, the layer-norm epsilon)."""
        key = ("scalar", float(value))
        if key not in self._consts:
            self._consts[key] = self.const(f"{self.c.name}/const_{value:g}", np.full((1,), value, F32))
        return self._consts[key]

    def ints(self, values: Sequence[int], scalar: bool = False) -> int:
        """A shared int32 constant (axes, shapes)."""
        key = (f"ints{'0' if scalar else ''}", tuple(int(v) for v in values))
        if key not in self._consts:
            data = np.asarray(values, I32).reshape(() if scalar else (len(values),))
            self._consts[key] = self.const(f"{self.c.name}/const_{'_'.join(map(str, values))}", data)
        return self._consts[key]

    def op(self, code: int, inputs: Sequence[int], out: str | Sequence[str], shape: Sequence[int], **kw: Any) -> int:
        """One op with one (or, for a list of names, several same-shaped) float outputs; the first output."""
        names = [out] if isinstance(out, str) else list(out)
        sig = kw.get("signature")  # a dynamic time axis (-1) in a WHILE-loop graph
        dtype = kw.get("dtype", F32)
        outs = tuple(self.tensor(n, shape, dtype, shape_signature=None if sig is None else tuple(sig)) for n in names)
        options = kw.get("options", _NO_OPTS.get(code))
        self.ops.append(OperatorRecord(code, kw.get("version", 1), tuple(inputs), outs, options))
        return outs[0]

    def weight(self, name: str, w: np.ndarray) -> tuple[int, int]:
        """A FULLY_CONNECTED weight in the build's type; (tensor index, op version)."""
        mode = self.c.quantize
        if mode == "dynamic-int8":
            q, quant = per_channel_int8(w)
            # per-channel hybrid is v12 whatever the input quantization (op_version.cc checks it before v3/v9);
            # runtimes before 2.17 refuse v12 rather than read one scale of many
            return self.tensor(name, q.shape, q.dtype, data=q, quantization=quant), 12
        if mode == "float16":
            half = self.const(f"{name}/float16", w.astype(np.float16))
            return self.op(Op.DEQUANTIZE, (half,), name, w.shape, version=3), 1
        return self.const(name, w), 1

    def fc(self, x: int, w: tuple[int, int], bias: int, name: str, rows: int, **kw: Any) -> int:
        """FULLY_CONNECTED of x with a weight from `weight` (shared by every step) and a bias index (-1: none)."""
        index, version = w
        hybrid = self.c.quantize == "dynamic-int8" and bool(self.c.asymmetric_inputs)
        opts = Options(
            "FullyConnectedOptions",
            (("FusedActivationFunction", 0), ("KeepNumDims", False), ("AsymmetricQuantizeInputs", hybrid)),
        )
        out = self.tensors[index].shape[0]
        return self.op(Op.FULLY_CONNECTED, (x, index, bias), name, (rows, out), options=opts, version=version, **kw)

    def binary(self, code: int, a: int, b: int, name: str) -> int:
        return self.op(code, (a, b), name, self.tensors[a].shape)

    def unary(self, code: int, a: int, name: str) -> int:
        return self.op(code, (a,), name, self.tensors[a].shape)

    def clip(self, x: int, limit: float, name: str) -> int:
        low = self.binary(Op.MINIMUM, x, self.scalar(limit), f"{name}/min")
        return self.binary(Op.MAXIMUM, low, self.scalar(-limit), f"{name}")

    def split(self, x: int, parts: int, axis: int, name: str) -> list[int]:
        """SPLIT into `parts` equal pieces along `axis` (one op; the pieces' indices)."""
        if parts == 1:
            return [x]
        shape = list(self.tensors[x].shape)
        shape[axis] //= parts
        ax = self.ints([axis], scalar=True)
        opts = Options("SplitOptions", (("NumSplits", parts),))
        first = self.op(Op.SPLIT, (ax, x), [f"{name}_{k}" for k in range(parts)], shape, options=opts)
        return list(range(first, first + parts))

    def concat(self, parts: Sequence[int], axis: int, name: str) -> int:
        if len(parts) == 1:
            return parts[0]
        shape = list(self.tensors[parts[0]].shape)
        shape[axis] = sum(self.tensors[p].shape[axis] for p in parts)
        opts = Options("ConcatenationOptions", (("Axis", axis), ("FusedActivationFunction", 0)))
        return self.op(Op.CONCATENATION, tuple(parts), name, shape, options=opts)

    def reshape(self, x: int, shape: Sequence[int], name: str) -> int:
        target = self.ints(shape)
        return self.op(Op.RESHAPE, (x, target), name, shape, options=None)  # the shape input says it all

    def transpose(self, x: int, perm: Sequence[int], name: str) -> int:
        shape = [self.tensors[x].shape[p] for p in perm]
        return self.op(Op.TRANSPOSE, (x, self.ints(perm)), name, shape)

    def layer_norm(self, v: int, name: str) -> int:
        """(v - mean) / sqrt(var + 1e-8) over the cells, as the fused kernel normalises a gate."""
        axis = self.ints([1])
        opts = Options("ReducerOptions", (("KeepDims", True),))
        rows = self.tensors[v].shape[0]
        mean = self.op(Op.MEAN, (v, axis), f"{name}/mean", (rows, 1), options=opts)
        d = self.binary(Op.SUB, v, mean, f"{name}/centered")
        var = self.op(Op.MEAN, (self.binary(Op.MUL, d, d, f"{name}/sq"), axis), f"{name}/var", (rows, 1), options=opts)
        inv = self.unary(Op.RSQRT, self.binary(Op.ADD, var, self.scalar(1e-8), f"{name}/var_eps"), f"{name}/rsqrt")
        return self.binary(Op.MUL, d, inv, f"{name}/normed")


class _Cell:
    """One cell's tensors, written once and shared by every step: stacked gate matrices and per-gate vectors."""

    def __init__(
        self, b: _Builder, shape: CellShape, w: Weights, forget_bias: float, name: str, main: _Builder | None = None
    ) -> None:
        """main: where the input projection's weights and bias go (a WHILE loop's body holds the rest)."""
        self.shape = shape
        self.gates = tuple(g for g in GATE_ORDER if not (shape.cifg and g == "input"))
        arr = {k: _array(v) for k, v in w.items()}
        arr["forget_gate_bias"] = arr["forget_gate_bias"] + np.float32(forget_bias)  # TF adds it at run time
        stacked = {
            kind: np.concatenate([arr[f"{kind}_to_{g}_weights"] for g in self.gates]) for kind in ("input", "recurrent")
        }
        self.w_x = (main or b).weight(f"{name}/input_weights", stacked["input"])
        self.w_h = b.weight(f"{name}/recurrent_weights", stacked["recurrent"])
        unrolled = b.c.time_steps is not None  # a WHILE loop's body holds one FULLY_CONNECTED per weight
        if (
            unrolled
            and b.c.quantize != "dynamic-int8"
            and b.steps * 4 * stacked["recurrent"].size > SHARED_RECURRENT_BYTES
        ):
            # XNNPACK packs a private copy of a constant weight for every FULLY_CONNECTED: T steps would hold
            # T copies. Past the budget the steps read one copy through a RESHAPE (XNNPACK leaves the recurrent
            # FULLY_CONNECTED to the builtin kernel, and takes the rest). Hybrid weights stay constant: the
            # builtin hybrid kernel with non-constant weights was 2x slower than the fused op (1024 units),
            # and XNNPACK's int8 copies are a quarter of the float ones.
            index, version = self.w_h
            self.w_h = (b.reshape(index, b.tensors[index].shape, f"{name}/recurrent_weights_shared"), version)
        # With layer norm the bias comes after the norm, per gate; else it rides on the input projection.
        bias = np.concatenate([arr[f"{g}_gate_bias"] for g in self.gates])
        self.bias = -1 if shape.layer_norm else (main or b).const(f"{name}/gate_bias", bias)
        vectors = [f"cell_to_{g}_weights" for g in self.gates] + [f"{g}_layer_norm_coefficients" for g in self.gates]
        vectors += [f"{g}_gate_bias" for g in self.gates] if shape.layer_norm else []
        self.v = {k: b.const(f"{name}/{k}", arr[k]) for k in vectors if k in arr}
        self.proj = b.weight(f"{name}/projection_weights", arr["projection_weights"]) if shape.num_proj else None
        self.proj_bias = b.const(f"{name}/projection_bias", arr["projection_bias"]) if "projection_bias" in arr else -1


def _step(b: _Builder, cell: _Cell, xs: int, h: int | None, c: int | None, name: str) -> tuple[int, int]:
    """One time step from the input projection `xs` [B, G*N] and the previous (h, c) (None: zero); new (h, c)."""
    cfg, s = b.c, cell.shape
    pre = xs if h is None else b.binary(Op.ADD, xs, b.fc(h, cell.w_h, -1, f"{name}/recurrent", b.batch), f"{name}/pre")
    parts = dict(zip(cell.gates, b.split(pre, len(cell.gates), 1, f"{name}/gate"), strict=True))
    act = ACT_OPS[cfg.activation]

    def gate(g: str, peep: int | None, fn: int) -> int:
        v = parts[g]
        if peep is not None and s.use_peepholes and g != "cell":
            pw = cell.v[f"cell_to_{g}_weights"]
            v = b.binary(Op.ADD, v, b.binary(Op.MUL, peep, pw, f"{name}/{g}_peephole"), f"{name}/{g}_peeped")
        if s.layer_norm:
            coef = cell.v[f"{g}_layer_norm_coefficients"]
            v = b.binary(Op.MUL, b.layer_norm(v, f"{name}/{g}_ln"), coef, f"{name}/{g}_scaled")
            v = b.binary(Op.ADD, v, cell.v[f"{g}_gate_bias"], f"{name}/{g}_biased")
        return b.unary(fn, v, f"{name}/{g}")

    f = gate("forget", c, Op.LOGISTIC)
    i = b.binary(Op.SUB, b.scalar(1.0), f, f"{name}/input") if s.cifg else gate("input", c, Op.LOGISTIC)
    iz = b.binary(Op.MUL, i, gate("cell", None, act), f"{name}/i_z")
    c_new = iz if c is None else b.binary(Op.ADD, b.binary(Op.MUL, f, c, f"{name}/f_c"), iz, f"{name}/c_sum")
    if cfg.cell_clip > 0:
        c_new = b.clip(c_new, cfg.cell_clip, f"{name}/c")
    o = gate("output", c_new, Op.LOGISTIC)  # the output peephole sees the new, clipped c
    m = b.binary(Op.MUL, o, b.unary(act, c_new, f"{name}/c_act"), f"{name}/m")
    if cell.proj is None:
        return m, c_new
    h_new = b.fc(m, cell.proj, cell.proj_bias, f"{name}/projection", b.batch)
    if cfg.proj_clip > 0:
        h_new = b.clip(h_new, cfg.proj_clip, f"{name}/h")
    return h_new, c_new


def initial_state(b: _Builder, shape: CellShape, name: str) -> tuple[int | None, int | None]:
    """state_io: the cell's initial h [B, P] and c [B, N] as (future model input) tensors; else (None, None): zero."""
    if not b.c.state_io:
        return None, None
    width = shape.num_proj or shape.num_units
    return b.tensor(f"{name}/initial_h", (b.batch, width)), b.tensor(f"{name}/initial_c", (b.batch, shape.num_units))


def _direction(b: _Builder, cell: _Cell, x2d: int, backward: bool, name: str) -> list[int]:
    """One direction over a flat time-major input [T*B, W]: h of every step, in processing order."""
    proj = b.fc(x2d, cell.w_x, cell.bias, f"{name}/input_projection", b.steps * b.batch)
    xs = b.split(proj, b.steps, 0, f"{name}/step_input")
    order = range(b.steps - 1, -1, -1) if backward else range(b.steps)
    h0, c0 = initial_state(b, cell.shape, name)
    h, c = h0, c0
    out = []
    for t in order:
        h, c = _step(b, cell, xs[t], h, c, f"{name}/t{t}")
        out.append(h)
    if h0 is not None and c0 is not None and h is not None and c is not None:
        b.states.append((h0, c0, h, c))  # the last processed step's h and c
    return out


def _model_input(b: _Builder, width: int) -> tuple[int, int]:
    """The model input and its flat time-major view [T*B, I] (FULLY_CONNECTED flattens [T, B, I] itself)."""
    cfg, t, n = b.c, b.steps, b.batch
    x = b.tensor(f"{cfg.name}/input", (t, n, width) if cfg.time_major else (n, t, width))
    if cfg.time_major or n == 1:
        return x, x
    return x, b.transpose(x, (1, 0, 2), f"{cfg.name}/input_time_major")


def _model_output(b: _Builder, y2d: int, name: str) -> int:
    """[T*B, W] time-major back to the model's layout."""
    cfg, t, n = b.c, b.steps, b.batch
    width = b.tensors[y2d].shape[-1]
    if cfg.time_major or n == 1:
        return b.reshape(y2d, (t, n, width) if cfg.time_major else (n, t, width), name)
    return b.transpose(b.reshape(y2d, (t, n, width), f"{name}/time_major"), (1, 0, 2), name)


def unrolled(
    config: CellConfig, layers: Sequence[Sequence[Weights]], shapes: Sequence[Sequence[CellShape]]
) -> tuple[_Builder, int, int]:
    """A fixed time axis unrolled: the builder, the model input and output."""
    b = _Builder(config)
    prefix = config.name
    x, cur = _model_input(b, shapes[0][0].input_size)
    final_last: list[int] = []
    for k, (cells, cell_shapes) in enumerate(zip(layers, shapes, strict=True)):
        scope = f"{prefix}/layer_{k}" if len(layers) > 1 else prefix
        outs = []
        for d, (w, shape) in enumerate(zip(cells, cell_shapes, strict=True)):
            cell_scope = f"{scope}/{'bw' if d else 'fw'}" if len(cells) > 1 else scope
            cell = _Cell(b, shape, w, float(config.forget_bias or 0.0), cell_scope)  # resolved by layout_graph
            seq = _direction(b, cell, cur, d == 1 or config.go_backwards, cell_scope)
            outs.append(seq[::-1] if d == 1 else seq)  # a backward direction's outputs at their positions
            final_last.append(seq[-1])  # the last processed step (Keras' last output of each direction)
        if k < len(layers) - 1 or config.return_sequences:
            per_dir = [b.concat(o, 0, f"{scope}/{'bw' if d else 'fw'}/sequence") for d, o in enumerate(outs)]
            cur = b.concat(per_dir, 1, f"{scope}/concat")
    if config.return_sequences:
        y = _model_output(b, cur, f"{prefix}/output")
    else:
        lasts = final_last[-len(layers[-1]) :]
        y = b.concat(lasts, 1, f"{prefix}/output") if len(lasts) > 1 else lasts[0]
    return b, x, y


PACKED_COPIES_NOTE = 64 * 2**20  # say how much XNNPACK's per-step weight copies hold past this


def packed_copies_note(model: ModelRecord) -> str | None:
    """A note when XNNPACK would hold many copies of constant FULLY_CONNECTED weights (one per op using them)."""
    uses: dict[int, int] = {}
    for op in model.operators:
        if op.opcode == Op.FULLY_CONNECTED and model.tensors[op.inputs[1]].data is not None:
            uses[op.inputs[1]] = uses.get(op.inputs[1], 0) + 1
    total = sum(n * model.tensors[i].dtype.itemsize * int(np.prod(model.tensors[i].shape)) for i, n in uses.items())
    if total <= PACKED_COPIES_NOTE:
        return None
    return (
        f"graph form: LiteRT's XNNPACK delegate packs a copy of each FULLY_CONNECTED's weights, about "
        f"{total / 2**20:.0f} MB for this model (the recurrent weights once per time step); without XNNPACK, or "
        "with --form fused, the weights are held once"
    )
