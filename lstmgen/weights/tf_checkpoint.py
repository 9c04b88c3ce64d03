"""Reader for TF1/TF2 checkpoints (tensor bundles): picks an LSTM cell's variables by scope."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

import numpy as np

from lstmgen.errors import WeightFileError
from lstmgen.weights import tfbundle
from lstmgen.weights.base import CellWeights
from lstmgen.weights.tf1 import Tf1Reader
from lstmgen.weights.tflite_npz import TfliteReader

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


# Per-layer scopes of a stack: TF1 MultiRNNCell / stack_bidirectional_* ('cell_<k>') and a TF2
# object checkpoint of a Keras model ('layer_with_weights-<k>', numbered in model order).
_STACK = re.compile(r"^(?:cell_|layer_with_weights-)(\d+)$")
# The two directions of one bidirectional layer: bidirectional_dynamic_rnn, Keras' Bidirectional.
_SIDES = {"fw": "bw", "forward_layer": "backward_layer"}


def _layer_of(scope: str) -> tuple[str, int, str, str]:
    """(group, index in the group, direction, key shared by the two directions of one layer).

    'rnn/multi_rnn_cell/cell_1/lstm_cell' is layer 1 of the group 'rnn/multi_rnn_cell'; the 'fw'/'bw'
    scopes of bidirectional_dynamic_rnn ('bidirectional_rnn/bw/lstm_cell') are the two directions of one
    layer of the group 'bidirectional_rnn'. A 'fw'/'bw' above a 'cell_<k>' (a MultiRNNCell per
    direction) gives two separate stacks, the 'bw' one of backward cells, not bidirectional layers.
    """
    segs = scope.split("/")
    backward_names = {bw: fw for fw, bw in _SIDES.items()}
    stack = max((i for i, s in enumerate(segs) if _STACK.match(s)), default=-1)
    side = max((i for i, s in enumerate(segs) if s in _SIDES or s in backward_names), default=-1)
    direction = "backward" if side >= 0 and segs[side] in backward_names else "forward"
    # One layer of a bidirectional RNN: both directions share the forward scope as their key.
    paired = side > stack
    key = "/".join(backward_names.get(s, s) if i == side else s for i, s in enumerate(segs)) if paired else scope
    if stack >= 0:
        m = _STACK.match(segs[stack])
        assert m is not None
        return "/".join(segs[:stack]), int(m[1]), direction, key
    return ("/".join(segs[:side]) if side >= 0 else scope), 0, direction, key


def _groups(cells: Mapping[str, str]) -> dict[str, list[tuple[str, ...]]]:
    """Group -> its layers in order, each (forward scope,) or (forward, backward) scopes."""
    pairs: dict[str, dict[str, str]] = {}
    where: dict[str, tuple[str, int]] = {}
    for scope in cells:
        group, index, direction, key = _layer_of(scope)
        pairs.setdefault(key, {})[direction] = scope
        where[key] = (group, index)
    out: dict[str, list[tuple[int, tuple[str, ...]]]] = {}
    for key, halves in pairs.items():
        group, index = where[key]
        out.setdefault(group, []).append((index, tuple(halves[d] for d in ("forward", "backward") if d in halves)))
    return {g: [layer for _, layer in sorted(rows)] for g, rows in sorted(out.items())}


def _found(path: Path, variables: Mapping[str, tuple[np.dtype, tuple[int, ...]]]) -> dict[str, str]:
    """_cells, or an error listing the variables when there is no LSTM cell."""
    cells = _cells(variables)
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
        return sorted(_cells(tfbundle.list_variables(path)))

    def list_layers(self, path: Path, layer: str | None = None) -> list[tuple[str, ...]]:
        """Layers of one group of cells: a single cell [('rnn/lstm_cell',)], a MultiRNNCell stack
        [('rnn/multi_rnn_cell/cell_0/lstm_cell',), ('…/cell_1/lstm_cell',)] or a bidirectional_dynamic_rnn
        [('bidirectional_rnn/fw/lstm_cell', 'bidirectional_rnn/bw/lstm_cell')].

        `layer` names a group ('rnn/multi_rnn_cell') or one cell scope; several groups need it.
        """
        variables = tfbundle.list_variables(path)
        return self._layers(path, _found(path, variables), layer)

    def load_layers(self, path: Path, layer: str | None = None) -> list[list[CellWeights]]:
        """Every cell of list_layers(path, layer), reading the checkpoint's index once."""
        variables = tfbundle.list_variables(path)
        cells = _found(path, variables)
        return [
            [self._read(path, list(variables), cells, s) for s in names] for names in self._layers(path, cells, layer)
        ]

    @staticmethod
    def _layers(path: Path, cells: dict[str, str], layer: str | None) -> list[tuple[str, ...]]:
        groups = _groups(cells)
        if layer is None:
            if len(groups) == 1:
                return next(iter(groups.values()))
            shown = "; ".join(
                f"{g or '(top level)'}: {', '.join(s for lay in ls for s in lay)}" for g, ls in groups.items()
            )
            raise WeightFileError(
                f"{path}: holds {len(groups)} unrelated groups of LSTM cells ({shown}), so it is ambiguous "
                f"which to build. Pick one with --layer GROUP (one of: {', '.join(groups)}) or --layer SCOPE."
            )
        want = layer.strip("/")
        if want in groups:
            return groups[want]
        if want in cells:
            return [(want,)]
        raise WeightFileError(
            f"{path}: --layer {layer!r} is neither a group of LSTM cells nor a cell scope here; the groups are: "
            f"{', '.join(groups)}; the cells are: {', '.join(cells)}."
        )

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
            keys = {k: v + _KERAS_ATTR if f"{v}{_KERAS_ATTR}" in names else v for k, v in keys.items()}
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
        direction = _layer_of(scope)[2]  # a bidirectional_dynamic_rnn's 'bw' cell reads the sequence reversed
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
