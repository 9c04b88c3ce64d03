"""`lstmgen run`: feed an input sequence through a model."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import click
import numpy as np

from lstmgen.arrays import load_npy, load_npz
from lstmgen.cli.common import EXIT_CODES_RUN, PATH, handle_errors, json_document, runtime_option
from lstmgen.errors import LstmgenError
from lstmgen.output import check_target, refuse_same, write_atomic
from lstmgen.run import run_model_states
from lstmgen.runtimes import EMULATE_CHOICES


def _load_state(path: Path) -> dict[str, np.ndarray]:
    state = load_npz(path, "initial state")
    unknown = sorted(k for k in state if not STATE_KEY.match(k))
    if unknown:
        raise LstmgenError(
            f"initial state {path}: unknown key(s) {', '.join(unknown)}; expected 'h' and/or 'c' (one LSTM op), or "
            "h_0, c_0, h_1, ... (one pair per LSTM op, in the order inspect lists them)."
        )
    return state


STATE_KEY = re.compile(r"^[hc](_\d+)?$")


def _state_list(state: dict[str, np.ndarray]) -> list[tuple[np.ndarray | None, np.ndarray | None]]:
    """{'h': .., 'c': ..} or {'h_0': .., 'c_1': ..} -> [(h0, c0) per LSTM op]."""
    if not state:
        return []
    index = {k: int(k[2:]) if "_" in k else 0 for k in state}
    count = max(index.values()) + 1
    return [
        (
            state.get(f"h_{k}", state.get("h") if k == 0 else None),
            state.get(f"c_{k}", state.get("c") if k == 0 else None),
        )
        for k in range(count)
    ]


def _write_state(path: Path, finals: list[tuple[np.ndarray, np.ndarray]], inputs: dict[str, Path | None]) -> None:
    """--final-state: 'h', 'c' for one op (or cell), else h_0, c_0, h_1, ... in op order."""
    sbuf = io.BytesIO()
    if len(finals) == 1:
        np.savez(sbuf, c=finals[0][1], h=finals[0][0])
    else:
        arrays: dict[str, Any] = {}
        for k, (h, c) in enumerate(finals):
            arrays |= {f"h_{k}": h, f"c_{k}": c}
        np.savez(sbuf, **arrays)
    write_atomic(path, sbuf.getbuffer(), inputs=inputs)


@click.command("run", epilog=EXIT_CODES_RUN)
@click.argument("model", type=PATH)
@click.option("--input", "input_path", type=PATH, required=True, help="Input sequence .npy ([B,T,I] or [T,B,I]).")
@click.option("--output", "output_path", type=PATH, required=True, help="Where to write the output .npy.")
@click.option(
    "--initial-state",
    type=PATH,
    help=".npz with 'h' [B,P] and/or 'c' [B,N] (default zeros); for several LSTM ops h_0, c_0, h_1, ... in op order "
    "(a graph-form file: its cells, built with --state-io).",
)
@click.option("--final-state", type=PATH, help="Write the final state as .npz: 'c' and 'h' (one op) or c_0, h_0, ...")
@click.option(
    "--chunk",
    type=click.IntRange(min=1),
    help="Feed N time steps per invoke, carrying the state (last chunk may be shorter): the fused form's state "
    "tensors; a graph-form file built with --state-io gets each invoke's final h/c outputs as the next one's inputs.",
)
@runtime_option(
    "Interpreter; micro = TensorFlow Lite Micro (pip install 'lstmgen[micro]'), auto picks it for int16x8; "
    "emulate = no interpreter: lstmgen's bit-exact emulation of LiteRT's integer kernel (else TFLM's; "
    "emulate-litert, emulate-tflm choose).",
    EMULATE_CHOICES,
)
@click.option("--json", "as_json", is_flag=True, help="Print what was run and written as JSON on stdout.")
@click.option("-q", "--quiet", is_flag=True, help="No notes on stderr.")
@handle_errors
def run_cmd(
    model: Path,
    input_path: Path,
    output_path: Path,
    initial_state: Path | None,
    final_state: Path | None,
    chunk: int | None,
    runtime: str,
    as_json: bool,
    quiet: bool,
) -> None:
    """Run MODEL on an input sequence from the zero (or a given) state.

    Inputs whose batch or time size differ from the model's are resized when the model allows it.
    A model with other ops around its LSTM ops (TF's converter's classifier: LSTM -> Dense -> softmax)
    runs whole, input to its output, in one invoke (no --chunk); the states are its LSTM ops'.

    Streaming: the fused form keeps h and c in state tensors between invokes. The graph form keeps none:
    built with --state-io, each cell's initial h/c are model inputs and its final h/c outputs, which
    --chunk feeds from one invoke to the next; without it, it runs from zero and refuses --chunk and
    --initial-state.

    \b
    Examples:
      # models from the examples of lstmgen build --help
      lstmgen run kws.tflite --input x.npy --output y.npy
      lstmgen run kws.tflite --input x.npy --output y.npy --chunk 10 --final-state s.npz
      # the graph form streams with explicit state (lstmgen build --form graph --state-io)
      lstmgen run stream.tflite --input x.npy --output y.npy --chunk 5 --initial-state s.npz
      # in TensorFlow Lite Micro (int16x8 models always run there; TFLM takes the stored input shape)
      lstmgen run lstm_int8.tflite --input x.npy --output y.npy --runtime micro
      # an integer model without any interpreter (bit for bit what TFLM computes)
      lstmgen run lstm_int8.tflite --input x.npy --output y.npy --runtime emulate-tflm
      # a summary for scripts: shapes, runtime, notes
      lstmgen run kws.tflite --input x.npy --output y.npy --json
    """
    x = load_npy(input_path, "input")
    state = _load_state(initial_state) if initial_state else {}
    inputs = {"MODEL": model, "--input": input_path, "--initial-state": initial_state}
    refuse_same({"--output": output_path, "--final-state": final_state})
    for target in (output_path, final_state):
        if target is not None:
            check_target(target, inputs)  # before running, so one bad path cannot leave the other file behind
    notes: list[str] = []
    y, finals = run_model_states(
        model,
        x,
        initial=_state_list(state),
        chunk=chunk,
        runtime=runtime,
        input_label=f"input {input_path}",
        state_label=f"initial state {initial_state}",
        notes=notes,
        final_state=final_state is not None,
    )
    buf = io.BytesIO()
    np.save(buf, y)
    write_atomic(output_path, buf.getbuffer(), inputs=inputs)
    if final_state is not None:
        _write_state(final_state, finals, inputs)
    if as_json:
        summary = {
            "ok": True,
            "model": str(model),
            "input": str(input_path),
            "output": str(output_path),
            "output_shape": list(y.shape),
            "final_state": str(final_state) if final_state else None,
            "notes": notes,
        }
        click.echo(json_document(summary))
    elif not quiet:
        for note in notes:
            click.echo(f"lstmgen: note: {note}", err=True)


command = run_cmd
