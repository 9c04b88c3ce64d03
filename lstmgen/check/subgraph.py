"""The fused LSTM ops inside a larger graph (a converter's head around them), each checked in isolation.

verify_model's mode for such models: the interpreter runs the whole model with every intermediate
tensor kept; each LSTM op's own input tensor (as the interpreter computed it) feeds the references,
and the op's output and final states are compared with them. The ops lstmgen does not evaluate
(RESHAPE, FULLY_CONNECTED, SOFTMAX, ...) are not checked, and the report says so.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from lstmgen.check import state_range
from lstmgen.check.against import Sample, quantized_vs_source
from lstmgen.check.compare import float_triple, kernel_check, starts
from lstmgen.check.options import TestInput, decide_options, stress_scale
from lstmgen.check.report import (
    SourceReport,
    VerifyReport,
    first_step_note,
)
from lstmgen.check.source import SourceModel
from lstmgen.errors import ModelFileError
from lstmgen.modelinfo import LstmModel
from lstmgen.numerics.emulate import emulation_report
from lstmgen.numerics.float_bound import FLOAT_RUNS, Finals, FloatBound, Run, float_bound
from lstmgen.numerics.graph import LstmSpec, constant_values, evaluate
from lstmgen.numerics.reference import Jitter
from lstmgen.numerics.tables import INTEGER_MODES
from lstmgen.tflite.records import ModelRecord
from lstmgen.tflite.tables import BUILTIN_OPERATOR_NAMES


def op_alone(model: ModelRecord, op_index: int) -> ModelRecord:
    """A one-op graph of the model's op `op_index`: its data input in, its output out (same tensors)."""
    op = model.operators[op_index]
    return replace(model, operators=(op,), inputs=(op.inputs[0],), outputs=(op.outputs[0],))


def scope_lines(lm: LstmModel) -> list[str]:
    """What the check covers: which LSTM ops, on which tensors, and which ops it leaves alone."""
    names = [BUILTIN_OPERATOR_NAMES.get(o.opcode, str(o.opcode)) for o in lm.model.operators]
    t = lm.model.tensors
    checked = []
    for spec in lm.lstms:
        op = lm.model.operators[spec.op_index]
        x, y = op.inputs[0], op.outputs[0]
        fed = "the model input" if x in lm.model.inputs else "as the interpreter computed it"
        checked.append(
            f"UNIDIRECTIONAL_SEQUENCE_LSTM op {spec.op_index} in isolation (input: tensor {x} '{t[x].name}' "
            f"{list(t[x].shape)}, {fed}; output: tensor {y} '{t[y].name}')"
        )
    lstm_ops = {s.op_index for s in lm.lstms}
    others = [f"{name} (op {k})" for k, name in enumerate(names) if k not in lstm_ops]
    lines = [f"checked: {c}" for c in checked]
    if others:
        lines.append(f"NOT checked: the rest of the graph, {', '.join(others)}: its numbers are the interpreter's own")
    return lines


def check_possible(lm: LstmModel, mode: str, micro: bool, source: SourceModel | None) -> None:
    """Refuse what cannot be checked op by op: no intermediate tensors (TFLM, int16x8), or a source whose
    cells do not pair up with the LSTM ops."""
    if mode == "int16x8" or micro:
        raise ModelFileError(
            f"{lm.path}: the LSTM ops inside a larger graph are checked on the intermediate tensors a TFLite "
            "interpreter keeps (experimental_preserve_all_tensors); TensorFlow Lite Micro keeps none and TFLite's "
            "CPU kernel has no int16x8 LSTM. Check the LSTM alone: export its weights (lstmgen export MODEL --format "
            "tflite -o lstm.npz; --layer K picks one of several ops), build an LSTM-only model from them with the "
            "settings export prints (lstmgen build --weights lstm.npz --time-steps T --cell-clip C ...) and verify "
            "that model with --micro. lstmgen run MODEL --runtime micro runs the whole model in TFLM (unchecked)."
        )
    cells = source.cells_in_op_order() if source is not None else []
    if source is not None and len(cells) != len(lm.lstms):
        raise ModelFileError(
            f"{lm.path}: has {len(lm.lstms)} fused LSTM op(s) but the weights hold {len(cells)} cell(s); each op is "
            "checked against one source cell, in order. Pass --layer / --num-layers for the cells the model holds."
        )


@dataclass
class _OpRun:
    """One LSTM op's part of one interpreter run: its own input, output and final states, its start state."""

    spec: LstmSpec
    x: np.ndarray  # the op's input tensor as the interpreter computed it
    y: np.ndarray
    final: tuple[np.ndarray, np.ndarray]
    initial: tuple[np.ndarray | None, np.ndarray | None]
    tag: str
    label: str

    @property
    def time_axis(self) -> int:
        return 0 if self.spec.time_major else 1


def check_ops(
    lm: LstmModel,
    session: Any,
    x: np.ndarray,
    rng: np.random.Generator,
    report: VerifyReport,
    source: SourceModel | None,
    float_runs: int = FLOAT_RUNS,
    smoke: bool = False,
    stress: bool = False,
) -> None:
    """Each LSTM op against the file's reference (and the source's cell in its position), on its own
    input tensor as `session` (which keeps every tensor) computed it from x. Float ops also pass where
    the reference side's own float32 sensitivity (the source cell's, else the op's reference; from
    `float_runs` perturbed runs) exceeds atol + rtol|ref|, as whole models do."""
    src = report.against_source
    cells = source.cells_in_op_order() if source is not None else []
    h_tensors = [h for h, _ in lm.states()]

    def batch_of(k: int) -> int:
        return int(np.prod(session.detail(h_tensors[k])["shape"])) // lm.lstms[k].output_size

    begin = starts(lm.lstms, report.mode, batch_of, rng)
    constants = constant_values(lm.model)
    option_inputs: list[TestInput] = []
    for s, (label, initial) in enumerate(begin):
        session.reset(initial)
        session.invoke(x)
        finals = session.state()
        for k, spec in enumerate(lm.lstms):
            op = lm.model.operators[spec.op_index]
            run = _OpRun(
                spec,
                session.tensor(op.inputs[0]),
                session.tensor(op.outputs[0]),
                finals[k],
                initial.get(k, (None, None)),
                f"LSTM op {spec.op_index} ",
                label,
            )
            cell = _cell_run(cells[k], run) if cells else None
            if cells and not s:
                option_inputs += _option_inputs(k, run, cells[k], stress)
            if report.mode != "none":
                sub, op = op_alone(lm.model, spec.op_index), lm.model.operators[spec.op_index]
                name = f"{run.tag}output ({report.mode})"
                kernel_check(report, sub, {op.inputs[0]: run.x}, op.outputs[0], run.y, name)
                if report.mode in INTEGER_MODES:  # the op alone, bit for bit against its kernel's emulation
                    emulated = emulation_report(sub, report.runtime, run.x, run.y, finals=[run.final])
                    report.emulation.append(emulated | {"op": run.spec.op_index})
                if src is not None and cell is not None:
                    traces: state_range.Traces = {}
                    y_src = _cell_run(state_range.traced_cell(cells[k], 0, traces), run)(None)[0]
                    sample = Sample({op.inputs[0]: run.x}, run.y, y_src)
                    name = f"{run.tag}output vs float source"
                    quantized_vs_source(
                        src,
                        name,
                        sub,
                        op.outputs[0],
                        [sample],
                        mode=report.mode,
                        time_axis=run.time_axis,
                        seed=report.seed,
                        smoke=smoke,
                    )
                    if not s:  # from the zero state: where the source's cell state goes, not where it was put
                        _judge_state_range(src, sub, run, traces)
                continue
            seed = report.seed + s * len(lm.lstms) + k
            source_ref = cell(None) if cell is not None else None
            bound = _check_float_op(lm, run, report, constants, cell, source_ref, seed, float_runs)
            if src is not None and source_ref is not None:
                _float_against_cell(src, run, source_ref, bound, report.atol, report.rtol)
    if src is not None and source is not None:
        ops = [spec.op_index for spec in lm.lstms]
        decide_options(lm.model, ops, src, source, option_inputs, report.seed)


def _check_float_op(
    lm: LstmModel,
    run: _OpRun,
    report: VerifyReport,
    constants: dict[int, np.ndarray],
    cell: Run | None,
    source_ref: tuple[np.ndarray, Finals] | None,
    seed: int,
    runs: int,
) -> FloatBound:
    """Output, h and c against the op's reference, within atol + rtol|ref| or the derived float32 bound
    (from the source cell when there is one, else from the op's reference); returns the bound."""
    op = lm.model.operators[run.spec.op_index]
    sub = op_alone(lm.model, run.spec.op_index)

    def reference(jitter: Jitter | None) -> tuple[np.ndarray, Finals]:
        ev = evaluate(sub, {op.inputs[0]: run.x}, states={0: run.initial}, constants=constants, jitter=jitter)
        return ev.values[op.outputs[0]], [ev.final_states[0]]

    y_ref, finals_ref = reference(None)
    if cell is not None and source_ref is not None:
        bound = float_bound(cell, *source_ref, run.time_axis, seed, runs)
    else:
        bound = float_bound(reference, y_ref, finals_ref, run.time_axis, seed, runs)
    report.float_bound = max(report.float_bound, bound.largest)
    finals = [(run.final, finals_ref[0])]
    float_triple(report.checks, run.label, (run.y, y_ref), finals, bound, report.atol, report.rtol, prefix=run.tag)
    return bound


def _judge_state_range(src: SourceReport, sub: ModelRecord, run: _OpRun, traces: state_range.Traces) -> None:
    """The op's integer states against its source cell's reach on the op's input (check/state_range.py): named
    as the cause of a failure against the source."""
    if src.checks[-1].passed:  # the cause of a failure only (a pass is not changed by a saturation)
        return
    found = state_range.saturations(state_range.state_limits(sub, [0]), traces, [run.x.shape[run.time_axis]])
    src.saturated += [s.describe(f"LSTM op {run.spec.op_index}'s", "the op's input") for s in found]
    src.saturated += [state_range.ADVICE] if found else []


def _cell_run(cell: Any, run: _OpRun) -> Run:
    """The source cell on the op's own input, in the op's order and layout (a backward direction's reversal
    is the graph's): a reference run, with or without float32-sized perturbations."""
    seq = np.asarray(run.x, np.float64)
    seq = seq if run.spec.time_major else seq.transpose(1, 0, 2)

    def cell_run(jitter: Jitter | None) -> tuple[np.ndarray, Finals]:
        y_seq, h, c = cell.run(seq, *run.initial, jitter)
        return (y_seq if run.spec.time_major else y_seq.transpose(1, 0, 2)), [(h, c)]

    return cell_run


def _option_inputs(k: int, run: _OpRun, cell: Any, stress: bool) -> list[TestInput]:
    """The option check's inputs for op k: its own input from the zero state (and, for the default test
    set, that input scaled until the gates saturate), run through the k-th cell of a source variant."""

    def through(x: np.ndarray) -> Any:
        seq = np.asarray(x, np.float64)
        seq = seq if run.spec.time_major else seq.transpose(1, 0, 2)

        def op_run(sm: SourceModel, jitter: Jitter | None) -> tuple[np.ndarray, Finals]:
            y, h, c = sm.cells_in_op_order()[k].run(seq, None, None, jitter)
            return (y if run.spec.time_major else y.transpose(1, 0, 2)), [(h, c)]

        return op_run

    where = f"LSTM op {run.spec.op_index}'s input"
    inputs = [TestInput(where, through(run.x), run.time_axis)]
    if stress:
        scale = stress_scale(np.asarray(run.x, np.float64), cell)
        inputs.append(TestInput(f"{where} x{scale:.3g} (stress)", through(run.x * scale), run.time_axis))
    return inputs


def _float_against_cell(
    src: SourceReport,
    run: _OpRun,
    reference: tuple[np.ndarray, Finals],
    bound: FloatBound,
    atol: float,
    rtol: float,
) -> None:
    """The op against its source cell: output, h and c within atol + rtol|ref| or the derived bound."""
    y_ref, ((h, c),) = reference
    tag = run.tag
    n = len(src.checks)
    float_triple(src.checks, run.label, (run.y, y_ref), [(run.final, (h, c))], bound, atol, rtol, prefix=tag)
    if all(v is None for v in run.initial) and not src.checks[n].passed:  # from the zero state
        first_step_note(src, run.y, y_ref, run.time_axis, atol, rtol)
    reach = float(np.abs(c).max(initial=0.0))
    why = (
        f"{tag}c: the source's cell state reaches |c| = {reach:.3g}, beyond the file's cell_clip of "
        f"{run.spec.cell_clip:g} (TF's converter writes 10), which clips it there"
    )
    if not src.checks[-1].passed and 0 < run.spec.cell_clip < reach and why not in src.structure:
        src.structure.append(why)
