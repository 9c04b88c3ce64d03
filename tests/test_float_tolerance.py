"""Float tolerance on steep cells: the float32 sensitivity derived from the reference side (check/verify.py).

A 32-unit TF1 cell with std-normal weights over 50 steps: the interpreter's float32 rounding, amplified by
the recurrence, ends ~1e-4 from the float64 reference, 7-20x the fixed 1e-5 + 1e-5|ref| (a false FAIL before
the derived bound). The derived bound must let it pass and still catch a real defect on the same cell.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import lstmgen.layout
from lstmgen.build import build
from lstmgen.check.report import FLOAT_ATOL
from lstmgen.check.verify import verify_model
from lstmgen.errors import VerificationError

pytestmark = pytest.mark.runtime
N, I, T = 32, 8, 50  # noqa: E741  (the op's own symbols)


@pytest.fixture
def steep(tmp_path: Path) -> Path:
    rng = np.random.default_rng(33)
    path = tmp_path / "steep.npz"
    kernel = rng.standard_normal((I + N, 4 * N)).astype(np.float32)
    np.savez(path, kernel=kernel, bias=rng.standard_normal(4 * N).astype(np.float32))
    return path


def _build(out: Path, weights: Path) -> Any:
    return build(out, {"time_steps": T}, weights, weights_format="tf1")


def test_steep_cell_passes_within_derived_bound(tmp_path: Path, steep: Path) -> None:
    report = _build(tmp_path / "m.tflite", steep).verification
    src = report.against_source
    assert report.passed and src is not None and src.passed
    # the errors really exceed the fixed floor (2e-4 under LiteRT, 7e-5 under tflite-runtime 2.14) ...
    assert max(report.max_abs_error, src.max_abs_error) > 5 * FLOAT_ATOL
    # ... and the derived bound that let them pass is stated in the report
    assert report.float_bound > report.max_abs_error
    assert "float32 sensitivity" in report.to_dict()["tolerance"] and "float32 sensitivity" in src.tolerance


def test_steep_cell_fails_without_derived_bound(tmp_path: Path, steep: Path) -> None:
    """No perturbed runs -> no derived bound -> the fixed tolerance alone: the false FAIL this fixes."""
    _build(tmp_path / "m.tflite", steep)
    assert not verify_model(tmp_path / "m.tflite", time_steps=T, float_runs=0).passed


def test_steep_cell_forget_bias_off_by_one_is_caught(
    tmp_path: Path, steep: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = lstmgen.layout._Graph.lstm

    def lstm(self: Any, scope: str, shape: Any, weights: Any, x: int, forget_bias: float) -> int:
        return real(self, scope, shape, weights, x, forget_bias + 1.0)

    monkeypatch.setattr(lstmgen.layout._Graph, "lstm", lstm)
    with pytest.raises(VerificationError) as caught:
        _build(tmp_path / "m.tflite", steep)
    src = caught.value.payload["verification"]["against_source"]
    assert caught.value.exit_code == 1 and src["passed"] is False


def test_a_chaotic_cell_is_called_weak() -> None:
    """When rounding alone moves outputs by more than WEAK_BOUND, the tolerance text says the check is weak."""
    from lstmgen.check.report import WEAK_BOUND, float_tolerance_text

    assert "WEAK" not in float_tolerance_text(1e-5, 1e-5, 1e-3)
    assert "WEAK" in float_tolerance_text(1e-5, 1e-5, WEAK_BOUND * 2)
