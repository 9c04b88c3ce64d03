"""A new user's first hour: messages that point at the real cause, one JSON document per --json run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lstmgen.build import build
from lstmgen.errors import LstmgenError
from lstmgen.run import run_model


@pytest.mark.runtime
def test_chunk_on_fixed_time_axis_names_the_model_not_the_input(tmp_path: Path) -> None:
    model = tmp_path / "fixed.tflite"
    build(model, {"num_units": 4, "input_size": 3, "time_steps": 6}, verify=False)
    x = np.zeros((1, 6, 3), np.float32)
    with pytest.raises(LstmgenError, match=r"--chunk 2: .* fixes its time axis to 6 steps .*without --time-steps"):
        run_model(model, x, chunk=2)
    y, _, _ = run_model(model, x, chunk=6)  # a chunk as long as the sequence is one invoke
    assert y.shape == (1, 6, 4)
