"""Reader for .npz files keyed by the op's own input names (already in TFLite layout)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from lstmgen.errors import WeightFileError
from lstmgen.tflite.slots import WEIGHT_SLOT_BY_KEY
from lstmgen.weights.base import CellWeights, SingleCellNpzReader, as_float32, single_cell
from lstmgen.weights.raw import SourceArrays

REQUIRED = tuple(k for k, s in WEIGHT_SLOT_BY_KEY.items() if s.feature == "core")


class TfliteReader(SingleCellNpzReader):
    name = "tflite"

    def read(self, arrays: Mapping[str, np.ndarray], source: str, layer: str | None = None) -> CellWeights:
        single_cell(self.name, layer)
        unknown = sorted(set(arrays) - set(WEIGHT_SLOT_BY_KEY))
        if unknown:
            raise WeightFileError(
                f"{source}: unknown key(s) {', '.join(unknown)} for --weights-format tflite. "
                f"Allowed keys are the op's input names: {', '.join(WEIGHT_SLOT_BY_KEY)}."
            )
        missing = [k for k in REQUIRED if k not in arrays]
        if missing:
            raise WeightFileError(
                f"{source}: missing required key(s) {', '.join(missing)} for --weights-format tflite "
                f"(found: {', '.join(sorted(arrays)) or 'nothing'})."
            )
        notes: list[str] = []
        tensors = {k: as_float32(k, v, source, notes) for k, v in arrays.items()}
        return CellWeights(
            tensors,
            self.name,
            source,
            forget_bias_default=0.0,
            notes=tuple(notes),
            origin=SourceArrays("tflite", arrays),
        )
