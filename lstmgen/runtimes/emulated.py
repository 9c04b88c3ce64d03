"""`--runtime emulate`: a Session-shaped runner over lstmgen's bit-exact emulation of an integer kernel."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lstmgen.errors import ModelFileError
from lstmgen.numerics import affine
from lstmgen.numerics.emulate import emulate, make_kernel
from lstmgen.tflite.records import ModelRecord, TensorRecord
from lstmgen.tflite.schema import BuiltinOperator as Op

# --runtime value -> emulated kernel flavour (None: LiteRT's if it takes the model, else TFLM's)
EMULATE_RUNTIMES: dict[str, str | None] = {"emulate": None, "emulate-litert": "litert", "emulate-tflm": "tflm"}
REPRODUCES = {
    "litert": "LiteRT's integer LSTM kernel (x86-64 build)",
    "tflm": "TensorFlow Lite Micro's reference integer LSTM kernel (and CMSIS-NN's, from the zero state)",
}


def _encode(t: TensorRecord, real: np.ndarray) -> np.ndarray:
    if t.dtype.kind == "f" or t.quantization is None:
        return np.asarray(real, np.float32)
    return affine.quantize(real, t.dtype, t.quantization.scale[0], t.quantization.zero_point[0]).astype(np.int64)


def _decode(t: TensorRecord, codes: np.ndarray) -> np.ndarray:
    if t.dtype.kind == "f" or t.quantization is None:
        return np.asarray(codes, np.float32)
    return affine.dequantize(codes, t.quantization.scale[0], t.quantization.zero_point[0])


def pick_flavour(model: ModelRecord, runtime: str) -> str:
    """The flavour `runtime` names, or for plain 'emulate' the first whose kernel takes every LSTM op."""
    chosen = EMULATE_RUNTIMES[runtime]
    ops = [k for k, op in enumerate(model.operators) if op.opcode == Op.UNIDIRECTIONAL_SEQUENCE_LSTM]
    reasons = []
    for flavour in [chosen] if chosen else ["litert", "tflm"]:
        try:
            for k in ops:
                make_kernel(model, k, flavour)
            return flavour
        except ModelFileError as exc:
            reasons.append(str(exc))
    raise ModelFileError(f"--runtime {runtime}: " + " ".join(reasons))


@dataclass
class EmulatedSession:
    """run's Session calls (resize, reset, invoke, state) on real values, computed by the emulated kernels."""

    runtime: str
    version: str
    flavour: str
    model: ModelRecord
    input_index: int
    output_index: int
    lstm_ops: list[int]
    shape: tuple[int, ...] = ()
    _states: dict[int, tuple[np.ndarray | None, np.ndarray | None]] = field(default_factory=dict)

    def resize(self, shape: tuple[int, ...], signature: tuple[int, ...] | None = None, label: str = "input") -> None:
        stored = self.model.tensors[self.input_index].shape
        sig = signature or stored
        for want, have, s in zip(shape, stored, sig, strict=True):
            if want != have and s != -1:
                raise ModelFileError(
                    f"{label} has shape {list(shape)} but the model fixes its input to {list(stored)}; pass input "
                    "of that shape."
                )
        self.shape = tuple(shape)

    def reset(self, initial: dict[int, tuple[np.ndarray | None, np.ndarray | None]] | None = None) -> None:
        """Zero state (h = its zero point, c = 0), then the given real (h0, c0) per LSTM op, on their grids."""
        self._states = {}
        for k, (h0, c0) in (initial or {}).items():
            op = self.model.operators[self.lstm_ops[k]]
            h_t, c_t = self.model.tensors[op.inputs[18]], self.model.tensors[op.inputs[19]]
            self._states[self.lstm_ops[k]] = (
                None if h0 is None else _encode(h_t, h0),
                None if c0 is None else _encode(c_t, c0),
            )

    def invoke(self, x: np.ndarray) -> np.ndarray:
        feed = _encode(self.model.tensors[self.input_index], x)
        em = emulate(self.model, {self.input_index: feed}, self.flavour, states=self._states)
        self._states = {k: (h, c) for k, (h, c) in em.final_states.items()}
        return _decode(self.model.tensors[self.output_index], em.values[self.output_index])

    def state(self) -> list[tuple[np.ndarray, np.ndarray]]:
        out = []
        for k in self.lstm_ops:
            op = self.model.operators[k]
            h_t, c_t = self.model.tensors[op.inputs[18]], self.model.tensors[op.inputs[19]]
            h, c = self._states.get(k, (None, None))
            h = _encode(h_t, np.zeros(h_t.shape)) if h is None else h  # the zero state: h at its zero point
            c = np.zeros(c_t.shape, np.int64) if c is None else c
            out.append((_decode(h_t, h), _decode(c_t, c)))
        return out


def open_emulated_session(model: ModelRecord, runtime: str) -> EmulatedSession:
    """A session over `model` (one input, one output) for --runtime emulate[-litert|-tflm]."""
    from lstmgen.version import __version__ as version

    flavour = pick_flavour(model, runtime)
    ops = [k for k, op in enumerate(model.operators) if op.opcode == Op.UNIDIRECTIONAL_SEQUENCE_LSTM]
    stored = tuple(model.tensors[model.inputs[0]].shape)
    name = f"emulate-{flavour}"
    return EmulatedSession(name, version, flavour, model, model.inputs[0], model.outputs[0], ops, stored)


def describe(session: Any) -> str:
    """run's note: which runtime the numbers reproduce."""
    return (
        f"no interpreter ran: lstmgen's bit-exact emulation of {REPRODUCES[session.flavour]} computed the output "
        "(0 LSB from that runtime on every model tested)"
    )


def cross_check(model: ModelRecord, runtime: str, x: np.ndarray, y: np.ndarray, finals: list[Any]) -> str | None:
    """run's note when an interpreter's integer output (from the zero state) is not what the exact emulation
    of its own kernel gives: that runtime build is the one that is off. None when it agrees (or cannot tell)."""
    from lstmgen.numerics.emulate import emulation_report
    from lstmgen.numerics.emulate.report import emulation_verdict

    rep = emulation_report(model, runtime, x, y, finals=finals)
    if (rep["max_lsb"] is None or rep["ok"]) and not (runtime != "tflite-micro" and rep.get("runtimes_disagree")):
        return None  # TFLM reads such files right: no note for it
    return emulation_verdict([rep]).strip()
