"""cuDNN's LSTM weights: Keras 2 CuDNNLSTM arrays into Keras LSTM layout, and TF CudnnLSTM opaque blobs.

Keras 2's CuDNNLSTM stores kernel [I, 4N], recurrent_kernel [N, 4N] and bias [8N] (gates i, f, c, o;
cuDNN's input biases, then its recurrent biases). tf_keras' legacy HDF5 loader converts them for an
LSTM layer in `_convert_rnn_weights` (tf_keras/src/saving/legacy/hdf5_format.py); this does the same:
each gate's input kernel is re-laid from cuDNN's layout (k.T.reshape(k.shape, order="F")), each gate's
recurrent kernel is transposed, and the two bias halves are summed.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from lstmgen.errors import WeightFileError
from lstmgen.weights.base import CellWeights, FrameworkReader, WeightFile, as_float32, npz_only
from lstmgen.weights.detect import bare
from lstmgen.weights.raw import SourceArrays

GATES = 4  # i, f, c, o in both cuDNN and Keras
# Why nothing is folded into the forget gate (the build's note names the class).
NO_FORGET_BIAS = (
    "cuDNN adds no forget bias at run time: the two cuDNN biases are complete (TFLiteLSTMCell's documentation: "
    "forget_bias 'Must set it manually to 0.0 when restoring from CudnnLSTM trained checkpoints')"
)


def is_cudnn_bias(bias_shape: tuple[int, ...], units: int) -> bool:
    """A [8*units] bias: cuDNN's two bias vectors, as CuDNNLSTM stores them (tf_keras tells them so)."""
    return tuple(bias_shape) == (2 * GATES * units,)


def keras_from_cudnn(
    kernel: np.ndarray, recurrent: np.ndarray, bias: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CuDNNLSTM (kernel, recurrent_kernel, bias [8N]) -> LSTM (kernel, recurrent_kernel, bias [4N]), as
    tf_keras' _convert_rnn_weights(from_cudnn=True) does it."""
    kernels = np.hstack([k.T.reshape(k.shape, order="F") for k in np.hsplit(kernel, GATES)])
    recurrents = np.hstack([k.T for k in np.hsplit(recurrent, GATES)])
    biases = np.sum(np.split(bias, 2, axis=0), axis=0)
    return kernels, recurrents, biases.astype(bias.dtype)


# ----------------------------------------------------------------------------- opaque_kernel
#
# TF's CudnnLSTM keeps its weights in one 'opaque_kernel' variable, a flat float buffer in cuDNN's own
# parameter layout. TF's tf.contrib.cudnn_rnn (python/ops/cudnn_rnn_ops.py, CudnnOpaqueParamsSaveable
# and CudnnLSTMSaveable) states the canonical order: layer by layer, forward before backward, and per
# layer and direction 8 weight tensors (0-3 on the input, 4-7 on the recurrent input; 0/4 input gate,
# 1/5 forget, 2/6 new memory, 3/7 output: i, f, c, o) and 8 biases in the same order; input widths are
# input_size for layer 0 and num_units * directions above. tf_keras' canonical_to_params (the function
# its CuDNNLSTM and LSTM feed cuDNN with) lays one layer and direction out as its 8 matrices, each
# [num_units, width] row-major, then its 8 biases; the buffer holds those blocks one after another.
OPAQUE_LEAF = "opaque_kernel"
SIZE_FLAGS = ("num_units", "input_size", "num_layers", "bidirectional")


def opaque_length(units: int, inputs: int, layers: int, directions: int) -> int:
    """Floats in a CudnnLSTM opaque buffer of these sizes (linear_input mode)."""
    per = [
        directions * (4 * units * (inputs if k == 0 else units * directions) + 4 * units * units + 8 * units)
        for k in range(layers)
    ]
    return sum(per)


def fitting_layouts(length: int, sizes: Mapping[str, object], limit: int = 8) -> list[str]:
    """Sizes (within the ones given) whose opaque buffer has `length` floats, as flags; the likeliest (input
    size nearest the units) first."""
    found: list[tuple[int, int, str]] = []
    dirs_options = [2 if sizes["bidirectional"] else 1] if sizes.get("bidirectional") is not None else [1, 2]
    layer_options = [int(sizes["num_layers"])] if sizes.get("num_layers") else [1, 2, 3, 4]  # type: ignore[call-overload]
    unit_options = [int(sizes["num_units"])] if sizes.get("num_units") else range(1, 4097)  # type: ignore[call-overload]
    for units in unit_options:
        for layers in layer_options:
            for dirs in dirs_options:
                rest = opaque_length(units, 0, layers, dirs)
                if length <= rest or (length - rest) % (4 * units * dirs):
                    continue
                inputs = (length - rest) // (4 * units * dirs)
                if sizes.get("input_size") and inputs != sizes["input_size"]:
                    continue
                flags = f"--num-units {units} --input-size {inputs} --num-layers {layers}"
                found.append((abs(inputs - units), layers, flags + (" --bidirectional" if dirs == 2 else "")))
    found.sort()
    shown = [f for _, _, f in found[:limit]]
    return shown + ([f"{len(found) - limit} more"] if len(found) > limit else [])


def _blob(arrays: Mapping[str, np.ndarray], source: str) -> tuple[str, np.ndarray]:
    keys = [k for k in arrays if bare(k).rpartition("/")[2] == OPAQUE_LEAF]
    if len(keys) != 1:
        raise WeightFileError(
            f"{source}: expected one CudnnLSTM '<scope>/{OPAQUE_LEAF}' array, found "
            f"{', '.join(keys) or 'none'}. Save one CudnnLSTM's buffer per .npz."
        )
    blob = as_float32(keys[0], arrays[keys[0]], source, [])
    if blob.ndim != 1:
        raise WeightFileError(f"{source}: '{keys[0]}' has shape {list(blob.shape)}, expected a flat buffer [n].")
    return keys[0], blob


def _sizes(key: str, blob: np.ndarray, sizes: Mapping[str, object], source: str) -> tuple[int, int, int, int]:
    """(units, inputs, layers, directions) from the flags, checked against the buffer's length."""
    given = {k: sizes.get(k) for k in SIZE_FLAGS}
    missing = [f"--{k.replace('_', '-')}" for k in ("num_units", "input_size") if not given[k]]
    units, inputs = int(given["num_units"] or 0), int(given["input_size"] or 0)  # type: ignore[call-overload]
    layers, dirs = int(given["num_layers"] or 1), 2 if given["bidirectional"] else 1  # type: ignore[call-overload]
    if not missing and opaque_length(units, inputs, layers, dirs) == blob.size:
        return units, inputs, layers, dirs
    fits = fitting_layouts(blob.size, given)
    what = (
        f"needs {' and '.join(missing)} to be read"
        if missing
        else (
            f"has {blob.size} floats, but --num-units {units} --input-size {inputs} --num-layers {layers}"
            f"{' --bidirectional' if dirs == 2 else ''} make {opaque_length(units, inputs, layers, dirs)}"
        )
    )
    raise WeightFileError(
        f"{source}: '{key}' is a CudnnLSTM opaque parameter buffer of {blob.size} floats, which records no sizes: "
        f"it {what}. Layouts of that length (cuDNN canonical order, linear input): "
        f"{'; '.join(fits) if fits else 'none within 1-4 layers and 1-4096 units'}. Pass the sizes the CudnnLSTM "
        "was made with (num_units, input_size, num_layers, direction)."
    )


class OpaqueFile:
    """A CudnnLSTM opaque_kernel, cut into per-layer, per-direction cells by the sizes the flags give."""

    def __init__(self, arrays: Mapping[str, np.ndarray], source: str, sizes: Mapping[str, object]) -> None:
        self.source = source
        self.key, self.blob = _blob(arrays, source)
        self.units, self.inputs, self.layers, self.dirs = _sizes(self.key, self.blob, sizes, source)

    def _names(self) -> list[tuple[str, ...]]:
        return [tuple(f"layer_{k}" + ("/backward" if d else "") for d in range(self.dirs)) for k in range(self.layers)]

    def cells(self, layer: str | None = None) -> list[tuple[str, ...]]:
        if layer:
            raise WeightFileError(f"--layer {layer!r}: a CudnnLSTM opaque buffer is built whole; drop --layer.")
        return self._names()

    def load(self, cell: str | None = None) -> CellWeights:
        return self.load_layers()[0][0]

    def load_layers(self, layer: str | None = None) -> list[list[CellWeights]]:
        self.cells(layer)
        out, offset = [], 0
        for k in range(self.layers):
            row = []
            for d in range(self.dirs):
                width = self.inputs if k == 0 else self.units * self.dirs
                cell, offset = self._cell(k, d, width, offset)
                row.append(cell)
            out.append(row)
        return out

    def _cell(self, k: int, d: int, width: int, offset: int) -> tuple[CellWeights, int]:
        n, blob, tensors = self.units, self.blob, {}
        start = offset
        for g, cols in zip(range(8), [width] * 4 + [n] * 4, strict=True):
            slot = f"{'input' if g < 4 else 'recurrent'}_to_{GATE_NAMES[g % 4]}_weights"
            tensors[slot] = blob[offset : offset + n * cols].reshape(n, cols)  # [N, width] row-major: TFLite's
            offset += n * cols
        for g in range(4):  # cuDNN's input and recurrent biases: the op has one bias per gate
            tensors[f"{GATE_NAMES[g]}_gate_bias"] = (
                blob[offset + g * n : offset + (g + 1) * n] + blob[offset + (4 + g) * n : offset + (5 + g) * n]
            )
        offset += 8 * n
        name = self._names()[k][d]
        attrs = {"units": n, "input_size": self.inputs, "layers": self.layers, "directions": self.dirs, "cell": (k, d)}
        weights = CellWeights(
            tensors,
            "cudnn-opaque",
            f"{self.source} [{name}]",
            notes=(
                f"'{self.key}' read as a CudnnLSTM opaque buffer: layer {k}{' backward' if d else ''} at floats "
                f"{start}-{offset} (cuDNN canonical order: W_i, W_f, W_c, W_o, R_i, R_f, R_c, R_o, 8 biases; "
                "the input and recurrent biases summed)",
            ),
            layer=name,
            direction="backward" if d else "forward",
            origin=SourceArrays("cudnn", {self.key: self.blob}, attrs),
            cell_class="CudnnLSTM",
            forget_bias_why=f"CudnnLSTM: {NO_FORGET_BIAS}",
        )
        return weights, offset

    def cell_names(self) -> list[str]:
        return [c for row in self._names() for c in row]

    def release(self) -> bool:
        return True

    def close(self) -> None:
        pass


GATE_NAMES = ("input", "forget", "cell", "output")  # cuDNN's order, in TFLite's gate names


class OpaqueReader(FrameworkReader):
    """An .npz dump ({v.name: v.eval()}) of a CudnnLSTM's 'opaque_kernel'; the sizes come from the flags."""

    name = "cudnn-opaque"

    def sized_file(self, arrays: Mapping[str, np.ndarray], source: str, sizes: Mapping[str, object]) -> OpaqueFile:
        return OpaqueFile(arrays, source, sizes)

    def read(self, arrays: Mapping[str, np.ndarray], source: str, layer: str | None = None) -> CellWeights:
        return OpaqueFile(arrays, source, {}).load(layer)  # refuses: no sizes

    def npz_layers(
        self, arrays: Mapping[str, np.ndarray], source: str, layer: str | None = None
    ) -> list[tuple[str, ...]]:
        return OpaqueFile(arrays, source, {}).cells(layer)

    def npz_cells(self, arrays: Mapping[str, np.ndarray], source: str) -> list[str]:
        return OpaqueFile(arrays, source, {}).cell_names()

    def open_file(self, path: Path) -> WeightFile:
        return npz_only(self, path)
