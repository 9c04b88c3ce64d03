"""Verify the graph form (--form graph): the whole graph evaluated op by op, and its output against the source.

There is no LSTM op to hand to the reference: graph.evaluate computes every op of the file (FULLY_CONNECTED,
ADD, LOGISTIC, ...) in float64 on the file's own constants, and the interpreter's output is compared with that
(float: atol + rtol|ref| or the source's float32 sensitivity; float16/dynamic-int8: tolerance.check's derived
tolerance). The source (the weight file in its framework's equations) judges what the file computes: its
output on the same input, and, when the cell clips, on inputs ten times larger, where the clips bind. The file
is run twice: with the builtin kernels only, and as LiteRT loads it by default (XNNPACK), the way users run it.
Built with --state-io (each cell's initial h/c model inputs, final h/c outputs), it is also run from a random
initial state the checker draws and feeds, the same arrays, to the source's cells; every final h and c is
compared as the output is.
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
from lstmgen.check.source.model import States
from lstmgen.check.tolerance import check as qcheck_report
from lstmgen.check.tolerance import model_mode
from lstmgen.errors import ModelFileError
from lstmgen.modelinfo import LstmModel
from lstmgen.numerics.float_bound import FLOAT_RUNS, FloatBound, float_bound
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
        _STATE_SCOPE[bool(lm.state_io)],
    ]


_STATE_SCOPE = {
    False: "state: each invoke starts from the zero state and returns the output only (built without --state-io); "
    "streaming needs --state-io or the fused form",
    True: "state: each cell's initial h and c are model inputs and its final h and c model outputs (--state-io): "
    "run from the zero and a random initial state (the same states fed to the source), the final states compared "
    "as the output",
}


def _fixed_shape(
    lm: LstmModel, x: np.ndarray | None, batch_size: int | None, time_steps: int | None, default_steps: int
) -> list[int]:
    """The graph form's batch is fixed, and so is its time axis unless it loops (WHILE): the given input,
    batch or time must match; a looping model is run over time_steps, x's steps or default_steps."""
    shape = [int(d) for d in lm.input.shape]
    t_axis, b_axis = (0, 1) if lm.time_major else (1, 0)
    _check_time_axis(lm, t_axis)
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


def _check_time_axis(lm: LstmModel, t_axis: int) -> None:
    """The metadata's layout and time_steps must be the input's: a WHILE loop's one free axis is time, an unrolled
    file's time axis has time_steps. Else a batch-major file labelled time-major was run over 1 step and passed."""
    sig = list(lm.input.shape_signature or lm.input.shape)
    steps = lm.metadata.get("hyperparameters", {}).get("time_steps")
    free = [axis for axis, d in enumerate(sig) if d == -1]
    if (free == [t_axis]) if steps is None else (not free and len(sig) == 3 and sig[t_axis] == steps):
        return
    layout = "time-major" if lm.time_major else "batch-major"
    raise ModelFileError(
        f"{lm.path}: its metadata says {layout} with time_steps {steps}, but its input's shape is {sig} (-1: free): "
        "the time axis the metadata names is not the one the graph loops over or unrolls. Rebuild the file."
    )


def _sessions(lm: LstmModel, runtime: str, shape: list[int]) -> list[tuple[Any, str]]:
    """The builtin kernels, and (LiteRT) the default delegates; (session, tag) pairs."""
    kw: dict[str, Any] = {
        "runtime": runtime,
        "input_index": lm.input_index,
        "output_index": lm.output_index,
        "states": [],
        "state_io": lm.state_io,
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
        cell_steps = len(source.cells_in_op_order()) * (1 if lm.model.subgraphs else shape[0 if lm.time_major else 1])
        src.options += clip_failures(lm.model, source.stated.cell_clip, source.stated.proj_clip, cell_steps)
    runs = [(label, x_run, initial) for label, initial in _starts(lm, shape, rng)]
    clipped = source is not None and (source.stated.cell_clip > 0 or source.stated.proj_clip > 0)
    if clipped and mode == "none":  # quantized errors grow with the input: the float build checks the clip ops
        runs.append((f"inputs x{STRESS:g}, where the clips bind", (x_run * STRESS).astype(np.float32), {}))
    constants = constant_values(lm.model)
    lm.release_pages()
    for k, (label, xk, initial) in enumerate(runs):
        feeds = _feeds(lm, xk, initial)
        ev = evaluate(lm.model, feeds, constants=constants).values
        refs = [ev[i] for i in lm.model.outputs]
        del ev
        y_src, finals_src = source.run(xk, initial) if source is not None else (None, [])
        runs_k = FLOAT_RUNS if float_runs is None else float_runs
        bound = _bound(source, xk, initial, (y_src, finals_src), lm, seed + k, runs_k, mode)
        compared = _bounds(bound, 1 + 2 * len(lm.state_io))
        report.float_bound = max(report.float_bound, *(float(np.max(b, initial=0.0)) for b in compared))
        for sess, tag in sessions:
            sess.reset(initial)
            got = [sess.invoke(xk), *(v for hc in sess.state() for v in hc)]
            _check_file(lm, report, label + tag, feeds, got, refs, bound)
            if src is not None and y_src is not None:
                want = [y_src, *(v for hc in finals_src for v in hc)][: len(got)]  # without state I/O: y only
                _check_source(lm, src, label + tag, (feeds, got, want), bound, report)
    if mode != "none" and report.quantization:
        report.atol = max(max(o["tolerance"]["per_step"]) for q in report.quantization for o in q["outputs"])
        report.rtol = 0.0
    elif src is not None:
        src.tolerance = float_tolerance_text(atol, rtol, report.float_bound)
    return report


def _starts(lm: LstmModel, shape: list[int], rng: np.random.Generator) -> list[tuple[str, States]]:
    """The zero state; with state I/O (--state-io) also a random (h, c) in [-1, 1] per cell, fed to the file's
    state inputs and, the same arrays, to the source's cells: wrongly wired state inputs or outputs move the output
    and the final states."""
    if not lm.state_io:
        return [("zero state", {})]
    batch = shape[1 if lm.time_major else 0]
    states = {
        k: (rng.uniform(-1, 1, (batch, h)).astype(np.float32), rng.uniform(-1, 1, (batch, c)).astype(np.float32))
        for k, (h, c) in enumerate(lm.state_sizes())
    }
    return [("zero state", {}), ("random initial state", states)]


def _feeds(lm: LstmModel, x: np.ndarray, initial: States) -> dict[int, np.ndarray]:
    """The model input and (state I/O) every cell's initial h and c (zero where `initial` has none)."""
    feeds = {lm.input_index: x}
    for k, (h_in, c_in, _, _) in enumerate(lm.state_io):
        for index, value in zip((h_in, c_in), initial.get(k, (None, None)), strict=True):
            shape = lm.model.tensors[index].shape
            feeds[index] = np.zeros(shape, np.float32) if value is None else np.reshape(value, shape)
    return feeds


def _names(lm: LstmModel, label: str) -> list[str]:
    """The compared outputs' names: the output, then (state I/O) each cell's final h and c."""
    cells = [f" cell {k}" if len(lm.state_io) > 1 else "" for k in range(len(lm.state_io))]
    return [f"output ({label})", *(f"final {v}{cell} ({label})" for cell in cells for v in "hc")]


def _bound(
    source: SourceModel | None,
    x: np.ndarray,
    initial: States,
    ref: tuple[np.ndarray | None, list[tuple[np.ndarray, np.ndarray]]],
    lm: LstmModel,
    seed: int,
    runs: int,
    mode: str,
) -> FloatBound:
    """The source's float32 sensitivity per time step and final state (float models with a source), else 0."""
    y_src, finals = ref
    if source is None or y_src is None or mode != "none" or runs == 0:
        return FloatBound(np.zeros(1), [(0.0, 0.0)] * len(finals))
    t_axis = 0 if lm.time_major else 1
    return float_bound(partial(source.run, x, initial), y_src, finals, t_axis, seed, runs)


def _bounds(bound: FloatBound, n: int) -> list[np.ndarray | float]:
    """Per compared output (the output, then each final h and c): its float32 bound."""
    finals: list[np.ndarray | float] = [v for hc in bound.finals for v in hc]
    return ([bound.output, *finals] + [0.0] * n)[:n]


def _check_file(
    lm: LstmModel,
    report: VerifyReport,
    label: str,
    feeds: dict[int, np.ndarray],
    got: list[np.ndarray],
    refs: list[np.ndarray],
    bound: FloatBound,
) -> None:
    """The interpreter's outputs (the output, final states) against the file's own graph evaluated op by op."""
    names = _names(lm, label)
    if report.mode == "none":
        for name, y, ref, b in zip(names, got, refs, _bounds(bound, len(got)), strict=True):
            report.checks.append(compare(name, y, ref, report.atol, report.rtol, b))
        return
    actual = dict(zip(lm.model.outputs, got, strict=True))
    q = qcheck_report(lm.model, feeds, actual, mode=report.mode, seed=report.seed)
    report.quantization.append(q)
    for name, out, y in zip(names, q["outputs"], got, strict=True):
        rel = out["max_abs_error"] / max(float(np.abs(y).max(initial=0.0)), 1e-12)
        name = name.replace("(", f"({report.mode}, ", 1)
        report.checks.append(Comparison(name, out["max_abs_error"], rel, [out["worst_step"]], out["ok"]))


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
    run: tuple[dict[int, np.ndarray], list[np.ndarray], list[np.ndarray]],
    bound: FloatBound,
    report: VerifyReport,
) -> None:
    """The outputs (the output, final states) against the source: float within atol + rtol|ref| (or the bound);
    quantized within the bound derived from the file's own quantization steps, or --max-error (check/against.py)."""
    feeds, got, want = run
    atol, rtol, mode, seed = report.atol, report.rtol, report.mode, report.seed
    t_axis = 0 if lm.time_major else 1
    names = _names(lm, label)
    if not src.quantized:
        for name, y, y_src, b in zip(names, got, want, _bounds(bound, len(got)), strict=True):
            src.checks.append(compare(name, y, y_src, atol, rtol, b))
        if not src.structure:  # said once, from the first run that shows it
            first_step_note(src, got[0], want[0], t_axis, atol, rtol)
        return
    for name, out, y, y_src in zip(names, lm.model.outputs, got, want, strict=True):
        sample = Sample(feeds, y, y_src)
        quantized_vs_source(src, name.replace("(", "vs float source (", 1), lm.model, out, [sample],
                            mode=mode, time_axis=t_axis, seed=seed)  # fmt: skip
