"""Reader for TF1/TF2 checkpoints (tensor bundles): picks an LSTM cell's variables by scope."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import numpy as np

from lstmgen.errors import WeightFileError
from lstmgen.weights import tfbundle
from lstmgen.weights.base import CellWeights
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


class TfCheckpointReader:
    name = "tf-checkpoint"
    description = "TF checkpoint (.index + .data shards): TF1 LSTMCell, TFLiteLSTMCell or Keras LSTM variables"
    suffixes: tuple[str, ...] = (".index",)

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

    def list_cells(self, path: Path) -> list[str]:
        return sorted(lstm_scopes(tfbundle.list_variables(path)))

    def list_layers(self, path: Path, layer: str | None = None) -> list[tuple[str, ...]]:
        """Layers of one group of cells: a single cell [('rnn/lstm_cell',)], a MultiRNNCell stack
        [('rnn/multi_rnn_cell/cell_0/lstm_cell',), ('…/cell_1/lstm_cell',)] or a bidirectional_dynamic_rnn
        [('bidirectional_rnn/fw/lstm_cell', 'bidirectional_rnn/bw/lstm_cell')].

        `layer` names a group ('rnn/multi_rnn_cell') or one cell scope; several groups need it.
        """
        variables = tfbundle.list_variables(path)
        return select_layers(path, _found(path, variables), layer)

    def load_layers(self, path: Path, layer: str | None = None) -> list[list[CellWeights]]:
        """Every cell of list_layers(path, layer), reading the checkpoint's index once."""
        variables = tfbundle.list_variables(path)
        cells = _found(path, variables)
        return [
            [self._read(path, list(variables), cells, s) for s in names] for names in select_layers(path, cells, layer)
        ]

    def load(self, path: Path, layer: str | None = None) -> CellWeights:
        variables = tfbundle.list_variables(path)
        names = list(variables)
        cells = _found(path, variables)
        if layer is None:
            if len(cells) > 1:
                raise WeightFileError(
                    f"{path}: holds {len(cells)} LSTM cells: {', '.join(cells)}. Pick one with --layer SCOPE."
                )
            scope = next(iter(cells))
        else:
            scope = layer.strip("/")
            if scope not in cells:
                raise WeightFileError(
                    f"{path}: --layer {layer!r} is not an LSTM cell scope here; the cells are: {', '.join(cells)}."
                )
        return self._read(path, names, cells, scope)

    def _read(self, path: Path, names: list[str], cells: Mapping[str, str], scope: str) -> CellWeights:
        kind = cells[scope]
        source = f"{path} [{scope}]"
        if kind == "keras":
            keys = {k: f"{scope}/{k}" for k in ("kernel", "recurrent_kernel", "bias")}
            keys = {k: v + KERAS_ATTR if f"{v}{KERAS_ATTR}" in names else v for k, v in keys.items()}
            keys = {k: v for k, v in keys.items() if v in names}
            arrays = tfbundle.read_variables(path, keys.values())
            from lstmgen.weights import get_reader  # the Keras layout lives in the keras reader

            weights = get_reader("keras").read({k: arrays[v] for k, v in keys.items()}, source)
        elif kind == "tflite-cell":
            keys = {k: f"{scope}/{k}" for k in _TFLITE_CELL if f"{scope}/{k}" in names}
            arrays = tfbundle.read_variables(path, keys.values())
            weights = TfliteReader().read({_TFLITE_CELL[k]: arrays[v] for k, v in keys.items()}, source)
            weights = replace(weights, notes=(*weights.notes, "TFLiteLSTMCell: forget bias already in its variable"))
        else:
            found = {k: self._tf1_variable(path, names, f"{scope}/{k}") for k in _TF1_CELL}
            weights = Tf1Reader().read({k: v for k, v in found.items() if v is not None}, source)
        direction = layer_of(scope)[2]  # a bidirectional_dynamic_rnn's 'bw' cell reads the sequence reversed
        return replace(
            weights, format=self.name, layer=scope, notes=(f"cell kind: {kind}", *weights.notes), direction=direction
        )

    @staticmethod
    def _tf1_variable(path: Path, names: list[str], name: str) -> np.ndarray | None:
        if name in names:
            return tfbundle.read_variables(path, [name])[name]
        parts = sorted((n for n in names if n.startswith(f"{name}/part_")), key=lambda n: int(n.rsplit("_", 1)[1]))
        if not parts:
            return None
        # fixed_size_partitioner splits along axis 0: concatenating the parts restores the variable.
        arrays = tfbundle.read_variables(path, parts)
        return np.concatenate([arrays[p] for p in parts], axis=0)
