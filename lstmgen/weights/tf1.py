"""Reader for a TF1 LSTMCell's variables: kernel [I+P, 4N] (i, j, f, o), bias, diagonals, projection.

Keys are bare ('kernel') or as TF names them ('rnn/lstm_cell/kernel:0', from {v.name: v.eval()}).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import numpy as np

from lstmgen.errors import WeightFileError
from lstmgen.weights.base import CellWeights, SingleCellNpzReader, as_float32, single_cell, split_gates
from lstmgen.weights.detect import FORMATS, TF1_KEYS, bare
from lstmgen.weights.raw import SourceArrays
from lstmgen.weights.tf_scopes import cell_class, layer_of, lstm_scopes, select_layers

KEYS = TF1_KEYS
# `lstmgen export --format tf1` records the forget bias its biases need (a scalar; TF1's own default is 1.0),
# so a default build of the exported file computes what the model did.
RECORDED_FORGET_BIAS = "forget_bias"
PEEPHOLES = {
    "w_i_diag": "cell_to_input_weights",
    "w_f_diag": "cell_to_forget_weights",
    "w_o_diag": "cell_to_output_weights",
}


def _scoped(arrays: Mapping[str, np.ndarray]) -> dict[str, str] | None:
    """Bare name -> key when the keys are scoped TF names; None for a flat (bare-key) file."""
    names = {bare(k): k for k in arrays}
    return names if any("/" in n and n not in KEYS for n in names) else None


def _scopes(names: Mapping[str, str], arrays: Mapping[str, np.ndarray], source: str) -> dict[str, str]:
    """Scope -> 'tf1' for every TF1 LSTMCell among scoped names; an error when there is none."""
    cells = {
        s: kind
        for s, kind in lstm_scopes({n: (arrays[k].dtype, arrays[k].shape) for n, k in names.items()}).items()
        if kind == "tf1"
    }
    # A Dense head's kernel [N, 4k] + bias [4k] looks like a cell by shape; TF names cells '*lstm_cell*'/'cell'.
    named = {s: k for s, k in cells.items() if "cell" in s.rpartition("/")[2].lower()}
    cells = named or cells
    if not cells:
        raise WeightFileError(
            f"{source}: no TF1 LSTMCell variables found for --weights-format tf1: expected '<scope>/kernel' "
            "[input+output, 4*units] and "
            f"'<scope>/bias' [4*units] (e.g. 'rnn/lstm_cell/kernel:0'), or bare kernel and bias keys "
            f"(found: {', '.join(sorted(arrays)) or 'nothing'})."
        )
    return cells


class Tf1Reader(SingleCellNpzReader):
    name = "tf1"
    description = FORMATS[name].description

    def npz_layers(
        self, arrays: Mapping[str, np.ndarray], source: str, layer: str | None = None
    ) -> list[tuple[str, ...]]:
        """[('',)] for bare keys; else the scopes' layers ('rnn/multi_rnn_cell/cell_0/lstm_cell', ...)."""
        names = _scoped(arrays)
        if names is None:
            single_cell(self.name, layer)
            return [("",)]
        return select_layers(source, _scopes(names, arrays, source), layer)

    def npz_cells(self, arrays: Mapping[str, np.ndarray], source: str) -> list[str]:
        """Every cell scope of the file ('' for bare keys)."""
        names = _scoped(arrays)
        return [""] if names is None else list(_scopes(names, arrays, source))

    def read(self, arrays: Mapping[str, np.ndarray], source: str, layer: str | None = None) -> CellWeights:
        fb, arrays = _recorded(arrays, source)
        weights = self._read_cell(arrays, source, layer)
        if fb is None:
            return weights
        origin = replace(weights.origin, attrs={**weights.origin.attrs, "forget_bias": fb}) if weights.origin else None
        note = f"forget_bias {fb:g} recorded in the file (lstmgen export): used instead of TF1's default 1.0"
        return replace(weights, forget_bias_default=fb, origin=origin, notes=(*weights.notes, note))

    def _read_cell(self, arrays: Mapping[str, np.ndarray], source: str, layer: str | None) -> CellWeights:
        names = _scoped(arrays)
        if names is None:
            single_cell(self.name, layer)
            return self.read_scope({bare(k): v for k, v in arrays.items()}, source)
        cells = _scopes(names, arrays, source)
        listed = [s for row in select_layers(source, cells, layer) for s in row]
        if len(listed) != 1:
            raise WeightFileError(
                f"{source}: --layer {layer!r} holds {len(listed)} LSTM cells ({', '.join(listed)}); pick one "
                "of them with --layer SCOPE, or build them all with --num-layers / --bidirectional."
            )
        scope = listed[0]
        mine = {leaf: arrays[names[f"{scope}/{leaf}"]] for leaf in KEYS if f"{scope}/{leaf}" in names}
        weights = self.read_scope(mine, f"{source} [{scope}]", scope)
        others = len(arrays) - len(mine)
        notes = [f"variables of scope '{scope}'" + (f"; ignored {others} other variable(s)" if others else "")]
        return replace(weights, layer=scope, direction=layer_of(scope)[2], notes=(*notes, *weights.notes))

    def read_scope(self, arrays: Mapping[str, np.ndarray], source: str, scope: str = "") -> CellWeights:
        """One cell's variables under their leaf names; `scope` (the file's own) names the cell class."""
        unknown = sorted(set(arrays) - set(KEYS))
        if unknown:
            raise WeightFileError(
                f"{source}: unknown key(s) {', '.join(unknown)} for --weights-format tf1. "
                f"Allowed keys: {', '.join(KEYS)}."
            )
        for k in ("kernel", "bias"):
            if k not in arrays:
                raise WeightFileError(
                    f"{source}: missing key '{k}' for --weights-format tf1 (found: {', '.join(sorted(arrays))})."
                )
        diags = [k for k in PEEPHOLES if k in arrays]
        if diags and len(diags) != 3:
            raise WeightFileError(
                f"{source}: peepholes need all of w_i_diag, w_f_diag, w_o_diag; found only {', '.join(diags)}."
            )
        notes: list[str] = []
        kernel = as_float32("kernel", arrays["kernel"], source, notes)
        bias = as_float32("bias", arrays["bias"], source, notes)
        if kernel.ndim != 2 or kernel.shape[1] % 4 or kernel.shape[1] == 0:
            raise WeightFileError(
                f"{source}: 'kernel' has shape {list(kernel.shape)}, expected [input_size + output_size, "
                "4 * num_units] (a TF1 LSTMCell kernel)."
            )
        n = kernel.shape[1] // 4
        proj = arrays.get("projection/kernel")
        if proj is not None:
            proj = as_float32("projection/kernel", proj, source, notes)
            if proj.ndim != 2 or proj.shape[0] != n:
                raise WeightFileError(
                    f"{source}: 'projection/kernel' has shape {list(proj.shape)}, expected [{n}, num_proj] "
                    f"(num_units = {n} from 'kernel')."
                )
        p = proj.shape[1] if proj is not None else n
        i = kernel.shape[0] - p
        if i < 1:
            raise WeightFileError(
                f"{source}: 'kernel' has {kernel.shape[0]} rows but the output size is {p}, leaving no "
                "input rows: expected [input_size + output_size, 4 * num_units]."
            )
        if bias.shape != (4 * n,):
            raise WeightFileError(f"{source}: 'bias' has shape {list(bias.shape)}, expected [{4 * n}].")
        tensors: dict[str, np.ndarray] = {}
        # kernel acts on concat([x, h]); transposed, its rows are the gates and its columns x then h.
        for gate, block in split_gates(kernel.T, "tf1", axis=0).items():
            tensors[f"input_to_{gate}_weights"] = block[:, :i]
            tensors[f"recurrent_to_{gate}_weights"] = block[:, i:]
        for gate, b in split_gates(bias, "tf1").items():
            tensors[f"{gate}_gate_bias"] = b
        for key, slot in PEEPHOLES.items():
            if key in arrays:
                d = as_float32(key, arrays[key], source, notes)
                if d.shape != (n,):
                    raise WeightFileError(f"{source}: '{key}' has shape {list(d.shape)}, expected [{n}].")
                tensors[slot] = d
        if proj is not None:
            tensors["projection_weights"] = proj.T
        cls = cell_class(scope)
        if scope:
            notes.append(f"cell class {cls.name}, from the scope name '{scope.rpartition('/')[2]}'")
        return CellWeights(
            tensors,
            self.name,
            source,
            forget_bias_default=cls.forget_bias,
            notes=tuple(notes),
            # The scope goes to the source reference as the file names it: it reads the class itself.
            origin=SourceArrays("tf1", arrays, {"scope": scope} if scope else {}),
            cell_class=cls.name if scope else None,
            forget_bias_why=cls.why if scope else None,
        )


def _recorded(arrays: Mapping[str, np.ndarray], source: str) -> tuple[float | None, Mapping[str, np.ndarray]]:
    """The forget bias the file records (a finite scalar under 'forget_bias'), and the other arrays."""
    key = next((k for k in arrays if bare(k) == RECORDED_FORGET_BIAS), None)
    if key is None:
        return None, arrays
    value = arrays[key]
    if value.shape not in ((), (1,)) or value.dtype.kind != "f" or not np.isfinite(value).all():
        raise WeightFileError(
            f"{source}: '{key}' has shape {list(value.shape)} dtype {value.dtype}; expected one finite number (the "
            "forget bias added at run time, as lstmgen export records it). Remove the key or save a scalar."
        )
    return float(value.reshape(())), {k: v for k, v in arrays.items() if k != key}
