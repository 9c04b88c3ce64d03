"""`lstmgen.build`: the public build entry point (the pipeline itself lives in lstmgen/pipeline/)."""

from __future__ import annotations

from lstmgen.pipeline.steps import BuildResult, LayerSummary, build

__all__ = ["BuildResult", "LayerSummary", "build"]
