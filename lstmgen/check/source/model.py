"""The user's whole model from the source cells: stacking, directions, last step and layout, in float64.

Layer k's output feeds layer k+1. A backward cell (as its own file says: PyTorch _reverse, ONNX
reverse, Keras backward half) runs over the time-reversed sequence; in a two-cell layer its outputs
are re-aligned to the input positions and concatenated after the forward ones (PyTorch, ONNX and
Keras Bidirectional concat agree). A single go_backwards layer returns its outputs in processing
order (Keras). Without return_sequences each direction gives its last processed step (its final h).
"""

from __future__ import annotations

import importlib
import mmap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from lstmgen.check.source.common import (
    Array,
    Cell,
    CellFactory,
    Jitter,
    SourceUnsupported,
    Stated,
    forget_widened,
)

# Framework -> "module:function" building its cell; imported on use, so a build loads only its own.
FRAMEWORKS: dict[str, str] = {
    "tf1": "lstmgen.check.source.tf1_cell:tf1_cell",
    "keras": "lstmgen.check.source.keras_lstm:keras_cell",
    "torch": "lstmgen.check.source.torch_lstm:torch_cell",
    "onnx": "lstmgen.check.source.onnx_lstm:onnx_cell",
    "tflite": "lstmgen.check.source.canonical:canonical_cell",
    "cudnn": "lstmgen.check.source.cudnn_lstm:opaque_cell",
}


def _factory(framework: str) -> CellFactory:
    module, name = FRAMEWORKS[framework].split(":")
    factory: CellFactory = getattr(importlib.import_module(module), name)
    return factory


# What the "reference" field names: the framework whose documented equations were run.
REFERENCE_NAMES = {
    "tf1": "tf1-lstmcell",
    "keras": "keras",
    "torch": "pytorch",
    "onnx": "onnx",
    "tflite": "tflite-op",
    "cudnn": "cudnn",
}

# Keras Bidirectional merge_mode (PyTorch and ONNX always concatenate, forward first).
MERGE: dict[str, Callable[[list[Array]], Array]] = {
    "concat": lambda parts: np.concatenate(parts, axis=-1),
    "sum": lambda parts: parts[0] + parts[1],
    "mul": lambda parts: parts[0] * parts[1],
    "ave": lambda parts: (parts[0] + parts[1]) / 2,
}
States = Mapping[int, tuple[Array | None, Array | None]]

__all__ = ["SourceModel", "SourceUnsupported", "Stated", "source_model"]


@dataclass
class SourceModel:
    """layers[k] = the cells of layer k (forward first); run() computes output and final states."""

    layers: list[list[Cell]]
    positions: list[list[int]]  # the index each cell had in the caller's layers (its op order)
    stated: Stated
    arrays: list[Mapping[str, Array]] = field(default_factory=list)  # the stored arrays the cells read
    holders: Sequence[Sequence[object]] = ()  # what the cells were built from (restated() builds them again)

    def restated(self, **changes: object) -> SourceModel:
        """The same source with other stated options (a clip the file has): check/options.py runs both."""
        return source_model(self.holders, replace(self.stated, **changes))  # type: ignore[arg-type]

    def release_pages(self) -> None:
        """Drop the pages of memory-mapped source arrays read so far (they are read again if used again)."""
        forget_widened()
        for mapping in self.arrays:
            for value in mapping.values():
                base: object = value
                while base is not None and not isinstance(base, mmap.mmap):
                    base = base.obj if isinstance(base, memoryview) else getattr(base, "base", None)
                if isinstance(base, mmap.mmap) and hasattr(mmap, "MADV_DONTNEED"):
                    base.madvise(mmap.MADV_DONTNEED)

    @property
    def reference(self) -> str:
        names = sorted({REFERENCE_NAMES[c.framework] for cells in self.layers for c in cells})
        return " + ".join(names)

    def setting(self, key: str) -> object:
        """A file-stated setting (Keras go_backwards, ONNX layout, ...) wins over the stated one."""
        for cells in self.layers:
            for cell in cells:
                if key in cell.overrides and key != "return_sequences":
                    return cell.overrides[key]
        if key == "return_sequences":
            last = [c.overrides["return_sequences"] for c in self.layers[-1] if "return_sequences" in c.overrides]
            if last:
                return last[0]
        return getattr(self.stated, key, "concat" if key == "merge_mode" else None)

    def cells_in_op_order(self) -> list[Cell]:
        """The cells in the caller's order (layer by layer, as the model's ops are written)."""
        pairs = [
            (p, c)
            for cells, where in zip(self.layers, self.positions, strict=True)
            for p, c in zip(where, cells, strict=True)
        ]
        return [c for _, c in sorted(pairs, key=lambda pc: pc[0])]

    def run(
        self, x: Array, initial: States | None = None, jitter: Jitter | None = None
    ) -> tuple[Array, list[tuple[Array, Array]]]:
        """Output in the model's layout and the final (h, c) of every cell, in the caller's op order.

        jitter perturbs every cell step's (x_t, h, c) (float sensitivity, see numerics/float_bound.py)."""
        time_major = bool(self.setting("time_major"))
        seq = np.asarray(x, np.float64)
        if not time_major:
            seq = seq.transpose(1, 0, 2)
        finals: dict[int, tuple[Array, Array]] = {}
        last_layer = len(self.layers) - 1
        for k, (cells, where) in enumerate(zip(self.layers, self.positions, strict=True)):
            outs, lasts = [], []
            for cell, pos in zip(cells, where, strict=True):
                h0, c0 = (initial or {}).get(pos, (None, None))
                backward = cell.backward if len(cells) == 2 else bool(self.setting("go_backwards"))
                y, h, c = cell.run(seq[::-1] if backward else seq, h0, c0, jitter)
                finals[pos] = (h, c)
                lasts.append(y[-1])
                outs.append(y[::-1] if backward and len(cells) == 2 else y)  # bidirectional: re-align
            merge = MERGE[str(self.setting("merge_mode"))] if len(outs) == 2 else MERGE["concat"]
            seq = merge(outs)
            if k == last_layer and not self.setting("return_sequences"):
                return merge(lasts), [finals[i] for i in sorted(finals)]
        y = seq if time_major else seq.transpose(1, 0, 2)
        return y, [finals[i] for i in sorted(finals)]


def source_model(layers: Sequence[Sequence[object]], stated: Stated) -> SourceModel:
    """The reference for cells given as layers x directions of objects with `.origin` (SourceArrays).

    Raises SourceUnsupported when a cell has no stored arrays or states what no reference computes.
    """
    built: list[list[Cell]] = []
    positions: list[list[int]] = []
    pos = 0
    for cells in layers:
        row: list[tuple[int, Cell]] = []
        for d, holder in enumerate(cells):
            origin = getattr(holder, "origin", None)
            if origin is None or origin.framework not in FRAMEWORKS:
                raise SourceUnsupported("weights without stored source arrays (--init or an unknown reader)")
            cell = _factory(origin.framework)(origin.arrays, origin.attrs, stated)
            if cell.backward is None:
                cell = replace(cell, backward=d == 1)
            row.append((pos, cell))
            pos += 1
        if len(row) == 2:
            row.sort(key=lambda pc: bool(pc[1].backward))  # the forward cell first, as the file says
        built.append([c for _, c in row])
        positions.append([p for p, _ in row])
    arrays = [h.origin.arrays for cells in layers for h in cells]  # type: ignore[attr-defined]
    return SourceModel(built, positions, stated, arrays, layers)
