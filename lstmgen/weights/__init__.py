"""Weight readers behind one interface, and format auto-detection."""

from __future__ import annotations

from pathlib import Path

from ..errors import WeightFileError
from .base import GATE_ORDERS, CellWeights, WeightReader, split_gates
from .base import load_npz as _load_npz
from .tf1 import Tf1Reader
from .tflite_npz import TfliteReader

READERS: dict[str, WeightReader] = {r.name: r for r in (TfliteReader(), Tf1Reader())}
FORMATS: tuple[str, ...] = ("auto", *READERS)

__all__ = ["FORMATS", "GATE_ORDERS", "READERS", "CellWeights", "load_weights", "split_gates"]


def load_weights(path: str | Path, format: str = "auto", layer: str | None = None) -> CellWeights:
    """Read a weight file into per-gate TFLite-layout arrays.

    Example:
        >>> w = load_weights("examples/weights_tf1.npz")        # doctest: +SKIP
        >>> w.format, w.implied()["num_units"]                   # doctest: +SKIP
        ('tf1', 32)
    """
    path = Path(path)
    if format not in FORMATS:
        raise WeightFileError(f"--weights-format {format!r} is unknown; choose one of {', '.join(FORMATS)}.")
    if layer is not None:
        raise WeightFileError(f"--layer {layer!r}: .npz weight files hold a single cell; drop --layer.")
    arrays = _load_npz(path)
    keys = frozenset(arrays)
    if format == "auto":
        found = [r for r in READERS.values() if r.matches(keys)]
        if len(found) != 1:
            tried = "; ".join(f"{r.name}: {r.description}" for r in READERS.values())
            what = "matches no known layout" if not found else "matches several layouts"
            raise WeightFileError(
                f"weights file {path} {what} (keys found: {', '.join(sorted(keys)) or 'none'}). "
                f"Layouts tried: {tried}. Pass --weights-format to choose one."
            )
        reader = found[0]
        weights = reader.read(arrays, str(path))
        return CellWeights(
            weights.tensors,
            weights.format,
            weights.source,
            weights.forget_bias_default,
            (f"format detected from keys: {reader.name}", *weights.notes),
        )
    return READERS[format].read(arrays, str(path))
