"""Keras LSTM cells in an .npz of '<layer>/kernel', '<layer>/recurrent_kernel', '<layer>/bias' keys."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from lstmgen.errors import WeightFileError
from lstmgen.weights.keras_cells import _CELL_SEGMENT, ROLES, _bidirectional_names, _Cell, _is_lstm_recurrent


def _npz_cells(arrays: Mapping[str, np.ndarray], by_shape: bool = True) -> tuple[list[_Cell], list[str]]:
    """Group keys '<prefix>/kernel', '<prefix>/recurrent_kernel', '<prefix>/bias' (':0' allowed) into cells.

    Prefixed groups whose recurrent_kernel is not [N, 4N] belong to other recurrent layers and are
    left out (with by_shape); a bare-key group is always the cell, so its shape errors get reported.
    """
    groups: dict[str, dict[str, str]] = {}
    for key in arrays:
        bare = key[:-2] if key.endswith(":0") else key
        prefix, _, leaf = bare.rpartition("/")
        if leaf in ROLES:
            groups.setdefault(prefix, {})[leaf] = key
    prefixes = [
        p
        for p, roles in groups.items()
        if "recurrent_kernel" in roles
        and (not by_shape or not p or _is_lstm_recurrent(arrays[roles["recurrent_kernel"]]))
    ]
    used = {k for p in prefixes for k in groups[p].values()}
    others = sorted(k for k in arrays if k not in used)
    paths = []
    for p in prefixes:
        segs = [s for s in p.split("/") if s]
        if segs and _CELL_SEGMENT.match(segs[-1]):
            segs = segs[:-1]
        paths.append(segs)
    raw_paths, paths = paths, _bidirectional_names(paths)
    # Drop the leading segments every cell shares (the model name, 'sequential'), never the layer
    # itself nor a Bidirectional wrapper, so Keras 3 paths give the same names as its .weights.h5.
    keep = [len(s) - (2 if s and s[-1] in ("forward_layer", "backward_layer") else 1) for s in paths]
    common = 0
    while paths and all(common < k for k in keep) and len({s[common] for s in paths}) == 1:
        common += 1
    cells = []
    for rank, (p, segs, raw) in enumerate(zip(prefixes, paths, raw_paths, strict=True)):
        name = "/".join(segs[common:])
        aliases = {p, "/".join(segs), "/".join(raw), "/".join(raw[common:])} | ({raw[-1]} if raw else set())
        where = f"keys {', '.join(repr(k) for k in groups[p].values())}"
        # The keys' order in the archive (the order they were passed to numpy.savez) is the layer order.
        cells.append(_Cell(name, where, {r: arrays[k] for r, k in groups[p].items()}, aliases - {name}, rank=rank))
    return cells, others


def _checked_npz_cells(arrays: Mapping[str, np.ndarray], source: str) -> tuple[list[_Cell], list[str]]:
    """The .npz's cells and other keys; no cells, or stray keys beside bare ones, are errors."""
    cells, others = _npz_cells(arrays)
    if not cells:
        raise WeightFileError(
            f"{source}: no Keras LSTM weights: expected keys kernel [input, 4*units], recurrent_kernel "
            f"[units, 4*units] and optionally bias [4*units], bare or as '<layer>/kernel' "
            f"(found: {', '.join(sorted(arrays)) or 'nothing'}). Save them with numpy.savez(path, "
            "kernel=k, recurrent_kernel=r, bias=b)."
        )
    if any(c.name == "" for c in cells) and others:  # a bare-key file is one cell: anything else is a typo
        raise WeightFileError(
            f"{source}: unknown key(s) {', '.join(others)} for --weights-format keras. Allowed keys: "
            f"{', '.join(ROLES)}, or '<layer>/<key>' for several layers."
        )
    return cells, others
