"""`verify --weights` and `build` against the source: TF's converter output, wrong models, --max-error, JSON."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from support import ROOT, TF_FIXTURES, invoke, keras_gates_swapped

pytestmark = pytest.mark.runtime
TF_FLOAT = TF_FIXTURES / "tfkeras2_float_lstm.tflite"  # made by TF's converter from these Keras weights:
KERAS_W = TF_FIXTURES / "tfint8_lstm.weights.npz"
N = 16


def _keras_with(tmp_path: Path, **blocks: str) -> Path:
    """The Keras weights with two gate blocks swapped (one keyword: a="b")."""
    ((a, b),) = blocks.items()
    return keras_gates_swapped(KERAS_W, N, a, b, tmp_path / "swapped.npz")


def test_tf_converter_output_passes_against_its_keras_weights() -> None:
    result = invoke("verify", TF_FLOAT, "--weights", KERAS_W, "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    src = doc["against_source"]
    assert src["passed"] and src["reference"] == "keras" and src["max_abs_error"] < 1e-5
    # TF's converter writes cell_clip=10, which Keras does not have: decided on the source (run with and
    # without it, the default inputs including the stress sequence), a note with the margin.
    assert any(n.startswith("cell_clip 10 in the file never binds on these inputs: max |c|") for n in src["notes"])
    assert not src["options"] and not src["structure_is_error"]
    assert not any("first time step" in d for d in src["structure"])  # that note is for failures only


@pytest.mark.parametrize(
    "claim",
    [
        pytest.param(["--cell-clip", "0.05"], id="a-cell-clip-that-binds"),
        pytest.param(["--forget-bias", "1.0"], id="forget-bias-not-folded"),
        pytest.param(["--activation", "relu"], id="relu-for-tanh"),
    ],
)
def test_wrong_in_one_known_way_exits_1(claim: list[str]) -> None:
    """The file (TF's) against a source LSTM that differs in one way: the numbers decide, exit 1."""
    result = invoke("verify", TF_FLOAT, "--weights", KERAS_W, *claim, "--json")
    assert result.exit_code == 1, result.output
    assert json.loads(result.stdout)["against_source"]["passed"] is False
    assert "does not compute the source LSTM" in result.stderr


def test_swapped_input_and_forget_gates_exit_1(tmp_path: Path) -> None:
    result = invoke("verify", TF_FLOAT, "--weights", _keras_with(tmp_path, i="f"))
    assert result.exit_code == 1, result.output
    assert "against the source (keras)" in result.stdout and "FAIL" in result.stdout
    # Where to look: apart from the first step on, so not a clip (the note a fresh user needed).
    assert "differ already at the first time step" in result.stdout


def test_tf_int8_reports_error_against_float_source_and_gates() -> None:
    calib = TF_FIXTURES / "tfint8_calibration.npy"
    args = ("verify", TF_FIXTURES / "tfint8_lstm.tflite", "--weights", KERAS_W, "--input", calib, "--json")
    doc = json.loads(invoke(*args).stdout)
    assert doc["ok"], doc
    assert not any("first time step" in n for n in doc["against_source"]["structure"])
    src = doc["against_source"]
    assert src["quantized"] and src["output_step"] > 0 and src["error_in_output_steps"] > 0.1
    assert src["worst_time_step"] in range(10)
    tight = invoke(*args, "--max-error", src["max_abs_error"] / 2)
    assert tight.exit_code == 1
    assert invoke(*args, "--max-error", src["max_abs_error"] * 2).exit_code == 0


def test_int8_build_reports_error_and_max_error_gates(tmp_path: Path) -> None:
    out = tmp_path / "m.tflite"
    common = ("build", "--weights", KERAS_W, "--time-steps", "10", "--quantize", "int8")
    calib = ("--calibration-data", TF_FIXTURES / "tfint8_calibration.npy")
    doc = json.loads(invoke(*common, *calib, "-o", out, "--json").stdout)
    src = doc["against_source"]
    assert doc["ok"] and src["quantized"] and src["reference"] == "keras" and src["error_in_output_steps"] > 0
    assert src["samples"] == 32  # the whole calibration set, not just the sample verification runs on
    out.unlink()
    result = invoke(*common, *calib, "-o", out, "--max-error", src["max_abs_error"] / 2, "--json")
    assert result.exit_code == 1 and not out.exists()
    assert json.loads(result.stdout)["ok"] is False


def test_int8_input_clipping_counts_against_the_source(tmp_path: Path) -> None:
    """Calibrated on inputs 100x too small, the int8 input grid clips real inputs: the source must see them
    as given (not clipped), so the error the user would see is the error reported (a fresh-user finding:
    it was fed the clipped input and said PASS at 0.0016 where the real error was 0.10)."""
    calib = np.load(TF_FIXTURES / "tfint8_calibration.npy")
    np.save(tmp_path / "small.npy", calib * 0.01)
    np.save(tmp_path / "real.npy", calib)
    out = tmp_path / "m.tflite"
    common = ("--weights", KERAS_W, "--time-steps", "10")
    built = invoke("build", *common, "--quantize", "int8", "--calibration-data", tmp_path / "small.npy", "-o", out)
    assert built.exit_code == 0, built.output
    args = ("verify", out, *common, "--input", tmp_path / "real.npy", "--json")
    src = json.loads(invoke(*args).stdout)["against_source"]
    reference = json.loads(invoke("verify", out, *common, "--input", tmp_path / "small.npy", "--json").stdout)
    # On inputs inside the calibrated range the model is close; on real ones clipping dominates.
    assert src["max_abs_error"] > 10 * reference["against_source"]["max_abs_error"]
    assert invoke(*args[:-1], "--max-error", 2 * reference["against_source"]["max_abs_error"]).exit_code == 1


def test_verify_flags_need_weights(tmp_path: Path) -> None:
    result = invoke("verify", TF_FLOAT, "--cell-clip", "3")
    assert result.exit_code == 2 and "--weights" in result.stderr


def test_float_build_json_has_against_source(tmp_path: Path) -> None:
    doc = json.loads(invoke("build", "--weights", KERAS_W, "-o", tmp_path / "m.tflite", "--json").stdout)
    src = doc["against_source"]
    assert src == doc["verification"]["against_source"]
    assert src["passed"] and src["reference"] == "keras" and src["structure"] == [] and src["max_abs_error"] < 1e-5


def test_weights_of_another_lstm_fail_with_the_sizes_not_an_internal_error(tmp_path: Path) -> None:
    """A model checked against weights of other sizes (or another layer count) fails, saying which sizes differ."""
    model = tmp_path / "kws.tflite"
    assert invoke("build", "--config", ROOT / "examples/kws.toml", "-o", model, "--no-verify").exit_code == 0
    for weights, extra, why in (
        (ROOT / "examples/weights_tf1.npz", (), "num_units="),
        (ROOT / "examples/stacked.weights.h5", (), "num_units="),  # its first layer (the model has one)
    ):
        result = invoke("verify", model, "--weights", weights, *extra, "--json")
        assert result.exit_code == 1, result.output
        doc = json.loads(result.stdout)
        assert doc["ok"] is False and doc["against_source"]["passed"] is False
        assert any(why in d for d in doc["against_source"]["incompatible"])
    text = invoke("verify", model, "--weights", ROOT / "examples/weights_tf1.npz")
    assert text.exit_code == 1 and "its sizes differ: FAIL" in text.stdout and "internal error" not in text.output
    # A stated layer count the model does not have: a FAIL naming the difference, before anything runs.
    stated = invoke("verify", model, "--weights", ROOT / "examples/stacked.weights.h5", "--num-layers", "2", "--json")
    assert stated.exit_code == 1 and "--num-layers 2 was stated, the model has 1" in json.loads(stated.stdout)["error"]


def test_outputs_of_different_shapes_fail_with_the_reason_in_strict_json(tmp_path: Path) -> None:
    """Every step against the source's last step: exit 1, the text says the shapes differ, and --json stays
    strict JSON (null, not Python's Infinity) that validates against the report schema (a fresh-user finding)."""
    import jsonschema

    weights = tmp_path / "w.npz"
    rng = np.random.default_rng(0)
    np.savez(weights, kernel=rng.uniform(-0.3, 0.3, (12, 32)).astype(np.float32), bias=np.zeros(32, np.float32))
    model = tmp_path / "m.tflite"
    assert invoke("build", "--weights", weights, "-o", model, "-q").exit_code == 0
    # A flag stating the last step is checked against the model first (it records every step): a FAIL.
    text = invoke("verify", model, "--weights", weights, "--last-step")
    assert text.exit_code == 1 and "--last-step was stated, the model is --return-sequences" in text.output
    # A source that itself states the last step (here the settings lstmgen export records) runs, and differs.
    last = tmp_path / "last.npz"
    with np.load(weights) as z:
        np.savez(last, **dict(z), lstmgen_settings=np.array('{"return_sequences": false}'))
    text = invoke("verify", model, "--weights", last)
    assert text.exit_code == 1 and "the outputs differ in shape" in text.output
    result = invoke("verify", model, "--weights", last, "--json")
    assert result.exit_code == 1

    def refuse(constant: str) -> None:
        raise AssertionError(f"not strict JSON: {constant}")

    doc = json.loads(result.stdout, parse_constant=refuse)
    assert doc["ok"] is False and doc["against_source"]["max_abs_error"] is None
    jsonschema.validate(doc, json.loads((ROOT / "schemas" / "report.schema.json").read_text()))
