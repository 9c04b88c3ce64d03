"""Error types: every user-facing failure is an LstmgenError with an exit status."""

from __future__ import annotations


class LstmgenError(Exception):
    """Root of all errors lstmgen reports to users (exit status 2 unless overridden)."""

    exit_code = 2


class ConfigError(LstmgenError, ValueError):
    """A hyperparameter or option has a value outside its allowed range."""


class WeightFileError(LstmgenError, ValueError):
    """A weight file is missing, unreadable, or does not match the cell."""


class UnknownOrderError(WeightFileError):
    """A weight file holds several LSTM layers but does not record their order in the model."""


class ModelFileError(LstmgenError, ValueError):
    """A .tflite file is unreadable or not a model lstmgen can handle."""


class OutputError(LstmgenError, OSError):
    """The output file cannot be written."""


class RuntimeNotAvailable(LstmgenError, ImportError):
    """The requested TFLite interpreter is not installed."""


class VerificationError(LstmgenError):
    """The interpreter's output disagrees with the NumPy reference (exit status 1)."""

    exit_code = 1

    def __init__(self, message: str, payload: dict | None = None) -> None:
        super().__init__(message)
        self.payload = payload or {}  # merged into the --json error document (e.g. the report)
