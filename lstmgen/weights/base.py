"""The reader interface: per-gate weights in TFLite layout plus what the source implies."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from lstmgen import guard
from lstmgen.errors import WeightFileError
from lstmgen.weights.detect import FORMATS
from lstmgen.weights.npz import NpzArrays
from lstmgen.weights.raw import SourceArrays

GATE_ORDERS: dict[str, tuple[str, ...]] = {
    # Order of the four gate blocks along a framework's packed 4*N axis, in TFLite gate names.
    "tf1": ("input", "cell", "forget", "output"),  # i, j, f, o
    "keras": ("input", "forget", "cell", "output"),  # i, f, c, o
    "torch": ("input", "forget", "cell", "output"),  # i, f, g, o
    "onnx": ("input", "output", "forget", "cell"),  # i, o, f, c
}


def split_gates(packed: np.ndarray, order: str, axis: int = 0) -> dict[str, np.ndarray]:
    """Split a packed [4N, ...] (axis 0) or [..., 4N] array into per-gate views, keyed by TFLite gate."""
    gates = GATE_ORDERS[order]
    if packed.shape[axis] % len(gates):
        raise ValueError(f"axis {axis} of size {packed.shape[axis]} is not a multiple of {len(gates)}")
    return dict(zip(gates, np.split(packed, len(gates), axis=axis), strict=True))


def gate_tensors(order: str, input: np.ndarray, recurrent: np.ndarray, bias: np.ndarray) -> dict[str, np.ndarray]:
    """TFLite's twelve per-gate slots from packed [4N, I] input and [4N, P] recurrent weights (gate rows, in
    TFLite's [out, in] layout) and a [4N] bias, their gate blocks in the framework's `order`; views, no copies."""
    packed = {"input_to_{}_weights": input, "recurrent_to_{}_weights": recurrent, "{}_gate_bias": bias}
    return {slot.format(g): block for slot, a in packed.items() for g, block in split_gates(a, order).items()}


@dataclass(frozen=True)
class CellWeights:
    """Weights keyed by TFLite slot name ('input_to_forget_weights', ...), each in TFLite layout.

    Arrays may be non-contiguous views into the source (e.g. a transposed kernel slice): the
    model writer copies each exactly once. `forget_bias_default` is what the source framework
    adds to the forget gate at run time (so lstmgen must fold it), 0.0 when biases are complete.
    """

    tensors: Mapping[str, np.ndarray]
    format: str
    source: str
    forget_bias_default: float = 0.0
    notes: tuple[str, ...] = field(default=())
    # Hyperparameters the source states besides array shapes, e.g. {"activation": "relu",
    # "time_major": True} from a .keras config or an ONNX node; cross-checked like the sizes.
    hyperparameters: Mapping[str, object] = field(default_factory=dict)
    layer: str | None = None  # the layer/scope/prefix the arrays came from, when the file had several
    # "backward": the framework runs this cell over the time-reversed sequence (PyTorch/ONNX reverse
    # direction, a Keras go_backwards or Bidirectional backward layer). The build decides what to do
    # with it (bidirectional layer, --go-backwards, or an error); readers only report it.
    direction: str = "forward"
    origin: SourceArrays | None = None  # the arrays as stored, for the source reference (check/source/)
    # The framework cell class the file's names say (TF1 'CudnnCompatibleLSTMCell', ...), when it sets
    # forget_bias_default, and why that default (for the build's note).
    cell_class: str | None = None
    forget_bias_why: str | None = None

    def implied(self) -> dict[str, object]:
        """Hyperparameters the source implies (sizes, peepholes, projection, and any stated ones)."""
        t = self.tensors

        def common(prefix: str, axis: int) -> int:
            # The most common size over the four gates, so a single odd array is the one blamed
            # by the shape check (not the gate that happened to be read first).
            dims = [t[k].shape[axis] for k in t if k.startswith(prefix) and len(t[k].shape) == 2]
            if not dims:
                raise WeightFileError(f"{self.source}: no 2-D '{prefix}*_weights' array found; expected [N, ...].")
            return int(Counter(dims).most_common(1)[0][0])

        out: dict[str, object] = {"num_units": common("input_to_", 0), "input_size": common("input_to_", 1)}
        out["use_peepholes"] = "cell_to_forget_weights" in t
        out["num_proj"] = int(t["projection_weights"].shape[0]) if "projection_weights" in t else None
        out.update(self.hyperparameters)
        return out


class WeightFile(Protocol):
    """One weight file, opened and parsed once: its cells are listed and read from that one parse.

    Arrays are read when a cell is loaded, and only that cell's. The weights loaded stay valid after
    `release()` and `close()`.
    """

    def cells(self, layer: str | None = None) -> list[tuple[str, ...]]:
        """The file's LSTM layers in model order, each (forward cell,) or (forward, backward).

        Cell names are accepted by `load`. `layer` restricts the list to a group (a PyTorch module
        prefix, a Keras nested model, an ONNX node, a checkpoint scope); None lists the whole file.
        """
        ...

    def load(self, cell: str | None = None) -> CellWeights:
        """One cell's weights (None: the file's only cell), checked and in TFLite layout."""
        ...

    def load_layers(self, layer: str | None = None) -> list[list[CellWeights]]:
        """Every cell `cells(layer)` names, in the same order."""
        ...

    def cell_names(self) -> list[str]:
        """Every LSTM cell of the file, each alone (for files whose cells form several unrelated groups)."""
        ...

    def release(self) -> bool:
        """Free what the file holds beyond the loaded weights; False when that closed it (it loads no more).

        A file whose weights view a memory map (.npz, .safetensors) stays open and drops the pages read
        so far (they are read again on use; callers release often while copying); others close.
        """
        ...

    def close(self) -> None:
        """Close the file and drop what was read of it."""
        ...


@runtime_checkable
class WeightReader(Protocol):
    """One weight format: recognises its files and reads them into CellWeights.

    An `.npz` is opened once by lstmgen.weights.open and handed to `read`/`npz_layers`/`npz_cells` as a
    lazy mapping of arrays; a file of one of `suffixes` (or one `claims` takes) is opened by `open_file`.
    """

    name: str
    description: str
    suffixes: tuple[str, ...]  # native file types this reader opens itself, e.g. (".onnx",)

    def matches(self, keys: frozenset[str]) -> bool:
        """Whether a set of .npz array names looks like this format (for --weights-format auto)."""
        ...

    def claims(self, path: Path) -> bool:
        """Whether a file whose name no reader's `suffixes` match is of this format (sniffing its header)."""
        ...

    def read(self, arrays: Mapping[str, np.ndarray], source: str, layer: str | None = None) -> CellWeights:
        """Map flat arrays onto TFLite slots (raising WeightFileError on any mismatch)."""
        ...

    def npz_layers(
        self, arrays: Mapping[str, np.ndarray], source: str, layer: str | None = None
    ) -> list[tuple[str, ...]]:
        """WeightFile.cells for the arrays of an opened .npz (cell names are then accepted by `read`)."""
        ...

    def npz_cells(self, arrays: Mapping[str, np.ndarray], source: str) -> list[str]:
        """WeightFile.cell_names for the arrays of an opened .npz."""
        ...

    def open_file(self, path: Path) -> WeightFile:
        """Open and parse a file of this format once (an .npz too, for the readers whose layout it holds)."""
        ...


class NpzFile:
    """An opened .npz as a WeightFile: the reader maps its lazily loaded arrays (see NpzArrays)."""

    def __init__(self, reader: WeightReader, arrays: NpzArrays, source: str) -> None:
        self.reader, self.arrays, self.source = reader, arrays, source

    def cells(self, layer: str | None = None) -> list[tuple[str, ...]]:
        return self.reader.npz_layers(self.arrays, self.source, layer)

    def load(self, cell: str | None = None) -> CellWeights:
        return self.reader.read(self.arrays, self.source, cell)

    def load_layers(self, layer: str | None = None) -> list[list[CellWeights]]:
        return [[self.load(c) for c in row] for row in self.cells(layer)]

    def cell_names(self) -> list[str]:
        return self.reader.npz_cells(self.arrays, self.source)

    def release(self) -> bool:
        self.arrays.release()
        return True

    def close(self) -> None:
        """Drop the pages mapped so far and close the zip (loaded arrays stay valid: they view the map)."""
        self.arrays.release()
        self.arrays.close()


def npz_file(reader: WeightReader, path: Path) -> NpzFile:
    """An .npz opened for `reader` (its zip directory and array headers read, arrays mapped on use)."""
    return NpzFile(reader, NpzArrays(path), str(path))


def as_float32(name: str, array: np.ndarray, source: str, notes: list[str]) -> np.ndarray:
    """Accept float32 (any byte order) as is, float64 and float16 with a note; refuse other types and NaN/Inf."""
    # Size from the shape, before any pass over the data: a stride-0 view can declare 1e12 elements.
    guard.declared_bytes(array.shape, array.dtype.itemsize, f"{source}: array '{name}'")
    if array.size == 0:
        raise WeightFileError(
            f"{source}: array '{name}' is empty (shape {list(array.shape)}). Every weight needs at least one element."
        )
    if array.dtype.kind == "f" and array.dtype.itemsize == 4:
        pass
    elif array.dtype.kind == "f" and array.dtype.itemsize == 8:
        notes.append(f"{name}: converted from float64 to float32")
        array = array.astype(np.float32)
    elif array.dtype.kind == "f" and array.dtype.itemsize == 2:  # as the .pt/.safetensors readers do
        notes.append(f"{name}: converted from float16 to float32 (exact)")
        array = array.astype(np.float32)
    else:
        raise WeightFileError(
            f"{source}: array '{name}' has dtype {array.dtype}, expected float32 (float64 and float16 are "
            "converted). "
            "Save the weights as floating point; quantized weights are produced by lstmgen, not read."
        )
    # A finite sum means every element is finite (a NaN or Inf element makes the sum NaN or Inf): one pass,
    # no temporary. The float32 sum runs at memory speed (a float64 one converts every element); only a
    # non-finite sum, a bad element or an overflow of large weights, pays for the exact element check.
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow or Inf - Inf is an answer here, not an error
        finite_sum = bool(np.isfinite(np.sum(array)))
    if array.size and not finite_sum and not np.isfinite(array).all():
        bad = np.argwhere(~np.isfinite(array))
        where = tuple(int(i) for i in bad[0])
        raise WeightFileError(
            f"{source}: array '{name}' contains {len(bad)} NaN/Inf value(s), first at index {list(where)} "
            f"({array[where]}). Weights must be finite; check the training run or the export (or the file is "
            "damaged: save it again)."
        )
    return array


def npz_only(reader: WeightReader, path: Path) -> NpzFile:
    """An .npz for a layout that exists only as one (tflite, tf1); any other file type is refused."""
    if Path(path).suffix.lower() != ".npz":
        raise WeightFileError(f"{path}: the {reader.name} layout is read from .npz files only.")
    return npz_file(reader, Path(path))


def single_cell(name: str, layer: str | None) -> None:
    """These files hold one cell: no --layer, or '' (the name `cells()` gives it)."""
    if layer:
        raise WeightFileError(f"--layer {layer!r}: a {name} .npz holds a single cell; drop --layer.")


class FrameworkReader:
    """What every reader takes from its row of detect.FORMATS: `name` set, the rest follows.

    `description`, `suffixes` and `matches` come from the row (so detection and reader cannot drift);
    `claims` is False: the file is recognised by its suffixes or its .npz keys. A reader that sniffs
    headers overrides it.
    """

    name = ""
    description = ""
    suffixes: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if cls.name:
            cls.description, cls.suffixes = FORMATS[cls.name].description, FORMATS[cls.name].suffixes

    def matches(self, keys: frozenset[str]) -> bool:
        return FORMATS[self.name].matches(keys)

    def claims(self, path: Path) -> bool:
        return False  # recognised by its suffixes, or an .npz by its keys


class SingleCellNpzReader(FrameworkReader, ABC):
    """Shared plumbing of the layouts that exist only as an .npz holding one cell (tflite, tf1)."""

    @abstractmethod
    def read(self, arrays: Mapping[str, np.ndarray], source: str, layer: str | None = None) -> CellWeights:
        """Map this layout's keys onto TFLite slots."""

    def open_file(self, path: Path) -> WeightFile:
        return npz_only(self, path)

    def npz_layers(
        self, arrays: Mapping[str, np.ndarray], source: str, layer: str | None = None
    ) -> list[tuple[str, ...]]:
        """One layer of one cell, named '' (which `read` accepts, as it does no name)."""
        single_cell(self.name, layer)
        return [("",)]

    def npz_cells(self, arrays: Mapping[str, np.ndarray], source: str) -> list[str]:
        return [""]
