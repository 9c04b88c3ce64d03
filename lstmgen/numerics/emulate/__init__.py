"""Bit-exact emulation of the integer LSTM kernels (LiteRT 8x8->16; TFLM int8 and int16x8) on a file's own codes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from lstmgen.numerics.emulate.report import emulation_report
from lstmgen.numerics.emulate.runner import FLAVOURS, Emulation, emulate_graph, make_kernel, run_op
from lstmgen.numerics.graph import DATA_OPS
from lstmgen.tflite.records import ModelRecord

__all__ = ["DATA_OPS", "FLAVOURS", "Emulation", "emulate", "emulation_report", "make_kernel", "run_op"]


def emulate(
    model: ModelRecord,
    feeds: Mapping[int, np.ndarray],
    flavour: str,
    *,
    states: Mapping[int, tuple[np.ndarray | None, np.ndarray | None]] | None = None,
    knobs: Any = None,
) -> Emulation:
    """Run an integer model in `flavour` ('litert' or 'tflm') from `feeds` (input tensor index -> codes)."""
    return emulate_graph(model, feeds, flavour, states=states, knobs=knobs, data_ops=DATA_OPS)


