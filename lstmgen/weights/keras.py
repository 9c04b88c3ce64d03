"""Reader for Keras LSTM weights: .weights.h5, full-model .h5, .keras archives and kernel/recurrent_kernel .npz."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from lstmgen import guard
from lstmgen.errors import WeightFileError
from lstmgen.weights import keras_cells, keras_convert, keras_h5, keras_npz, keras_topology
from lstmgen.weights.base import CellWeights, FrameworkReader, WeightFile, npz_file
from lstmgen.weights.detect import HDF5_OFFSETS, HDF5_SIGNATURE
from lstmgen.weights.library_errors import parser_errors


class KerasReader(FrameworkReader):
    name = "keras"

    def claims(self, path: Path) -> bool:
        """An HDF5 file of any name (Keras 2 users saved '.hdf5'), by the signature HDF5 files start with."""
        if not path.is_file():
            return False
        try:
            with path.open("rb") as f:
                head = f.read(HDF5_OFFSETS[-1] + len(HDF5_SIGNATURE))
        except OSError:
            return False
        return any(head[o : o + len(HDF5_SIGNATURE)] == HDF5_SIGNATURE for o in HDF5_OFFSETS)

    def read(self, arrays: Mapping[str, np.ndarray], source: str, layer: str | None = None) -> CellWeights:
        cells, others = keras_npz._checked_npz_cells(arrays, source)
        cell = keras_topology._select(cells, layer, source)
        notes = [f"ignored {len(others)} array(s) of other layers: {', '.join(others)}"] if others else []
        return keras_convert._to_weights(cell, source, notes)

    def npz_layers(
        self, arrays: Mapping[str, np.ndarray], source: str, layer: str | None = None
    ) -> list[tuple[str, ...]]:
        cells, _ = keras_npz._checked_npz_cells(arrays, source)
        return [tuple(c.name for c in group) for group in keras_topology._layers(cells, layer, source)]

    def npz_cells(self, arrays: Mapping[str, np.ndarray], source: str) -> list[str]:
        return [c.name for c in keras_npz._npz_cells(arrays)[0]]

    def open_file(self, path: Path) -> WeightFile:
        return npz_file(self, path) if path.suffix.lower() == ".npz" else KerasFile(path)


def _h5_errors(where: str) -> contextlib.AbstractContextManager[None]:
    """What h5py raises on a damaged file (a bad heap, an address past the end, an unknown string
    encoding: TypeError): bad input, exit 2, when raised inside h5py."""
    advice = "The file is truncated or corrupt; save it again with Keras."
    return parser_errors("h5py", (OSError, RuntimeError, KeyError, ValueError, TypeError), where, advice)


H5_SECONDS = 20.0  # the test parse's time limit, plus a second per 50 MB of file (a sound file: well under 1 s)


def _parsed_in_child(path: Path) -> None:
    """libhdf5 crashes (SIGSEGV) or loops on some damaged files, which no check ahead of it can rule out (the
    weight fuzzer finds both): a forked child opens the file and reads every LSTM cell's arrays first; a crash
    or a hang there refuses the file (exit 2). What the child raises, this process's own parse reports."""
    seconds = H5_SECONDS + path.stat().st_size / 50e6
    outcome = guard.in_child(lambda: _read_cells(path), seconds)
    if outcome == "hung" or outcome.startswith("SIG"):
        what = f"crashed ({outcome})" if outcome != "hung" else f"did not finish in {seconds:.0f} s"
        raise WeightFileError(
            f"{path}: the HDF5 library {what} reading this file in a test process. The file is damaged (libhdf5 "
            "fails this way on some corrupt files), so it is refused. Save it again with Keras "
            "(model.save_weights('x.weights.h5') or model.save('x.keras'))."
        )


def _read_cells(path: Path) -> None:
    h5, handle, cells, source = keras_h5._open_cells(path)
    try:
        for cell in cells:
            keras_convert._to_weights(cell, source, [])
    finally:
        h5.close()
        if handle is not None:
            handle.close()


class KerasFile:
    """A .weights.h5, full-model .h5 or .keras file, open from the first use to `close()`.

    The HDF5 file (a .keras archive's model.weights.h5, read once into memory) is opened and its LSTM
    cells found once; a cell's datasets are read when it is loaded.
    """

    def __init__(self, path: Path) -> None:
        _parsed_in_child(path)
        with _h5_errors(str(path)):
            self._h5, self._handle, self._cells, self.source = keras_h5._open_cells(path)

    @classmethod
    def in_memory(
        cls, config: Mapping[str, Any], cells: Mapping[str, Mapping[str, np.ndarray]], source: str
    ) -> KerasFile:
        """A live model's cells (name path -> arrays by role) and its config, found as in a .keras file."""
        found = [keras_cells._Cell(name, f"{source} [{name}]", dict(arrays)) for name, arrays in cells.items()]
        self = cls.__new__(cls)
        self._h5, self._handle, self.source = None, None, source
        self._cells = keras_topology._listed(keras_topology._attach_configs(found, config, source))
        return self

    def cells(self, layer: str | None = None) -> list[tuple[str, ...]]:
        """The LSTM layers in model order: ('lstm',), ('lstm_1',), a Bidirectional as one layer
        ('bidirectional/forward_layer', 'bidirectional/backward_layer').

        `layer` restricts the list to a nested model or wrapper ('encoder', 'bidirectional') or names
        one cell (any name `load` accepts). Several layers in an order the file does not record raise
        UnknownOrderError; layers the config does not wire one into the next, WeightFileError. Whether
        their sizes chain is checked by the caller.
        """
        with _h5_errors(self.source):
            return [tuple(c.name for c in group) for group in keras_topology._layers(self._cells, layer, self.source)]

    def load(self, cell: str | None = None) -> CellWeights:
        with _h5_errors(self.source):
            return keras_convert._to_weights(keras_topology._select(self._cells, cell, self.source), self.source, [])

    def load_layers(self, layer: str | None = None) -> list[list[CellWeights]]:
        with _h5_errors(self.source):
            return self._load_layers(layer)

    def _load_layers(self, layer: str | None) -> list[list[CellWeights]]:
        layers, note = keras_topology._model_order(
            keras_topology._grouped(self._cells, layer, self.source), self.source
        )
        keras_topology._check_chained(layers, self.source)
        notes = [note] if note else []
        if len(layers) > 1 and any(c.config is None for g in layers for c in g):
            others = keras_h5._other_weights(self._h5, self._cells) if self._h5 is not None else []
            if others:
                notes.append(
                    f"the file also holds weights of other layers ({', '.join(others)}) and does not record where "
                    "they sit: lstmgen assumes none lies between the stacked LSTM layers (one there, e.g. a Dense, "
                    "would be dropped); the .keras file (model.save('m.keras')) records it and lets lstmgen check"
                )
        return [
            [keras_convert._to_weights(c, self.source, notes if k == 0 else []) for c in g]
            for k, g in enumerate(layers)
        ]

    def cell_names(self) -> list[str]:
        """Canonical names of every LSTM cell in the file, in model order when the file records it.

        Names are Keras layer paths without the model's own name: 'lstm', 'lstm_1', nested models as
        'encoder/lstm', the halves of a Bidirectional as 'bidirectional/forward_layer' and
        'bidirectional/backward_layer'. Each name is accepted by `load` / `--layer`.
        """
        return [c.name for c in self._cells]

    def release(self) -> bool:
        self.close()  # the loaded weights are arrays of their own
        return False

    def close(self) -> None:
        if self._h5 is not None:
            self._h5.close()
        if self._handle is not None:
            self._handle.close()
