"""Reader for TF1/TF2 checkpoints (tensor bundles): picks an LSTM cell's variables by scope."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import numpy as np

from lstmgen.errors import WeightFileError
from lstmgen.weights import tfbundle
from lstmgen.weights.base import CellWeights, FrameworkReader, WeightFile
from lstmgen.weights.cudnn import OPAQUE_LEAF, OpaqueFile
from lstmgen.weights.tf1 import Tf1Reader
from lstmgen.weights.tf_scopes import KERAS_ATTR, layer_of, lstm_scopes, select_layers
from lstmgen.weights.tflite_npz import TfliteReader

# TFLiteLSTMCell's variable names (rnn_cell.py) -> the op's input names. It stores everything
# per gate in TFLite orientation, forget_bias included, so nothing is transposed or folded.
_TFLITE_CELL: dict[str, str] = {
    **{f"input_to_{g}_w": f"input_to_{g}_weights" for g in ("input", "forget", "cell", "output")},
    **{f"cell_to_{g}_w": f"recurrent_to_{g}_weights" for g in ("input", "forget", "cell", "output")},
    **{f"{g}_bias": f"{g}_gate_bias" for g in ("input", "forget", "cell", "output")},
    "w_i_diag": "cell_to_input_weights",
    "w_f_diag": "cell_to_forget_weights",
    "w_o_diag": "cell_to_output_weights",
    "projection/kernel": "projection_weights",
}
_TF1_CELL = ("kernel", "bias", "w_i_diag", "w_f_diag", "w_o_diag", "projection/kernel")


def _found(path: Path, variables: Mapping[str, tuple[np.dtype, tuple[int, ...]]]) -> dict[str, str]:
    """lstm_scopes, or an error listing the variables when there is no LSTM cell."""
    cells = lstm_scopes(variables)
    if not cells:
        names = list(variables)
        shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
        raise WeightFileError(
            f"{path}: no LSTM cell variables found (looked for <scope>/kernel + <scope>/bias of a TF1 "
            f"LSTMCell, <scope>/input_to_forget_w of a TFLiteLSTMCell, or a Keras cell's kernel and "
            f"recurrent_kernel). Variables in the checkpoint: {shown}."
        )
    return cells


class TfCheckpointReader(FrameworkReader):
    name = "tf-checkpoint"

    def matches(self, keys: frozenset[str]) -> bool:
        return False  # never an .npz

    def claims(self, path: Path) -> bool:
        """A checkpoint prefix (model.ckpt), its .index, a .data-* shard or its directory."""
        try:
            tfbundle.resolve_prefix(path)
        except WeightFileError:
            return False
        return True

    def read(self, arrays: Mapping[str, np.ndarray], source: str, layer: str | None = None) -> CellWeights:
        raise WeightFileError(f"{source}: the tf-checkpoint format is read from checkpoint files, not .npz.")

    def npz_layers(
        self, arrays: Mapping[str, np.ndarray], source: str, layer: str | None = None
    ) -> list[tuple[str, ...]]:
        return [(self.read(arrays, source, layer).layer or "",)]  # read refuses: a checkpoint is never an .npz

    def npz_cells(self, arrays: Mapping[str, np.ndarray], source: str) -> list[str]:
        self.read(arrays, source)  # refuses: a checkpoint is never an .npz
        return []

    def open_file(self, path: Path) -> WeightFile:
        return self.open_sized(path, {})

    def open_sized(self, path: Path, sizes: Mapping[str, object]) -> WeightFile:
        """The checkpoint; one holding only a CudnnLSTM 'opaque_kernel' is cut up by the stated sizes."""
        checkpoint = CheckpointFile(path)
        opaque = [n for n in checkpoint.names if n.rpartition("/")[2] == OPAQUE_LEAF]
        if lstm_scopes(checkpoint.variables) or len(opaque) != 1:
            return checkpoint
        try:
            blob = checkpoint.checkpoint.read(opaque)
        finally:
            checkpoint.close()
        return OpaqueFile(blob, str(path), sizes)


class CheckpointFile:
    """A checkpoint whose index is parsed once; a cell's variables are read from the shards when it is loaded."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.checkpoint = tfbundle.Checkpoint(path)
        self.variables = self.checkpoint.variables
        self.names = list(self.variables)

    def cells(self, layer: str | None = None) -> list[tuple[str, ...]]:
        """Layers of one group of cells: a single cell [('rnn/lstm_cell',)], a MultiRNNCell stack
        [('rnn/multi_rnn_cell/cell_0/lstm_cell',), ('…/cell_1/lstm_cell',)] or a bidirectional_dynamic_rnn
        [('bidirectional_rnn/fw/lstm_cell', 'bidirectional_rnn/bw/lstm_cell')].

        `layer` names a group ('rnn/multi_rnn_cell') or one cell scope; several groups need it.
        """
        return select_layers(self.path, _found(self.path, self.variables), layer)

    def load_layers(self, layer: str | None = None) -> list[list[CellWeights]]:
        cells = _found(self.path, self.variables)
        return [[self._read(cells, s) for s in names] for names in select_layers(self.path, cells, layer)]

    def load(self, cell: str | None = None) -> CellWeights:
        path, cells = self.path, _found(self.path, self.variables)
        if cell is None:
            if len(cells) > 1:
                raise WeightFileError(
                    f"{path}: holds {len(cells)} LSTM cells: {', '.join(cells)}. Pick one with --layer SCOPE."
                )
            scope = next(iter(cells))
        else:
            scope = cell.strip("/")
            if scope not in cells:
                raise WeightFileError(
                    f"{path}: --layer {cell!r} is not an LSTM cell scope here; the cells are: {', '.join(cells)}."
                )
        return self._read(cells, scope)

    def cell_names(self) -> list[str]:
        return sorted(lstm_scopes(self.variables))

    def release(self) -> bool:
        self.close()  # the loaded weights are arrays of their own
        return False

    def close(self) -> None:
        self.checkpoint.close()

    def _read(self, cells: Mapping[str, str], scope: str) -> CellWeights:
        kind, names, read = cells[scope], self.names, self.checkpoint.read
        source = f"{self.path} [{scope}]"
        if kind == "keras":
            keys = {k: f"{scope}/{k}" for k in ("kernel", "recurrent_kernel", "bias")}
            keys = {k: v + KERAS_ATTR if f"{v}{KERAS_ATTR}" in names else v for k, v in keys.items()}
            keys = {k: v for k, v in keys.items() if v in names}
            arrays = read(keys.values())
            from lstmgen.weights import get_reader  # the Keras layout lives in the keras reader

            weights = get_reader("keras").read({k: arrays[v] for k, v in keys.items()}, source)
        elif kind == "tflite-cell":
            keys = {k: f"{scope}/{k}" for k in _TFLITE_CELL if f"{scope}/{k}" in names}
            arrays = read(keys.values())
            weights = TfliteReader().read({_TFLITE_CELL[k]: arrays[v] for k, v in keys.items()}, source)
            weights = replace(weights, notes=(*weights.notes, "TFLiteLSTMCell: forget bias already in its variable"))
        else:
            weights = Tf1Reader().read_scope(self._tf1_variables(scope), source, scope)
        direction = layer_of(scope)[2]  # a bidirectional_dynamic_rnn's 'bw' cell reads the sequence reversed
        return replace(
            weights,
            format="tf-checkpoint",
            layer=scope,
            notes=(f"cell kind: {kind}", *weights.notes),
            direction=direction,
        )

    def _tf1_variables(self, scope: str) -> dict[str, np.ndarray]:
        """A TF1 LSTMCell's variables, read in one pass; partitioned ones are put back together."""
        whole = {leaf: f"{scope}/{leaf}" for leaf in _TF1_CELL if f"{scope}/{leaf}" in self.variables}
        parts = {
            leaf: sorted(
                (n for n in self.names if n.startswith(f"{scope}/{leaf}/part_")), key=lambda n: int(n.rsplit("_", 1)[1])
            )
            for leaf in _TF1_CELL
            if leaf not in whole
        }
        arrays = self.checkpoint.read([*whole.values(), *(n for names in parts.values() for n in names)])
        out = {leaf: arrays[name] for leaf, name in whole.items()}
        # fixed_size_partitioner splits along axis 0: concatenating the parts restores the variable.
        out.update({leaf: np.concatenate([arrays[p] for p in names], axis=0) for leaf, names in parts.items() if names})
        return out
