"""lstmgen models against TensorFlow's own tf.compat.v1 LSTMCell outputs (committed fixtures)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support import TF_FIXTURES, tf_manifest

from lstmgen.build import build
from lstmgen.modelinfo import read_lstm_model
from lstmgen.numerics.reference import lstm_reference
from lstmgen.run import run_model
from lstmgen.weights import load_weights

TF1_CASES = sorted(k for k in tf_manifest() if k.startswith("tf1_"))
HYPER_KEYS = ("use_peepholes", "cell_clip", "proj_clip", "forget_bias", "activation", "time_major", "batch_size")


def _options(hp: dict) -> dict:
    opts = {k: hp[k] for k in HYPER_KEYS}
    opts["cell_clip"] = float(opts["cell_clip"] or 0.0)
    opts["proj_clip"] = float(opts["proj_clip"] or 0.0)
    return opts


def test_fixture_cases_cover_the_issue() -> None:
    hps = [tf_manifest()[c]["hyperparameters"] for c in TF1_CASES]
    assert any(h["use_peepholes"] for h in hps)
    assert any(h["num_proj"] for h in hps)
    assert any(h["cell_clip"] and h["proj_clip"] for h in hps)
    assert any(h["activation"] == "relu" for h in hps)
    assert any(h["forget_bias"] not in (0.0, 1.0) for h in hps)
    assert any(h["time_major"] for h in hps)
    for h in hps:
        sizes = [h["batch_size"], h["time_steps"], h["input_size"], h["num_units"]]
        assert len(set(sizes)) == 4, f"sizes must differ so transposes cannot hide: {sizes}"


@pytest.mark.runtime
@pytest.mark.parametrize("case", TF1_CASES)
def test_tf1_lstmcell_matches_tensorflow(case: str, tmp_path: Path) -> None:
    hp = tf_manifest()[case]["hyperparameters"]
    io = np.load(TF_FIXTURES / f"{case}.io.npz")
    out = tmp_path / f"{case}.tflite"
    result = build(out, _options(hp), TF_FIXTURES / f"{case}.weights.npz", weights_format="tf1")
    assert result.verification is not None and result.verification.passed
    assert (result.config.num_units, result.config.input_size, result.config.num_proj) == (
        hp["num_units"],
        hp["input_size"],
        hp["num_proj"],
    )
    y, h, c = run_model(out, io["x"])
    np.testing.assert_allclose(y, io["y"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(h.reshape(io["h"].shape), io["h"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(c.reshape(io["c"].shape), io["c"], atol=1e-5, rtol=0)


@pytest.mark.parametrize("case", TF1_CASES)
def test_reference_matches_tensorflow(case: str) -> None:
    """The NumPy reference alone, fed the tf1 reader's per-gate arrays (forget_bias added by hand)."""
    hp = tf_manifest()[case]["hyperparameters"]
    io = np.load(TF_FIXTURES / f"{case}.io.npz")
    params = dict(load_weights(TF_FIXTURES / f"{case}.weights.npz", "tf1").tensors)
    params["forget_gate_bias"] = params["forget_gate_bias"] + hp["forget_bias"]
    y, _, c = lstm_reference(
        io["x"],
        params,
        activation=hp["activation"],
        cell_clip=hp["cell_clip"] or 0.0,
        proj_clip=hp["proj_clip"] or 0.0,
        time_major=hp["time_major"],
    )
    np.testing.assert_allclose(y, io["y"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(c, io["c"], atol=1e-5, rtol=0)


@pytest.mark.runtime
def test_clips_bind_in_the_fixture(tmp_path: Path) -> None:
    """Without the clips the same weights give a different answer, so the clip test can fail."""
    case = "tf1_peephole_proj_clip"
    hp = tf_manifest()[case]["hyperparameters"]
    io = np.load(TF_FIXTURES / f"{case}.io.npz")
    opts = _options(hp) | {"cell_clip": 0.0, "proj_clip": 0.0}
    out = tmp_path / "noclip.tflite"
    build(out, opts, TF_FIXTURES / f"{case}.weights.npz", weights_format="tf1", verify=False)
    y, _, _ = run_model(out, io["x"])
    assert np.abs(y - io["y"]).max() > 1e-2


@pytest.mark.runtime
def test_wrong_forget_bias_is_caught(tmp_path: Path) -> None:
    """Forgetting to fold forget_bias is the classic silent bug: it must show against TF."""
    case = "tf1_relu_forget_bias"
    hp = tf_manifest()[case]["hyperparameters"]
    io = np.load(TF_FIXTURES / f"{case}.io.npz")
    out = tmp_path / "fb0.tflite"
    build(out, _options(hp) | {"forget_bias": 0.0}, TF_FIXTURES / f"{case}.weights.npz", verify=False)
    y, _, _ = run_model(out, io["x"])
    assert np.abs(y - io["y"]).max() > 1e-2


@pytest.mark.runtime
def test_tf_converter_model_verifies(tmp_path: Path) -> None:
    """`verify` reads weights back from a model made by TF's own converter (cell_clip 10)."""
    from lstmgen.check.verify import verify_model

    path = TF_FIXTURES / "tfkeras2_float_lstm.tflite"
    if not path.exists():
        pytest.fail("fixture tfkeras2_float_lstm.tflite is missing")
    lm = read_lstm_model(path)
    assert lm.lstms[0].cell_clip == 10.0
    report = verify_model(path)
    assert report.passed, report.to_dict()
