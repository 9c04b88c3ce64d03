"""Reader for TF1/TF2 checkpoints (tensor bundles): picks an LSTM cell's variables by scope."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..errors import WeightFileError
from . import tfbundle
from .base import CellWeights
from .tf1 import Tf1Reader
from .tflite_npz import TfliteReader

_KERAS_ATTR = "/.ATTRIBUTES/VARIABLE_VALUE"  # TF2 object-based checkpoint key suffix
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


def _cells(variables: Mapping[str, tuple[np.dtype, tuple[int, ...]]]) -> dict[str, str]:
    """Scope -> cell kind ('tf1', 'tflite-cell' or 'keras') for every LSTM cell in the checkpoint."""
    found: dict[str, str] = {}
    shapes = {n.removesuffix(_KERAS_ATTR): s for n, (_, s) in variables.items()}
    plain = set(shapes)

    def lstm_like(scope: str) -> bool:  # kernel [*, 4N] and bias [4N]: tells a cell from a dense layer
        kernel = shapes.get(f"{scope}/kernel") or shapes.get(f"{scope}/kernel/part_0")
        bias = shapes.get(f"{scope}/bias")
        return bool(kernel and bias and len(kernel) == 2 and kernel[1] % 4 == 0 and bias == (kernel[1],))

    for name in sorted(plain):
        # Partitioned TF1 variables (num_unit_shards) may be saved as scope/kernel/part_k.
        base = name.rsplit("/part_", 1)[0] if "/part_" in name else name
        scope, _, leaf = base.rpartition("/")
        if leaf == "kernel" and f"{scope}/recurrent_kernel" in plain:
            found[scope] = "keras"
        elif leaf == "kernel" and scope and not scope.endswith("/projection") and lstm_like(scope):
            found.setdefault(scope, "tf1")
        elif leaf == "input_to_forget_w":
            found[scope] = "tflite-cell"
    return found


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

    def list_cells(self, path: Path) -> list[str]:
        return sorted(_cells(tfbundle.list_variables(path)))

    def load(self, path: Path, layer: str | None = None) -> CellWeights:
        variables = tfbundle.list_variables(path)
        names = list(variables)
        cells = _cells(variables)
        if not cells:
            shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
            raise WeightFileError(
                f"{path}: no LSTM cell variables found (looked for <scope>/kernel + <scope>/bias of a TF1 "
                f"LSTMCell, <scope>/input_to_forget_w of a TFLiteLSTMCell, or a Keras cell's kernel and "
                f"recurrent_kernel). Variables in the checkpoint: {shown}."
            )
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
        kind = cells[scope]
        source = f"{path} [{scope}]"
        if kind == "keras":
            keys = {k: f"{scope}/{k}" for k in ("kernel", "recurrent_kernel", "bias")}
            keys = {k: v + _KERAS_ATTR if f"{v}{_KERAS_ATTR}" in names else v for k, v in keys.items()}
            keys = {k: v for k, v in keys.items() if v in names}
            arrays = tfbundle.read_variables(path, keys.values())
            from . import get_reader  # the Keras layout lives in the keras reader

            weights = get_reader("keras").read({k: arrays[v] for k, v in keys.items()}, source)
        elif kind == "tflite-cell":
            keys = {k: f"{scope}/{k}" for k in _TFLITE_CELL if f"{scope}/{k}" in names}
            arrays = tfbundle.read_variables(path, keys.values())
            weights = TfliteReader().read({_TFLITE_CELL[k]: arrays[v] for k, v in keys.items()}, source)
            weights = replace(weights, notes=(*weights.notes, "TFLiteLSTMCell: forget bias already in its variable"))
        else:
            arrays = {k: self._tf1_variable(path, names, f"{scope}/{k}") for k in _TF1_CELL}
            weights = Tf1Reader().read({k: v for k, v in arrays.items() if v is not None}, source)
        return replace(weights, format=self.name, layer=scope, notes=(f"cell kind: {kind}", *weights.notes))

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
