"""The LSTM cells a Keras file holds, before their arrays are read: names, storage paths, model order keys."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from lstmgen.weights.detect import KERAS_ROLES

ROLES = KERAS_ROLES


# Layer classes whose cell is Keras' LSTMCell math (gates i, f, c, o; sigmoid gates; no peepholes).
LSTM_CLASSES = ("LSTM", "LSTMV1", "LSTMV2", "CuDNNLSTM")  # CuDNNLSTM: tanh, sigmoid, its weights converted


# A cell's own name segment in variable paths: 'lstm_cell', 'lstm_cell_1', 'cell'.
_CELL_SEGMENT = re.compile(r"^(lstm_)?cell(_\d+)?$")


@dataclass
class _Cell:
    """One LSTM cell found in a file, before its arrays are read."""

    name: str  # canonical name: the Keras layer path without model name and cell, e.g. 'bidirectional/forward_layer'
    where: str  # where the arrays live, for messages
    arrays: dict[str, Any]  # role -> ndarray or h5py.Dataset (read only once selected)
    aliases: set[str] = field(default_factory=set)  # other names --layer accepts (raw paths, Keras layer names)
    config_missing: bool = False  # the file has a model config, but no LSTM entry of this name
    config: dict[str, Any] | None = None  # the layer's Keras config (LSTM, or RNN merged with its LSTMCell)
    direction: str | None = None  # 'forward' / 'backward' inside a Bidirectional wrapper
    merge_mode: str | None = None  # the Bidirectional wrapper's merge_mode, when the config states it
    path: str = ""  # where the file keeps it ('lstm_1' in Keras 3: by class and position), for model order
    guessed: bool = False  # the name is the storage path's, not the Keras name (the file does not record it)
    rank: int | None = None  # position in the model as the file records it (layer_names, config); None: unknown
    feeds: frozenset[str] | None = None  # per the config, the layers whose outputs reach this one's input

    @property
    def order(self) -> list[tuple[int, str]]:
        return _natural_key(self.path or self.name)


def _natural_key(name: str) -> list[tuple[int, str]]:
    """lstm, lstm_1, ..., lstm_10, forward before backward: Keras' own order when the file records none."""
    key: list[tuple[int, str]] = []
    for seg in name.split("/"):
        seg = {"forward_layer": "\0", "backward_layer": "\1"}.get(seg, seg)
        key.extend((int(p), "") if p.isdigit() else (-1, p) for p in re.split(r"(\d+)", seg) if p)
        key.append((-2, ""))  # segment boundary sorts first, so 'lstm' precedes 'lstm/x' and 'lstm_1'
    return key


# A Keras 3 / tf_keras saving_lib group name: the layer's class in snake case, then _<k> for the k-th
# further layer of that class in its model's layer list ('lstm', 'lstm_1', ..., 'lstm_10').
_SLOT = re.compile(r"^(?P<stem>.+?)(?:_(?P<k>\d+))?$")


def _layer_path(cell: _Cell) -> str:
    """The storage path of the layer holding `cell` (a Bidirectional's, for one of its halves)."""
    parent, _, leaf = cell.path.rpartition("/")
    return parent if leaf in ("forward_layer", "backward_layer") else cell.path


def _slot(cell: _Cell) -> tuple[str, str, int] | None:
    """(parent path, class stem, position) of the layer that holds `cell`, from its storage path."""
    path = _layer_path(cell)
    if not path:
        return None
    parent, _, leaf = path.rpartition("/")
    match = _SLOT.match(leaf)
    assert match is not None  # the pattern matches any non-empty name
    return parent, match["stem"], int(match["k"] or 0)


def _decode(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _shape(array: Any) -> list[int]:
    return [int(d) for d in array.shape]


def _bidirectional_names(paths: list[list[str]]) -> list[list[str]]:
    """Name the halves of a Bidirectional 'forward_layer'/'backward_layer' (its Keras 3 attribute names).

    Variable paths call them forward_<layer>/backward_<layer>; renaming only when both halves are
    present under one parent keeps an ordinary layer that happens to be called 'forward_x' as it is.
    """
    out = [list(p) for p in paths]
    keys = {tuple(p) for p in paths}
    for p in out:
        if len(p) >= 2 and p[-1].startswith(("forward_", "backward_")):
            stem = p[-1].split("_", 1)[1]
            if (*p[:-1], f"forward_{stem}") in keys and (*p[:-1], f"backward_{stem}") in keys:
                p[-1] = "forward_layer" if p[-1].startswith("forward_") else "backward_layer"
    return out


def _is_lstm_recurrent(array: Any) -> bool:
    """recurrent_kernel [N, 4N]: tells an LSTM from a GRU ([N, 3N]) or SimpleRNN ([N, N]) in a many-layer file."""
    shape = tuple(array.shape)
    return len(shape) == 2 and shape[0] > 0 and shape[1] == 4 * shape[0]
