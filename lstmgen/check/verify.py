"""Check a model file: the TFLite interpreter against the NumPy reference on seeded random input."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tflite

from lstmgen.check.graph import constant_values, evaluate, quantize_real
from lstmgen.check.tolerance import check as qcheck_report
from lstmgen.check.tolerance import model_mode
from lstmgen.errors import ModelFileError
from lstmgen.modelinfo import LstmModel, read_lstm_model
from lstmgen.runtimes.interpreter import open_session

# float32 kernel vs float64 reference: each step rounds a handful of dot products of length
# I + P to float32 (relative error ~ sqrt(I+P) * 6e-8) and the recurrence carries it forward.
# Observed: <= 5e-7 up to 2048 units. 1e-5 absolute + 1e-5 relative leaves a 20x margin while a
# swapped gate, transposed matrix or missing bias gives errors of 1e-2 and above.
FLOAT_ATOL = 1e-5
FLOAT_RTOL = 1e-5
DEFAULT_TIME_STEPS = 9


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


def compare(name: str, got: np.ndarray, ref: np.ndarray, atol: float, rtol: float) -> Comparison:
    got = np.asarray(got, np.float64).reshape(ref.shape)
    err = np.abs(got - ref)
    worst = np.unravel_index(int(np.argmax(err)), err.shape) if err.size else ()
    rel = err / np.maximum(np.abs(ref), 1e-12)
    passed = bool(np.all(err <= atol + rtol * np.abs(ref)))
    return Comparison(name, float(err.max(initial=0.0)), float(rel.max(initial=0.0)), [int(i) for i in worst], passed)


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

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def max_abs_error(self) -> float:
        return max((c.max_abs_error for c in self.checks), default=0.0)

    @property
    def max_rel_error(self) -> float:
        return max((c.max_rel_error for c in self.checks), default=0.0)

    def tolerance_text(self) -> str:
        if self.mode == "none":
            return f"{self.atol:g} + {self.rtol:g}·|ref|"
        return f"{self.mode}: derived per time step, up to {self.atol:.3g}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(passed=self.passed, max_abs_error=self.max_abs_error, max_rel_error=self.max_rel_error)
        return d


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
        if op.inputs and op.inputs[0] == lm.input_index and op.opcode == tflite.BuiltinOperator.QUANTIZE:
            return lm.model.tensors[op.outputs[0]]
    return None


def draw_input(lm: LstmModel, shape: list[int], rng: np.random.Generator) -> np.ndarray:
    """Seeded test input. For an int8 input: normal over the calibrated range (the input grid spans it,
    about ±3 sigma of the calibration data), so the test stays where int8 was calibrated to work."""
    grid = _input_grid(lm)
    if grid is None:
        return rng.standard_normal(shape).astype(np.float32)
    info = np.iinfo(grid.dtype)
    s, z = grid.quantization.scale[0], grid.quantization.zero_point[0]
    lo, hi = (info.min - z) * s, (info.max - z) * s
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
) -> VerifyReport:
    """Run the model in the interpreter and the reference on the same seeded input and compare.

    Float models: output, h and c from the zero state and from a random initial state per LSTM op
    (which also proves that the state tensors are wired to the right slots), within atol + rtol|ref|.
    Quantized models: the output within the tolerance qcheck derives for the mode (see README), with
    per-time-step errors. micro=True also runs the model in TensorFlow Lite Micro.
    """
    lm = read_lstm_model(path)
    mode = model_mode(lm.model)
    session = open_model_session(lm, runtime)
    shape = list(x.shape) if x is not None else input_shape_for(lm, batch_size, time_steps)
    session.resize(tuple(shape), tuple(lm.input.shape_signature or lm.input.shape))
    rng = np.random.default_rng(seed)
    x = draw_input(lm, shape, rng) if x is None else quantize_real(x, _input_grid(lm) or lm.input).astype(np.float32)
    report = VerifyReport(str(path), session.runtime, session.version, shape, seed, atol, rtol, mode=mode)
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
            report.checks.append(compare(f"output ({label}){tag}", y, ev.values[lm.output_index], atol, rtol))
            for k, (spec, (h, c)) in enumerate(zip(lm.lstms, finals, strict=True)):
                h_ref, c_ref = ev.final_states[spec.op_index]
                op_tag = f" op {k}" if len(lm.lstms) > 1 else ""
                report.checks.append(compare(f"h{op_tag} ({label}){tag}", h, h_ref, atol, rtol))
                report.checks.append(compare(f"c{op_tag} ({label}){tag}", c, c_ref, atol, rtol))
            del ev  # one evaluation alive at a time
    return report
