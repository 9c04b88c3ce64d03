"""The fused LSTM ops inside a larger graph (a converter's head around them), each checked in isolation.

verify_model's mode for such models: the interpreter runs the whole model with every intermediate
tensor kept; each LSTM op's own input tensor (as the interpreter computed it) feeds the references,
and the op's output and final states are compared with them. The ops lstmgen does not evaluate
(RESHAPE, FULLY_CONNECTED, SOFTMAX, ...) are not checked, and the report says so.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from lstmgen.check.graph import LstmSpec, constant_values, evaluate
from lstmgen.check.report import GROSS_ERROR_FRACTION, Comparison, SourceReport, VerifyReport, compare
from lstmgen.check.source import SourceModel
from lstmgen.check.tolerance import check as qcheck_report
from lstmgen.errors import ModelFileError
from lstmgen.modelinfo import LstmModel
from lstmgen.tflite.flatbuf import ModelRecord
from lstmgen.tflite.tables import BUILTIN_OPERATOR_NAMES

States = dict[int, tuple[np.ndarray | None, np.ndarray | None]]


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
            "CPU kernel has no int16x8 LSTM. Check the LSTM alone: export it (lstmgen export) or build it with "
            "lstmgen build, then verify that file."
        )
    cells = source.cells_in_op_order() if source is not None else []
    if source is not None and len(cells) != len(lm.lstms):
        raise ModelFileError(
            f"{lm.path}: has {len(lm.lstms)} fused LSTM op(s) but the weights hold {len(cells)} cell(s); each op is "
            "checked against one source cell, in order. Pass --layer / --num-layers for the cells the model holds."
        )


def check_ops(
    lm: LstmModel,
    session: Any,
    x: np.ndarray,
    rng: np.random.Generator,
    report: VerifyReport,
    source: SourceModel | None,
    seed: int,
) -> None:
    """Each LSTM op against the file's reference (and the source's cell in its position), on its own
    input tensor as `session` (which keeps every tensor) computed it from x."""
    mode, atol, rtol, src = report.mode, report.atol, report.rtol, report.against_source
    cells = source.cells_in_op_order() if source is not None else []
    starts: list[tuple[str, States]] = [("zero state", {})]
    if mode == "none":  # a random initial state also proves the state tensors sit in the right slots
        starts.append(("random initial state", _random_states(lm, session, rng)))
    constants = constant_values(lm.model)
    for label, initial in starts:
        session.reset(initial)
        session.invoke(x)
        finals = session.state()
        for k, spec in enumerate(lm.lstms):
            op = lm.model.operators[spec.op_index]
            x_k, y_k = session.tensor(op.inputs[0]), session.tensor(op.outputs[0])
            tag = f"LSTM op {spec.op_index} "
            sub = op_alone(lm.model, spec.op_index)
            h0c0 = initial.get(k, (None, None))
            if mode != "none":
                q = qcheck_report(sub, {op.inputs[0]: x_k}, {op.outputs[0]: y_k}, mode=mode, seed=seed)
                out = q["outputs"][0]
                report.quantization.append(q)
                rel = out["max_abs_error"] / max(float(np.abs(y_k).max(initial=0.0)), 1e-12)
                report.checks.append(
                    Comparison(f"{tag}output ({mode})", out["max_abs_error"], rel, [out["worst_step"]], out["ok"])
                )
            else:
                ev = evaluate(sub, {op.inputs[0]: x_k}, states={0: h0c0}, constants=constants)
                h, c = finals[k]
                h_ref, c_ref = ev.final_states[0]
                report.checks.append(compare(f"{tag}output ({label})", y_k, ev.values[op.outputs[0]], atol, rtol))
                report.checks.append(compare(f"{tag}h ({label})", h, h_ref, atol, rtol))
                report.checks.append(compare(f"{tag}c ({label})", c, c_ref, atol, rtol))
            if src is not None:
                _against_cell(src, cells[k], spec, x_k, y_k, finals[k], h0c0, f"{tag}", label, atol, rtol)
    if mode != "none":
        report.atol = max(max(o["tolerance"]["per_step"]) for q in report.quantization for o in q["outputs"])
        report.rtol = 0.0


def _random_states(lm: LstmModel, session: Any, rng: np.random.Generator) -> States:
    states: States = {}
    for k, (spec, (h_idx, _)) in enumerate(zip(lm.lstms, lm.states(), strict=True)):
        batch = int(np.prod(session.detail(h_idx)["shape"])) // spec.output_size
        h0 = rng.uniform(-1, 1, (batch, spec.output_size)).astype(np.float32)
        c0 = rng.uniform(-1, 1, (batch, spec.num_units)).astype(np.float32)
        states[k] = (h0, c0)
    return states


def _against_cell(
    src: SourceReport,
    cell: Any,
    spec: LstmSpec,
    x_k: np.ndarray,
    y_k: np.ndarray,
    final: tuple[np.ndarray, np.ndarray],
    h0c0: tuple[np.ndarray | None, np.ndarray | None],
    tag: str,
    label: str,
    atol: float,
    rtol: float,
) -> None:
    """One source cell on the op's own input, in the op's order (a backward direction's reversal is the graph's)."""
    seq = np.asarray(x_k, np.float64)
    seq = seq if spec.time_major else seq.transpose(1, 0, 2)
    y_seq, h, c = cell.run(seq, *h0c0)
    y_ref = y_seq if spec.time_major else y_seq.transpose(1, 0, 2)
    if not src.quantized:
        src.checks.append(compare(f"{tag}output ({label})", y_k, y_ref, atol, rtol))
        src.checks.append(compare(f"{tag}h ({label})", final[0], h, atol, rtol))
        src.checks.append(compare(f"{tag}c ({label})", final[1], c, atol, rtol))
        reach = float(np.abs(c).max(initial=0.0))
        why = (
            f"{tag}c: the source's cell state reaches |c| = {reach:.3g}, beyond the file's cell_clip of "
            f"{spec.cell_clip:g} (TF's converter writes 10), which clips it there"
        )
        if not src.checks[-1].passed and 0 < spec.cell_clip < reach and why not in src.structure:
            src.structure.append(why)
        return
    # Quantized: what quantization cost, gated like the whole-model check (--max-error, else a gross bound).
    err = np.abs(np.asarray(y_k, np.float64).reshape(y_ref.shape) - y_ref)
    bound = src.max_error if src.max_error is not None else GROSS_ERROR_FRACTION * float(np.abs(y_ref).max(initial=0.0))
    per_step = (err if spec.time_major else err.transpose(1, 0, 2)).reshape(err.shape[0 if spec.time_major else 1], -1)
    src.worst_time_step = int(np.argmax(per_step.max(axis=1, initial=0.0))) if per_step.size else None
    top = float(err.max(initial=0.0))
    worst = [int(i) for i in np.unravel_index(int(np.argmax(err)), err.shape)] if err.size else []
    rel = top / max(float(np.abs(y_ref).max(initial=0.0)), 1e-12)
    src.checks.append(Comparison(f"{tag}output vs float source", top, rel, worst, top <= bound))
