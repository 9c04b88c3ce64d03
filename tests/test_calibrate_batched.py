"""Batched calibration: all samples side by side in one evaluation give the per-sample path's ranges and bytes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from lstmgen.config import CellConfig
from lstmgen.pipeline.initializers import init_weights
from lstmgen.pipeline.layout import layout, shapes_from_config
from lstmgen.quant import calibrate as cal
from lstmgen.quant.quantize import quantize
from lstmgen.tflite.records import ModelRecord, materialize
from lstmgen.tflite.writer import serialize

CASES: list[dict[str, Any]] = [
    {},
    {"use_peepholes": True, "cell_clip": 0.5},
    {"num_proj": 5, "proj_clip": 0.3},
    {"num_layers": 2, "bidirectional": True},
    {"bidirectional": True, "return_sequences": False},
    {"time_major": True, "batch_size": 3},
    {"cifg": True, "layer_norm": True, "batch_size": 2},
    {"go_backwards": True},
]


def _record(**kw: Any) -> ModelRecord:
    c = CellConfig(**({"num_units": 16, "input_size": 8, "time_steps": 7, "forget_bias": 1.0} | kw))
    shapes = shapes_from_config(c)
    layers = [[init_weights(c, s, (k, d)).tensors for d, s in enumerate(dirs)] for k, dirs in enumerate(shapes)]
    return materialize(layout(c, layers, shapes))


def _per_sample(rec: ModelRecord, samples: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> cal.CalibrationStats:
    """The old path: one evaluation per sample (chunks of one)."""
    with monkeypatch.context() as m:
        m.setattr(cal, "CHUNK_BYTES", 1)
        return cal.calibrate(rec, samples)


def _close(a: cal.CalibrationStats, b: cal.CalibrationStats) -> bool:
    """Equal up to float64 rounding (a matmul of 13 rows may round its last bit unlike 13 matmuls of one)."""
    da, db = a.to_dict(), b.to_dict()

    def flat(d: Any) -> list[float]:
        if isinstance(d, dict):
            return [v for k in sorted(d) for v in flat(d[k])]
        if isinstance(d, list):
            return [v for x in d for v in flat(x)]
        return [float(d)] if isinstance(d, (int, float)) and not isinstance(d, bool) else []

    fa, fb = np.array(flat(da)), np.array(flat(db))
    return fa.shape == fb.shape and bool(np.allclose(fa, fb, rtol=1e-13, atol=0.0))


@pytest.mark.parametrize("kw", CASES, ids=lambda kw: ",".join(kw) or "plain")
def test_batched_ranges_and_bytes_equal_the_per_sample_path(
    kw: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    rec = _record(**kw)
    x = rec.tensors[rec.inputs[0]]
    samples = np.random.default_rng(0).standard_normal((13, *x.shape)) * 1.5
    old = _per_sample(rec, samples, monkeypatch)
    new = cal.calibrate(rec, samples)
    assert _close(old, new)
    assert set(old.tensors) == set(new.tensors) and old.num_samples == new.num_samples == 13
    old_bytes = bytes(serialize(quantize(rec, "int8", calibration=old)))
    assert bytes(serialize(quantize(rec, "int8", calibration=new))) == old_bytes


def test_samples_are_evaluated_together(monkeypatch: pytest.MonkeyPatch) -> None:
    """The float32 screening pass runs every sample in one evaluation, float64 the picked ones in another."""
    calls: list[tuple[tuple[int, ...], str]] = []
    real = cal.evaluate

    def spy(model: ModelRecord, feeds: Any, **kw: Any) -> Any:
        calls.append((next(iter(feeds.values())).shape, np.dtype(kw["precision"]).name))
        return real(model, feeds, **kw)

    monkeypatch.setattr(cal, "evaluate", spy)
    rec = _record(batch_size=2)
    cal.calibrate(rec, np.random.default_rng(0).standard_normal((60, 2, 7, 8)))
    assert len(calls) == 2 and calls[0] == ((120, 7, 8), "float32"), calls
    assert calls[1][1] == "float64" and calls[1][0][0] <= 60 and calls[1][0][1:] == (7, 8), calls


def test_the_comparison_catches_a_wrong_batching(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stacking the samples along the time axis (one long sequence, states carried over) changes the ranges:
    the equality above is able to fail."""
    rec = _record()
    samples = np.random.default_rng(0).standard_normal((13, 1, 7, 8)) * 1.5
    old = _per_sample(rec, samples, monkeypatch)
    monkeypatch.setattr(cal, "_batched", lambda arr, tm, chunk: [np.concatenate(list(arr), axis=1)])
    assert not _close(old, cal.calibrate(rec, samples))


@pytest.mark.parametrize(
    ("stated", "layers"),
    [({}, 1), ({"time_major": True}, 1), ({"return_sequences": False}, 1), ({}, 2)],
    ids=["batch-major", "time-major", "last-step", "bidirectional-2-layers"],
)
def test_source_outputs_run_together_equal_one_by_one(stated: dict[str, Any], layers: int) -> None:
    """verify's comparison with the float source runs its inputs side by side; each equals its own run."""
    from lstmgen.check.source import source_model
    from lstmgen.check.source.common import Stated
    from lstmgen.check.verify import _source_outputs
    from lstmgen.weights import load_layers
    from tests.support import ROOT

    if layers == 2:
        cells = load_layers(ROOT / "examples" / "encoder.npz", "auto")
    else:
        cells = [load_layers(ROOT / "examples" / "weights_tf1.npz", "auto")[0]]
    source = source_model(cells, Stated(**stated))
    width = cells[0][0].tensors["input_to_forget_weights"].shape[1]
    shape = (9, 2, width) if stated.get("time_major") else (2, 9, width)
    xs = [np.random.default_rng(k).standard_normal(shape) for k in range(5)]
    together, steps = _source_outputs(source, xs)
    assert steps == [9]  # one pass of 9 steps per cell (check/state_range.py maps its trace by these)
    for x, y in zip(xs, together, strict=True):
        alone, _ = source.run(x)
        assert y.shape == alone.shape
        np.testing.assert_allclose(y, alone, rtol=1e-12, atol=1e-14)
