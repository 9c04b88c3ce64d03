"""`run`: feed an input sequence through a model from zero or given states, optionally in chunks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lstmgen.arrays import either_layout, layout_hint
from lstmgen.check.verify import open_model_session
from lstmgen.errors import LstmgenError
from lstmgen.modelinfo import GRAPH_STATE_REFUSAL, LstmModel, read_lstm_model
from lstmgen.runtimes import RUNTIME_CHOICES
from lstmgen.tflite.tables import BUILTIN_OPERATOR_NAMES

State = tuple[np.ndarray, np.ndarray]


def run_model(
    path: str | Path,
    x: np.ndarray,
    *,
    h0: np.ndarray | None = None,
    c0: np.ndarray | None = None,
    initial: list[tuple[np.ndarray | None, np.ndarray | None]] | None = None,
    chunk: int | None = None,
    runtime: str = "auto",
    input_label: str = "input",
    state_label: str = "initial state",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Returns (output, final h, final c) of the last LSTM op; see run_model_states for every op.

    h0/c0 set the state of a single-op model; `initial` gives (h0, c0) per LSTM op in op order.
    With chunk=N the time axis is fed N steps per invoke, carrying the states. The labels name the
    input and state in error messages (the CLI passes the file names).
    """
    y, finals = run_model_states(
        path,
        x,
        initial=initial if initial is not None else [(h0, c0)],
        chunk=chunk,
        runtime=runtime,
        input_label=input_label,
        state_label=state_label,
        final_state=True,
    )
    h, c = finals[-1]
    return y, h, c


def run_model_states(
    path: str | Path,
    x: np.ndarray,
    *,
    initial: list[tuple[np.ndarray | None, np.ndarray | None]] | None = None,
    chunk: int | None = None,
    runtime: str = "auto",
    input_label: str = "input",
    state_label: str = "initial state",
    notes: list[str] | None = None,
    final_state: bool = False,
) -> tuple[np.ndarray, list[State]]:
    """Like run_model, returning the final (h, c) of every LSTM op (or graph-form cell). Conversions made on the
    way are appended to `notes` (float64 input, a quantized model fed floats). final_state=True: the caller
    needs the final states (a graph-form file without state outputs is refused)."""
    path = Path(path)
    # a converter's head around the LSTM ops: the whole model runs; lstmgen's graph form: its state is explicit
    lm = read_lstm_model(path, head_ok=True, graph_ok=True)
    _check_graph_state(lm, initial, chunk, final_state)
    if lm.form == "graph" and runtime not in RUNTIME_CHOICES:  # not micro, nor the integer emulation
        raise LstmgenError(
            f"--runtime {runtime}: {lm.path} is lstmgen's graph form, which runs in TFLite/LiteRT and their delegates; "
            "TensorFlow Lite Micro and the integer-kernel emulation run the fused op. Use --runtime auto, or rebuild "
            "with --form fused."
        )
    notes = [] if notes is None else notes
    layout = "[time, batch, input]" if lm.time_major else "[batch, time, input]"
    _check_input(lm, x, input_label, layout, notes)
    initial = list(initial or [])
    sig = tuple(lm.input.shape_signature or lm.input.shape)
    if not lm.head and either_layout(x.shape, lm.input.shape, sig, lm.time_major):
        raise LstmgenError(layout_hint(input_label, x.shape, lm.input.shape, sig, lm.time_major))
    if lm.head:
        return _run_whole_model(lm, x, initial, chunk, runtime, input_label, state_label, notes)
    t_axis, b_axis = (0, 1) if lm.time_major else (1, 0)
    steps, batch = x.shape[t_axis], x.shape[b_axis]
    if steps == 0 or batch == 0:
        raise LstmgenError(f"{input_label} has shape {list(x.shape)}: {layout} needs at least one step and one row.")
    _check_states(lm, initial, batch, state_label)
    chunk = steps if chunk is None else chunk
    _check_chunk(lm, chunk, steps, sig[t_axis])
    session = open_model_session(lm, runtime)
    if hasattr(session, "flavour"):  # --runtime emulate: say which runtime the numbers reproduce
        from lstmgen.runtimes.emulated import describe

        notes.append(describe(session))
    outputs = _feed_chunks(session, x, chunk, t_axis, sig, initial, input_label)
    # A last-step model outputs [B, F] per invoke: the final chunk's output is the sequence's last step.
    y = np.concatenate(outputs, axis=t_axis) if lm.output_has_time else outputs[-1]
    finals = session.state()
    if len(outputs) == 1 and not initial and lm.input.dtype.kind == "i" and not hasattr(session, "flavour"):
        from lstmgen.runtimes.emulated import cross_check  # an integer kernel off its exact arithmetic: say so

        off = cross_check(lm.model, session.runtime, x, y, finals)
        notes.extend([off] if off else [])
    return y.astype(np.float32), finals


def _check_graph_state(
    lm: LstmModel, initial: list[tuple[np.ndarray | None, np.ndarray | None]] | None, chunk: int | None, final: bool
) -> None:
    """A graph-form file built without --state-io has no state to set, carry or read: say how to get one."""
    if lm.form != "graph" or lm.state_io:
        return
    given = (("--chunk", chunk is not None), ("--initial-state", bool(initial)), ("the final state", final))
    asked = [what for what, wanted in given if wanted]
    if asked:
        raise LstmgenError(GRAPH_STATE_REFUSAL.format(what=" and ".join(asked), source=lm.path))


def _check_input(lm: LstmModel, x: np.ndarray, input_label: str, layout: str, notes: list[str]) -> None:
    """The input's shape and dtype for `lm`; conversions it will need are appended to `notes`."""
    if lm.head:
        _check_whole_model_input(lm, x, input_label)
    elif x.ndim != 3 or x.shape[2] != lm.input_size:
        raise LstmgenError(
            f"{input_label} has shape {list(x.shape)}, expected {layout} with input size {lm.input_size} for "
            f"{lm.path}."
        )
    if x.dtype.kind != "f":
        raise LstmgenError(f"{input_label} has dtype {x.dtype}, expected float32 (or float64, converted).")
    if x.dtype != np.float32:
        notes.append(f"{input_label} is {x.dtype}; converted to float32")
    if lm.input.dtype.kind != "f":
        q = lm.input.quantization
        grid = f" (scale {q.scale[0]:.6g}, zero point {q.zero_point[0]})" if q is not None else ""
        notes.append(
            f"{lm.path} takes {lm.input.dtype} input{grid}: the float input is quantized with its parameters, and "
            f"the {lm.output.dtype} output dequantized to float32"
        )


def _check_chunk(lm: LstmModel, chunk: int, steps: int, fixed: int) -> None:
    """--chunk against the model: >= 1, whole-sequence for a backward direction, a fixed time axis's size."""
    if chunk < 1:
        raise LstmgenError(f"chunk {chunk}: expected a number of time steps >= 1.")
    if chunk < steps and lm.has_reverse:
        raise LstmgenError(
            f"--chunk {chunk}: {lm.path} has a backward direction (bidirectional or go_backwards), which needs the "
            "whole sequence in one invoke: its first step is the sequence's last. Run it without --chunk."
        )
    if chunk < steps and fixed != -1 and (chunk != fixed or steps % fixed):
        raise LstmgenError(
            f"--chunk {chunk}: {lm.path} fixes its time axis to {fixed} steps (built with --time-steps), so every "
            f"invoke takes exactly {fixed} steps: use --chunk {fixed} with an input whose time size ({steps} here) is "
            f"a multiple of {fixed}, or rebuild the model without --time-steps (a dynamic time axis) to stream it in "
            "chunks of any size."
        )


def _feed_chunks(
    session: Any,
    x: np.ndarray,
    chunk: int,
    t_axis: int,
    sig: tuple[int, ...],
    initial: list[tuple[np.ndarray | None, np.ndarray | None]],
    input_label: str,
) -> list[np.ndarray]:
    """Each chunk's output, invoking `chunk` steps at a time from the `initial` states and carrying them."""
    steps = x.shape[t_axis]
    outputs = []
    fed: tuple[int, ...] = ()
    for start in range(0, steps, chunk):
        piece = np.take(x, range(start, min(start + chunk, steps)), axis=t_axis)
        if start == 0:
            session.resize(piece.shape, sig, label=input_label)
            session.reset(dict(enumerate(initial)))
        elif piece.shape != fed:
            # Only the last chunk can be shorter; resizing re-allocates and zeroes the states, so carry them.
            carried = session.state()
            session.resize(piece.shape, sig, label=input_label)
            session.reset(dict(enumerate(carried)))
        fed = piece.shape
        outputs.append(session.invoke(piece))
    return outputs


def _check_states(
    lm: LstmModel, initial: list[tuple[np.ndarray | None, np.ndarray | None]], batch: int, state_label: str
) -> None:
    """(h0, c0) per LSTM op, each None or batch x size floats."""
    sizes = lm.state_sizes()
    unit = "LSTM cell" if lm.form == "graph" else "LSTM op"  # graph form: its cells, in op order
    if len(initial) > len(sizes):
        raise LstmgenError(f"{state_label}: gives states for {len(initial)} {unit}s; {lm.path} has {len(sizes)}.")
    for k, (h0, c0) in enumerate(initial):
        for key, value, size in (("h", h0, sizes[k][0]), ("c", c0, sizes[k][1])):
            if value is not None and (value.dtype.kind != "f" or value.size != batch * size):
                which = f" of {unit} {k}" if len(sizes) > 1 else ""
                raise LstmgenError(
                    f"{state_label}: '{key}'{which} has shape {list(value.shape)} ({value.dtype}), expected "
                    f"[{batch}, {size}] floats (batch {batch} from the input, {'output' if key == 'h' else 'cell'} "
                    f"size {size})."
                )


def _head_names(lm: LstmModel) -> str:
    """The ops other than the LSTMs, e.g. 'STRIDED_SLICE (op 1), FULLY_CONNECTED (op 2), SOFTMAX (op 3)'."""
    lstms = {spec.op_index for spec in lm.lstms}
    ops = lm.model.operators
    return ", ".join(
        f"{BUILTIN_OPERATOR_NAMES.get(op.opcode, str(op.opcode))} (op {k})"
        for k, op in enumerate(ops)
        if k not in lstms
    )


def _check_whole_model_input(lm: LstmModel, x: np.ndarray, input_label: str) -> None:
    """A model with a head takes its own input shape; only a -1 axis of a 3-D input may differ (resized)."""
    stored = tuple(lm.input.shape)
    sig = tuple(lm.input.shape_signature or stored)
    resizable = len(stored) == 3  # the sessions resize a [batch, time, features] input (the states follow)
    if x.ndim != len(stored) or any(
        a != b and not (s == -1 and resizable) for a, b, s in zip(x.shape, stored, sig, strict=False)
    ):
        free = f" (shape_signature {list(sig)}: the -1 axes may differ)" if resizable and -1 in sig else ""
        raise LstmgenError(
            f"{input_label} has shape {list(x.shape)}, but {lm.path} (a model with ops around its LSTM ops: "
            f"{_head_names(lm)}) takes input of shape {list(stored)}{free}. Pass input of that shape."
        )
    if 0 in x.shape:
        raise LstmgenError(f"{input_label} has shape {list(x.shape)}: it needs at least one element on each axis.")


def _run_whole_model(
    lm: LstmModel,
    x: np.ndarray,
    initial: list[tuple[np.ndarray | None, np.ndarray | None]],
    chunk: int | None,
    runtime: str,
    input_label: str,
    state_label: str,
    notes: list[str],
) -> tuple[np.ndarray, list[State]]:
    """A model with ops around its LSTM ops (a converter's head): input to the model's output in one invoke."""
    t_axis = 0 if lm.time_major else 1
    if chunk is not None and (x.ndim != 3 or chunk < x.shape[t_axis]):
        raise LstmgenError(
            f"--chunk {chunk}: {lm.path} has ops around its LSTM ops ({_head_names(lm)}), which see one invoke's "
            "LSTM output at a time (a last-step slice or a Dense layer over it), so chunks would not compute what "
            "the whole sequence does. Run it without --chunk, or export its LSTM (lstmgen export) and build an "
            "LSTM-only model to stream."
        )
    # The LSTM ops' batch follows the input's (resizing moves the states with it); a non-3-D input is never resized.
    batch = x.shape[1 - t_axis] if x.ndim == 3 else int(lm.model.tensors[lm.lstms[0].h_index].shape[0])
    _check_states(lm, initial, batch, state_label)
    session = open_model_session(lm, runtime)
    session.resize(x.shape, tuple(lm.input.shape_signature or lm.input.shape), label=input_label)
    session.reset(dict(enumerate(initial)))
    y = session.invoke(x).astype(np.float32)
    notes.append(
        f"{lm.path} has ops around its LSTM ops ({_head_names(lm)}): the whole model ran in one invoke, input to "
        f"its output {list(y.shape)}; the final states are its LSTM ops'"
    )
    return y, session.state()
