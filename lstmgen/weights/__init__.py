"""Weight readers behind one interface, and format auto-detection."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import replace
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

from lstmgen import guard
from lstmgen.errors import LstmgenError, WeightFileError
from lstmgen.weights.base import GATE_ORDERS, CellWeights, WeightReader, split_gates
from lstmgen.weights.npz import NpzArrays

# Format name -> "module:Class". Imported on first use, so optional dependencies (h5py, onnx,
# torch, safetensors) are only needed by the formats that use them.
READER_CLASSES: dict[str, str] = {
    "tflite": "lstmgen.weights.tflite_npz:TfliteReader",
    "tf1": "lstmgen.weights.tf1:Tf1Reader",
    "torch": "lstmgen.weights.torch_sd:TorchReader",
    "keras": "lstmgen.weights.keras:KerasReader",
    "onnx": "lstmgen.weights.onnx_lstm:OnnxReader",
    "tf-checkpoint": "lstmgen.weights.tf_checkpoint:TfCheckpointReader",
}
FORMATS: tuple[str, ...] = ("auto", *READER_CLASSES)
_cache: dict[str, WeightReader] = {}

__all__ = [
    "FORMATS",
    "GATE_ORDERS",
    "CellWeights",
    "WeightSource",
    "get_reader",
    "list_layers",
    "load_layers",
    "load_weights",
    "open",
    "split_gates",
]


def get_reader(name: str) -> WeightReader:
    if name not in _cache:
        module, cls = READER_CLASSES[name].split(":")
        _cache[name] = getattr(importlib.import_module(module), cls)()
    return _cache[name]


def _native_reader(path: Path) -> WeightReader | None:
    """The reader for a non-.npz path: by suffix, else by the reader's own `claims(path)` test."""
    readers = [get_reader(name) for name in READER_CLASSES]
    for reader in readers:
        if any(path.name.lower().endswith(s) for s in reader.suffixes):
            return reader
    for reader in readers:
        if reader.claims(path):
            return reader
    return None


_F = TypeVar("_F", bound=Callable[..., Any])
# What reader code raises when a file's structure is not what its format promises (a list where a
# table belongs, a missing key, a nesting bomb): bad input, exit 2, never "internal error".
_MALFORMED = (KeyError, IndexError, TypeError, AttributeError, RecursionError, OverflowError, ValueError, MemoryError)


def _malformed_is_bad_input(func: _F) -> _F:
    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        path = getattr(args[0], "path", args[0])  # a WeightSource method, or open(path)
        try:
            return func(*args, **kwargs)
        except LstmgenError:
            raise
        except _MALFORMED as exc:
            detail = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
            raise WeightFileError(
                f"weights file {path} is malformed: its contents do not have the structure its format defines "
                f"({detail}). Re-save it with its framework; if the framework loads it, please report this to "
                "lstmgen."
            ) from None

    return wrapper  # type: ignore[return-value]


class WeightSource:
    """One weight file, opened once, with its reader chosen: `.cells()` lists its LSTM cells, `.load()` reads one.

    An .npz is opened lazily (its zip directory and array headers at open, each array memory-mapped when a
    reader uses it, see NpzArrays); `release()` then drops the file pages read so far, so a caller that has
    copied the weights out holds no second copy. Other file types are opened by their reader.

    Example:
        >>> with open("bilstm.pt") as src:                          # doctest: +SKIP
        ...     src.format, src.cells()
        ('torch', [('lstm.l0', 'lstm.l0_reverse'), ('lstm.l1', 'lstm.l1_reverse')])
        ...     cell = src.load("lstm.l0")
    """

    def __init__(self, path: Path, reader: WeightReader, arrays: NpzArrays | None, note: str | None) -> None:
        self.path = path
        self.reader = reader
        self.arrays = arrays  # None: a native file, opened by the reader
        self.note = note  # how the format was detected (None when --weights-format named it)

    @property
    def format(self) -> str:
        return self.reader.name

    @_malformed_is_bad_input
    def cells(self, layer: str | None = None) -> list[tuple[str, ...]]:
        """The file's LSTM layers in model order, each (forward cell,) or (forward, backward).

        `layer` restricts the list to one group (a PyTorch module, a Keras nested model or Bidirectional,
        an ONNX node, a TF checkpoint scope) or names one cell. Files whose cells form several unrelated
        groups (PyTorch modules, TF checkpoint scopes) need it. Each name is accepted by `load`.
        """
        if self.arrays is None:
            return self.reader.list_layers(self.path, layer)
        return self.reader.npz_layers(self.arrays, str(self.path), layer)

    @_malformed_is_bad_input
    def load(self, cell: str | None = None) -> CellWeights:
        """One cell's weights in TFLite layout (None: the file's only cell, or its first per the reader)."""
        if self.arrays is None:
            return self._noted(self.reader.load(self.path, cell))
        return self._noted(self.reader.read(self.arrays, str(self.path), cell))

    @_malformed_is_bad_input
    def load_layers(self, layer: str | None = None) -> list[list[CellWeights]]:
        """Every cell of every layer `cells(layer)` gives, in the same order.

        Backward cells come with direction="backward"; what that means per format is in their hyperparameters
        (Keras go_backwards, ONNX onnx_reverse) or the layer they belong to (a bidirectional pair).
        """
        if self.arrays is None:
            layers = self.reader.load_layers(self.path, layer)
        else:
            layers = [[self.reader.read(self.arrays, str(self.path), c) for c in row] for row in self.cells(layer)]
        return [[self._noted(w) for w in row] for row in layers]

    def release(self) -> None:
        """Drop the pages of a memory-mapped .npz read so far (arrays stay valid, read again on use)."""
        if self.arrays is not None:
            self.arrays.release()

    def close(self) -> None:
        if self.arrays is not None:
            self.arrays.close()

    def __enter__(self) -> WeightSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _noted(self, weights: CellWeights) -> CellWeights:
        return replace(weights, notes=(self.note, *weights.notes)) if self.note else weights


@_malformed_is_bad_input
def open(path: str | Path, format: str = "auto") -> WeightSource:
    """Open a weight file, choosing its reader by `format`, the file type or (.npz) the array names."""
    path = Path(path)
    if format not in FORMATS:
        raise WeightFileError(f"--weights-format {format!r} is unknown; choose one of {', '.join(FORMATS)}.")
    if path.suffix.lower() != ".npz" or path.is_dir():
        if not path.exists() and not Path(f"{path}.index").exists():
            raise WeightFileError(f"weights file {path} does not exist. Check the --weights path.")
        if path.exists():  # a checkpoint directory is fine; a FIFO or device is not
            guard.regular_file(path, "weights file", dir_ok=True, error=WeightFileError)
        reader = get_reader(format) if format != "auto" else _native_reader(path)
        if reader is None:
            known = sorted({s for n in READER_CLASSES for s in get_reader(n).suffixes if s != "/"} | {".npz"})
            raise WeightFileError(
                f"weights file {path}: cannot tell its format from the name. Known file types: "
                f"{', '.join(known)}. Pass --weights-format."
            )
        note = f"format detected from the file type: {reader.name}" if format == "auto" else None
        return WeightSource(path, reader, None, note)
    arrays = NpzArrays(path)
    if format != "auto":
        return WeightSource(path, get_reader(format), arrays, None)
    keys = frozenset(arrays)
    found = [get_reader(n) for n in READER_CLASSES if get_reader(n).matches(keys)]
    if len(found) != 1:
        tried = "; ".join(f"{n}: {get_reader(n).description}" for n in READER_CLASSES)
        what = "matches no known layout" if not found else "matches several layouts"
        raise WeightFileError(
            f"weights file {path} {what} (keys found: {', '.join(sorted(keys)) or 'none'}). "
            f"Layouts tried: {tried}. Pass --weights-format to choose one."
        )
    return WeightSource(path, found[0], arrays, f"format detected from keys: {found[0].name}")


# The one-call forms (each opens the file once).


def load_weights(path: str | Path, format: str = "auto", layer: str | None = None) -> CellWeights:
    """Read a weight file into per-gate TFLite-layout arrays plus the hyperparameters it implies.

    Example:
        >>> w = load_weights("examples/weights_tf1.npz")        # doctest: +SKIP
        >>> w.format, w.implied()["num_units"]                   # doctest: +SKIP
        ('tf1', 32)
    """
    return open(path, format).load(layer)


def list_layers(path: str | Path, format: str = "auto", layer: str | None = None) -> tuple[str, list[tuple[str, ...]]]:
    """The format name and `open(path, format).cells(layer)`."""
    source = open(path, format)
    return source.format, source.cells(layer)


def load_layers(path: str | Path, format: str = "auto", layer: str | None = None) -> list[list[CellWeights]]:
    """`open(path, format).load_layers(layer)`."""
    return open(path, format).load_layers(layer)
