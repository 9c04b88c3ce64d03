"""Reader for a TF1 LSTMCell's variables: kernel [I+P, 4N] (i, j, f, o), bias, diagonals, projection."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from lstmgen.errors import WeightFileError
from lstmgen.weights.base import CellWeights, SingleCellNpzReader, as_float32, single_cell, split_gates

KEYS = ("kernel", "bias", "w_i_diag", "w_f_diag", "w_o_diag", "projection/kernel")
PEEPHOLES = {
    "w_i_diag": "cell_to_input_weights",
    "w_f_diag": "cell_to_forget_weights",
    "w_o_diag": "cell_to_output_weights",
}


class Tf1Reader(SingleCellNpzReader):
    name = "tf1"
    description = "TF1 LSTMCell variables: kernel [I+P,4N] (gates i,j,f,o), bias [4N], w_*_diag, projection/kernel"

    def matches(self, keys: frozenset[str]) -> bool:
        return "kernel" in keys and "bias" in keys and "recurrent_kernel" not in keys

    def read(self, arrays: Mapping[str, np.ndarray], source: str, layer: str | None = None) -> CellWeights:
        single_cell(self.name, layer)
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
        return CellWeights(tensors, self.name, source, forget_bias_default=1.0, notes=tuple(notes))
