"""Check a model file: the TFLite interpreter against the NumPy reference on seeded random input."""

from __future__ import annotations

import math
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from lstmgen.check import against, state_range, subgraph, unrolled
from lstmgen.check.against import Sample, quantized_vs_source
from lstmgen.check.compare import Start, finish, float_triple, kernel_check, starts
from lstmgen.check.options import TestInput, decide_options, input_notes, stress_scale
from lstmgen.check.report import (
    SourceReport,
    VerifyReport,
    first_step_note,
)
from lstmgen.check.source import SourceModel
from lstmgen.check.source.structure import differences, size_mismatches
from lstmgen.check.tensors import check_tensors
from lstmgen.check.tolerance import RUNS, labelled_mode, model_mode, output_scale
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
        state_io=lm.state_io,  # the graph form's explicit state (--state-io)
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


def reach_in_sigmas(n: int) -> float:
    """How many sigmas n normal draws reach (about sqrt(2 ln n)), at least 3."""
    return max(3.0, math.sqrt(2 * math.log(max(n, 2))))


def draw_input(lm: LstmModel, shape: list[int], rng: np.random.Generator) -> np.ndarray:
    """Seeded test input. For an int8 input: normal over the calibrated range (the input grid spans the
    calibration data's extremes), its own extremes at the range's ends as the calibration data's were (sigma =
    half the range / reach_in_sigmas(n values); it was range / 6, wider than calibration for n > 90: a right
    512-unit model, calibrated on 8 sequences of 50 steps, saturated its output grid on it and failed)."""
    grid = _input_grid(lm)
    if grid is None:
        return rng.standard_normal(shape).astype(np.float32)
    lo, hi = affine.real_range(grid.dtype, grid.quantization.scale[0], grid.quantization.zero_point[0])
    x = rng.normal((lo + hi) / 2, (hi - lo) / 2 / reach_in_sigmas(math.prod(shape)), shape)
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
    smoke: bool = False,
) -> VerifyReport:
    """Run the model in the interpreter and the reference on the same seeded input and compare.

    Float models: output, h and c from the zero and a random initial state per LSTM op, within atol +
    rtol|ref| or the reference's float32 sensitivity (`float_runs` perturbed runs; 0 = the fixed tolerance).
    Quantized: the output within the tolerance derived for the kernel. micro=True also runs TFLite Micro.
    With `source` (the weight file's own reference): the same runs against it (quantized: within
    `max_error`, else the bound from the file's quantization steps, on x and up to MAX_SOURCE_SAMPLES - 1
    inputs from `source_inputs`; smoke=True reports it ungated), every LSTM constant against the source's
    (check/tensors.py), clips decided on the source (check/options.py), and the file's options and
    inputs against what was asked (errors if strict_structure). LSTM ops inside a larger graph (not with
    strict_structure) are checked each on its own input tensor (check/subgraph.py).
    """
    try:
        lm = read_lstm_model(path, head_ok=not strict_structure, graph_ok=True)
    except ModelFileError as exc:
        if not strict_structure or source is None:
            raise
        # Our own build wrote a file lstmgen's model checks refuse: a bug in lstmgen, so a failed verification.
        bad = SourceReport(source.reference, False, "structure", structure=[str(exc)], structure_is_error=True)
        shape = list(x.shape) if x is not None else []
        return VerifyReport(str(path), "none", "", shape, seed, atol, rtol, against_source=bad)
    if lm.form == "graph":  # no LSTM op: the whole graph is evaluated op by op (check/unrolled.py)
        return unrolled.verify_graph_form(
            lm, runtime=runtime, seed=seed, atol=atol, rtol=rtol, x=x, batch_size=batch_size,
            time_steps=time_steps, micro=micro, source=source, max_error=max_error, float_runs=float_runs,
            default_steps=DEFAULT_TIME_STEPS,
        )  # fmt: skip
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
        _expect_steps(lm, mode, micro, source is not None, n_runs, shape)
    session.resize(tuple(shape), tuple(lm.input.shape_signature or lm.input.shape))
    rng = np.random.default_rng(seed)
    # The source sees the user's input as given; the model sees it on its input grid (quantized inputs are
    # rounded and clipped to the calibrated range), so clipping counts in the error against the source.
    x_given = None if x is None else np.asarray(x, np.float32)
    x = draw_input(lm, shape, rng) if x is None else quantize_real(x, _input_grid(lm) or lm.input).astype(np.float32)
    report = VerifyReport(str(path), session.runtime, session.version, shape, seed, atol, rtol, mode=mode)
    report.against_source = src
    report.notes += mode_notes(lm, mode) + input_notes(x if x_given is None else x_given)
    if lm.head:
        report.scope = subgraph.scope_lines(lm)
        subgraph.check_ops(lm, session, x, rng, report, source, n_runs, smoke, stress=x_given is None)
    else:
        inputs = _Inputs(x, x_given, source_inputs, rng, plausible=not strict_structure)
        _check_whole(lm, path, [session], inputs, report, source, micro, n_runs, smoke)
    finish(report)
    return report


def _expect_steps(lm: LstmModel, mode: str, micro: bool, has_source: bool, n_runs: int, shape: list[int]) -> None:
    """Progress counts reference steps: per runtime, 2 evaluations (float) or qcheck's 1 + RUNS noisy ones
    (float models without a source: + FLOAT_RUNS perturbed evaluations per start state, once)."""
    runs = (1 + int(micro)) * (2 if mode == "none" else 1 + RUNS)
    runs += 2 * n_runs if mode == "none" and not has_source else 0
    expect(runs * len(lm.lstms) * shape[0 if lm.time_major else 1])


@dataclass
class _Inputs:
    """The test inputs of a whole-model check: x on the model's grid, x as given (None: drawn here), the
    further inputs a quantized model is compared with the source on, and the seeded generator."""

    x: np.ndarray
    given: np.ndarray | None
    more: np.ndarray | None
    rng: np.random.Generator
    plausible: bool = False  # also trace the source's cell state on inputs drawn like x (not in a build)

    @property
    def source_x(self) -> np.ndarray:
        return self.x if self.given is None else self.given


def _check_whole(
    lm: LstmModel,
    path: str | Path,
    sessions: list[Any],
    inputs: _Inputs,
    report: VerifyReport,
    source: SourceModel | None,
    micro: bool,
    n_runs: int,
    smoke: bool,
) -> None:
    """A model of LSTM ops only: the start states, the options decided on the source, then each runtime's
    run (TFLite Micro too with micro=True) compared as the mode asks."""
    batch = report.input_shape[1 if lm.time_major else 0]
    begin = starts(lm.lstms, report.mode, lambda _: batch, inputs.rng)
    src = report.against_source
    if src is not None and source is not None:
        ops = [s.op_index for s in lm.lstms]
        tests = _test_inputs(lm, source, inputs.source_x, begin, inputs.given is None)
        decide_options(lm.model, ops, src, source, tests, report.seed)
    if micro and sessions[0].runtime != "tflite-micro":
        from lstmgen.runtimes.micro import open_micro_session

        sessions.append(open_micro_session(path))
        report.runtimes.append(f"{sessions[1].runtime} {sessions[1].version}")
    if report.mode != "none":
        _check_quantized(lm, sessions, inputs, report, source, smoke)
    else:
        _check_float(lm, sessions, inputs.x, begin, report, source, n_runs)


def _test_inputs(
    lm: LstmModel, source: SourceModel, x_src: np.ndarray, begin: list[Start], stress: bool
) -> list[TestInput]:
    """The option check's inputs: the test input from each start; the default set adds the stress sequence."""
    t_axis = 0 if lm.time_major else 1

    def from_start(initial: dict[int, Any], x: np.ndarray) -> Any:
        return lambda sm, jitter: sm.run(x, initial, jitter)

    tests = [
        TestInput(f"the test input from the {label}", from_start(init, x_src), t_axis, zero_start=not init)
        for label, init in begin
    ]
    if stress:
        k = stress_scale(x_src, source.cells_in_op_order()[0])
        tests.append(TestInput(f"the stress input (the test input x{k:.3g})", from_start({}, x_src * k), t_axis))
    return tests


def mode_notes(lm: LstmModel, mode: str) -> list[str]:
    """The mode comes from the tensor types; metadata that claims another gets a note of its own."""
    label = labelled_mode(lm.model)
    if label is None or label == mode:
        return []
    return [
        f"the file's lstmgen metadata says quantization mode {label!r}, its LSTM tensor types say {mode!r}: "
        f"checked as {mode!r} (the types decide; the label is ignored)"
    ]


def _check_quantized(
    lm: LstmModel,
    sessions: list[Any],
    inputs: _Inputs,
    report: VerifyReport,
    source: SourceModel | None,
    smoke: bool,
) -> None:
    """Each runtime's output within the tolerance derived for the kernel; against the source, if any
    (the source is fed the input as given, the model the same on its input grid)."""
    x = inputs.x
    side = _SourceSide(constant_values(lm.model))  # float64 once for every evaluation of the file's reference
    compare = source is not None and report.against_source is not None
    extras = _further_inputs(lm, inputs.more) if compare else []
    for sess in sessions:
        sess.reset()
        y = sess.invoke(x)
        finals = sess.state() if report.mode in EXACT_MODES else None
        tag = f" [{sess.runtime}]" if len(sessions) > 1 else ""
        with ThreadPoolExecutor(max_workers=1) as pool:
            # The further inputs run in the runtime (its invoke releases the GIL) while this thread checks the
            # kernel and computes the source's side: 1024 units, int8, 31 invokes of 45 ms hidden behind them.
            later = pool.submit(_invoke_each, sess, [xq for _, xq in extras])
            if finals is not None:  # the integer kernels are deterministic: 0 LSB against their emulation
                report.emulation.append(emulation_report(lm.model, sess.runtime, x, y, finals=finals))
            feeds = {lm.input_index: x}
            kernel_check(report, lm.model, feeds, lm.output_index, y, f"output ({report.mode}){tag}", side.constants)
            if source is not None and report.against_source is not None:
                src = report.against_source
                runs = [(inputs.source_x, x), *extras]
                traced = _quantized_against_source(lm, source, src, runs, (y, later), tag, smoke, side)
                if sess is sessions[0]:
                    _judge_state_range(lm, source, src, traced, inputs)


def _further_inputs(lm: LstmModel, more: np.ndarray | None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Up to MAX_SOURCE_SAMPLES - 1 further inputs compared with the source, each as given and on the file's
    input grid (the source runs on the inputs as given: input clipping is part of the cost)."""
    if more is None:
        return []
    grid = _input_grid(lm) or lm.input
    return [
        (np.asarray(extra, np.float32), quantize_real(extra, grid).astype(np.float32))
        for extra in more[1:MAX_SOURCE_SAMPLES]
    ]


def _invoke_each(sess: Any, xs: list[np.ndarray]) -> list[np.ndarray]:
    """The runtime's output on each input, each from the zero state."""
    out = []
    for xq in xs:
        sess.reset()
        out.append(sess.invoke(xq))
    return out


def _check_float(
    lm: LstmModel,
    sessions: list[Any],
    x: np.ndarray,
    begin: list[Start],
    report: VerifyReport,
    source: SourceModel | None,
    n_runs: int,
) -> None:
    """Output, h and c of each runtime from each start (the zero and a random initial state), against the
    file's reference and the source, within atol + rtol|ref| or the derived float32 bound."""
    atol, rtol, seed, src = report.atol, report.rtol, report.seed, report.against_source
    # The source runs first: its arrays' pages and the file's widened constants are never resident together.
    source_runs = {label: source.run(x, initial) for label, initial in begin} if source is not None else {}
    t_axis = 0 if lm.time_major else 1
    # The float32 sensitivity comes from the reference side: the source when given, else the file's reference.
    bounds: dict[str, FloatBound] = {}
    if source is not None:
        for k, (label, initial) in enumerate(begin):
            y_src, finals_src = source_runs[label]
            bounds[label] = float_bound(partial(source.run, x, initial), y_src, finals_src, t_axis, seed + k, n_runs)
        source.release_pages()
    constants = constant_values(lm.model)  # float64 once for every evaluation below
    lm.release_pages()  # the mapped file's pages were read to widen them; the interpreter maps its own
    for sess in sessions:
        tag = f" [{sess.runtime}]" if len(sessions) > 1 else ""
        for label, initial in begin:
            if initial and sess.runtime == "tflite-micro":
                continue  # TFLM cannot write state tensors from Python
            sess.reset(initial)
            y = sess.invoke(x)
            finals = sess.state()
            states = {lm.lstms[k].op_index: v for k, v in initial.items()}
            ev = evaluate(lm.model, {lm.input_index: x}, states=states, constants=constants)
            if label not in bounds:
                bounds[label] = _file_bound(lm, x, states, constants, ev, seed + len(bounds), n_runs)
            if source is not None and src is not None:
                y_src, finals_src = source_runs[label]
                n = len(src.checks)
                float_triple(
                    src.checks,
                    label,
                    (y, y_src),
                    list(zip(finals, finals_src, strict=True)),
                    bounds[label],
                    atol,
                    rtol,
                    suffix=tag,
                )
                if not initial and sess is sessions[0] and not src.checks[n].passed:
                    first_step_note(src, y, y_src, t_axis, atol, rtol)
            refs = [ev.final_states[spec.op_index] for spec in lm.lstms]
            y_ref = ev.values[lm.output_index]
            float_triple(
                report.checks,
                label,
                (y, y_ref),
                list(zip(finals, refs, strict=True)),
                bounds[label],
                atol,
                rtol,
                suffix=tag,
            )
            del ev  # one evaluation alive at a time
    report.float_bound = max([report.float_bound] + [b.largest for b in bounds.values()])


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
        bound = (
            f"{max_error:g} (--max-error)" if max_error is not None else "derived from the file's quantization steps"
        )
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
    src.tensors = [] if src.incompatible else check_tensors(lm.model, ops, cells)
    lm.release_pages()  # both sides' pages were read once for the comparison; the checks below read them again
    source.release_pages()
    # Steps of the (last) LSTM's output; inside a larger graph, not of the head's.
    out = lm.model.operators[lm.lstms[-1].op_index].outputs[0] if lm.head else lm.output_index
    src.output_step = output_scale(lm.model, out) if quantized else None
    return src


def _source_outputs(source: SourceModel, xs: list[np.ndarray]) -> tuple[list[np.ndarray], list[int]]:
    """The source's output on each input, all run at once side by side on the batch axis (its rows are
    independent): one float64 pass instead of one per input (1024 units, T=50, 32 inputs: a verified int8
    build's verification 41-44 s -> 18-19 s under load); and the time steps of each pass its cells ran."""
    t_axis = 0 if source.setting("time_major") else 1
    if len(xs) < 2 or len({x.shape for x in xs}) != 1:
        return [source.run(x)[0] for x in xs], [int(np.shape(x)[t_axis]) for x in xs]
    y, _ = source.run(np.concatenate(xs, axis=1 - t_axis))
    return np.split(y, len(xs), axis=1 - t_axis if y.ndim == 3 else 0), [int(np.shape(xs[0])[t_axis])]


@dataclass
class _Traced:
    """The source's cell-state trace over the compared inputs (check/state_range.py) and what they were."""

    traces: state_range.Traces
    steps: list[int]
    backward: frozenset[int]
    on: str


def _tag(op: int, ops: int) -> str:
    return f"LSTM op {op}'s" if ops > 1 else "the LSTM's"


def _judge_state_range(lm: LstmModel, source: SourceModel, src: SourceReport, traced: _Traced, inputs: _Inputs) -> None:
    """The integer cell state's range against the source's reach: on the compared inputs, the cause of a
    failure (a warning on a pass); else, in verify, on PLAUSIBLE_DRAWS inputs drawn like the test input."""
    limits = state_range.state_limits(lm.model, [s.op_index for s in lm.lstms])
    if not any(limits):
        return
    if not src.checks[-1].passed:  # the cause, when it is a saturation (not on a pass: a wider test input than
        # the calibration data goes beyond the output's calibrated grid without changing the verdict)
        found = state_range.saturations(limits, traced.traces, traced.steps, traced.backward)
        src.saturated += [s.describe(_tag(s.op, len(limits)), traced.on) for s in found]
        src.saturated += [state_range.ADVICE] if found else []
    elif inputs.plausible:
        _plausible_saturation(lm, source, src, limits, inputs)


def _plausible_saturation(
    lm: LstmModel, source: SourceModel, src: SourceReport, limits: list[list[state_range.Limit]], inputs: _Inputs
) -> None:
    """A warning per cell state that the source's leaves on too many of PLAUSIBLE_DRAWS inputs drawn like the
    calibration data (normal, their extremes at the file's input range, which that data set). The hidden state
    is not judged on them: its grid spans the calibrated range exactly, the cell state's has headroom."""
    grid = _input_grid(lm)
    cells = [[lim for lim in op if lim.symbol == "c"] for op in limits]
    if grid is None or not any(cells):
        return
    t_axis = 0 if lm.time_major else 1
    shape = list(inputs.x.shape)
    shape[1 - t_axis] = state_range.PLAUSIBLE_DRAWS
    lo, hi = affine.real_range(grid.dtype, grid.quantization.scale[0], grid.quantization.zero_point[0])
    sigma = (hi - lo) / 2 / reach_in_sigmas(math.prod(shape))  # their extremes at the range's ends
    rng = np.random.default_rng(inputs.rng.integers(2**31))
    xs = quantize_real(rng.normal((lo + hi) / 2, sigma, shape), grid).astype(np.float32)
    traces: state_range.Traces = {}
    model, backward = state_range.traced_model(source, traces)
    model.run(xs)
    shares = {(op, lim.symbol): share for op, lim, share in state_range.beyond_share(cells, traces)}
    on = f"{state_range.PLAUSIBLE_DRAWS} inputs drawn like calibration data (normal over the file's input range)"
    for s in state_range.saturations(cells, traces, [shape[t_axis]], backward):
        share = shares[(s.op, "c")]
        if share >= state_range.TOO_MANY:
            src.notes.append(
                f"warning: {s.describe(_tag(s.op, len(limits)), on)}, and leaves it on {share:.0%} of them (a "
                f"range set on such data is left by few fresh inputs); the test input did not go there: "
                f"{state_range.ADVICE}"
            )


@dataclass
class _SourceSide:
    """What the comparison with the source computes once for every runtime (each checks the same file on the
    same inputs): the file's constants in float64, the source's outputs, the bound derived from the file."""

    constants: dict[int, np.ndarray]
    refs: list[np.ndarray] | None = None
    bound: np.ndarray | None = None
    traced: _Traced | None = None  # the source's cell-state trace on those inputs (check/state_range.py)


def _quantized_against_source(
    lm: LstmModel,
    source: SourceModel,
    src: SourceReport,
    runs: list[tuple[np.ndarray, np.ndarray]],
    outputs: tuple[np.ndarray, Future[list[np.ndarray]]],
    tag: str,
    smoke: bool,
    side: _SourceSide,
) -> _Traced:
    """What quantization cost: the model's output against the float source, per time step, on `runs` (each
    input as given and on the model's grid; the first's output, then the others' still running). The source's
    outputs and the bound (check/against.py) need only the inputs: they are computed while the runtime runs."""
    if side.traced is None:  # the first runtime: one traced source pass for every input
        traces: state_range.Traces = {}
        traced, backward = state_range.traced_model(source, traces)
        refs, steps = _source_outputs(traced, [xg for xg, _ in runs])
        on = "the test input" if len(runs) == 1 else f"the {len(runs)} inputs compared"
        side.refs, side.traced = refs, _Traced(traces, steps, backward, on)
        source.release_pages()  # its widened copies are not needed by the bound below, which widens the file's
    t_axis = 0 if lm.time_major else 1
    mode = model_mode(lm.model)
    if side.bound is None and src.max_error is None:
        feeds = [{lm.input_index: xm} for _, xm in runs]
        given = [{lm.input_index: np.asarray(xg)} for xg, _ in runs]
        side.bound = against.source_bound(lm.model, lm.output_index, feeds, mode, t_axis, 0, side.constants, given)
    ys = [outputs[0], *outputs[1].result()]
    refs = side.refs if side.refs is not None else []
    samples = [Sample({lm.input_index: xm}, y, ref) for (_, xm), y, ref in zip(runs, ys, refs, strict=True)]
    name = f"output vs float source{f' ({len(runs)} inputs)' if len(runs) > 1 else ''}{tag}"
    side.bound = quantized_vs_source(
        src, name, lm.model, lm.output_index, samples, mode=mode, time_axis=t_axis, seed=0, smoke=smoke,
        constants=side.constants, bound=side.bound,
    )  # fmt: skip
    return side.traced
