"""The shipped examples run: the demo config builds, and the state/streaming script works as documented."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from support import ROOT

from lstmgen.build import build
from lstmgen.cli.main import main  # noqa: F401  (the console entry point imports)


@pytest.mark.runtime
def test_state_and_streaming_example(tmp_path: Path) -> None:
    pytest.importorskip("ai_edge_litert")
    model = tmp_path / "lstm.tflite"
    build(model, {"num_units": 32, "input_size": 16, "num_proj": 24}, verify=False)
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "state_and_streaming.py"), str(model)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "streamed == one-shot: True" in done.stdout
    assert "final h after a warm start: shape (1, 24)" in done.stdout


@pytest.mark.runtime
def test_demo_config_builds(tmp_path: Path) -> None:
    from lstmgen.config import load_config_file

    options = load_config_file(ROOT / "examples" / "cell.toml")
    weights = options.pop("weights")
    fmt = options.pop("weights_format")
    result = build(tmp_path / "demo.tflite", options, weights, weights_format=fmt)
    assert result.verification is not None and result.verification.passed
