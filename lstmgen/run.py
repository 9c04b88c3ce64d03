"""`run`: feed an input sequence through a model from zero or given state, optionally in chunks."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import LstmgenError
from .verify import open_lstm_session, read_lstm


def run_model(
    path: str | Path,
    x: np.ndarray,
    *,
    h0: np.ndarray | None = None,
    c0: np.ndarray | None = None,
    chunk: int | None = None,
    runtime: str = "auto",
    input_label: str = "input",
    state_label: str = "initial state",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Returns (output, final h, final c). With chunk=N the time axis is fed N steps per invoke.

    The labels name the input and state in error messages (the CLI passes the file names).
    """
    path = Path(path)
    lstm = read_lstm(path)
    in_t = lstm.model.tensors[lstm.input_index]
    layout = "[time, batch, input]" if lstm.time_major else "[batch, time, input]"
    if x.ndim != 3 or x.shape[2] != lstm.input_size:
        raise LstmgenError(
            f"{input_label} has shape {list(x.shape)}, expected {layout} with input size {lstm.input_size} for {path}."
        )
    if x.dtype.kind != "f":
        raise LstmgenError(f"{input_label} has dtype {x.dtype}, expected float32 (or float64, converted).")
    t_axis, b_axis = (0, 1) if lstm.time_major else (1, 0)
    steps, batch = x.shape[t_axis], x.shape[b_axis]
    if steps == 0 or batch == 0:
        raise LstmgenError(f"{input_label} has shape {list(x.shape)}: {layout} needs at least one step and one row.")
    for key, value, size in (("h", h0, lstm.output_size), ("c", c0, lstm.num_units)):
        if value is not None and (value.dtype.kind != "f" or value.size != batch * size):
            raise LstmgenError(
                f"{state_label}: '{key}' has shape {list(value.shape)} ({value.dtype}), expected [{batch}, {size}] "
                f"floats (batch {batch} from the input, {'output' if key == 'h' else 'cell'} size {size})."
            )
    chunk = steps if chunk is None else chunk
    if chunk < 1:
        raise LstmgenError(f"chunk {chunk}: expected a number of time steps >= 1.")
    session = open_lstm_session(path, lstm, runtime)
    sig = in_t.shape_signature or in_t.shape
    outputs = []
    fed: tuple[int, ...] = ()
    for start in range(0, steps, chunk):
        piece = np.take(x, range(start, min(start + chunk, steps)), axis=t_axis)
        if start == 0:
            session.resize(piece.shape, tuple(sig), label=input_label)
            session.reset(h0, c0)
        elif piece.shape != fed:
            # Only the last chunk can be shorter; resizing re-allocates and zeroes the state, so carry it.
            h, c = session.state()
            session.resize(piece.shape, tuple(sig), label=input_label)
            session.reset(h, c)
        fed = piece.shape
        outputs.append(session.invoke(piece))
    h, c = session.state()
    return np.concatenate(outputs, axis=t_axis), h, c
