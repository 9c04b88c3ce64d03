"""Verify the graph form (--form graph): the whole graph evaluated op by op, and its output against the source.

There is no LSTM op to hand to the reference: graph.evaluate computes every op of the file (FULLY_CONNECTED,
ADD, LOGISTIC, ...) in float64 on the file's own constants, and the interpreter's output is compared with that
(float: atol + rtol|ref| or the source's float32 sensitivity; float16/dynamic-int8: tolerance.check's derived
tolerance). The source (the weight file in its framework's equations) judges what the file computes: its
output on the same input, and, when the cell clips, on inputs ten times larger, where the clips bind. The file
is run twice: with the builtin kernels only, and as LiteRT loads it by default (XNNPACK), the way users run it.
"""

from __future__ import annotations

from collections import Counter
from functools import partial
from typing import Any

import numpy as np

from lstmgen.check.against import Sample, quantized_vs_source
from lstmgen.check.graph_tensors import check_graph_tensors, clip_failures
from lstmgen.check.report import (
    Comparison,
    SourceReport,
    VerifyReport,
    compare,
    first_step_note,
    float_tolerance_text,
)
from lstmgen.check.source import SourceModel
from lstmgen.check.tolerance import check as qcheck_report
from lstmgen.check.tolerance import model_mode
from lstmgen.errors import ModelFileError
from lstmgen.modelinfo import LstmModel
from lstmgen.numerics.float_bound import FLOAT_RUNS, float_bound
from lstmgen.numerics.graph import constant_values, evaluate
from lstmgen.runtimes.interpreter import has_default_delegates, open_session
from lstmgen.tflite.tables import BUILTIN_OPERATOR_NAMES

STRESS = 10.0  # clipped cells are also checked on inputs this much larger, where |c| reaches the clip
MICRO_REFUSAL = (
    "{path} is lstmgen's graph form, which is for TFLite and its delegates; TensorFlow Lite Micro runs the fused "
    "op. Rebuild with --form fused to check it in TFLite Micro."
)


def scope_lines(lm: LstmModel) -> list[str]:
    """What the check covers: every op of the file, by kind."""
    graphs = (lm.model, *lm.model.subgraphs)  # with a WHILE loop's cond and body
    kinds = Counter(BUILTIN_OPERATOR_NAMES.get(o.opcode, str(o.opcode)) for g in graphs for o in g.operators)
    ops = ", ".join(f"{n} x{c}" for n, c in sorted(kinds.items(), key=lambda kv: -kv[1]))
    where = f" (in {len(graphs)} subgraphs: the loops run step by step)" if len(graphs) > 1 else ""
    return [
        f"checked: the graph form, all {kinds.total()} ops{where} ({ops}) evaluated op by op in float64 on the "
        "file's constants, against the interpreter's output (builtin kernels, and LiteRT's default XNNPACK "
        "delegate where the runtime has it)",
        "state: each invoke starts from the zero state and returns the output only (no state tensors); streaming "
        "needs the fused form",
    ]


def _fixed_shape(
    lm: LstmModel, x: np.ndarray | None, batch_size: int | None, time_steps: int | None, default_steps: int
) -> list[int]:
    """The graph form's batch is fixed, and so is its time axis unless it loops (WHILE): the given input,
    batch or time must match; a looping model is run over time_steps, x's steps or default_steps."""
    shape = [int(d) for d in lm.input.shape]
    t_axis, b_axis = (0, 1) if lm.time_major else (1, 0)
    if (lm.input.shape_signature or shape)[t_axis] == -1:
        shape[t_axis] = int(np.shape(x)[t_axis]) if x is not None and np.ndim(x) == 3 else time_steps or default_steps
    asked = {t_axis: time_steps, b_axis: batch_size}
    if x is not None:
        asked = dict(enumerate(np.shape(x)))
    for axis, want in asked.items():
        if want is not None and (axis >= len(shape) or want != shape[axis]):
            what = "input shape" if x is not None else {t_axis: "--time-steps", b_axis: "--batch-size"}[axis]
            raise ModelFileError(
                f"{lm.path}: the graph form fixes its input shape to {shape}; the {what} asked for differs "
                f"({list(np.shape(x)) if x is not None else want}). Verify it at its own shape, or rebuild it."
            )
    return shape


def _sessions(lm: LstmModel, runtime: str, shape: list[int]) -> list[tuple[Any, str]]:
    """The builtin kernels, and (LiteRT) the default delegates; (session, tag) pairs."""
    kw: dict[str, Any] = {
        "runtime": runtime,
        "input_index": lm.input_index,
        "output_index": lm.output_index,
        "states": [],
        "time_major": lm.time_major,
    }
    builtin = open_session(lm.path, **kw)
    out = [(builtin, "")]
    if has_default_delegates(builtin.runtime):
        out.append((open_session(lm.path, default_delegates=True, **kw), " [default delegates: XNNPACK]"))
    for sess, _ in out:  # a WHILE loop's time axis is dynamic
        sess.resize(tuple(shape), lm.input.shape_signature)
    return out


def verify_graph_form(
    lm: LstmModel,
    *,
    runtime: str,
    seed: int,
    atol: float,
    rtol: float,
    x: np.ndarray | None = None,
    batch_size: int | None = None,
    time_steps: int | None = None,
    micro: bool = False,
    source: SourceModel | None = None,
    max_error: float | None = None,
    float_runs: int | None = None,
    default_steps: int = 9,
) -> VerifyReport:
    """The graph-form model against its own graph evaluated op by op and (given) against the source
    (a WHILE-loop model over default_steps steps unless x or time_steps say otherwise)."""
    if micro or runtime == "micro":
        raise ModelFileError(MICRO_REFUSAL.format(path=lm.path))
    mode = model_mode(lm.model)
    shape = _fixed_shape(lm, x, batch_size, time_steps, default_steps)
    sessions = _sessions(lm, runtime, shape)
    first = sessions[0][0]
    report = VerifyReport(str(lm.path), first.runtime, first.version, shape, seed, atol, rtol, mode=mode)
    report.scope = scope_lines(lm)
    report.runtimes += [f"{first.runtime} {first.version}{tag}" for _, tag in sessions[1:]]
    rng = np.random.default_rng(seed)
    x_run = rng.standard_normal(shape).astype(np.float32) if x is None else np.asarray(x, np.float32)
    src = _source_report(source, mode, atol, rtol, max_error) if source is not None else None
    report.against_source = src
    if src is not None and source is not None:  # the constants and clips, whatever the outputs show
        src.tensors = check_graph_tensors(lm.model, source.cells_in_op_order())
        src.options += clip_failures(lm.model, source.stated.cell_clip, source.stated.proj_clip)
    inputs = [("zero state", x_run)]
    clipped = source is not None and (source.stated.cell_clip > 0 or source.stated.proj_clip > 0)
    if clipped and mode == "none":  # quantized errors grow with the input: the float build checks the clip ops
        inputs.append((f"inputs x{STRESS:g}, where the clips bind", (x_run * STRESS).astype(np.float32)))
    constants = constant_values(lm.model)
    lm.release_pages()
    for k, (label, xk) in enumerate(inputs):
        y_ref = evaluate(lm.model, {lm.input_index: xk}, constants=constants).values[lm.output_index]
        y_src = source.run(xk)[0] if source is not None else None
        bound = _bound(source, xk, y_src, lm, seed + k, FLOAT_RUNS if float_runs is None else float_runs, mode)
        report.float_bound = max(report.float_bound, float(np.max(bound, initial=0.0)))
        for sess, tag in sessions:
            sess.reset()
            y = sess.invoke(xk)
            _check_file(lm, report, label + tag, xk, y, y_ref, bound)
            if src is not None and y_src is not None:
                _check_source(lm, src, label + tag, (xk, y, y_src), bound, report)
    if mode != "none" and report.quantization:
        report.atol = max(max(o["tolerance"]["per_step"]) for q in report.quantization for o in q["outputs"])
        report.rtol = 0.0
    elif src is not None:
        src.tolerance = float_tolerance_text(atol, rtol, report.float_bound)
    return report


def _bound(
    source: SourceModel | None, x: np.ndarray, y_src: np.ndarray | None, lm: LstmModel, seed: int, runs: int, mode: str
) -> np.ndarray:
    """The source's float32 sensitivity per time step (float models with a source), else 0 (the fixed floor)."""
    if source is None or y_src is None or mode != "none" or runs == 0:
        return np.zeros(1)
    _, finals = source.run(x)
    t_axis = 0 if lm.time_major else 1
    return float_bound(partial(source.run, x, None), y_src, finals, t_axis, seed, runs).output


def _check_file(
    lm: LstmModel, report: VerifyReport, label: str, x: np.ndarray, y: np.ndarray, y_ref: np.ndarray, bound: np.ndarray
) -> None:
    """The interpreter's output against the file's own graph evaluated op by op."""
    if report.mode == "none":
        report.checks.append(compare(f"output ({label})", y, y_ref, report.atol, report.rtol, bound))
        return
    q = qcheck_report(lm.model, {lm.input_index: x}, {lm.output_index: y}, mode=report.mode, seed=report.seed)
    report.quantization.append(q)
    out = q["outputs"][0]
    rel = out["max_abs_error"] / max(float(np.abs(y).max(initial=0.0)), 1e-12)
    report.checks.append(
        Comparison(f"output ({report.mode}, {label})", out["max_abs_error"], rel, [out["worst_step"]], out["ok"])
    )


def _source_report(source: SourceModel, mode: str, atol: float, rtol: float, max_error: float | None) -> SourceReport:
    quantized = mode != "none"
    if quantized:
        gate = f"{max_error:g} (--max-error)" if max_error is not None else "derived from the file's quantization steps"
        tolerance = f"{mode} vs float source: {gate}"
    else:
        tolerance = f"{atol:g} + {rtol:g}·|ref|"
    return SourceReport(source.reference, quantized, tolerance, max_error=max_error)  # no op options to compare


def _check_source(
    lm: LstmModel,
    src: SourceReport,
    label: str,
    run: tuple[np.ndarray, np.ndarray, np.ndarray],
    bound: np.ndarray,
    report: VerifyReport,
) -> None:
    """The output against the source: float within atol + rtol|ref| (or the bound); quantized within the
    bound derived from the file's own quantization steps, or --max-error (check/against.py)."""
    x, y, y_src = run
    atol, rtol, mode, seed = report.atol, report.rtol, report.mode, report.seed
    t_axis = 0 if lm.time_major else 1
    if not src.quantized:
        src.checks.append(compare(f"output ({label})", y, y_src, atol, rtol, bound))
        if not src.structure:  # said once, from the first run that shows it
            first_step_note(src, y, y_src, t_axis, atol, rtol)
        return
    sample = Sample({lm.input_index: x}, y, y_src)
    quantized_vs_source(src, f"output vs float source ({label})", lm.model, lm.output_index, [sample],
                        mode=mode, time_axis=t_axis, seed=seed)  # fmt: skip
