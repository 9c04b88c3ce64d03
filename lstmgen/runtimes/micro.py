"""Runner for the TensorFlow Lite Micro (tflite-micro) Python interpreter, shaped like runtime.Session."""

from __future__ import annotations

import contextlib
import importlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from lstmgen.errors import LstmgenError, ModelFileError, RuntimeNotAvailable
from lstmgen.runtimes.interpreter import decode, encode
from lstmgen.runtimes.probe import probe
from lstmgen.targets.checks import LSTM
from lstmgen.targets.rules import check_target
from lstmgen.tflite.reader import read_model
from lstmgen.tflite.records import ModelRecord, TensorRecord
from lstmgen.tflite.slots import Slot

RUNTIME_NAME = "tflite-micro"
_MODULE = "tflite_micro"
_ARENA_OVERHEAD = 64 * 1024  # TFLM's own structures; measured ~10 KiB for one LSTM op and 24 tensors
_ARENA_PER_TENSOR = 1024


def import_tflm() -> Any:
    """The tflite_micro package, or RuntimeNotAvailable saying how to install it."""
    try:
        return importlib.import_module(_MODULE)
    except ImportError as exc:
        raise RuntimeNotAvailable(
            f"the TensorFlow Lite Micro interpreter is not installed ({exc}). Install it with "
            "pip install tflite-micro (PyPI has manylinux x86-64 wheels for CPython 3.10-3.13, none for macOS)."
        ) from None


def tflm_version(module: Any | None = None) -> str:
    """The package version, with the git commit it was built from when the package records one."""
    mod = module if module is not None else import_tflm()
    version = getattr(mod, "__version__", None)
    if version:
        return str(version)
    try:
        return metadata.version("tflite-micro")
    except metadata.PackageNotFoundError:
        return "unknown"


def arena_size(model: ModelRecord) -> int:
    """A safe tensor-arena size: TFLM segfaults (it does not raise) when the arena is too small.

    Constant data stays in the model buffer; the arena holds every non-constant tensor (kept apart:
    the session preserves all tensors so the state can be read), the LSTM's four scratch buffers of
    batch x num_units cells, and TFLM's own bookkeeping. Doubled for margin.
    """
    needed = 0
    for t in model.tensors:
        if t.data is None:
            needed += int(np.prod(t.shape, dtype=np.int64)) * t.dtype.itemsize
    for op in model.operators:
        if op.opcode == LSTM and len(op.inputs) > Slot.CELL_STATE and op.inputs[Slot.CELL_STATE] >= 0:
            c = model.tensors[op.inputs[Slot.CELL_STATE]]
            needed += 4 * int(np.prod(c.shape, dtype=np.int64)) * c.dtype.itemsize
    return 2 * needed + _ARENA_OVERHEAD + _ARENA_PER_TENSOR * len(model.tensors)


@contextlib.contextmanager
def capture_stderr() -> Iterator[list[str]]:
    """Collect what native code writes to fd 2 (TFLM's MicroPrintf), for error messages."""
    lines: list[str] = []
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        saved = os.dup(2)
        try:
            os.dup2(tmp.fileno(), 2)
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            lines.extend(tmp.read().decode(errors="replace").splitlines())


def _params(t: TensorRecord) -> tuple[float, int]:
    if t.dtype.kind != "f" and t.quantization is None:
        raise ModelFileError(f"tensor '{t.name}' is {t.dtype} without quantization parameters.")
    q = t.quantization
    return (q.scale[0], q.zero_point[0]) if q is not None else (1.0, 0)


def _to_tensor(value: np.ndarray, t: TensorRecord) -> np.ndarray:
    return encode(value, t.dtype, *_params(t))


def _from_tensor(value: np.ndarray, t: TensorRecord) -> np.ndarray:
    return decode(value, *_params(t))


@dataclass
class MicroSession:
    """A model loaded in TFLM, with the calls of runtime.Session (real-valued input, output and states).

    TFLM's Python interpreter reads any tensor (GetTensor, which needs kPreserveAllTensors) but writes
    only subgraph inputs: states start at zero after reset() and cannot be set from Python, and no
    tensor can be resized.
    """

    runtime: str
    version: str
    interpreter: Any
    input_index: int
    output_index: int
    states: list[tuple[int, int]]  # (h, c) tensor indices per LSTM op
    time_major: bool
    model: ModelRecord

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.model.tensors[self.input_index].shape)

    def resize(self, shape: tuple[int, ...], signature: tuple[int, ...] | None = None, label: str = "input") -> None:
        """TFLM cannot resize: succeeds only when `shape` is the model's stored input shape."""
        if tuple(shape) != self.input_shape:
            raise ModelFileError(
                f"{label} has shape {list(shape)} but TensorFlow Lite Micro runs the model only with its stored "
                f"input shape {list(self.input_shape)} (TFLM has no tensor resizing). Pass input of that shape, "
                "or rebuild the model with the --batch-size/--time-steps you need."
            )

    def reset(self, initial: dict[int, tuple[np.ndarray | None, np.ndarray | None]] | None = None) -> None:
        """Zero every state; a non-zero initial state is an error (TFLM cannot write variable tensors)."""
        for k, pair in (initial or {}).items():
            for key, value in zip(("h", "c"), pair, strict=True):
                if value is not None and np.any(value):
                    raise LstmgenError(
                        f"initial state '{key}' of LSTM op {k} is non-zero, but the TensorFlow Lite Micro Python "
                        "interpreter can only write subgraph inputs, not the LSTM's variable state tensors, so "
                        "TFLM runs start from the zero state. Check initial states with a TFLite runtime."
                    )
        self.interpreter.reset()

    def invoke_raw(self, x: np.ndarray) -> np.ndarray:
        """One invoke on x already in the input tensor's type (e.g. int8); returns the raw output."""
        x_t = self.model.tensors[self.input_index]
        if np.asarray(x).dtype != x_t.dtype:
            raise LstmgenError(f"input has dtype {np.asarray(x).dtype}, but the model's input is {x_t.dtype}.")
        self.resize(np.shape(x))
        self.interpreter.set_input(np.ascontiguousarray(x), self.model.inputs.index(self.input_index))
        self.interpreter.invoke()
        return self.interpreter.get_output(self.model.outputs.index(self.output_index))

    def invoke(self, x: np.ndarray) -> np.ndarray:
        """One invoke on real-valued x, continuing from the current state; returns the real output."""
        raw = self.invoke_raw(_to_tensor(x, self.model.tensors[self.input_index]))
        return _from_tensor(raw, self.model.tensors[self.output_index])

    def state_raw(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Current (h, c) of every LSTM op in the tensors' own types, copied out of TFLM's arena."""
        get = self.interpreter.GetTensor
        return [(np.array(get(h, 0)["tensor_data"]), np.array(get(c, 0)["tensor_data"])) for h, c in self.states]

    def state(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Current (h, c) of every LSTM op, real-valued."""
        t = self.model.tensors
        return [
            (_from_tensor(h, t[hi]), _from_tensor(c, t[ci]))
            for (h, c), (hi, ci) in zip(self.state_raw(), self.states, strict=True)
        ]


def open_micro_session(model_path: str | Path, *, arena: int | None = None, check: bool = True) -> MicroSession:
    """Load a model file (one input, one output, any number of fused LSTMs) in TFLM, reset.

    With check=True the model is first checked against the 'micro' target rules, so models TFLM would
    reject, or run silently wrong, are refused with the reasons.
    """
    tflm = import_tflm()
    path = Path(model_path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelFileError(f"model file {path} cannot be read ({exc.strerror}).") from None
    model = read_model(data, str(path))
    if check:
        problems = check_target(model, "micro")
        if problems:
            raise ModelFileError(
                f"{path}: TensorFlow Lite Micro cannot run this model:\n  - " + "\n  - ".join(problems)
            )
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ModelFileError(
            f"{path}: has {len(model.inputs)} inputs and {len(model.outputs)} outputs; expected one of each."
        )
    lstms = [op for op in model.operators if op.opcode == LSTM]
    rt = tflm.runtime

    def load_and_step() -> None:
        child = rt.Interpreter.from_bytes(data, arena_size=arena or arena_size(model))
        child.invoke()

    probe(path, "TensorFlow Lite Micro", load_and_step)  # a crash on a foreign file happens in a child
    with capture_stderr() as log:
        try:
            interp = rt.Interpreter.from_bytes(
                data,
                arena_size=arena or arena_size(model),
                intrepreter_config=rt.InterpreterConfig.kPreserveAllTensors,  # sic: the package's spelling
            )
        except (RuntimeError, ValueError) as exc:
            interp, error = None, exc
    if interp is None:
        detail = "; ".join(line.strip() for line in log if line.strip()) or str(error)
        raise ModelFileError(f"{path}: the TensorFlow Lite Micro interpreter refused the model: {detail}") from None
    interp.reset()
    time_major = bool(lstms[0].options.get("TimeMajor", False)) if lstms and lstms[0].options else False
    return MicroSession(
        runtime=RUNTIME_NAME,
        version=tflm_version(tflm),
        interpreter=interp,
        input_index=model.inputs[0],
        output_index=model.outputs[0],
        states=[(op.inputs[Slot.OUTPUT_STATE], op.inputs[Slot.CELL_STATE]) for op in lstms],
        time_major=time_major,
        model=model,
    )
