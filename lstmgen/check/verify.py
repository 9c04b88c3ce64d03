"""Check a model file: the TFLite interpreter against the NumPy reference on seeded random input."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from lstmgen.check.graph import constant_values, evaluate, quantize_real
from lstmgen.check.reference import Jitter
from lstmgen.check.source import SourceModel
from lstmgen.check.source.structure import differences, size_mismatches
from lstmgen.check.tolerance import RUNS, model_mode, output_scale
from lstmgen.check.tolerance import check as qcheck_report
from lstmgen.errors import ModelFileError
from lstmgen.modelinfo import LstmModel, read_lstm_model
from lstmgen.progress import expect
from lstmgen.quant import affine
from lstmgen.runtimes.interpreter import open_session
from lstmgen.tflite.schema import BuiltinOperator

# float32 kernel vs float64 reference: each step rounds a handful of dot products of length
# I + P to float32 (relative error ~ sqrt(I+P) * 6e-8) and the recurrence carries it forward.
# For moderate weights that stays <= 5e-7 up to 2048 units, so 1e-5 absolute + 1e-5 relative is the
# floor; a swapped gate, transposed matrix or missing bias gives errors of 1e-2 and above.
# Steep cells (large weights, long sequences) amplify the rounding step after step, so the reference
# side also measures it: FLOAT_RUNS re-runs of the float64 reference with float32-sized relative
# perturbations of (x_t, h, c) before every step; FLOAT_MARGIN x their largest deviation per time
# step is the bound where it exceeds the floor (see float_bound and docs/verification.md).
FLOAT_ATOL = 1e-5
FLOAT_RTOL = 1e-5
FLOAT32_ROUNDOFF = 2.0**-24  # float32's unit roundoff
FLOAT_RUNS = 3  # perturbed reference runs per start state
FLOAT_MARGIN = 4.0  # the kernel's own rounding is one more draw of the same spread
DEFAULT_TIME_STEPS = 9
# Quantized models against the float source, when no --max-error is given: a gross-error bound as a
# fraction of the output's range (int8 errors are a few output steps, ~1-3 % of it; an int8 scale
# off by 8x or a wrong zero point gives tens of percent).
GROSS_ERROR_FRACTION = 0.1
MAX_SOURCE_SAMPLES = 32  # inputs a quantized model is compared with the float source on


MICRO = "micro"  # runtime name that selects TensorFlow Lite Micro (run --runtime micro, int16x8 models)


def open_model_session(lm: LstmModel, runtime: str) -> Any:
    """A Session (TFLite) or MicroSession (runtime 'micro'; also 'auto' for int16x8 models, which only TFLM runs)."""
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
    )


@dataclass
class Comparison:
    """Error of one interpreter output against the reference."""

    name: str
    max_abs_error: float
    max_rel_error: float
    worst_index: list[int]
    passed: bool


Finals = list[tuple[np.ndarray, np.ndarray]]
Run = Callable[[Jitter | None], tuple[np.ndarray, Finals]]  # a reference run: output and final (h, c) per op


def float32_jitter(rng: np.random.Generator) -> Jitter:
    """Relative perturbations the size of float32 rounding: x_t and h enter dot products of fan-in
    K = I + P, whose float32 sums carry ~sqrt(K) roundings; c is rounded once per update."""

    def jitter(x_t: np.ndarray, h: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        amp = FLOAT32_ROUNDOFF * np.sqrt(x_t.shape[-1] + h.shape[-1])
        return (
            x_t * (1.0 + amp * rng.uniform(-1.0, 1.0, x_t.shape)),
            h * (1.0 + amp * rng.uniform(-1.0, 1.0, h.shape)),
            c * (1.0 + FLOAT32_ROUNDOFF * rng.uniform(-1.0, 1.0, c.shape)),
        )

    return jitter


@dataclass
class FloatBound:
    """The reference's own float32 sensitivity (FLOAT_MARGIN x the largest deviation of perturbed runs):
    per time step of the output (broadcastable to it), and per op's final h and c."""

    output: np.ndarray
    finals: list[tuple[float, float]]

    @property
    def largest(self) -> float:
        return max([float(self.output.max(initial=0.0))] + [max(hc) for hc in self.finals])


def float_bound(
    run: Run, y_ref: np.ndarray, finals_ref: Finals, time_axis: int, seed: int, runs: int = FLOAT_RUNS
) -> FloatBound:
    """Re-run the reference `runs` times with float32-sized perturbations; the spread per time step."""
    rng = np.random.default_rng(seed)
    dev = np.zeros(y_ref.shape)
    dev_finals = [(0.0, 0.0)] * len(finals_ref)
    for _ in range(runs):
        y, finals = run(float32_jitter(rng))
        dev = np.maximum(dev, np.abs(np.asarray(y, np.float64).reshape(y_ref.shape) - y_ref))
        dev_finals = [
            (max(dh, float(np.abs(h - h_ref).max(initial=0.0))), max(dc, float(np.abs(c - c_ref).max(initial=0.0))))
            for (dh, dc), (h, c), (h_ref, c_ref) in zip(dev_finals, finals, finals_ref, strict=True)
        ]
    other = tuple(a for a in range(dev.ndim) if a != time_axis) if dev.ndim == 3 else tuple(range(dev.ndim))
    per_step = dev.max(axis=other, keepdims=True, initial=0.0)
    return FloatBound(FLOAT_MARGIN * per_step, [(FLOAT_MARGIN * dh, FLOAT_MARGIN * dc) for dh, dc in dev_finals])


def _fit(bound: np.ndarray | float, shape: tuple[int, ...]) -> np.ndarray | float:
    """A per-step bound for a reference of `shape` (its largest value where the layouts differ)."""
    try:
        return np.broadcast_to(bound, shape)
    except ValueError:
        return float(np.max(bound, initial=0.0))


def compare(
    name: str, got: np.ndarray, ref: np.ndarray, atol: float, rtol: float, bound: np.ndarray | float = 0.0
) -> Comparison:
    """Element-wise: |got - ref| <= max(atol + rtol|ref|, bound) (bound: a derived float32 sensitivity)."""
    if np.size(got) != ref.size:  # e.g. a source that merges directions differently: no element-wise match
        return Comparison(
            f"{name}: shape {list(np.shape(got))} vs {list(ref.shape)}", float("inf"), float("inf"), [], False
        )
    got = np.asarray(got, np.float64).reshape(ref.shape)
    err = np.abs(got - ref)
    worst = np.unravel_index(int(np.argmax(err)), err.shape) if err.size else ()
    rel = err / np.maximum(np.abs(ref), 1e-12)
    passed = bool(np.all(err <= np.maximum(atol + rtol * np.abs(ref), _fit(bound, ref.shape))))
    return Comparison(name, float(err.max(initial=0.0)), float(rel.max(initial=0.0)), [int(i) for i in worst], passed)


@dataclass
class SourceReport:
    """The model against the source reference (the weight file in its framework's own equations)."""

    reference: str
    quantized: bool
    tolerance: str
    checks: list[Comparison] = field(default_factory=list)
    structure: list[str] = field(default_factory=list)  # differences between the file's ops and what was asked
    structure_is_error: bool = False  # our own builds: any difference is a bug in lstmgen
    incompatible: list[str] = field(default_factory=list)  # sizes that rule the source out before any run
    max_error: float | None = None  # the --max-error gate (quantized models)
    output_step: float | None = None  # the output's quantization step
    worst_time_step: int | None = None
    samples: int = 1  # inputs compared (quantized models: x plus calibration samples)

    @property
    def max_abs_error(self) -> float:
        return max((c.max_abs_error for c in self.checks), default=0.0)

    @property
    def error_in_output_steps(self) -> float | None:
        return self.max_abs_error / self.output_step if self.output_step else None

    @property
    def passed(self) -> bool:
        ok = all(c.passed for c in self.checks) and not self.incompatible
        return ok and not (self.structure_is_error and self.structure)

    def summary(self) -> str:
        """Two lines or more for the text output: the verdict, then each structural difference."""
        steps = f" = {self.error_in_output_steps:.3g} output steps" if self.error_in_output_steps is not None else ""
        where = f", worst at time step {self.worst_time_step}" if self.worst_time_step is not None else ""
        where += f", over {self.samples} inputs" if self.samples > 1 else ""
        verdict = "PASS" if self.passed else "FAIL"
        lines = [
            f"  against the source ({self.reference}): max abs error {self.max_abs_error:.3g}{steps}{where} "
            f"(tolerance {self.tolerance}): {verdict}"
        ]
        if self.incompatible:
            lines = [f"  against the source ({self.reference}): not this LSTM, its sizes differ: FAIL"]
            lines += [f"    {d}" for d in self.incompatible]
        kind = "error" if self.structure_is_error else "note"
        lines += [f"    {kind}: {d}" for d in self.structure]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "reference": self.reference,
            "max_abs_error": self.max_abs_error,
            "tolerance": self.tolerance,
            "quantized": self.quantized,
            "max_error": self.max_error,
            "output_step": self.output_step,
            "error_in_output_steps": self.error_in_output_steps,
            "worst_time_step": self.worst_time_step,
            "samples": self.samples,
            "structure": list(self.structure),
            "structure_is_error": self.structure_is_error,
            "incompatible": list(self.incompatible),
            "checks": [asdict(c) for c in self.checks],
        }


@dataclass
class VerifyReport:
    """What `verify` found; `passed` is the verdict."""

    model: str
    runtime: str
    runtime_version: str
    input_shape: list[int]
    seed: int
    atol: float
    rtol: float
    mode: str = "none"
    checks: list[Comparison] = field(default_factory=list)
    runtimes: list[str] = field(default_factory=list)  # extra runtimes checked (TFLite Micro)
    quantization: list[dict[str, Any]] = field(default_factory=list)  # qcheck reports, per runtime
    against_source: SourceReport | None = None
    scope: list[str] = field(default_factory=list)  # LSTM ops inside a larger graph: what was checked, what not
    float_bound: float = 0.0  # float models: the largest derived float32-sensitivity bound (0: the floor held)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks) and (self.against_source is None or self.against_source.passed)

    @property
    def max_abs_error(self) -> float:
        return max((c.max_abs_error for c in self.checks), default=0.0)

    @property
    def max_rel_error(self) -> float:
        return max((c.max_rel_error for c in self.checks), default=0.0)

    def tolerance_text(self) -> str:
        if self.mode == "none":
            return float_tolerance_text(self.atol, self.rtol, self.float_bound)
        return f"{self.mode}: derived per time step, up to {self.atol:.3g}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(passed=self.passed, max_abs_error=self.max_abs_error, max_rel_error=self.max_rel_error)
        d["tolerance"] = self.tolerance_text()
        d["against_source"] = self.against_source.to_dict() if self.against_source else None
        return d


# Above this derived bound the float check no longer pins the late time steps down; say so.
WEAK_BOUND = 0.05


def float_tolerance_text(atol: float, rtol: float, bound: float) -> str:
    fixed = f"{atol:g} + {rtol:g}·|ref|"
    if bound <= atol:
        return fixed
    derived = f"the reference's float32 sensitivity x{FLOAT_MARGIN:g} per time step"
    text = f"{fixed}, or {derived} where larger (up to {bound:.3g})"
    if bound > WEAK_BOUND:  # a chaotic cell: float32 rounding alone moves its late outputs this far
        text += "; WEAK: this cell amplifies rounding, so late time steps prove little (check shorter sequences)"
    return text


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
    """
    try:
        lm = read_lstm_model(path)
    except ModelFileError as exc:
        if not strict_structure or source is None:
            raise
        # Our own build wrote a file lstmgen's model checks refuse: a bug in lstmgen, so a failed verification.
        bad = SourceReport(source.reference, False, "structure", structure=[str(exc)], structure_is_error=True)
        shape = list(x.shape) if x is not None else []
        return VerifyReport(str(path), "none", "", shape, seed, atol, rtol, against_source=bad)
    mode = model_mode(lm.model)
    n_runs = FLOAT_RUNS if float_runs is None else float_runs
    src = _source_report(lm, source, mode, atol, rtol, max_error, strict_structure) if source else None
    if src is not None and (src.incompatible or (strict_structure and src.structure)):
        # Our own build wired the ops differently from what was asked: that is the verdict, before an
        # interpreter refuses the file (or runs it) for reasons that would only obscure it.
        shape = list(x.shape) if x is not None else list(lm.input.shape)
        return VerifyReport(str(path), "none", "", shape, seed, atol, rtol, mode=mode, against_source=src)
    session = open_model_session(lm, runtime)
    shape = list(x.shape) if x is not None else input_shape_for(lm, batch_size, time_steps)
    # progress counts reference steps: per runtime, 2 evaluations (float) or qcheck's 1 + RUNS noisy ones
    # (float models without a source: + FLOAT_RUNS perturbed evaluations per start state, once)
    runs = (1 + int(micro)) * (2 if mode == "none" else 1 + RUNS)
    runs += 2 * n_runs if mode == "none" and source is None else 0
    expect(runs * len(lm.lstms) * shape[0 if lm.time_major else 1])
    session.resize(tuple(shape), tuple(lm.input.shape_signature or lm.input.shape))
    rng = np.random.default_rng(seed)
    x = draw_input(lm, shape, rng) if x is None else quantize_real(x, _input_grid(lm) or lm.input).astype(np.float32)
    report = VerifyReport(str(path), session.runtime, session.version, shape, seed, atol, rtol, mode=mode)
    report.against_source = src
    sessions: list[Any] = [session]
    if micro and session.runtime != "tflite-micro":
        from lstmgen.runtimes.micro import open_micro_session

        sessions.append(open_micro_session(path))
        report.runtimes.append(f"{sessions[1].runtime} {sessions[1].version}")
    if mode != "none":
        for sess in sessions:
            sess.reset()
            y = sess.invoke(x)
            q = qcheck_report(lm.model, {lm.input_index: x}, {lm.output_index: y}, mode=mode, seed=seed)
            out = q["outputs"][0]
            tag = f" [{sess.runtime}]" if len(sessions) > 1 else ""
            report.quantization.append(q)
            report.checks.append(
                Comparison(
                    f"output ({mode}){tag}",
                    out["max_abs_error"],
                    out["max_abs_error"] / max(float(np.abs(y).max(initial=0.0)), 1e-12),
                    [out["worst_step"]],
                    out["ok"],
                )
            )
            if source is not None and src is not None:
                _quantized_against_source(lm, source, src, sess, [(x, y)], source_inputs, tag)
        report.atol = max(max(o["tolerance"]["per_step"]) for q in report.quantization for o in q["outputs"])
        report.rtol = 0.0
        return report
    batch = shape[1 if lm.time_major else 0]
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
    return report


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
    src.output_step = output_scale(lm.model, lm.output_index) if quantized else None
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
    ((x, y) already computed) plus up to MAX_SOURCE_SAMPLES - 1 further inputs from `more`."""
    if more is not None:
        grid = _input_grid(lm) or lm.input
        for extra in more[1:MAX_SOURCE_SAMPLES]:
            xq = quantize_real(extra, grid).astype(np.float32)
            sess.reset()
            runs.append((xq, sess.invoke(xq)))
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
