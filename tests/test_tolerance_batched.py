"""The noisy runs of a tolerance derivation side by side on the batch axis equal the same runs one at a time."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from lstmgen.check import tolerance as tol
from lstmgen.config import CellConfig
from lstmgen.pipeline.initializers import init_weights
from lstmgen.pipeline.layout import layout, shapes_from_config
from lstmgen.quant.calibrate import random_calibration
from lstmgen.quant.quantize import quantize
from lstmgen.tflite.records import ModelRecord, materialize

CASES: list[dict[str, Any]] = [
    {},
    {"use_peepholes": True, "cell_clip": 0.5},
    {"num_proj": 5, "proj_clip": 0.3},
    {"num_layers": 2},
    {"time_major": True, "batch_size": 3},
    {"cifg": True, "layer_norm": True, "batch_size": 2},
]
MODES = ("int8", "int16x8", "dynamic-int8")
STANDARD = ("num_layers", "time_major", "batch_size")  # int16x8 has the standard cell only (TFLM's kernel)
PAIRS = [(m, kw) for m in MODES for kw in CASES if m != "int16x8" or set(kw) <= set(STANDARD)]


def _model(mode: str, **kw: Any) -> ModelRecord:
    c = CellConfig(**({"num_units": 12, "input_size": 6, "time_steps": 7, "forget_bias": 1.0} | kw))
    shapes = shapes_from_config(c)
    layers = [[init_weights(c, s, (k, d)).tensors for d, s in enumerate(dirs)] for k, dirs in enumerate(shapes)]
    rec = materialize(layout(c, layers, shapes))
    if mode == "dynamic-int8":
        return quantize(rec, mode)
    return quantize(rec, mode, calibration=random_calibration(rec, 2, seed=0))


def _feeds(model: ModelRecord) -> dict[int, np.ndarray]:
    shape = model.tensors[model.inputs[0]].shape
    return {model.inputs[0]: np.random.default_rng(5).standard_normal(shape) * 0.7}


@pytest.mark.parametrize(("mode", "kw"), PAIRS, ids=lambda v: v if isinstance(v, str) else ",".join(v) or "plain")
def test_runs_side_by_side_equal_one_by_one(mode: str, kw: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Together: one pass, every step's input terms in one matmul; alone: the old path, step by step."""
    model = _model(mode, **kw)
    feeds = _feeds(model)
    groups = tol._run_groups(model, feeds, tol.RUNS, 3, weights=False)
    assert groups == [range(3, 3 + tol.RUNS)]  # all 8 runs in one pass
    axis = tol._row_axis(model, feeds)
    assert axis is not None
    together = tol._noisy_evaluate(model, feeds, mode, groups[0])
    for out in model.outputs:
        blocks = np.split(together[out], tol.RUNS, axis=axis)
        for seed, block in zip(groups[0], blocks, strict=True):
            with monkeypatch.context() as m:
                m.setattr(tol, "ROW_BUDGET", 0)  # no input terms computed ahead
                alone = tol._noisy_evaluate(model, feeds, mode, range(seed, seed + 1))[out]
            assert block.shape == alone.shape
            np.testing.assert_allclose(block, alone, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(("mode", "kw"), PAIRS, ids=lambda v: v if isinstance(v, str) else ",".join(v) or "plain")
def test_source_bound_runs_equal_the_step_by_step_path(
    mode: str, kw: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """weights=True (each run draws whole weights, in place): the same numbers as drawn and used step by step."""
    model = _model(mode, **kw)
    feeds = _feeds(model)
    fast = tol._noisy_evaluate(model, feeds, mode, range(4, 5), weights=True)
    with monkeypatch.context() as m:
        m.setattr(tol, "ROW_BUDGET", 0)
        m.setattr(tol, "_rounded", lambda v, step, rng: v + (rng.random(v.shape) - 0.5) * step)  # the old draw
        slow = tol._noisy_evaluate(model, feeds, mode, range(4, 5), weights=True)
    for out in model.outputs:
        np.testing.assert_allclose(fast[out], slow[out], rtol=1e-12, atol=1e-15)


def test_the_comparison_catches_a_wrong_draw() -> None:
    """Blocks drawn from the wrong generator (runs swapped) are far apart: the equality above means something."""
    model = _model("int8")
    feeds = _feeds(model)
    together = tol._noisy_evaluate(model, feeds, "int8", range(0, 2))[model.outputs[0]]
    swapped = tol._noisy_evaluate(model, feeds, "int8", range(1, 2))[model.outputs[0]]
    assert not np.allclose(np.split(together, 2, axis=0)[0], swapped, rtol=1e-6)


@pytest.mark.parametrize("mode", MODES)
def test_tolerance_equals_the_one_by_one_derivation(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    model = _model(mode, **({} if mode == "int16x8" else {"num_proj": 5}))
    feeds = _feeds(model)
    ref = tol.evaluate(model, feeds).values
    reference = {i: ref[i] for i in model.outputs}
    fast = tol.derive_tolerance(model, feeds, reference, mode=mode)
    with monkeypatch.context() as m:
        m.setattr(tol, "ROW_BUDGET", 0)  # groups of one: the runs one at a time, as before
        assert tol._run_groups(model, feeds, tol.RUNS, 0, weights=False) == [range(r, r + 1) for r in range(8)]
        slow = tol.derive_tolerance(model, feeds, reference, mode=mode)
    for i in model.outputs:
        np.testing.assert_allclose(fast[i].per_step, slow[i].per_step, rtol=1e-12)


def test_what_is_not_run_side_by_side() -> None:
    """Whole weights drawn per run (the source bound) and graphs with other ops run one at a time."""
    model = _model("int8")
    feeds = _feeds(model)
    assert len(tol._run_groups(model, feeds, tol.RUNS, 0, weights=True)) == tol.RUNS
    bidi = _model("int8", bidirectional=True)
    assert tol._row_axis(bidi, _feeds(bidi)) is None
    assert len(tol._run_groups(bidi, _feeds(bidi), tol.RUNS, 0, weights=False)) == tol.RUNS


def test_second_runtime_reuses_the_source_side(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """--target micro checks the file in LiteRT and TFLM on the same inputs: the source's outputs and the
    bound are computed once, and both runtimes' comparisons are made."""
    pytest.importorskip("tflite_micro")
    from lstmgen.build import build
    from lstmgen.check import against, verify

    calls = {"outputs": 0, "bound": 0}
    outputs, bound = verify._source_outputs, against.source_bound

    def count(key: str, fn: Any) -> Any:
        def wrapped(*a: Any, **k: Any) -> Any:
            calls[key] += 1
            return fn(*a, **k)

        return wrapped

    monkeypatch.setattr(verify, "_source_outputs", count("outputs", outputs))
    monkeypatch.setattr(against, "source_bound", count("bound", bound))
    calib = tmp_path / "calib.npy"
    np.save(calib, np.random.default_rng(0).standard_normal((6, 1, 5, 4)).astype(np.float32))
    config = {"num_units": 8, "input_size": 4, "time_steps": 5, "quantize": "int8", "target": "micro"}
    result = build(tmp_path / "m.tflite", config, calibration_data=calib)
    assert result.verification is not None
    src = result.verification.against_source
    assert src is not None and src.passed
    compared = [c.name for c in src.checks if c.name.startswith("output vs float source")]
    assert len(compared) == 2, compared  # one per runtime
    assert calls == {"outputs": 1, "bound": 1}


def test_a_group_whose_output_does_not_hold_its_rows_runs_one_by_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """The model fuzzer's find: a mutated file whose output shape does not follow its input's split a group's
    output unevenly (ValueError, exit 70). Such a group now runs one run at a time and still gets a verdict."""
    model = _model("dynamic-int8")
    feeds = _feeds(model)
    out = model.outputs[0]
    evaluate = tol._noisy_evaluate
    calls: list[int] = []

    def uneven(*args: Any, **kw: Any) -> dict[int, np.ndarray]:
        values = evaluate(*args, **kw)
        calls.append(len(args[3]))
        return {out: values[out][:-1]} if len(args[3]) > 1 else values  # one row short: rows mix, as in the file

    monkeypatch.setattr(tol, "_noisy_evaluate", uneven)
    reference = {out: evaluate(model, feeds, "dynamic-int8", range(0, 1))[out]}
    runs = tol._runs(model, feeds, "dynamic-int8", range(3, 3 + tol.RUNS), False, tol.constant_values(model), reference)
    assert len(runs) == tol.RUNS and calls == [tol.RUNS] + [1] * tol.RUNS
    assert all(r[out].shape == reference[out].shape for r in runs)
