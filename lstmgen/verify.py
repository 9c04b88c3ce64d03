"""Check a model file: the TFLite interpreter against the NumPy reference on seeded random input."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .graph import evaluate, quantize_real
from .modelinfo import LstmModel, read_lstm_model
from .runtime import Session, open_session

# float32 kernel vs float64 reference: each step rounds a handful of dot products of length
# I + P to float32 (relative error ~ sqrt(I+P) * 6e-8) and the recurrence carries it forward.
# Observed: <= 5e-7 up to 2048 units. 1e-5 absolute + 1e-5 relative leaves a 20x margin while a
# swapped gate, transposed matrix or missing bias gives errors of 1e-2 and above.
FLOAT_ATOL = 1e-5
FLOAT_RTOL = 1e-5
DEFAULT_TIME_STEPS = 9


def open_model_session(lm: LstmModel, runtime: str) -> Session:
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
    checks: list[Comparison] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def max_abs_error(self) -> float:
        return max((c.max_abs_error for c in self.checks), default=0.0)

    @property
    def max_rel_error(self) -> float:
        return max((c.max_rel_error for c in self.checks), default=0.0)

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


def verify_model(
    path: str | Path,
    *,
    runtime: str = "auto",
    seed: int = 0,
    batch_size: int | None = None,
    time_steps: int | None = None,
    atol: float = FLOAT_ATOL,
    rtol: float = FLOAT_RTOL,
) -> VerifyReport:
    """Run the model in the interpreter and the reference on the same seeded input; compare y, h and c.

    Two runs: from the zero state, and from a random initial state per LSTM op (which also
    proves that the state tensors are wired to the right slots).
    """
    lm = read_lstm_model(path)
    session = open_model_session(lm, runtime)
    shape = input_shape_for(lm, batch_size, time_steps)
    session.resize(tuple(shape), tuple(lm.input.shape_signature or lm.input.shape))
    rng = np.random.default_rng(seed)
    x = quantize_real(rng.standard_normal(shape), lm.input).astype(np.float32)  # same values for both sides
    batch = shape[1 if lm.time_major else 0]
    report = VerifyReport(str(path), session.runtime, session.version, shape, seed, atol, rtol)
    random_states = {}
    for k, spec in enumerate(lm.lstms):
        h_t, c_t = lm.model.tensors[spec.h_index], lm.model.tensors[spec.c_index]
        h0 = quantize_real(rng.uniform(-1, 1, (batch, spec.output_size)), h_t).astype(np.float32)
        c0 = quantize_real(rng.uniform(-1, 1, (batch, spec.num_units)), c_t).astype(np.float32)
        random_states[k] = (h0, c0)
    for label, initial in (("zero state", {}), ("random initial state", random_states)):
        session.reset(initial)
        y = session.invoke(x)
        finals = session.state()
        ev = evaluate(lm.model, {lm.input_index: x}, states={lm.lstms[k].op_index: v for k, v in initial.items()})
        report.checks.append(compare(f"output ({label})", y, ev.values[lm.output_index], atol, rtol))
        for k, (spec, (h, c)) in enumerate(zip(lm.lstms, finals, strict=True)):
            h_ref, c_ref = ev.final_states[spec.op_index]
            tag = f" op {k}" if len(lm.lstms) > 1 else ""
            report.checks.append(compare(f"h{tag} ({label})", h, h_ref, atol, rtol))
            report.checks.append(compare(f"c{tag} ({label})", c, c_ref, atol, rtol))
    return report
