"""The arrays of one cell exactly as its file stores them, for the source reference (check/source/)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class SourceArrays:
    """What a reader saw before any transposing, gate splitting or bias folding.

    `framework` names the equations the arrays belong to ('tf1', 'keras', 'torch', 'onnx', 'tflite');
    `arrays` are the file's own arrays under the file's own names (references, not copies); `attrs`
    are the framework attributes the file states (a Keras layer config, ONNX node attributes, ...).
    """

    framework: str
    arrays: Mapping[str, np.ndarray]
    attrs: Mapping[str, object] = field(default_factory=dict)
