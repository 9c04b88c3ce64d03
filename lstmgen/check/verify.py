"""Check a model file: the TFLite interpreter against the NumPy reference on seeded random input."""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from lstmgen.check import subgraph
from lstmgen.check.report import (
    GROSS_ERROR_FRACTION,
    Comparison,
    SourceReport,
    VerifyReport,
    compare,
    first_step_note,
    float_tolerance_text,
)
from lstmgen.check.source import SourceModel
from lstmgen.check.source.structure import differences, size_mismatches
from lstmgen.check.tolerance import RUNS, model_mode, output_scale
from lstmgen.check.tolerance import check as qcheck_report
from lstmgen.errors import ModelFileError
from lstmgen.modelinfo import LstmModel, read_lstm_model
from lstmgen.numerics import affine
from lstmgen.numerics.emulate import emulation_report
from lstmgen.numerics.float_bound import FLOAT_RUNS, Finals, FloatBound, float_bound
from lstmgen.numerics.graph import constant_values, evaluate, quantize_real
from lstmgen.numerics.reference import Jitter
from lstmgen.numerics.tables import FLOAT_ATOL, FLOAT_RTOL
from lstmgen.progress import expect
from lstmgen.runtimes import EMULATE_CHOICES
from lstmgen.runtimes.interpreter import open_session
from lstmgen.tflite.schema import BuiltinOperator

DEFAULT_TIME_STEPS = 9
MAX_SOURCE_SAMPLES = 32  # inputs a quantized model is compared with the float source on


EXACT_MODES = ("int8", "int16x8")  # checked bit for bit against numerics.emulate (hybrid: Eigen floats, no)
MICRO = "micro"  # runtime name that selects TensorFlow Lite Micro (run --runtime micro, int16x8 models)


def open_model_session(lm: LstmModel, runtime: str) -> Any:
    """A Session (TFLite) or MicroSession (runtime 'micro'; also 'auto' for int16x8 models, which only TFLM runs).
    LSTM ops inside a larger graph: a Session that keeps every intermediate tensor (their inputs and outputs)."""
    if runtime in EMULATE_CHOICES:  # no interpreter: the bit-exact emulation of an integer kernel
        from lstmgen.runtimes.emulated import open_emulated_session

        return open_emulated_session(lm.model, runtime)
    if runtime == MICRO or (runtime == "auto" and model_mode(lm.model) == "int16x8"):
        from lstmgen.runtimes.micro import open_micro_session

        return open_micro_session(lm.path)
    if model_mode(lm.model) == "int16x8":
        raise ModelFileError(
            f"{lm.path} is an int16x8 model (int16 activations, UNIDIRECTIONAL_SEQUENCE_LSTM version 5), which "
            f"the {runtime} interpreter cannot run: TFLite's CPU kernel has no 16x8 path and registers versions "
            "1-4 only. Use --runtime micro (TensorFlow Lite Micro, pip install tflite-micro)."
        )
    return open_session(
        lm.path,
        runtime=runtime,
        input_index=lm.input_index,
        output_index=lm.output_index,
        states=lm.states(),
        time_major=lm.time_major,
        preserve_all_tensors=bool(lm.head),
    )


def input_shape_for(lm: LstmModel, batch_size: int | None, time_steps: int | None) -> list[int]:
    """The input shape to verify with: the model's, with dynamic (or requested) batch/time filled in."""
    shape = list(lm.input.shape)
    sig = list(lm.input.shape_signature or lm.input.shape)
    t_axis, b_axis = (0, 1) if lm.time_major else (1, 0)
    if sig[t_axis] == -1 or time_steps is not None:
        shape[t_axis] = time_steps or DEFAULT_TIME_STEPS
    if batch_size is not None:
        shape[b_axis] = batch_size
    elif sig[b_axis] == -1:
        shape[b_axis] += 2  # a dynamic batch is checked at a size other than the stored one: it must resize
    return shape


def _input_grid(lm: LstmModel) -> Any:
    """The tensor whose quantization the input goes through: the input itself, or a leading QUANTIZE's output."""
    if lm.input.quantization is not None and lm.input.dtype.kind == "i":
        return lm.input
    for op in lm.model.operators:
        if op.inputs and op.inputs[0] == lm.input_index and op.opcode == BuiltinOperator.QUANTIZE:
            return lm.model.tensors[op.outputs[0]]
    return None


def draw_input(lm: LstmModel, shape: list[int], rng: np.random.Generator) -> np.ndarray:
    """Seeded test input. For an int8 input: normal over the calibrated range (the input grid spans it,
    about ±3 sigma of the calibration data), so the test stays where int8 was calibrated to work."""
    grid = _input_grid(lm)
    if grid is None:
        return rng.standard_normal(shape).astype(np.float32)
    lo, hi = affine.real_range(grid.dtype, grid.quantization.scale[0], grid.quantization.zero_point[0])
    x = rng.normal((lo + hi) / 2, (hi - lo) / 6, shape)
    return quantize_real(x, grid).astype(np.float32)  # both sides see exactly the values on the grid


def _verify_shape(lm: LstmModel, x: np.ndarray | None, batch_size: int | None, time_steps: int | None) -> list[int]:
    """The shape verified: x's; or, for a model with a head (which often pins the sizes with a RESHAPE)
    given no batch or time size to use, the model's as converted; else input_shape_for's."""
    if x is not None:
        return list(x.shape)
    if lm.head and ((batch_size is None and time_steps is None) or len(lm.input.shape) != 3):
        return list(lm.input.shape)
    return input_shape_for(lm, batch_size, time_steps)


def verify_model(
    path: str | Path,
    *,
    runtime: str = "auto",
    seed: int = 0,
    batch_size: int | None = None,
    time_steps: int | None = None,
    atol: float = FLOAT_ATOL,
    rtol: float = FLOAT_RTOL,
    x: np.ndarray | None = None,
    micro: bool = False,
    source: SourceModel | None = None,
    max_error: float | None = None,
    strict_structure: bool = False,
    source_inputs: np.ndarray | None = None,
    float_runs: int | None = None,
) -> VerifyReport:
    """Run the model in the interpreter and the reference on the same seeded input and compare.

    Float models: output, h and c from the zero state and from a random initial state per LSTM op
    (which also proves that the state tensors are wired to the right slots), within atol + rtol|ref|.
    Quantized models: the output within the tolerance qcheck derives for the mode (see README), with
    per-time-step errors. micro=True also runs the model in TensorFlow Lite Micro.

    With `source` (the weight file's own reference), the same runs are also compared with it:
    float models within atol + rtol|ref|, quantized ones within `max_error` (else a gross-error bound),
    and the file's LSTM options and inputs are compared with what was asked (errors if strict_structure).
    Quantized models are compared with the source on x and on further inputs from `source_inputs`
    ([n, *input shape], e.g. the calibration data; up to MAX_SOURCE_SAMPLES in all).
    Float models also pass where the reference's own float32 sensitivity (float_bound, from
    `float_runs` perturbed runs, default FLOAT_RUNS; 0 = the fixed tolerance alone) exceeds atol + rtol|ref|.

    Fused LSTM ops inside a larger graph (a converter's head around them; not with strict_structure,
    which judges lstmgen's own builds) are checked each in isolation, on its own input tensor as the
    interpreter computed it (check/subgraph.py).
    """
    try:
        lm = read_lstm_model(path, head_ok=not strict_structure)
    except ModelFileError as exc:
        if not strict_structure or source is None:
            raise
        # Our own build wrote a file lstmgen's model checks refuse: a bug in lstmgen, so a failed verification.
        bad = SourceReport(source.reference, False, "structure", structure=[str(exc)], structure_is_error=True)
        shape = list(x.shape) if x is not None else []
        return VerifyReport(str(path), "none", "", shape, seed, atol, rtol, against_source=bad)
    mode = model_mode(lm.model)
    n_runs = FLOAT_RUNS if float_runs is None else float_runs
    if lm.head:
        subgraph.check_possible(lm, mode, runtime == MICRO or micro, source)
    src = _source_report(lm, source, mode, atol, rtol, max_error, strict_structure) if source else None
    if src is not None and (src.incompatible or (strict_structure and src.structure)):
        # Our own build wired the ops differently from what was asked: that is the verdict, before an
        # interpreter refuses the file (or runs it) for reasons that would only obscure it.
        shape = list(x.shape) if x is not None else list(lm.input.shape)
        return VerifyReport(str(path), "none", "", shape, seed, atol, rtol, mode=mode, against_source=src)
    session = open_model_session(lm, runtime)
    shape = _verify_shape(lm, x, batch_size, time_steps)
    if not lm.head:
        # progress counts reference steps: per runtime, 2 evaluations (float) or qcheck's 1 + RUNS noisy ones
        # (float models without a source: + FLOAT_RUNS perturbed evaluations per start state, once)
        runs = (1 + int(micro)) * (2 if mode == "none" else 1 + RUNS)
        runs += 2 * n_runs if mode == "none" and source is None else 0
        expect(runs * len(lm.lstms) * shape[0 if lm.time_major else 1])
    session.resize(tuple(shape), tuple(lm.input.shape_signature or lm.input.shape))
    rng = np.random.default_rng(seed)
    # The source sees the user's input as given; the model sees it on its input grid (quantized inputs are
    # rounded and clipped to the calibrated range), so clipping counts in the error against the source.
    x_given = None if x is None else np.asarray(x, np.float32)
    x = draw_input(lm, shape, rng) if x is None else quantize_real(x, _input_grid(lm) or lm.input).astype(np.float32)
    report = VerifyReport(str(path), session.runtime, session.version, shape, seed, atol, rtol, mode=mode)
    report.against_source = src
    if lm.head:
        report.scope = subgraph.scope_lines(lm)
        subgraph.check_ops(lm, session, x, rng, report, source, n_runs)
        return report
    sessions: list[Any] = [session]
    if micro and session.runtime != "tflite-micro":
        from lstmgen.runtimes.micro import open_micro_session

        sessions.append(open_micro_session(path))
        report.runtimes.append(f"{sessions[1].runtime} {sessions[1].version}")
    if mode != "none":
        _check_quantized(lm, sessions, x, report, source, source_inputs, x if x_given is None else x_given)
    else:
        _check_float(lm, sessions, x, rng, report, source, n_runs)
    return report


def _check_quantized(
    lm: LstmModel,
    sessions: list[Any],
    x: np.ndarray,
    report: VerifyReport,
    source: SourceModel | None,
    source_inputs: np.ndarray | None,
    x_source: np.ndarray,
) -> None:
    """Each runtime's output within the tolerance qcheck derives for the mode; against the source, if any
    (the source is fed `x_source`, the input as given, the model `x`, the same on its input grid)."""
    for sess in sessions:
        sess.reset()
        y = sess.invoke(x)
        if report.mode in EXACT_MODES:  # the integer kernels are deterministic: 0 LSB against their emulation
            report.emulation.append(emulation_report(lm.model, sess.runtime, x, y, finals=sess.state()))
        q = qcheck_report(lm.model, {lm.input_index: x}, {lm.output_index: y}, mode=report.mode, seed=report.seed)
        out = q["outputs"][0]
        tag = f" [{sess.runtime}]" if len(sessions) > 1 else ""
        report.quantization.append(q)
        report.checks.append(
            Comparison(
                f"output ({report.mode}){tag}",
                out["max_abs_error"],
                out["max_abs_error"] / max(float(np.abs(y).max(initial=0.0)), 1e-12),
                [out["worst_step"]],
                out["ok"],
            )
        )
        if source is not None and report.against_source is not None:
            _quantized_against_source(lm, source, report.against_source, sess, [(x_source, y)], source_inputs, tag)
    report.atol = max(max(o["tolerance"]["per_step"]) for q in report.quantization for o in q["outputs"])
    report.rtol = 0.0


def _check_float(
    lm: LstmModel,
    sessions: list[Any],
    x: np.ndarray,
    rng: np.random.Generator,
    report: VerifyReport,
    source: SourceModel | None,
    n_runs: int,
) -> None:
    """Output, h and c of each runtime from the zero and a random initial state, against the file's
    reference and the source, within atol + rtol|ref| or the derived float32 bound."""
    atol, rtol, seed, src = report.atol, report.rtol, report.seed, report.against_source
    batch = report.input_shape[1 if lm.time_major else 0]
    random_states = {}
    for k, spec in enumerate(lm.lstms):
        h0 = rng.uniform(-1, 1, (batch, spec.output_size)).astype(np.float32)
        c0 = rng.uniform(-1, 1, (batch, spec.num_units)).astype(np.float32)
        random_states[k] = (h0, c0)
    starts = [("zero state", {}), ("random initial state", random_states)]
    # The source runs first: its arrays' pages and the file's widened constants are never resident together.
    source_runs = {label: source.run(x, initial) for label, initial in starts} if source is not None else {}
    t_axis = 0 if lm.time_major else 1
    # The float32 sensitivity comes from the reference side: the source when given, else the file's reference.
    bounds: dict[str, FloatBound] = {}
    if source is not None:
        for k, (label, initial) in enumerate(starts):
            y_src, finals_src = source_runs[label]
            bounds[label] = float_bound(partial(source.run, x, initial), y_src, finals_src, t_axis, seed + k, n_runs)
        source.release_pages()
    constants = constant_values(lm.model)  # float64 once for every evaluation below
    lm.release_pages()  # the mapped file's pages were read to widen them; the interpreter maps its own
    for sess in sessions:
        tag = f" [{sess.runtime}]" if len(sessions) > 1 else ""
        for label, initial in starts:
            if initial and sess.runtime == "tflite-micro":
                continue  # TFLM cannot write state tensors from Python
            sess.reset(initial)
            y = sess.invoke(x)
            finals = sess.state()
            states = {lm.lstms[k].op_index: v for k, v in initial.items()}
            ev = evaluate(lm.model, {lm.input_index: x}, states=states, constants=constants)
            if label not in bounds:
                bounds[label] = _file_bound(lm, x, states, constants, ev, seed + len(bounds), n_runs)
                report.float_bound = max(report.float_bound, bounds[label].largest)
            bound = bounds[label]
            if source is not None and src is not None:
                y_src, finals_src = source_runs[label]
                src.checks.append(compare(f"output ({label}){tag}", y, y_src, atol, rtol, bound.output))
                if not initial and sess is sessions[0]:
                    first_step_note(src, y, y_src, t_axis, atol, rtol)
                for k, ((h, c), (h_src, c_src)) in enumerate(zip(finals, finals_src, strict=True)):
                    op_tag = f" op {k}" if len(lm.lstms) > 1 else ""
                    bh, bc = bound.finals[k]
                    src.checks.append(compare(f"h{op_tag} ({label}){tag}", h, h_src, atol, rtol, bh))
                    src.checks.append(compare(f"c{op_tag} ({label}){tag}", c, c_src, atol, rtol, bc))
            y_ref = ev.values[lm.output_index]
            report.checks.append(compare(f"output ({label}){tag}", y, y_ref, atol, rtol, bound.output))
            for k, (spec, (h, c)) in enumerate(zip(lm.lstms, finals, strict=True)):
                h_ref, c_ref = ev.final_states[spec.op_index]
                op_tag = f" op {k}" if len(lm.lstms) > 1 else ""
                bh, bc = bound.finals[k] if k < len(bound.finals) else (0.0, 0.0)
                report.checks.append(compare(f"h{op_tag} ({label}){tag}", h, h_ref, atol, rtol, bh))
                report.checks.append(compare(f"c{op_tag} ({label}){tag}", c, c_ref, atol, rtol, bc))
            del ev  # one evaluation alive at a time
    report.float_bound = max([report.float_bound] + [b.largest for b in bounds.values()])
    if src is not None:
        src.tolerance = float_tolerance_text(atol, rtol, report.float_bound)


def _file_bound(
    lm: LstmModel,
    x: np.ndarray,
    states: dict[int, Any],
    constants: dict[int, np.ndarray],
    ev: Any,
    seed: int,
    runs: int,
) -> FloatBound:
    """The float32 sensitivity of the file's own reference (used only when there is no source to ask)."""

    def run(jitter: Jitter | None) -> tuple[np.ndarray, Finals]:
        e = evaluate(lm.model, {lm.input_index: x}, states=states, constants=constants, jitter=jitter)
        return e.values[lm.output_index], [e.final_states[s.op_index] for s in lm.lstms]

    finals = [ev.final_states[s.op_index] for s in lm.lstms]
    return float_bound(run, ev.values[lm.output_index], finals, 0 if lm.time_major else 1, seed, runs)


def _source_report(
    lm: LstmModel,
    source: SourceModel,
    mode: str,
    atol: float,
    rtol: float,
    max_error: float | None,
    strict: bool,
) -> SourceReport:
    quantized = mode != "none"
    if quantized:
        bound = f"{max_error:g} (--max-error)" if max_error is not None else f"{GROSS_ERROR_FRACTION:g}·max|ref|"
        tolerance = f"{mode} vs float source: {bound}"
    else:
        tolerance = f"{atol:g} + {rtol:g}·|ref|"
    src = SourceReport(source.reference, quantized, tolerance, max_error=max_error, structure_is_error=strict)
    stated = replace(
        source.stated, time_major=bool(source.setting("time_major")), go_backwards=bool(source.setting("go_backwards"))
    )
    ops, cells = [s.op_index for s in lm.lstms], source.cells_in_op_order()
    src.incompatible = size_mismatches(lm.model, ops, cells)
    src.structure = [] if src.incompatible else differences(lm.model, ops, cells, stated)
    # Steps of the (last) LSTM's output; inside a larger graph, not of the head's.
    out = lm.model.operators[lm.lstms[-1].op_index].outputs[0] if lm.head else lm.output_index
    src.output_step = output_scale(lm.model, out) if quantized else None
    return src


def _quantized_against_source(
    lm: LstmModel,
    source: SourceModel,
    src: SourceReport,
    sess: Any,
    runs: list[tuple[np.ndarray, np.ndarray]],
    more: np.ndarray | None,
    tag: str,
) -> None:
    """What quantization cost: the model's output against the float source, per time step, on `runs`
    ((input as given, model output) already computed) plus up to MAX_SOURCE_SAMPLES - 1 further inputs
    from `more`. The source runs on the inputs as given: input clipping is part of the cost."""
    if more is not None:
        grid = _input_grid(lm) or lm.input
        for extra in more[1:MAX_SOURCE_SAMPLES]:
            xq = quantize_real(extra, grid).astype(np.float32)
            sess.reset()
            runs.append((np.asarray(extra, np.float32), sess.invoke(xq)))
    top, rel, worst, step = -1.0, 0.0, [], None
    bound = src.max_error
    for k, (x, y) in enumerate(runs):
        ref, _ = source.run(x)
        err = np.abs(np.asarray(y, np.float64).reshape(ref.shape) - ref)
        scale = float(np.abs(ref).max(initial=0.0))
        if src.max_error is None:  # the gross bound follows the largest output seen
            bound = max(bound or 0.0, GROSS_ERROR_FRACTION * scale)
        if float(err.max(initial=0.0)) > top:
            top, rel = float(err.max(initial=0.0)), float(err.max(initial=0.0)) / max(scale, 1e-12)
            worst = ([k] if len(runs) > 1 else []) + [int(i) for i in np.unravel_index(int(np.argmax(err)), err.shape)]
            if err.ndim == 3:
                t_axis = 0 if lm.time_major else 1
                per_step = np.moveaxis(err, t_axis, 0).reshape(err.shape[t_axis], -1).max(axis=1, initial=0.0)
                step = int(np.argmax(per_step))
    src.worst_time_step = step
    src.samples = len(runs)
    name = f"output vs float source{f' ({len(runs)} inputs)' if len(runs) > 1 else ''}{tag}"
    src.checks.append(Comparison(name, max(top, 0.0), rel, worst, top <= (bound or 0.0)))
