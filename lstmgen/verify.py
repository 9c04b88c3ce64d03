"""Check a model file: the TFLite interpreter against the NumPy reference on seeded random input."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ModelFileError
from .flatbuf import read_model
from .lstm import LstmOp, find_lstm
from .reference import lstm_reference
from .runtime import Session, open_session

# float32 kernel vs float64 reference: each step rounds a handful of dot products of length
# I + P to float32 (relative error ~ sqrt(I+P) * 6e-8) and the recurrence carries it forward.
# Observed: <= 5e-7 up to 2048 units. 1e-5 absolute + 1e-5 relative leaves a 20x margin while a
# swapped gate, transposed matrix or missing bias gives errors of 1e-2 and above.
FLOAT_ATOL = 1e-5
FLOAT_RTOL = 1e-5
DEFAULT_TIME_STEPS = 9


def read_lstm(path: Path) -> LstmOp:
    """Read a .tflite file and find its LSTM op (ModelFileError with a clear reason otherwise)."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise ModelFileError(f"model file {path} does not exist. Check the path.") from None
    except IsADirectoryError:
        raise ModelFileError(f"model path {path} is a directory; pass a .tflite file.") from None
    except OSError as exc:
        raise ModelFileError(f"model file {path} cannot be read ({exc.strerror}).") from None
    return find_lstm(read_model(data, str(path)), str(path))


def open_lstm_session(path: Path, lstm: LstmOp, runtime: str) -> Session:
    h, c = lstm.state_indices
    return open_session(
        str(path),
        runtime=runtime,
        input_index=lstm.input_index,
        output_index=lstm.output_index,
        h_index=h,
        c_index=c,
        time_major=lstm.time_major,
    )


def run_reference(
    lstm: LstmOp, x: np.ndarray, h0: np.ndarray | None = None, c0: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return lstm_reference(
        x,
        lstm.weights,
        activation=lstm.activation,
        cell_clip=lstm.cell_clip,
        proj_clip=lstm.proj_clip,
        time_major=lstm.time_major,
        h0=h0,
        c0=c0,
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
    err = np.abs(got.astype(np.float64) - ref)
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

    Two runs: from the zero state, and from a random initial state (which also proves that the
    state tensors are wired to the right slots).
    """
    path = Path(path)
    lstm = read_lstm(path)
    session = open_lstm_session(path, lstm, runtime)
    in_t = lstm.model.tensors[lstm.input_index]
    shape = list(in_t.shape)
    sig = list(in_t.shape_signature or in_t.shape)
    t_axis, b_axis = (0, 1) if lstm.time_major else (1, 0)
    if sig[t_axis] == -1 or time_steps is not None:
        shape[t_axis] = time_steps or DEFAULT_TIME_STEPS
    if batch_size is not None:
        shape[b_axis] = batch_size
    session.resize(tuple(shape), tuple(sig))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32)
    batch = shape[b_axis]
    report = VerifyReport(str(path), session.runtime, session.version, shape, seed, atol, rtol)
    starts = {
        "zero state": (None, None),
        "random initial state": (
            rng.uniform(-1, 1, (batch, lstm.output_size)).astype(np.float32),
            rng.uniform(-1, 1, (batch, lstm.num_units)).astype(np.float32),
        ),
    }
    for label, (h0, c0) in starts.items():
        session.reset(h0, c0)
        y = session.invoke(x)
        h, c = session.state()
        y_ref, h_ref, c_ref = run_reference(lstm, x, h0, c0)
        report.checks.append(compare(f"output ({label})", y, y_ref, atol, rtol))
        report.checks.append(compare(f"h ({label})", h.reshape(h_ref.shape), h_ref, atol, rtol))
        report.checks.append(compare(f"c ({label})", c.reshape(c_ref.shape), c_ref, atol, rtol))
    return report
