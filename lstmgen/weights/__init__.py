"""Weight readers behind one interface, and format auto-detection."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import replace
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

from lstmgen import guard
from lstmgen.errors import LstmgenError, WeightFileError
from lstmgen.weights import detect
from lstmgen.weights.base import GATE_ORDERS, CellWeights, NpzFile, WeightFile, WeightReader, split_gates
from lstmgen.weights.npz import NpzArrays

# Format name -> "module:Class". Imported on first use, so optional dependencies (h5py, onnx,
# torch) are only needed by the formats that use them, and detection imports none (see detect).
READER_CLASSES: dict[str, str] = {name: info.reader for name, info in detect.FORMATS.items()}
FORMATS: tuple[str, ...] = ("auto", *READER_CLASSES)
_cache: dict[str, WeightReader] = {}

__all__ = [
    "FORMATS",
    "GATE_ORDERS",
    "CellWeights",
    "WeightFile",
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
    """The reader for a non-.npz path: by suffix, else by a sniffing reader's own `claims(path)` test."""
    name = detect.by_suffix(path.name)
    if name is not None:
        return get_reader(name)
    sniffers = (get_reader(name) for name, info in detect.FORMATS.items() if info.sniffs)
    return next((reader for reader in sniffers if reader.claims(path)), None)


_F = TypeVar("_F", bound=Callable[..., Any])
# What reader code raises when a file's structure is not what its format promises (a list where a
# table belongs, a missing key, a nesting bomb): bad input, exit 2, never "internal error".
_MALFORMED = (KeyError, IndexError, TypeError, AttributeError, RecursionError, OverflowError, ValueError, MemoryError)


def _malformed_is_bad_input(func: _F) -> _F:
    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        path = args[0].path if isinstance(args[0], WeightSource) else args[0]  # a method, or open(path)
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

    The file is parsed once, on first use, and `.cells()`, `.load()` and `.load_layers()` share that
    parse (an HDF5 file, an ONNX model, a checkpoint index, a safetensors header, an .npz directory);
    arrays are read only for the cells loaded. An .npz is opened lazily (its zip directory and array
    headers at open, each array memory-mapped when a reader uses it, see NpzArrays). `release()` frees
    what the file holds beyond the loaded weights (dropped pages, or the file closed), `close()` closes
    it; the weights already loaded stay valid either way.

    Example:
        >>> with open("bilstm.pt") as src:                          # doctest: +SKIP
        ...     src.format, src.cells()
        ('torch', [('lstm.l0', 'lstm.l0_reverse'), ('lstm.l1', 'lstm.l1_reverse')])
        ...     cell = src.load("lstm.l0")
    """

    def __init__(
        self,
        path: Path,
        reader: WeightReader,
        arrays: NpzArrays | None,
        note: str | None,
        sizes: Mapping[str, object] | None = None,
    ) -> None:
        self.path = path
        self.reader = reader
        self.note = note  # how the format was detected (None when --weights-format named it)
        # An .npz is already open (detection read its keys); other files are opened on first use. A file
        # that records no sizes (a CudnnLSTM opaque buffer) is cut up by the sizes the caller states.
        self.sizes = sizes or {}
        sized = getattr(reader, "sized_file", None)
        self._file: WeightFile | None = None
        if arrays is not None:
            self._file = sized(arrays, str(path), sizes or {}) if sized else NpzFile(reader, arrays, str(path))
        self.settings = dict(arrays.settings) if arrays is not None else {}  # what lstmgen export recorded

    @property
    def format(self) -> str:
        return self.reader.name

    def _opened(self) -> WeightFile:
        if self._file is None:
            sized = getattr(self.reader, "open_sized", None)  # files that may record no sizes of their own
            self._file = sized(self.path, self.sizes) if sized else self.reader.open_file(self.path)
        return self._file

    @_malformed_is_bad_input
    def cells(self, layer: str | None = None) -> list[tuple[str, ...]]:
        """The file's LSTM layers in model order, each (forward cell,) or (forward, backward).

        `layer` restricts the list to one group (a PyTorch module, a Keras nested model or Bidirectional,
        an ONNX node, a TF checkpoint scope) or names one cell. Files whose cells form several unrelated
        groups (PyTorch modules, TF checkpoint scopes) need it. Each name is accepted by `load`.
        """
        return self._opened().cells(layer)

    @_malformed_is_bad_input
    def load(self, cell: str | None = None) -> CellWeights:
        """One cell's weights in TFLite layout (None: the file's only cell, or its first per the reader)."""
        return self._noted(self._opened().load(cell))

    @_malformed_is_bad_input
    def load_layers(self, layer: str | None = None) -> list[list[CellWeights]]:
        """Every cell of every layer `cells(layer)` gives, in the same order.

        Backward cells come with direction="backward"; what that means per format is in their hyperparameters
        (Keras go_backwards, ONNX onnx_reverse) or the layer they belong to (a bidirectional pair).
        """
        return [[self._noted(w) for w in row] for row in self._opened().load_layers(layer)]

    @_malformed_is_bad_input
    def cell_names(self) -> list[str]:
        """Every LSTM cell of the file, each accepted by `load` (also in files of several unrelated groups)."""
        return self._opened().cell_names()

    def release(self) -> None:
        """Free what the file holds beyond the loaded weights, which stay valid (cheap; call it often).

        Memory-mapped files (.npz, .safetensors) drop the pages read so far; others are closed (a later
        use opens the file again).
        """
        if self._file is not None and not self._file.release():
            self._file = None

    def close(self) -> None:
        """Close the file (loaded weights stay valid; a later use opens it again)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> WeightSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _noted(self, weights: CellWeights) -> CellWeights:
        if self.settings:  # the op settings lstmgen export recorded: stated, as a Keras layer's config is
            shown = ", ".join(f"{k} {v}" for k, v in self.settings.items())
            weights = replace(
                weights,
                hyperparameters={**self.settings, **weights.hyperparameters},
                notes=(*weights.notes, f"op settings recorded by lstmgen export: {shown}"),
            )
        return replace(weights, notes=(self.note, *weights.notes)) if self.note else weights


@_malformed_is_bad_input
def open(path: str | Path, format: str = "auto", sizes: Mapping[str, object] | None = None) -> WeightSource:
    """Open a weight file, choosing its reader by `format`, the file type or (.npz) the array names.

    `sizes` (num_units, input_size, num_layers, bidirectional as stated) read files that record none.
    """
    path = Path(path)
    if format not in FORMATS:
        raise WeightFileError(f"--weights-format {format!r} is unknown; choose one of {', '.join(FORMATS)}.")
    if path.suffix.lower() == ".tflite":
        raise WeightFileError(
            f"{path} is a TFLite model, not a weight file. To check it against your weights: lstmgen verify "
            f"{path} --weights WEIGHTS. To rebuild from its LSTM weights: lstmgen export {path} -o w.npz "
            "--format tflite, then lstmgen build --weights w.npz."
        )
    if path.suffix.lower() != ".npz" or path.is_dir():
        if not path.exists() and not Path(f"{path}.index").exists():
            raise WeightFileError(f"weights file {path} does not exist. Check the --weights path.")
        if path.exists():  # a checkpoint directory is fine; a FIFO or device is not
            guard.regular_file(path, "weights file", dir_ok=True, error=WeightFileError)
        reader = get_reader(format) if format != "auto" else _native_reader(path)
        if reader is None:
            known = sorted({s for info in detect.FORMATS.values() for s in info.suffixes if s != "/"} | {".npz"})
            raise WeightFileError(
                f"weights file {path}: cannot tell its format from the name. Known file types: "
                f"{', '.join(known)}. Pass --weights-format."
            )
        note = f"format detected from the file type: {reader.name}" if format == "auto" else None
        return WeightSource(path, reader, None, note, sizes)
    arrays = NpzArrays(path)
    if format != "auto":
        return WeightSource(path, get_reader(format), arrays, None, sizes)
    keys = frozenset(arrays)
    found = detect.by_keys(keys)  # no reader is imported to tell them apart
    if len(found) != 1:
        arrays.close()  # no handle outlives a refused file
        tried = "; ".join(f"{n}: {info.description}" for n, info in detect.FORMATS.items())
        what = "matches no known layout" if not found else "matches several layouts"
        raise WeightFileError(
            f"weights file {path} {what} (keys found: {', '.join(sorted(keys)) or 'none'}). "
            f"Layouts tried: {tried}. Pass --weights-format to choose one."
        )
    return WeightSource(path, get_reader(found[0]), arrays, f"format detected from keys: {found[0]}", sizes)


# The one-call forms (each opens the file once).


def load_weights(path: str | Path, format: str = "auto", layer: str | None = None) -> CellWeights:
    """Read a weight file into per-gate TFLite-layout arrays plus the hyperparameters it implies.

    Example:
        >>> w = load_weights("examples/weights_tf1.npz")        # doctest: +SKIP
        >>> w.format, w.implied()["num_units"]                   # doctest: +SKIP
        ('tf1', 32)
    """
    with open(path, format) as source:
        return source.load(layer)


def list_layers(path: str | Path, format: str = "auto", layer: str | None = None) -> tuple[str, list[tuple[str, ...]]]:
    """The format name and `open(path, format).cells(layer)`."""
    with open(path, format) as source:
        return source.format, source.cells(layer)


def load_layers(path: str | Path, format: str = "auto", layer: str | None = None) -> list[list[CellWeights]]:
    """`open(path, format).load_layers(layer)`."""
    with open(path, format) as source:
        return source.load_layers(layer)
