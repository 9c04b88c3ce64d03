"""The source bound takes the file's input rounding exactly (the source ran on the input as given, the file on
its grid), not as a random draw of it; clipping to the grid stays an error the comparison must find."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lstmgen.build import build
from lstmgen.check import tolerance as tol
from tests.support import invoke, random_tflite_weights


@pytest.fixture(scope="module")
def small_calibrated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A right 16-unit int8 model calibrated on inputs 0.7x the ones it is then given (their tails clip)."""
    d = tmp_path_factory.mktemp("clip")
    weights = d / "w.npz"
    np.savez(weights, **random_tflite_weights(16, 8, seed=2))
    real = np.random.default_rng(4).standard_normal((8, 1, 10, 8)).astype(np.float32)
    np.save(d / "small.npy", real * 0.7)
    np.save(d / "real.npy", real[0])
    model = d / "m.tflite"
    build(model, {"time_steps": 10, "quantize": "int8"}, weights, calibration_data=d / "small.npy")
    return model, weights, d


def _verify(model: Path, weights: Path, x: Path) -> tuple[int, dict[str, object]]:
    result = invoke("verify", model, "--weights", weights, "--input", x, "--json")
    return result.exit_code, json.loads(result.stdout)["against_source"]


def test_clipped_inputs_fail_against_the_source(small_calibrated: tuple[Path, Path, Path]) -> None:
    model, weights, d = small_calibrated
    code, src = _verify(model, weights, d / "real.npy")
    assert code == 1, src
    np.save(d / "inside.npy", np.load(d / "real.npy") * 0.5)
    assert _verify(model, weights, d / "inside.npy")[0] == 0  # inside the calibrated range: a right model


def test_a_bound_that_took_the_clipped_input_would_hide_it(
    small_calibrated: tuple[Path, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mutation: the runs fed the input as given, unclipped: the bound grows with the clipping and the same
    right-but-misused file would pass (error 0.107: bound 0.079 with the clip, 0.133 without). The clip in
    _within_grid is what keeps clipping an error."""
    model, weights, d = small_calibrated
    monkeypatch.setattr(tol, "_within_grid", lambda m, i, x: np.asarray(x, np.float64))
    code, src = _verify(model, weights, d / "real.npy")
    assert code == 0, src


def test_within_grid_clips_to_the_grid_only() -> None:
    from lstmgen.tflite.records import Quantization, TensorRecord

    model = type("M", (), {})()
    grid = TensorRecord("x", (1, 3), np.dtype(np.int8), quantization=Quantization((0.1,), (0,)))
    model.tensors = [grid]  # type: ignore[attr-defined]
    model.operators = []  # type: ignore[attr-defined]
    got = tol._within_grid(model, 0, np.array([[-20.0, 0.123, 20.0]]))  # type: ignore[arg-type]
    np.testing.assert_allclose(got, [[-12.8, 0.123, 12.7]], rtol=1e-15)  # not rounded: the runs take x as given


def test_the_reported_error_is_the_compared_steps_one() -> None:
    """A fresh user saw 'compared over steps 1-5 of 16' beside 'worst at time step 15': the error and its step
    are now those of the compared steps, and the scope names the largest beyond them."""
    from lstmgen.check.against import Sample, quantized_vs_source
    from lstmgen.check.report import SourceReport

    y_src = np.full((1, 4, 2), 0.5)
    y = y_src + np.array([0.005, 0.001, 0.2, 0.3])[None, :, None]
    src = SourceReport("test", True, "")
    bound = np.array([0.01, 0.01, 0.5, 0.5])  # loose from step 3: compared over steps 1-2
    quantized_vs_source(src, "out", None, 0, [Sample({}, y, y_src)], mode="int8", time_axis=1, seed=0, bound=bound)  # type: ignore[arg-type]
    check = src.checks[-1]
    assert check.passed and check.max_abs_error == pytest.approx(0.005) and src.worst_time_step == 0
    assert "steps 1-2 of 4" in check.scope and "largest error is 0.3, at time step 3" in check.scope
    assert "up to 0.01" in src.tolerance
