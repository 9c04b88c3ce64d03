"""Source references: each weight file's own framework equations, run on the arrays as the file stores them.

Nothing here reads the model being judged, and nothing is shared with the readers' gate tables,
pipeline/layout.py, tflite/slots.py or tflite/tables.py: every framework module spells out its own gate
order and equations from the framework's documentation. See model.py for the entry point.
"""

from lstmgen.check.source.model import SourceModel, SourceUnsupported, source_model

__all__ = ["SourceModel", "SourceUnsupported", "source_model"]
