"""Weight readers behind one interface, and format auto-detection."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from lstmgen.errors import WeightFileError
from lstmgen.weights.base import GATE_ORDERS, CellWeights, WeightReader, split_gates
from lstmgen.weights.base import load_npz as _load_npz

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
    "get_reader",
    "list_layers",
    "load_layers",
    "load_weights",
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
        claims = getattr(reader, "claims", None)
        if claims is not None and claims(path):
            return reader
    return None


@dataclass(frozen=True)
class _Opened:
    """A weight file with its reader chosen: .npz arrays are read once, native files by the reader."""

    path: Path
    reader: WeightReader
    arrays: Mapping[str, np.ndarray] | None  # None: a native file, opened by reader.load / list_layers
    note: str | None  # how the format was detected (None when --weights-format named it)

    def noted(self, weights: CellWeights) -> CellWeights:
        return replace(weights, notes=(self.note, *weights.notes)) if self.note else weights


def _open(path: str | Path, format: str) -> _Opened:
    """Choose the reader for a file (by --weights-format, file type or .npz keys); .npz arrays are loaded."""
    path = Path(path)
    if format not in FORMATS:
        raise WeightFileError(f"--weights-format {format!r} is unknown; choose one of {', '.join(FORMATS)}.")
    if path.suffix.lower() != ".npz" or path.is_dir():
        if not path.exists() and not Path(f"{path}.index").exists():
            raise WeightFileError(f"weights file {path} does not exist. Check the --weights path.")
        reader = get_reader(format) if format != "auto" else _native_reader(path)
        if reader is None:
            known = sorted({s for n in READER_CLASSES for s in get_reader(n).suffixes if s != "/"} | {".npz"})
            raise WeightFileError(
                f"weights file {path}: cannot tell its format from the name. Known file types: "
                f"{', '.join(known)}. Pass --weights-format."
            )
        note = f"format detected from the file type: {reader.name}" if format == "auto" else None
        return _Opened(path, reader, None, note)
    arrays = _load_npz(path)
    if format != "auto":
        return _Opened(path, get_reader(format), arrays, None)
    keys = frozenset(arrays)
    found = [get_reader(n) for n in READER_CLASSES if get_reader(n).matches(keys)]
    if len(found) != 1:
        tried = "; ".join(f"{n}: {get_reader(n).description}" for n in READER_CLASSES)
        what = "matches no known layout" if not found else "matches several layouts"
        raise WeightFileError(
            f"weights file {path} {what} (keys found: {', '.join(sorted(keys)) or 'none'}). "
            f"Layouts tried: {tried}. Pass --weights-format to choose one."
        )
    return _Opened(path, found[0], arrays, f"format detected from keys: {found[0].name}")


def _layers(opened: _Opened, layer: str | None) -> list[tuple[str, ...]]:
    if opened.arrays is None:
        return opened.reader.list_layers(opened.path, layer)
    return opened.reader.npz_layers(opened.arrays, str(opened.path), layer)  # type: ignore[attr-defined]


def load_weights(path: str | Path, format: str = "auto", layer: str | None = None) -> CellWeights:
    """Read a weight file into per-gate TFLite-layout arrays plus the hyperparameters it implies.

    Example:
        >>> w = load_weights("examples/weights_tf1.npz")        # doctest: +SKIP
        >>> w.format, w.implied()["num_units"]                   # doctest: +SKIP
        ('tf1', 32)
    """
    opened = _open(path, format)
    if opened.arrays is None:
        return opened.noted(opened.reader.load(opened.path, layer))
    return opened.noted(opened.reader.read(opened.arrays, str(opened.path), layer))


def list_layers(path: str | Path, format: str = "auto", layer: str | None = None) -> tuple[str, list[tuple[str, ...]]]:
    """The format name and the file's LSTM layers in model order, each (forward cell,) or (forward, backward).

    Each cell name is accepted by `load_weights(path, format, layer=name)` (and by the reader's `load`).
    `layer` restricts the list to one group (a PyTorch module, a Keras nested model or Bidirectional,
    an ONNX node, a TF checkpoint scope) or names one cell. Files whose cells form several unrelated
    groups (PyTorch modules, TF checkpoint scopes) need `layer`.

    Example:
        >>> list_layers("bilstm.pt")                             # doctest: +SKIP
        ('torch', [('lstm.l0', 'lstm.l0_reverse'), ('lstm.l1', 'lstm.l1_reverse')])
    """
    opened = _open(path, format)
    return opened.reader.name, _layers(opened, layer)


def load_layers(path: str | Path, format: str = "auto", layer: str | None = None) -> list[list[CellWeights]]:
    """Every cell of every layer `list_layers` gives, in the same order, reading the file once.

    Backward cells come with direction="backward"; what that means per format is in their hyperparameters
    (Keras go_backwards, ONNX onnx_reverse) or the layer they belong to (a bidirectional pair).
    """
    opened = _open(path, format)
    reader, source = opened.reader, str(opened.path)
    if opened.arrays is not None:
        arrays = opened.arrays
        return [[opened.noted(reader.read(arrays, source, c)) for c in names] for names in _layers(opened, layer)]
    bulk = getattr(reader, "load_layers", None)
    if bulk is not None:
        layers: list[list[CellWeights]] = bulk(opened.path, layer)
    else:
        layers = [[reader.load(opened.path, c) for c in names] for names in reader.list_layers(opened.path, layer)]
    return [[opened.noted(w) for w in row] for row in layers]
