"""Live framework objects as weight sources: each is handed to the reader of its saved form, in memory.

A torch module becomes its state_dict (the torch reader), a Keras layer or model its config and
weights (the Keras reader's .keras path), an onnx.ModelProto its serialized bytes (the ONNX reader),
a dict of arrays an opened .npz (the reader its keys select). So a live object and its saved file
give the same cells, notes and checks, and the same model bytes. Frameworks are never imported
here: objects are recognised by what they offer (duck typing), and their tensors converted with
the methods they carry.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, cast

import numpy as np

from lstmgen.errors import WeightFileError
from lstmgen.weights import FORMATS, WeightSource, detect, get_reader
from lstmgen.weights import open as open_weights
from lstmgen.weights.base import NpzFile
from lstmgen.weights.npz import NpzArrays

# Keras layer classes whose weights are an LSTM cell's; a Bidirectional wraps two, a model holds layers.
_KERAS_CELLS = ("LSTM", "LSTMV1", "LSTMV2", "RNN")
_KERAS_ROLES = ("kernel", "recurrent_kernel", "bias")


class MemoryArrays(dict[str, np.ndarray]):
    """Arrays held in memory, with the interface an opened .npz offers the readers (nothing to release)."""

    def release(self) -> None:
        """Nothing is mapped: the arrays belong to the caller."""

    def close(self) -> None:
        """Nothing is open."""

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self[name].shape)


def kind(obj: object) -> str | None:
    """Which live source `obj` is ('torch', 'keras', 'onnx-proto', 'arrays'), or None (a path or unknown)."""
    return next((name for name, test in _KINDS.items() if test(obj)), None)


def _is_torch(obj: object) -> bool:
    return callable(getattr(obj, "state_dict", None)) and callable(getattr(obj, "named_modules", None))


def _is_keras(obj: object) -> bool:
    return callable(getattr(obj, "get_weights", None)) and callable(getattr(obj, "get_config", None))


def _is_onnx(obj: object) -> bool:
    return hasattr(obj, "graph") and callable(getattr(obj, "SerializeToString", None))


_KINDS: dict[str, Callable[[object], bool]] = {
    "torch": _is_torch,
    "keras": _is_keras,
    "onnx-proto": _is_onnx,
    "arrays": lambda obj: isinstance(obj, Mapping),
}


def describe_object(obj: object) -> str:
    """How messages and the build summary name a live object: '<torch LSTM>', '<keras Sequential 'm'>'."""
    name = getattr(obj, "name", None)
    family = {"torch": "torch", "keras": "keras", "onnx-proto": "onnx", "arrays": "arrays"}.get(kind(obj) or "", "")
    named = f" {name!r}" if isinstance(name, str) and name else ""
    return f"<{family} {type(obj).__name__}{named}>"


@contextlib.contextmanager
def open_live(obj: object, format: str = "auto") -> Iterator[WeightSource]:
    """A WeightSource reading `obj` through its saved form's reader (closed, and temporary files gone, on exit)."""
    found = kind(obj)
    if found is None:
        raise WeightFileError(
            f"cannot read weights from a {type(obj).__name__}: expected a path to a weight file, a torch.nn.Module "
            "(an nn.LSTM or a module holding one), a Keras LSTM/Bidirectional layer or model, an onnx.ModelProto, "
            "or a dict of arrays in a supported layout."
        )
    if format not in FORMATS:
        raise WeightFileError(f"weights_format {format!r} is unknown; choose one of {', '.join(FORMATS)}.")
    name = describe_object(obj)
    if found == "onnx-proto":
        with tempfile.TemporaryDirectory(prefix="lstmgen-") as tmp:
            path = Path(tmp) / "model.onnx"
            path.write_bytes(obj.SerializeToString())  # type: ignore[attr-defined]
            with open_weights(path, "onnx" if format == "auto" else format) as source:
                yield source
        return
    source = _TO_SOURCE[found](obj, name, format)
    try:
        yield source
    finally:
        source.close()


def _arrays_source(obj: Any, name: str, format: str) -> WeightSource:
    """A dict of arrays, as an .npz of the same keys is read (numpy arrays, or tensors that convert to them)."""
    arrays = MemoryArrays({str(k): _to_numpy(v, str(k), name) for k, v in obj.items()})
    return _npz_like(arrays, name, format)


def _npz_like(arrays: MemoryArrays, name: str, format: str) -> WeightSource:
    if format != "auto":
        return _memory_source(name, format, NpzFile(get_reader(format), _as_npz(arrays), name), None)
    found = detect.by_keys(frozenset(arrays))
    if len(found) != 1:
        tried = "; ".join(f"{n}: {info.description}" for n, info in detect.FORMATS.items())
        what = "match no known layout" if not found else "match several layouts"
        raise WeightFileError(
            f"{name}: the array names {what} (keys found: {', '.join(sorted(arrays)) or 'none'}). "
            f"Layouts tried: {tried}. Pass weights_format to choose one."
        )
    note = f"format detected from keys: {found[0]}"
    return _memory_source(name, found[0], NpzFile(get_reader(found[0]), _as_npz(arrays), name), note)


def _as_npz(arrays: MemoryArrays) -> NpzArrays:
    return cast(NpzArrays, arrays)  # the same Mapping interface, plus release/close/shape (see MemoryArrays)


def _memory_source(name: str, format: str, file: Any, note: str | None) -> WeightSource:
    source = WeightSource(Path(name), get_reader(format), None, note)
    source._file = file
    return source


def _to_numpy(value: Any, key: str, name: str) -> np.ndarray:
    """A tensor or array as NumPy: torch tensors detached to the CPU (bfloat16 widened: NumPy has none)."""
    if hasattr(value, "detach"):
        value = value.detach().cpu()
        if str(getattr(value, "dtype", "")) == "torch.bfloat16":
            value = value.float()  # exact
        value = value.numpy()
    elif hasattr(value, "numpy") and not isinstance(value, np.ndarray):
        value = value.numpy()  # a TF/Keras variable
    array = np.asarray(value)
    if array.dtype == object:
        raise WeightFileError(f"{name}: '{key}' is a {type(value).__name__}, expected an array of numbers.")
    return array


def _torch_source(obj: Any, name: str, format: str) -> WeightSource:
    """A module's state_dict, read as the same state_dict saved to a file is (only nn.LSTM keys are kept)."""
    state = obj.state_dict()
    arrays = MemoryArrays({k: _to_numpy(v, k, name) for k, v in state.items() if detect.TORCH_KEY.match(k) is not None})
    if not arrays:
        raise WeightFileError(
            f"{name} holds no nn.LSTM parameters (state_dict keys: {', '.join(list(state)[:12]) or 'none'}). "
            "Pass an nn.LSTM or a module holding one."
        )
    reader = "torch" if format == "auto" else format
    return _memory_source(name, reader, NpzFile(get_reader(reader), _as_npz(arrays), name), None)


def keras_cells(obj: Any, prefix: tuple[str, ...] = ()) -> dict[str, dict[str, np.ndarray]]:
    """Every LSTM cell of a Keras layer or model: name path (as the .keras reader names it) -> arrays by role."""
    cls = type(obj).__name__
    if cls == "Bidirectional":
        out = {}
        for half in ("forward_layer", "backward_layer"):
            out.update(keras_cells(getattr(obj, half), (*prefix, half)))
        return out
    if cls in _KERAS_CELLS:
        weights = [_to_numpy(w, role, cls) for w, role in zip(obj.get_weights(), _KERAS_ROLES, strict=False)]
        if len(weights) < 2:
            raise WeightFileError(
                f"Keras layer {obj.name!r} has no weights yet: it was never built. Call the model on an input (or "
                "build it with an input shape, or load its trained weights) before passing it to lstmgen."
            )
        return {"/".join(prefix): dict(zip(_KERAS_ROLES, weights, strict=False))}
    out = {}
    for layer in getattr(obj, "layers", None) or []:
        out.update(keras_cells(layer, (*prefix, str(layer.name))))
    return out


def keras_config(obj: Any) -> dict[str, Any]:
    """The config a .keras file would hold: the model's, or a one-layer Sequential around a bare layer."""
    if getattr(obj, "layers", None) is not None and type(obj).__name__ not in ("Bidirectional", *_KERAS_CELLS):
        return {"class_name": type(obj).__name__, "config": obj.get_config()}
    layer = {"class_name": type(obj).__name__, "config": obj.get_config()}
    return {"class_name": "Sequential", "config": {"name": "sequential", "layers": [layer]}}


def _keras_source(obj: Any, name: str, format: str) -> WeightSource:
    """A Keras layer or model: its cells found and configured as in the .keras file model.save() writes."""
    from lstmgen.weights.keras import KerasFile

    if format not in ("auto", "keras"):
        raise WeightFileError(f"{name} is a Keras object: its weights are in the keras layout, not {format}.")
    top = (str(obj.name),) if type(obj).__name__ in ("Bidirectional", *_KERAS_CELLS) else ()
    cells = keras_cells(obj, top)
    if not cells:
        raise WeightFileError(
            f"{name} holds no Keras LSTM layer (an LSTM, a Bidirectional around one, or an RNN of LSTMCell)."
        )
    return _memory_source(name, "keras", KerasFile.in_memory(keras_config(obj), cells, name), None)


_TO_SOURCE: dict[str, Callable[[Any, str, str], WeightSource]] = {
    "torch": _torch_source,
    "keras": _keras_source,
    "arrays": _arrays_source,
}
