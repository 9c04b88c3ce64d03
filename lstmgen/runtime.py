"""Adapter over the TFLite interpreters (ai-edge-litert, tflite-runtime, tensorflow): one Session API."""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import numpy as np

from .errors import ModelFileError, RuntimeNotAvailable

# runtime name -> (interpreter module, distribution whose version we report)
RUNTIMES: dict[str, tuple[str, str]] = {
    "litert": ("ai_edge_litert.interpreter", "ai-edge-litert"),
    "tflite-runtime": ("tflite_runtime.interpreter", "tflite-runtime"),
    "tensorflow": ("tensorflow.lite.python.interpreter", "tensorflow"),
}
RUNTIME_CHOICES: tuple[str, ...] = ("auto", *RUNTIMES)


def _import(name: str) -> Any:
    module, _ = RUNTIMES[name]
    return importlib.import_module(module)


def resolve_runtime(name: str = "auto") -> str:
    """The runtime to use: LSTMGEN_RUNTIME or `name`; auto takes the first installed one."""
    name = os.environ.get("LSTMGEN_RUNTIME", name) if name == "auto" else name
    if name not in RUNTIME_CHOICES:
        raise RuntimeNotAvailable(f"--runtime {name!r} is unknown; choose one of {', '.join(RUNTIME_CHOICES)}.")
    candidates = list(RUNTIMES) if name == "auto" else [name]
    for cand in candidates:
        try:
            _import(cand)
            return cand
        except ImportError:
            continue
    wanted = "any TFLite interpreter" if name == "auto" else f"the '{name}' runtime"
    raise RuntimeNotAvailable(
        f"{wanted} is not installed. Install one: pip install ai-edge-litert (default), or "
        "pip install 'lstmgen[tflite-runtime]'; or build with --no-verify."
    )


@dataclass
class Session:
    """A loaded model: run sequences from zero or given state, read the final state."""

    runtime: str
    version: str
    interpreter: Any
    input_index: int
    output_index: int
    h_index: int
    c_index: int
    time_major: bool

    def _shape(self, index: int) -> tuple[int, ...]:
        for d in self.interpreter.get_tensor_details():
            if d["index"] == index:
                return tuple(int(s) for s in d["shape"])
        raise KeyError(index)

    def resize(self, shape: tuple[int, ...], signature: tuple[int, ...] | None, label: str = "input") -> None:
        """Resize input (and the states, when the batch changes); dims fixed in the model must match."""
        current = self._shape(self.input_index)
        if tuple(shape) == current:
            return
        batch_axis = 1 if self.time_major else 0
        sig = signature or current
        for axis, (want, have, s) in enumerate(zip(shape, current, sig, strict=True)):
            if want != have and s != -1:
                what = {batch_axis: "batch", 1 - batch_axis: "time", 2: "feature"}[axis]
                raise ModelFileError(
                    f"{label} has {what} size {want} but the model fixes it to {have} (input shape "
                    f"{list(current)}). Rebuild the model{' without --time-steps' if what == 'time' else ''} "
                    f"or pass input of shape {list(current)}."
                )
        interp = self.interpreter
        interp.resize_tensor_input(self.input_index, list(shape))
        if shape[batch_axis] != current[batch_axis]:
            # The kernel checks NumElements(state) == batch * size, so states must follow the batch.
            for idx in (self.h_index, self.c_index):
                interp.resize_tensor_input(idx, [shape[batch_axis], self._shape(idx)[-1]])
        interp.allocate_tensors()

    def reset(self, h0: np.ndarray | None = None, c0: np.ndarray | None = None) -> None:
        """Zero the state (allocate_tensors alone does not), then load a given initial state."""
        self.interpreter.reset_all_variables()
        for idx, value in ((self.h_index, h0), (self.c_index, c0)):
            if value is not None:
                self.interpreter.set_tensor(
                    idx, np.ascontiguousarray(value, dtype=np.float32).reshape(self._shape(idx))
                )

    def invoke(self, x: np.ndarray) -> np.ndarray:
        """One invoke on x, continuing from the current state."""
        self.interpreter.set_tensor(self.input_index, np.ascontiguousarray(x, dtype=np.float32))
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output_index).copy()

    def state(self) -> tuple[np.ndarray, np.ndarray]:
        """Current (h, c)."""
        return (self.interpreter.get_tensor(self.h_index).copy(), self.interpreter.get_tensor(self.c_index).copy())


def open_session(
    model_path: str, *, runtime: str, input_index: int, output_index: int, h_index: int, c_index: int, time_major: bool
) -> Session:
    """Load a model file with the builtin kernels only (no default delegates), allocated and reset."""
    name = resolve_runtime(runtime)
    mod = _import(name)
    kwargs: dict[str, Any] = {"model_path": str(model_path), "num_threads": 1}
    resolver = getattr(mod, "OpResolverType", None)
    if resolver is not None:
        kwargs["experimental_op_resolver_type"] = resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    try:
        interp = mod.Interpreter(**kwargs)
        interp.allocate_tensors()
        interp.reset_all_variables()
    except (ValueError, RuntimeError) as exc:
        raise ModelFileError(f"{model_path}: the {name} interpreter refused the model: {exc}") from None
    dist = RUNTIMES[name][1]
    try:
        version = metadata.version(dist)
    except metadata.PackageNotFoundError:  # e.g. tensorflow-cpu provides the tensorflow module
        version = getattr(mod, "__version__", "unknown")
    return Session(name, version, interp, input_index, output_index, h_index, c_index, time_major)
