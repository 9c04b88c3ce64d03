"""The graph form's constants against the source's arrays: every gate block, bias, vector and clip.

The graph form has no LSTM op whose slots name its tensors, so the file's constants are matched to the
source cells' own arrays (Cell.tensors) by shape: each FULLY_CONNECTED weight is cut into row blocks
of a source matrix's shape, its bias and each MUL's and ADD's constant vector into blocks of a source vector's,
and every block must equal its best-matching source array within what its type allows
(check/tensors.py's rules, per row for per-channel int8). Which block plays which gate is the outputs'
job (a gate in the wrong role moves them far); a block matching no source array at all fails. Each
MINIMUM/MAXIMUM constant is a clip: it must be +/- a stated clip when the source states one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from lstmgen.check.source.common import Cell
from lstmgen.check.tensors import TensorCheck, _stored, compare_tensor
from lstmgen.tflite.schema import BuiltinOperator as Op

Candidates = dict[tuple[int, ...], list[tuple[str, np.ndarray]]]


def _candidates(cells: Sequence[Cell]) -> Candidates:
    """Every source array by shape, labelled 'cell K name'."""
    found: Candidates = {}
    for k, cell in enumerate(cells):
        if cell.tensors is None:
            continue
        for name, a in cell.tensors().items():
            arr = np.asarray(a)
            found.setdefault(tuple(arr.shape), []).append((f"cell {k} {name}", arr))
    return found


def _rows(t: Any, lo: int, hi: int) -> Any:
    """Rows lo:hi of a constant, with their own scales where it has one per row."""
    q = t.quantization
    if q is not None and len(q.scale) > 1:
        q = replace(q, scale=tuple(q.scale[lo:hi]), zero_point=tuple(q.zero_point[lo:hi]))
    data = np.asarray(t.data)[lo:hi]
    return replace(t, data=data, shape=tuple(data.shape), quantization=q)


def _score(c: TensorCheck) -> float:
    return c.steps / c.allowed


def _best(t: Any, label: str, pool: list[tuple[str, np.ndarray]]) -> TensorCheck:
    """The block against every same-shaped source array: the closest one's check (its name ends with the
    source's, so a bias keeps a bias's allowance)."""
    return min((compare_tensor(0, f"{label}, closest to {name}", t, src) for name, src in pool), key=_score)


def _blocks(t: Any, label: str, cands: Candidates) -> list[TensorCheck]:
    """A constant cut into blocks of the source shape that tiles it best (none tiles it: not checked)."""
    shape = tuple(np.shape(t.data))
    best: list[TensorCheck] = []
    for block in {s for s in cands if s and s[1:] == shape[1:] and s[0] and shape[0] % s[0] == 0}:
        n = block[0]
        pool = cands[block]
        checks = [_best(_rows(t, r, r + n), f"{label} rows {r}-{r + n - 1}", pool) for r in range(0, shape[0], n)]
        if not best or max(map(_score, checks)) < max(map(_score, best)):
            best = checks
    return best


def _is_const(model: Any, index: int) -> bool:
    return index >= 0 and _stored(model, index).data is not None


def check_graph_tensors(model: Any, cells: Sequence[Cell]) -> list[TensorCheck]:
    """Each FULLY_CONNECTED weight and bias and each MUL/ADD constant vector, in blocks, against the source."""
    cands = _candidates(cells)
    vectors: Candidates = {s: v for s, v in cands.items() if len(s) == 1}
    found: list[TensorCheck] = []
    seen: set[int] = set()  # a constant several ops share (one recurrent matrix for every step): once
    for k, op in enumerate(model.operators):
        if op.opcode == Op.FULLY_CONNECTED:
            slots = [(i, f"op {k} FULLY_CONNECTED {'weights' if n == 1 else 'bias'}") for n, i in enumerate(op.inputs)]
            slots = slots[1:]
        elif op.opcode in (Op.MUL, Op.ADD):  # peepholes, layer-norm coefficients, biases added after it
            slots = [(i, f"op {k} {'MUL' if op.opcode == Op.MUL else 'ADD'} constant") for i in op.inputs]
        else:
            continue
        for index, label in slots:
            if not _is_const(model, index):
                continue
            t = _stored(model, index)
            if index in seen or np.ndim(t.data) == 0 or np.size(t.data) == 1:
                continue
            seen.add(index)
            data = np.asarray(t.data)
            if data.ndim > 1 and label.endswith("constant"):  # a [1, N] vector broadcast over the batch
                t = replace(t, data=data.reshape(-1), shape=(data.size,))
            flat = t
            found += _blocks(flat, label, vectors if flat.data.ndim == 1 else cands)
    return found


def clip_failures(model: Any, cell_clip: float, proj_clip: float) -> list[str]:
    """MINIMUM (+clip) and MAXIMUM (-clip) constants other than the stated clips (when the source states one)."""
    stated = [c for c in (float(cell_clip), float(proj_clip)) if c > 0]
    if not stated:
        return []  # a clip the source lacks: the outputs decide (the stress input reaches it)
    found: list[str] = []
    for k, op in enumerate(model.operators):
        if op.opcode not in (Op.MINIMUM, Op.MAXIMUM):
            continue
        sign = 1.0 if op.opcode == Op.MINIMUM else -1.0
        for index in op.inputs:
            if not _is_const(model, index):
                continue
            values = np.asarray(_stored(model, index).data, np.float64).reshape(-1)
            ok = all(any(abs(v - sign * c) <= 1e-6 * max(1.0, c) for c in stated) for v in values)
            if not ok:
                name = "MINIMUM" if sign > 0 else "MAXIMUM"
                want = " or ".join(f"{sign * c:g}" for c in stated)
                found.append(
                    f"op {k} {name} clips at {values.tolist()[:4]}, the source's clip is {want}: a clip other "
                    "than the source's (one-sided, or another value) changes the cell where it binds"
                )
    return found
