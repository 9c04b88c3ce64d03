"""The graph form over a dynamic time axis: one batched input projection, the recurrent part in a WHILE loop.

Per layer and direction: FULLY_CONNECTED over all T·B input rows at once (outside the loop), then a WHILE
loop whose body takes step i's projection (GATHER), runs the cell once (layout_graph._step: the same ops as
the unrolled form) and appends h to the sequence (CONCATENATION); its cond compares the step counter with T
(LESS). The loop variables are (i, T, h, c, projections[, sequence]); h and c start at zero, or with state_io
at the cell's initial-state model inputs, and the loop's last h and c are its final-state outputs. The body
holds the recurrent weights once, so XNNPACK packs one copy, whatever T is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from lstmgen.config import CellConfig
from lstmgen.pipeline.layout import CellShape, Weights
from lstmgen.pipeline.layout_graph import F32, I32, _Builder, _Cell, _step, initial_state
from lstmgen.tflite.records import ModelRecord, OperatorRecord, Options, TensorRecord
from lstmgen.tflite.schema import BuiltinOperator as Op

BOOL = np.dtype(np.bool_)


def _seq(b: _Builder, name: str, width: int, dtype: np.dtype = F32) -> int:
    """A time-major [T, B, width] tensor with a dynamic T (stored as 1)."""
    return b.tensor(name, (1, b.batch, width), dtype, shape_signature=(-1, b.batch, width))


def _seq_op(b: _Builder, code: int, inputs: Sequence[int], name: str, width: int, **kw: object) -> int:
    return b.op(code, inputs, name, (1, b.batch, width), signature=(-1, b.batch, width), **kw)


def _reverse_time(b: _Builder, x: int, name: str) -> int:
    width = b.tensors[x].shape[-1]
    return _seq_op(b, Op.REVERSE_V2, (x, b.ints([0])), name, width, options=Options("ReverseV2Options", ()))


class _Loop:
    """One direction's WHILE loop: its cond and body subgraphs, and the op in the main graph."""

    def __init__(self, b: _Builder, shape: CellShape, w: Weights, name: str, keep_sequence: bool) -> None:
        self.b, self.name, self.keep = b, name, keep_sequence
        self.body, self.cond = _Builder(b.c), _Builder(b.c)
        self.cell = _Cell(self.body, shape, w, float(b.c.forget_bias or 0.0), name, main=b)
        self.n, self.p = shape.num_units, shape.num_proj or shape.num_units
        self.gn = len(self.cell.gates) * self.n

    def _vars(self, g: _Builder, prefix: str) -> list[int]:
        """The loop variables as tensors of g: (i, T, h, c, projections[, sequence])."""
        out = [
            g.tensor(f"{prefix}/step", (), I32),
            g.tensor(f"{prefix}/steps", (), I32),
            g.tensor(f"{prefix}/h", (g.batch, self.p)),
            g.tensor(f"{prefix}/c", (g.batch, self.n)),
            _seq(g, f"{prefix}/projections", self.gn),
        ]
        return out + ([_seq(g, f"{prefix}/sequence", self.p)] if self.keep else [])

    def _body(self) -> ModelRecord:
        g, name = self.body, self.name
        i, steps, h, c, proj, *seq = inputs = self._vars(g, f"{name}/body")
        gather = Options("GatherOptions", (("Axis", 0), ("BatchDims", 0)))
        x_t = g.op(Op.GATHER, (proj, i), f"{name}/step_input", (g.batch, self.gn), options=gather)
        h_new, c_new = _step(g, self.cell, x_t, h, c, f"{name}/step")
        i_next = g.op(Op.ADD, (i, g.ints([1], scalar=True)), f"{name}/next_step", (), dtype=I32)
        outputs = [i_next, steps, h_new, c_new, proj]
        if self.keep:  # the sequence so far, one row longer
            row = g.reshape(h_new, (1, g.batch, self.p), f"{name}/step_output")
            opts = Options("ConcatenationOptions", (("Axis", 0), ("FusedActivationFunction", 0)))
            outputs.append(_seq_op(g, Op.CONCATENATION, (seq[0], row), f"{name}/sequence", self.p, options=opts))
        return _record(g, inputs, outputs, f"{name}/body")

    def _cond(self) -> ModelRecord:
        g = self.cond
        inputs = self._vars(g, f"{self.name}/cond")
        more = g.op(
            Op.LESS, (inputs[0], inputs[1]), f"{self.name}/more", (), dtype=BOOL, options=Options("LessOptions", ())
        )
        return _record(g, inputs, [more], f"{self.name}/cond")

    def run(self, x_tm: int, steps: int, backward: bool, subgraphs: list[ModelRecord]) -> tuple[int | None, int]:
        """The loop over the time-major input x_tm; (sequence [T, B, P] in processing order or None, final h)."""
        b, name = self.b, self.name
        proj = b.fc(x_tm, self.cell.w_x, self.cell.bias, f"{name}/input_projection", 1, signature=(-1, self.gn))
        proj = b.reshape(proj, (-1, b.batch, self.gn), f"{name}/projections")
        b.tensors[proj] = _dynamic(b, proj)
        if backward:
            proj = _reverse_time(b, proj, f"{name}/projections_reversed")
        h0, c0 = initial_state(b, self.cell.shape, name)  # state_io: model inputs, else zero constants
        init = [
            b.ints([0], scalar=True),
            steps,
            b.const(f"{name}/h0", np.zeros((b.batch, self.p), np.float32)) if h0 is None else h0,
            b.const(f"{name}/c0", np.zeros((b.batch, self.n), np.float32)) if c0 is None else c0,
            proj,
        ]
        if self.keep:  # a zero first row, dropped after the loop (a constant cannot have 0 rows)
            init.append(b.const(f"{name}/sequence0", np.zeros((1, b.batch, self.p), np.float32)))
        subgraphs += [self._cond(), self._body()]
        k = len(subgraphs) - 1  # the cond's subgraph index (the main one is 0)
        outs = [b.tensor(f"{name}/loop/{b.tensors[i].name.rsplit('/', 1)[-1]}", b.tensors[i].shape,
                         b.tensors[i].dtype, shape_signature=b.tensors[i].shape_signature) for i in init]  # fmt: skip
        opts = Options("WhileOptions", (("CondSubgraphIndex", k), ("BodySubgraphIndex", k + 1)))
        b.ops.append(OperatorRecord(Op.WHILE, 1, tuple(init), tuple(outs), opts))
        if h0 is not None and c0 is not None:
            b.states.append((h0, c0, outs[2], outs[3]))  # the loop's last h and c
        if not self.keep:
            return None, outs[2]
        begin, end, strides = b.ints([1, 0, 0]), b.ints([0, 0, 0]), b.ints([1, 1, 1])
        sliced = Options("StridedSliceOptions", (("EndMask", 0b111),))
        seq = _seq_op(b, Op.STRIDED_SLICE, (outs[5], begin, end, strides), f"{name}/sequence", self.p, options=sliced)
        return seq, outs[2]


def _dynamic(b: _Builder, index: int) -> TensorRecord:
    """A RESHAPE's [-1, ...] output as a tensor with a dynamic first axis (stored as 1)."""
    t = b.tensors[index]
    return replace(t, shape=(1, *t.shape[1:]), shape_signature=(-1, *t.shape[1:]))


def _record(g: _Builder, inputs: Sequence[int], outputs: Sequence[int], name: str) -> ModelRecord:
    return ModelRecord(tuple(g.tensors), tuple(g.ops), tuple(inputs), tuple(outputs), subgraph_name=name)


def _model_input(b: _Builder, width: int) -> tuple[int, int, int]:
    """The model input [B, T, I] (or [T, B, I]), its time-major view and the number of steps T (a scalar)."""
    cfg, n = b.c, b.batch
    shape, sig = ((1, n, width), (-1, n, width)) if cfg.time_major else ((n, 1, width), (n, -1, width))
    x = b.tensor(f"{cfg.name}/input", shape, shape_signature=sig)
    dims = b.op(
        Op.SHAPE, (x,), f"{cfg.name}/input_shape", (3,), dtype=I32, options=Options("ShapeOptions", (("OutType", 2),))
    )
    t_axis = 0 if cfg.time_major else 1
    pick = (dims, b.ints([t_axis]), b.ints([t_axis + 1]), b.ints([1]))
    steps = b.op(Op.STRIDED_SLICE, pick, f"{cfg.name}/steps", (), dtype=I32,
                 options=Options("StridedSliceOptions", (("ShrinkAxisMask", 1),)))  # fmt: skip
    if cfg.time_major:
        return x, x, steps
    if n == 1:
        tm = b.reshape(x, (-1, 1, width), f"{cfg.name}/input_time_major")
        b.tensors[tm] = _dynamic(b, tm)
        return x, tm, steps
    tm = _seq_op(b, Op.TRANSPOSE, (x, b.ints([1, 0, 2])), f"{cfg.name}/input_time_major", width)
    return x, tm, steps


def _model_output(b: _Builder, seq: int, name: str) -> int:
    """A time-major [T, B, W] sequence in the model's layout."""
    cfg, n = b.c, b.batch
    width = b.tensors[seq].shape[-1]
    if cfg.time_major:
        return seq
    if n == 1:
        return b.op(Op.RESHAPE, (seq, b.ints([1, -1, width])), name, (1, 1, width), signature=(1, -1, width))
    return b.op(Op.TRANSPOSE, (seq, b.ints([1, 0, 2])), name, (n, 1, width), signature=(n, -1, width))


def loop_graph(
    config: CellConfig, layers: Sequence[Sequence[Weights]], shapes: Sequence[Sequence[CellShape]]
) -> tuple[_Builder, int, int, list[ModelRecord]]:
    """The main graph's builder, its input and output, and the loops' subgraphs (cond, body per direction)."""
    b = _Builder(config)
    prefix = config.name
    x, cur, steps = _model_input(b, shapes[0][0].input_size)
    subgraphs: list[ModelRecord] = []
    finals: list[int] = []
    for k, (cells, cell_shapes) in enumerate(zip(layers, shapes, strict=True)):
        scope = f"{prefix}/layer_{k}" if len(layers) > 1 else prefix
        keep = k < len(layers) - 1 or config.return_sequences
        seqs = []
        for d, (w, shape) in enumerate(zip(cells, cell_shapes, strict=True)):
            cell_scope = f"{scope}/{'bw' if d else 'fw'}" if len(cells) > 1 else scope
            loop = _Loop(b, shape, w, cell_scope, keep)
            seq, h = loop.run(cur, steps, d == 1 or bool(config.go_backwards), subgraphs)
            finals.append(h)  # the last processed step (Keras' last output of each direction)
            if seq is not None:  # a backward direction's outputs at their positions
                seqs.append(_reverse_time(b, seq, f"{cell_scope}/sequence_in_order") if d == 1 else seq)
        if keep:
            opts = Options("ConcatenationOptions", (("Axis", 2), ("FusedActivationFunction", 0)))
            width = sum(b.tensors[s].shape[-1] for s in seqs)
            cur = (
                seqs[0]
                if len(seqs) == 1
                else _seq_op(b, Op.CONCATENATION, seqs, f"{scope}/concat", width, options=opts)
            )
    if config.return_sequences:
        y = _model_output(b, cur, f"{prefix}/output")
    else:
        lasts = finals[-len(layers[-1]) :]
        y = b.concat(lasts, 1, f"{prefix}/output") if len(lasts) > 1 else lasts[0]
    return b, x, y, subgraphs
