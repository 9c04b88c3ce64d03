"""Weight readers behind one interface, and format auto-detection."""

from __future__ import annotations

import importlib
from dataclasses import replace
from pathlib import Path

from ..errors import WeightFileError
from .base import GATE_ORDERS, CellWeights, WeightReader, split_gates
from .base import load_npz as _load_npz

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

__all__ = ["FORMATS", "GATE_ORDERS", "CellWeights", "get_reader", "load_weights", "split_gates"]


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


def load_weights(path: str | Path, format: str = "auto", layer: str | None = None) -> CellWeights:
    """Read a weight file into per-gate TFLite-layout arrays plus the hyperparameters it implies.

    Example:
        >>> w = load_weights("examples/weights_tf1.npz")        # doctest: +SKIP
        >>> w.format, w.implied()["num_units"]                   # doctest: +SKIP
        ('tf1', 32)
    """
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
        weights = reader.load(path, layer)
        return (
            replace(weights, notes=(f"format detected from the file type: {reader.name}", *weights.notes))
            if format == "auto"
            else weights
        )
    arrays = _load_npz(path)
    keys = frozenset(arrays)
    if format != "auto":
        return get_reader(format).read(arrays, str(path), layer)
    found = [get_reader(n) for n in READER_CLASSES if get_reader(n).matches(keys)]
    if len(found) != 1:
        tried = "; ".join(f"{n}: {get_reader(n).description}" for n in READER_CLASSES)
        what = "matches no known layout" if not found else "matches several layouts"
        raise WeightFileError(
            f"weights file {path} {what} (keys found: {', '.join(sorted(keys)) or 'none'}). "
            f"Layouts tried: {tried}. Pass --weights-format to choose one."
        )
    weights = found[0].read(arrays, str(path), layer)
    return replace(weights, notes=(f"format detected from keys: {found[0].name}", *weights.notes))
