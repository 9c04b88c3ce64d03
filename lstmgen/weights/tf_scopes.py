"""Where the LSTM cells are among TF variable names: scopes, stacks and bidirectional pairs."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from lstmgen.errors import WeightFileError

KERAS_ATTR = "/.ATTRIBUTES/VARIABLE_VALUE"  # TF2 object-based checkpoint key suffix

# TFLiteLSTMCell's own documentation (tensorflow/lite/experimental/examples/lstm/rnn_cell.py), which
# lstmgen's vocabulary follows, on forget_bias.
CUDNN_WARNING = (
    "TFLiteLSTMCell's documentation: forget_bias 'Must set it manually to 0.0 when restoring from CudnnLSTM "
    "trained checkpoints'"
)


@dataclass(frozen=True)
class CellClass:
    """A TF1 cell class whose kernel [I+P, 4N] (gates i, j, f, o) + bias the scope holds."""

    name: str
    forget_bias: float  # what the class adds to the forget gate at run time by default
    why: str


# The cell's own scope segment (its class's default name) -> the class. Every one of them stores
# 'kernel' and 'bias' in the LSTMCell layout; they differ in the forget bias they add at run time.
# tf.contrib.cudnn_rnn: CudnnCompatibleLSTMCell(LSTMBlockCell) passes forget_bias=0, and CudnnLSTM's
# saveable writes '.../cudnn_compatible_lstm_cell/{kernel,bias}' with the two cuDNN biases summed.
# tf.contrib.rnn lstm_ops: LSTMBlockCell (scope 'lstm_cell', as LSTMCell) and LSTMBlockFusedCell
# (scope 'lstm_fused_cell') both default to forget_bias=1.0.
CELL_CLASSES: dict[str, CellClass] = {
    "cudnn_compatible_lstm_cell": CellClass(
        "CudnnCompatibleLSTMCell",
        0.0,
        "CudnnCompatibleLSTMCell, the cell of CudnnLSTM's checkpoints, adds none at run time: its bias holds "
        f"cuDNN's two biases summed; {CUDNN_WARNING}",
    ),
    "lstm_fused_cell": CellClass(
        "LSTMBlockFusedCell", 1.0, "LSTMBlockFusedCell's default: that cell adds it at run time"
    ),
}
DEFAULT_CLASS = CellClass("LSTMCell", 1.0, "LSTMCell's (and LSTMBlockCell's) default: that cell adds it at run time")


def cell_class(scope: str) -> CellClass:
    """The TF1 cell class a scope's own name segment says ('.../cudnn_compatible_lstm_cell'); LSTMCell else."""
    return CELL_CLASSES.get(scope.rpartition("/")[2], DEFAULT_CLASS)


def lstm_scopes(variables: Mapping[str, tuple[np.dtype, tuple[int, ...]]]) -> dict[str, str]:
    """Scope -> cell kind ('tf1', 'tflite-cell' or 'keras') for every LSTM cell in the checkpoint."""
    found: dict[str, str] = {}
    shapes = {n.removesuffix(KERAS_ATTR): s for n, (_, s) in variables.items()}
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


def layer_of(scope: str) -> tuple[str, int, str, str]:
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


def scope_groups(cells: Mapping[str, str]) -> dict[str, list[tuple[str, ...]]]:
    """Group -> its layers in order, each (forward scope,) or (forward, backward) scopes."""
    pairs: dict[str, dict[str, str]] = {}
    where: dict[str, tuple[str, int]] = {}
    for scope in cells:
        group, index, direction, key = layer_of(scope)
        pairs.setdefault(key, {})[direction] = scope
        where[key] = (group, index)
    out: dict[str, list[tuple[int, tuple[str, ...]]]] = {}
    for key, halves in pairs.items():
        group, index = where[key]
        out.setdefault(group, []).append((index, tuple(halves[d] for d in ("forward", "backward") if d in halves)))
    return {g: [layer for _, layer in sorted(rows)] for g, rows in sorted(out.items())}


def select_layers(source: object, cells: Mapping[str, str], layer: str | None) -> list[tuple[str, ...]]:
    """The layers of the one group of cells, or of the group / the cell scope `layer` names."""
    groups = scope_groups(cells)
    if layer is None:
        if len(groups) == 1:
            return next(iter(groups.values()))
        shown = "; ".join(
            f"{g or '(top level)'}: {', '.join(s for lay in ls for s in lay)}" for g, ls in groups.items()
        )
        raise WeightFileError(
            f"{source}: holds {len(groups)} unrelated groups of LSTM cells ({shown}), so it is ambiguous "
            f"which to build. Pick one with --layer GROUP (one of: {', '.join(groups)}) or --layer SCOPE."
        )
    want = layer.strip("/")
    if want in groups:
        return groups[want]
    if want in cells:
        return [(want,)]
    raise WeightFileError(
        f"{source}: --layer {layer!r} is neither a group of LSTM cells nor a cell scope here; the groups are: "
        f"{', '.join(groups)}; the cells are: {', '.join(cells)}."
    )
