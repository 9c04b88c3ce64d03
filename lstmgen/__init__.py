"""lstmgen: write verified TFLite UNIDIRECTIONAL_SEQUENCE_LSTM models from hyperparameters and weights."""

from __future__ import annotations

__version__ = "0.1.0"
