"""Adapter over the TFLite interpreters (ai-edge-litert, tflite-runtime, tensorflow): one Session API."""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lstmgen.arrays import free_shape
from lstmgen.errors import LstmgenError, ModelFileError, RuntimeNotAvailable
from lstmgen.numerics import affine
from lstmgen.runtimes import INSTALL_HINTS, RUNTIME_ALIASES, RUNTIME_CHOICES, RUNTIMES
from lstmgen.runtimes.probe import probe


def _import(name: str) -> Any:
    return importlib.import_module(RUNTIMES[name][0])


def resolve_runtime(name: str = "auto") -> str:
    """The runtime to use: LSTMGEN_RUNTIME or `name`; auto takes the first installed one."""
    given = f"--runtime {name!r}"
    if name == "auto" and "LSTMGEN_RUNTIME" in os.environ:
        name, given = os.environ["LSTMGEN_RUNTIME"], f"LSTMGEN_RUNTIME={os.environ['LSTMGEN_RUNTIME']!r}"
    name = RUNTIME_ALIASES.get(name, name)
    if name not in RUNTIME_CHOICES:
        raise RuntimeNotAvailable(f"{given} is unknown; choose one of {', '.join(RUNTIME_CHOICES)}.")
    candidates = list(RUNTIMES) if name == "auto" else [name]
    failed = ""
    for cand in candidates:
        try:
            _import(cand)
            return cand
        except ModuleNotFoundError:
            continue
        except Exception as exc:  # installed but broken, e.g. tflite-runtime 2.14 (built for numpy 1) under numpy 2
            failed = f" ({cand} is installed but does not import: {type(exc).__name__}: {exc})"
    if name == "auto":
        how = "Install one: " + "; or ".join(INSTALL_HINTS.values())
    else:
        others = ", ".join(r for r in RUNTIMES if r != name)
        how = f"Install it ({INSTALL_HINTS[name]}), or choose another runtime ({others}, or auto)"
    wanted = "any TFLite interpreter" if name == "auto" else f"the '{name}' runtime"
    raise RuntimeNotAvailable(
        f"{wanted} is not usable{failed}. {how}; `lstmgen build` can also skip verification with --no-verify."
    )


@contextlib.contextmanager
def _without_delegate_banner() -> Iterator[None]:
    """Native stderr while LiteRT applies its default delegate, minus its "INFO: Created ... delegate" line."""
    import tempfile

    with tempfile.TemporaryFile(mode="w+b") as tmp:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(tmp.fileno(), 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            rest = [ln for ln in tmp.read().decode(errors="replace").splitlines() if not ln.startswith("INFO: ")]
            if rest:
                print("\n".join(rest), file=sys.stderr)


def has_default_delegates(name: str) -> bool:
    """Whether the runtime can load a model without its default delegates (so loading WITH them differs)."""
    return getattr(_import(resolve_runtime(name)), "OpResolverType", None) is not None


def _version(name: str, module: Any) -> str:
    """The runtime's version: its package's __version__ (importlib.metadata costs 30-70 ms of imports)."""
    package = sys.modules.get(module.__name__.partition(".")[0])
    version = getattr(package, "__version__", None)
    if isinstance(version, str) and version:
        return version
    from importlib import metadata

    for dist in RUNTIMES[name][1]:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return "unknown"


def encode(value: np.ndarray, dtype: np.dtype, scale: float = 1.0, zero_point: int = 0) -> np.ndarray:
    """Real values -> a tensor's storage type (quantized with scale/zero point, saturating, if integer)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return np.ascontiguousarray(value, dtype=dtype)
    return np.ascontiguousarray(affine.quantize(value, dtype, scale, zero_point))


def decode(value: np.ndarray, scale: float = 1.0, zero_point: int = 0) -> np.ndarray:
    """A tensor's stored values -> real values (dequantized if integer)."""
    if value.dtype.kind == "f":
        return np.array(value)
    return affine.dequantize(value, scale, zero_point)


def to_tensor(value: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    """Real values -> what an interpreter tensor holds (its get_tensor_details() entry)."""
    return encode(value, detail["dtype"], *detail["quantization"])


def from_tensor(value: np.ndarray, detail: dict[str, Any]) -> np.ndarray:
    """Interpreter tensor -> real values."""
    return decode(value, *detail["quantization"])


@contextlib.contextmanager
def refused_by(runtime: str) -> Iterator[None]:
    """The interpreter's own errors on a model (failed prepare, null tensor data) are bad input, not bugs."""
    try:
        yield
    except LstmgenError:
        raise
    except (ValueError, RuntimeError) as exc:
        detail = " ".join(str(exc).split())[:400]
        raise ModelFileError(f"the {runtime} interpreter refused the model: {detail}") from None


@dataclass
class Session:
    """A loaded model: run sequences from zero or given states, read the final states (real values)."""

    runtime: str
    version: str
    interpreter: Any
    input_index: int
    output_index: int
    states: list[tuple[int, int]]  # (h, c) tensor indices per LSTM op
    time_major: bool
    _details: dict[int, dict[str, Any]] = field(default_factory=dict)
    # The graph form with --state-io: (initial h, initial c, final h, final c) per cell. Its state is the model's
    # own inputs and outputs: reset() sets what the next invoke feeds, invoke() keeps what it returned.
    state_io: tuple[tuple[int, int, int, int], ...] = ()
    _carried: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)

    def detail(self, index: int) -> dict[str, Any]:
        if not self._details:
            self._details = {d["index"]: d for d in self.interpreter.get_tensor_details()}
        if index not in self._details:  # the Python wrappers skip tensors they cannot describe
            raise ModelFileError(
                f"the {self.runtime} interpreter cannot describe tensor {index} of this model (corrupt tensor "
                "name or type). Rebuild the file."
            )
        return self._details[index]

    def _shape(self, index: int) -> tuple[int, ...]:
        return tuple(int(s) for s in self.detail(index)["shape"])

    def resize(self, shape: tuple[int, ...], signature: tuple[int, ...] | None, label: str = "input") -> None:
        """Resize input (and the states, when the batch changes); dims fixed in the model must match.

        Resizing re-allocates, which zeroes the states: call reset() afterwards.
        """
        current = self._shape(self.input_index)
        if tuple(shape) == current:
            return
        batch_axis = 1 if self.time_major else 0
        sig = signature or current
        for axis, (want, have, s) in enumerate(zip(shape, current, sig, strict=True)):
            if want != have and s != -1:
                what = {batch_axis: "batch", 1 - batch_axis: "time", 2: "feature"}[axis]
                hint = {"time": " without --time-steps", "batch": " with --dynamic-batch"}.get(what, "")
                shown = free_shape(current, signature, self.time_major)  # [1, T, 16] (T free), not a placeholder
                raise ModelFileError(
                    f"{label} has {what} size {want} but the model fixes it to {have} (input shape "
                    f"{shown}). Rebuild the model{hint} or pass input of shape {shown}."
                )
        interp = self.interpreter
        with refused_by(self.runtime):
            interp.resize_tensor_input(self.input_index, list(shape))
            if shape[batch_axis] != current[batch_axis]:
                # The kernel checks NumElements(state) == batch * size, so every state follows the batch.
                for pair in self.states:
                    for idx in pair:
                        interp.resize_tensor_input(idx, [shape[batch_axis], self._shape(idx)[-1]])
            interp.allocate_tensors()
        self._details = {}

    def reset(self, initial: dict[int, tuple[np.ndarray | None, np.ndarray | None]] | None = None) -> None:
        """Zero every state (allocate_tensors alone does not), then load the given (h0, c0) per LSTM op."""
        if self.state_io:
            self._carried = []
            for k, (h_in, c_in, _, _) in enumerate(self.state_io):
                h0, c0 = (initial or {}).get(k, (None, None))
                self._carried.append((self._start(h_in, h0), self._start(c_in, c0)))
            return
        with refused_by(self.runtime):
            self.interpreter.reset_all_variables()
            for k, (h0, c0) in (initial or {}).items():
                for idx, value in zip(self.states[k], (h0, c0), strict=True):
                    if value is not None:
                        detail = self.detail(idx)
                        self.interpreter.set_tensor(idx, to_tensor(np.reshape(value, self._shape(idx)), detail))

    def _start(self, index: int, value: np.ndarray | None) -> np.ndarray:
        shape = self._shape(index)
        return np.zeros(shape, np.float32) if value is None else np.reshape(np.asarray(value, np.float32), shape)

    def invoke(self, x: np.ndarray) -> np.ndarray:
        """One invoke on real-valued x, continuing from the current state; returns the real output."""
        if self.state_io and not self._carried:
            self.reset()
        with refused_by(self.runtime):
            self.interpreter.set_tensor(self.input_index, to_tensor(x, self.detail(self.input_index)))
            for (h_in, c_in, _, _), pair in zip(self.state_io, self._carried, strict=True):
                for index, value in zip((h_in, c_in), pair, strict=True):
                    self.interpreter.set_tensor(index, to_tensor(value, self.detail(index)))
            self.interpreter.invoke()
            y = from_tensor(self.interpreter.get_tensor(self.output_index), self.detail(self.output_index))
            self._carried = [(self.tensor(h), self.tensor(c)) for _, _, h, c in self.state_io]
            return y

    def tensor(self, index: int) -> np.ndarray:
        """Any tensor's current real value (intermediates need preserve_all_tensors)."""
        with refused_by(self.runtime):
            return from_tensor(self.interpreter.get_tensor(index), self.detail(index))

    def state(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Current (h, c) of every LSTM op (graph form with state_io: of every cell, as its last invoke returned)."""
        if self.state_io:
            return list(self._carried)
        get = self.interpreter.get_tensor
        with refused_by(self.runtime):
            return [(from_tensor(get(h), self.detail(h)), from_tensor(get(c), self.detail(c))) for h, c in self.states]


def open_session(
    model_path: str,
    *,
    runtime: str,
    input_index: int,
    output_index: int,
    states: list[tuple[int, int]],
    time_major: bool,
    preserve_all_tensors: bool = False,
    default_delegates: bool = False,
    state_io: tuple[tuple[int, int, int, int], ...] = (),
) -> Session:
    """Load a model file with the builtin kernels only (no default delegates), allocated and reset.

    preserve_all_tensors keeps every intermediate tensor readable after invoke (to check one op inside a graph);
    default_delegates=True loads it as users do by default instead (LiteRT applies XNNPACK).
    """
    name = resolve_runtime(runtime)
    mod = _import(name)
    kwargs: dict[str, Any] = {"model_path": str(model_path), "num_threads": 1}
    if preserve_all_tensors:
        kwargs["experimental_preserve_all_tensors"] = True
    resolver = getattr(mod, "OpResolverType", None)
    if resolver is not None and not default_delegates:
        kwargs["experimental_op_resolver_type"] = resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES

    def load_and_step() -> None:
        child = mod.Interpreter(**kwargs)
        child.allocate_tensors()
        child.invoke()

    probe(model_path, name, load_and_step)  # a crash on a foreign file happens in a child, not here
    try:
        with _without_delegate_banner() if default_delegates else contextlib.nullcontext():
            interp = mod.Interpreter(**kwargs)
            interp.allocate_tensors()
        interp.reset_all_variables()
    except (ValueError, RuntimeError) as exc:
        raise ModelFileError(f"{model_path}: the {name} interpreter refused the model: {exc}") from None
    return Session(name, _version(name, mod), interp, input_index, output_index, states, time_major, state_io=state_io)
