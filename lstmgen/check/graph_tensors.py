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

from collections import Counter
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


def _role(cands: Candidates, adds: bool) -> Candidates:
    """The source arrays a constant may stand for: biases for what is added (a FULLY_CONNECTED bias, an ADD's
    constant), the others (weights, peepholes, layer-norm coefficients) for what multiplies. Else a layer-norm
    coefficient one ulp off a ones vector passed as the forget bias of 1.0 (closest, within a bias's allowance)."""
    picked = {s: [(n, a) for n, a in pool if n.endswith("bias") == adds] for s, pool in cands.items()}
    return {s: pool for s, pool in picked.items() if pool}


def _is_const(model: Any, index: int) -> bool:
    return index >= 0 and _stored(model, index).data is not None


def check_graph_tensors(model: Any, cells: Sequence[Cell]) -> list[TensorCheck]:
    """Each FULLY_CONNECTED weight and bias and each MUL/ADD constant vector, in blocks, against the source: in
    the main graph and in every subgraph (a WHILE loop's body holds the recurrent weights, peepholes, layer norm)."""
    cands = _candidates(cells)
    found: list[TensorCheck] = []
    for g, graph in enumerate((model, *model.subgraphs)):
        found += _graph_constants(graph, f"subgraph {g} " if g else "", cands)
    return found


def _graph_constants(model: Any, where: str, cands: Candidates) -> list[TensorCheck]:
    """One subgraph's constants (labelled `where`) against the source's arrays."""
    vectors: Candidates = {s: v for s, v in cands.items() if len(s) == 1}
    found: list[TensorCheck] = []
    seen: set[int] = set()  # a constant several ops share (one recurrent matrix for every step): once
    for k, op in enumerate(model.operators):
        if op.opcode == Op.FULLY_CONNECTED:
            slots = [
                (i, f"{where}op {k} FULLY_CONNECTED {'weights' if n == 1 else 'bias'}") for n, i in enumerate(op.inputs)
            ]
            slots = slots[1:]
        elif op.opcode in (Op.MUL, Op.ADD):  # peepholes, layer-norm coefficients, biases added after it
            slots = [(i, f"{where}op {k} {'MUL' if op.opcode == Op.MUL else 'ADD'} constant") for i in op.inputs]
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
            adds = label.endswith(("bias", "ADD constant"))
            found += _blocks(t, label, _role(vectors if t.data.ndim == 1 else cands, adds))
    return found


def _clipped_by_projection(graph: Any, op: Any, producers: dict[int, Any]) -> bool:
    """Whether a MINIMUM/MAXIMUM clips a FULLY_CONNECTED's output (the projection: proj_clip), through the other
    clip op of its pair; anything else it clips is c (cell_clip)."""
    while op is not None and op.opcode in (Op.MINIMUM, Op.MAXIMUM):
        op = next((producers.get(i) for i in op.inputs if not _is_const(graph, i)), None)
    return op is not None and op.opcode == Op.FULLY_CONNECTED


def clip_failures(model: Any, cell_clip: float, proj_clip: float, cell_steps: int) -> list[str]:
    """Each MINIMUM (+clip) and MAXIMUM (-clip) constant against the source's clip for what it clips (c or the
    projection), where the source states one; and, per stated clip, one MINIMUM and one MAXIMUM for each of the
    `cell_steps` cell steps the file computes (cells x T unrolled, one per cell in a WHILE body): a step whose
    clip was dropped passed when the stress input did not reach the clip at that step."""
    found: list[str] = []
    counts: Counter[tuple[bool, int]] = Counter()
    clips = {True: (float(proj_clip), "proj_clip", "the projection"), False: (float(cell_clip), "cell_clip", "c")}
    for g, graph in enumerate((model, *model.subgraphs)):  # a WHILE loop's body clips too
        producers = {o: p for p in graph.operators for o in p.outputs}
        for k, op in enumerate(graph.operators):
            if op.opcode not in (Op.MINIMUM, Op.MAXIMUM):
                continue
            proj = _clipped_by_projection(graph, op, producers)
            counts[proj, op.opcode] += 1
            clip, what, of = clips[proj]
            if clip > 0:  # else a clip the source lacks: the outputs decide (the stress input reaches it)
                found += _clip_value(graph, op, f"{f'subgraph {g} ' if g else ''}op {k}", clip, what, of)
    for proj, (clip, what, of) in clips.items():
        for opcode, name in ((Op.MINIMUM, "MINIMUM"), (Op.MAXIMUM, "MAXIMUM")):
            if clip > 0 and counts[proj, opcode] != cell_steps:
                found.append(
                    f"{counts[proj, opcode]} {name} ops clip {of}, the source's {what} {clip:g} applies at each of "
                    f"the {cell_steps} cell steps the file computes: a step without its clip differs where it binds"
                )
    return found


def _clip_value(graph: Any, op: Any, where: str, clip: float, what: str, of: str) -> list[str]:
    """A MINIMUM's constant must be +clip, a MAXIMUM's -clip."""
    sign, name = (1.0, "MINIMUM") if op.opcode == Op.MINIMUM else (-1.0, "MAXIMUM")
    found = []
    for index in (i for i in op.inputs if _is_const(graph, i)):
        values = np.asarray(_stored(graph, index).data, np.float64).reshape(-1)
        if any(abs(v - sign * clip) > 1e-6 * max(1.0, clip) for v in values):
            found.append(
                f"{where} {name} clips {of} at {values.tolist()[:4]}, the source's {what} is {sign * clip:g}: a clip "
                "other than the source's (one-sided, or another value) changes the cell where it binds"
            )
    return found
