"""verify --weights: options decided on the source, smoke builds labelled, chaotic steps left out and said."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from support import invoke, random_tflite_weights

pytestmark = pytest.mark.runtime


@pytest.fixture
def projected(tmp_path: Path) -> Path:
    """A projection cell (P = 6) whose projected output stays well inside 0.3 on random input."""
    w = {k: v * 0.3 for k, v in random_tflite_weights(16, 8, p=6, seed=2).items()}
    path = tmp_path / "proj.npz"
    np.savez(path, **w)
    return path


def test_a_clip_the_file_lacks_fails_on_the_stress_input(tmp_path: Path, projected: Path) -> None:
    """The source clips the projection at 0.3; the file has no clip. Random input never reaches 0.3, so
    the outputs agree; the stress sequence (the input scaled until the gates saturate) does: FAIL, naming
    the option and where it binds."""
    model = tmp_path / "noclip.tflite"
    assert invoke("build", "--weights", projected, "--time-steps", 10, "-o", model, "-q").exit_code == 0
    result = invoke("verify", model, "--weights", projected, "--proj-clip", 0.3, "--json")
    doc = json.loads(result.stdout)
    assert result.exit_code == 1 and not doc["ok"]
    (failure,) = doc["against_source"]["options"]
    assert failure.startswith("proj_clip 0 in the file (the source's: 0.3) changes the numbers on the stress input")
    assert "first at time step" in failure
    # with --input (no stress sequence) and that input never reaching the clip, it is a note
    x = tmp_path / "x.npy"
    np.save(x, np.random.default_rng(0).standard_normal((1, 10, 8)).astype(np.float32) * 0.1)
    doc = json.loads(invoke("verify", model, "--weights", projected, "--proj-clip", 0.3, "--input", x, "--json").stdout)
    assert doc["ok"], doc.get("error")
    assert any(
        n.startswith("the source's proj_clip 0.3 (the file has none) never binds")
        for n in doc["against_source"]["notes"]
    )


def test_a_clip_the_source_lacks_that_never_binds_is_a_note_with_its_margin(tmp_path: Path, projected: Path) -> None:
    model = tmp_path / "clip.tflite"
    assert (
        invoke("build", "--weights", projected, "--time-steps", 10, "--cell-clip", 50, "-o", model, "-q").exit_code == 0
    )
    doc = json.loads(invoke("verify", model, "--weights", projected, "--json").stdout)
    assert doc["ok"], doc.get("error")
    assert any(
        n.startswith("cell_clip 50 in the file never binds on these inputs: max |c|")
        for n in doc["against_source"]["notes"]
    )


@pytest.mark.parametrize(
    "mode",
    [
        "int8",
        pytest.param(
            "int16x8",
            marks=pytest.mark.skipif(
                importlib.util.find_spec("tflite_micro") is None,
                reason="int16x8 verifies in TFLite Micro (not installed)",
            ),
        ),
    ],
)
def test_calibration_random_is_a_labelled_smoke_build(tmp_path: Path, mode: str) -> None:
    """lstmgen's own error message offers --calibration random for a smoke test: it builds, labelled."""
    out = tmp_path / "smoke.tflite"
    args = ("build", "--num-units", 16, "--input-size", 8, "--time-steps", 10, "--quantize", mode)
    result = invoke(*args, "--calibration", "random", "-o", out, "--json")
    doc = json.loads(result.stdout)
    assert result.exit_code == 0 and doc["ok"], doc.get("error")
    src = doc["verification"]["against_source"]
    assert any("SMOKE TEST" in n for n in src["notes"]) and all(t["passed"] for t in src["tensors"])


def test_a_chaotic_cell_is_compared_over_its_tight_steps_and_a_clip_still_fails(tmp_path: Path) -> None:
    """WEAK is not PASS: a 32-unit TF1 cell with weights std 2 over 200 steps is chaotic in float32 (its
    derived bound reaches ~19, where a file clipping c at 5 used to pass). The right model passes over
    the leading tight steps and says so; the file with the clip fails."""
    rng = np.random.default_rng(33)
    weights = tmp_path / "chaos.npz"
    kernel = (rng.standard_normal((8 + 32, 4 * 32)) * 2).astype(np.float32)
    np.savez(weights, kernel=kernel, bias=rng.standard_normal(4 * 32).astype(np.float32))
    right, clipped = tmp_path / "right.tflite", tmp_path / "clip5.tflite"
    common = ("build", "--weights", weights, "--weights-format", "tf1", "--time-steps", 200, "-q")
    assert invoke(*common, "-o", right).exit_code == 0
    doc = json.loads(invoke("verify", right, "--weights", weights, "--weights-format", "tf1", "--json").stdout)
    assert doc["ok"], doc.get("error")
    scoped = [c["scope"] for c in doc["against_source"]["checks"] if c["name"].startswith("output")]
    assert scoped and all(
        s.startswith("steps 1-") and s.endswith("of 200; later steps are chaotic in float32") for s in scoped
    )
    assert any("compared over steps 1-" in n for n in doc["notes"])
    assert invoke(*common, "--cell-clip", 5, "--no-verify", "-o", clipped).exit_code == 0
    result = invoke("verify", clipped, "--weights", weights, "--weights-format", "tf1", "--json")
    assert result.exit_code == 1
