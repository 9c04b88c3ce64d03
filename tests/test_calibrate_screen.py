"""Calibration's float32 screening: float64 runs only the samples near an extreme, and the ranges and bytes
are those of the float64 pass over every sample. Each safeguard is shown to matter by breaking it."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from lstmgen.quant import calibrate as cal
from lstmgen.quant.quantize import quantize
from lstmgen.tflite.records import ModelRecord
from lstmgen.tflite.writer import serialize
from tests.test_calibrate_batched import CASES, _close, _record


def _samples(rec: ModelRecord, n: int = 100, seed: int = 0) -> np.ndarray:
    x = rec.tensors[rec.inputs[0]]
    return np.random.default_rng(seed).standard_normal((n, *x.shape)) * 1.5


def _full(rec: ModelRecord, samples: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> cal.CalibrationStats:
    """The float64 pass over every sample (no screening)."""
    with monkeypatch.context() as m:
        m.setattr(cal, "SCREEN_MIN_SAMPLES", 10**9)
        return cal.calibrate(rec, samples)


def _bytes(rec: ModelRecord, stats: cal.CalibrationStats) -> bytes:
    return bytes(serialize(quantize(rec, "int8", calibration=stats)))


def _rows(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Counts the samples each precision's evaluations run (rows of the batched input)."""
    rows = {"float32": 0, "float64": 0}
    real = cal.evaluate

    def counted(model: ModelRecord, feeds: Any, **kw: Any) -> Any:
        rows[np.dtype(kw.get("precision", np.float64)).name] += 1
        return real(model, feeds, **kw)

    monkeypatch.setattr(cal, "evaluate", counted)
    return rows


@pytest.mark.parametrize("kw", CASES, ids=lambda kw: ",".join(kw) or "plain")
def test_screened_ranges_and_bytes_equal_the_float64_pass(kw: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    rec = _record(**kw)
    samples = _samples(rec)
    full = _full(rec, samples, monkeypatch)
    picked: list[int] = []
    real = cal._candidates
    monkeypatch.setattr(cal, "_candidates", lambda screen: picked.append(len(real(screen))) or real(screen))
    screened = cal.calibrate(rec, samples)
    assert picked, "the screen did not run"
    if not any(k.endswith("_clip") for k in kw):  # a clip that many samples reach: every one of them runs
        assert picked[0] <= len(samples) // 2, picked
    assert _close(full, screened)
    assert _bytes(rec, screened) == _bytes(rec, full)


def test_float64_runs_only_the_picked_samples(monkeypatch: pytest.MonkeyPatch) -> None:
    rec = _record()
    monkeypatch.setattr(cal, "CHUNK_BYTES", 1)  # one evaluation per sample: calls count samples
    rows = _rows(monkeypatch)
    cal.calibrate(rec, _samples(rec))
    assert rows["float32"] == 100
    assert 1 <= rows["float64"] <= 20, rows


def test_few_samples_go_straight_to_float64(monkeypatch: pytest.MonkeyPatch) -> None:
    rec = _record()
    monkeypatch.setattr(cal, "CHUNK_BYTES", 1)
    rows = _rows(monkeypatch)
    cal.calibrate(rec, _samples(rec, n=cal.SCREEN_MIN_SAMPLES - 1))
    assert rows == {"float32": 0, "float64": cal.SCREEN_MIN_SAMPLES - 1}


def test_a_screen_that_picks_the_wrong_samples_changes_the_ranges(monkeypatch: pytest.MonkeyPatch) -> None:
    """Picking the samples farthest from the extremes: the comparison above is able to fail."""
    rec = _record()
    samples = _samples(rec)
    full = _full(rec, samples, monkeypatch)
    real = cal._candidates
    monkeypatch.setattr(cal, "_candidates", lambda screen: np.setdiff1d(np.arange(100), real(screen))[:20])
    monkeypatch.setattr(cal, "_agree", lambda *a: True)
    assert not _close(full, cal.calibrate(rec, samples))


def _straying(monkeypatch: pytest.MonkeyPatch) -> None:
    """A float32 pass whose values belong to other samples (each chunk's reversed): it picks wrongly."""
    real = cal._recorded

    def off(model: ModelRecord, feeds: Any, k: int, constants: Any, precision: Any) -> Any:
        found = real(model, feeds, k, constants, precision)
        if precision != np.float32:
            return found
        return [(key, np.flip(v, axis) if axis is not None else v, axis) for key, v, axis in found]

    monkeypatch.setattr(cal, "_recorded", off)


def test_a_straying_float32_pass_falls_back_to_float64(monkeypatch: pytest.MonkeyPatch) -> None:
    rec = _record()
    samples = _samples(rec)
    full = _full(rec, samples, monkeypatch)
    _straying(monkeypatch)
    rows = _rows(monkeypatch)
    assert _close(full, cal.calibrate(rec, samples))
    assert rows["float64"] >= 2  # the picked samples, then every sample


def test_without_the_agreement_check_a_straying_pass_changes_the_ranges(monkeypatch: pytest.MonkeyPatch) -> None:
    rec = _record()
    samples = _samples(rec)
    full = _full(rec, samples, monkeypatch)
    _straying(monkeypatch)
    monkeypatch.setattr(cal, "_agree", lambda *a: True)
    assert not _close(full, cal.calibrate(rec, samples))


def test_the_sample_axis_of_a_graph_value() -> None:
    assert cal._sample_axis([1, 7, 16], (4, 7, 16), 4) == 0
    assert cal._sample_axis([7, 2, 16], (7, 6, 16), 3) == 1
    assert cal._sample_axis([1, 1, 16], (3, 3, 16), 3) is None  # a dynamic time axis of 3 and 3 samples
    assert cal._sample_axis([1, 1, 16], (3, 5, 16), 3) == 0
    lo, hi = cal._by_sample(np.arange(24.0).reshape(2, 6, 2), 1, 3) or (None, None)
    assert lo is not None and hi is not None
    np.testing.assert_array_equal(lo, [0, 4, 8])
    np.testing.assert_array_equal(hi, [15, 19, 23])


def test_inputs_beyond_float32_go_to_float64(monkeypatch: pytest.MonkeyPatch) -> None:
    """Samples float32 cannot hold (1e39 overflows to inf): the screen cannot pick, every sample runs in float64."""
    rec = _record()
    samples = _samples(rec)
    samples[3, 0, 2, 1] = 1e39
    rows = _rows(monkeypatch)
    stats = cal.calibrate(rec, samples)
    assert stats.tensors[rec.inputs[0]][1] == 1e39
    assert rows["float64"] == 1 and np.isfinite(stats.lstm[0].cell_abs_max)  # one chunk of all 100


def _tied(rec: ModelRecord, n: int, seed: int) -> np.ndarray:
    """n copies of one sample, each moved by less than half a float32 step: float32 sees one sample n times."""
    x = rec.tensors[rec.inputs[0]]
    rng = np.random.default_rng(seed)
    base = (rng.standard_normal(x.shape) * 1.5).astype(np.float32)
    ulp = np.spacing(np.abs(base)).astype(np.float64)
    return np.stack([base + rng.uniform(-0.45, 0.45, x.shape) * ulp for _ in range(n)])


@pytest.mark.parametrize("seed", range(3))
def test_samples_float32_cannot_tell_apart_all_run_in_float64(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The red team's find: a tie at the top in float32 was taken for a clip (two of the tied samples ran);
    float64 tells these apart, so the ranges and bytes differed from the float64 pass over all."""
    rec = _record()
    samples = _tied(rec, 10, seed)
    full = _full(rec, samples, monkeypatch)
    screened = cal.calibrate(rec, samples)
    assert full.to_dict() == screened.to_dict()
    assert _bytes(rec, screened) == _bytes(rec, full)


def test_saturating_gates_keep_their_float64_ranges(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inputs 12x the usual: float32's sigmoid and tanh reach their limits exactly where float64's do not (the
    red team's CIFG record: the hidden state's lower bound -0.761594140725 screened, -0.761594155942 exact)."""
    rec = _record(cifg=True)
    for seed in range(3):
        samples = _samples(rec, n=30, seed=seed) * 8
        full = _full(rec, samples, monkeypatch)
        screened = cal.calibrate(rec, samples)
        assert full.to_dict() == screened.to_dict()
