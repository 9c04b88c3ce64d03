"""TF checkpoints read without TensorFlow, proven against the outputs TensorFlow computed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from support import TF_FIXTURES, tf_manifest

from lstmgen.build import build
from lstmgen.cli.main import main
from lstmgen.errors import WeightFileError
from lstmgen.run import run_model
from lstmgen.weights import get_reader, load_weights
from lstmgen.weights import open as open_weights

CASES = {
    # case -> (path given to --weights, --layer or None)
    "ckpt_tf1_peephole_proj": ("ckpt_tf1_peephole_proj/model.ckpt", "rnn/lstm_cell"),
    "ckpt_tf1_sharded": ("ckpt_tf1_sharded", None),
    "ckpt_tflite_cell": ("ckpt_tflite_cell/model.ckpt.index", None),
    "ckpt_tf2_keras": ("ckpt_tf2_keras/ckpt", None),
}


@pytest.mark.runtime
@pytest.mark.parametrize("case", sorted(CASES))
def test_checkpoint_matches_tensorflow(case: str, tmp_path: Path) -> None:
    rel, layer = CASES[case]
    hp = tf_manifest()[case]["hyperparameters"]
    io = np.load(TF_FIXTURES / f"{case}.io.npz")
    opts = {k: hp[k] for k in ("cell_clip", "proj_clip", "time_major", "batch_size")}
    out = tmp_path / "m.tflite"
    result = build(out, opts, TF_FIXTURES / rel, layer=layer)  # format auto-detected, forget_bias default
    assert result.weights_format == "tf-checkpoint"
    assert result.config.num_units == hp["num_units"] and result.config.num_proj == hp["num_proj"]
    y, h, c = run_model(out, io["x"])
    np.testing.assert_allclose(y, io["y"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(h.reshape(io["h"].shape), io["h"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(c.reshape(io["c"].shape), io["c"], atol=1e-5, rtol=0)


def test_forget_bias_defaults_per_cell_kind() -> None:
    tf1 = load_weights(TF_FIXTURES / "ckpt_tf1_peephole_proj")
    assert tf1.forget_bias_default == 1.0 and tf1.layer == "rnn/lstm_cell"
    tflite_cell = load_weights(TF_FIXTURES / "ckpt_tflite_cell")
    assert tflite_cell.forget_bias_default == 0.0  # TFLiteLSTMCell keeps it in its variable


def test_partitioned_variables_are_reassembled() -> None:
    whole = np.load(TF_FIXTURES / "ckpt_tf1_sharded.weights.npz")
    w = load_weights(TF_FIXTURES / "ckpt_tf1_sharded")
    n = 10
    np.testing.assert_array_equal(w.tensors["input_to_input_weights"], whole["kernel"][:5, :n].T)
    np.testing.assert_array_equal(w.tensors["projection_weights"], whole["projection/kernel"].T)


def test_cells_are_listed_and_unknown_scopes_refused() -> None:
    reader = get_reader("tf-checkpoint")
    assert open_weights(TF_FIXTURES / "ckpt_tf1_peephole_proj", reader.name).cell_names() == ["rnn/lstm_cell"]
    with pytest.raises(WeightFileError, match="--layer 'dense' is not an LSTM cell scope here; the cells are: rnn"):
        load_weights(TF_FIXTURES / "ckpt_tf1_peephole_proj", layer="dense")


def test_cli_bad_checkpoint(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "m.tflite"
    r = CliRunner().invoke(main, ["build", "--weights", str(empty), "-o", str(out)])
    assert r.exit_code == 2 and "Traceback" not in r.output and not out.exists()
    r = CliRunner().invoke(main, ["build", "--weights", str(tmp_path / "nope.ckpt"), "-o", str(out)])
    assert r.exit_code == 2 and "does not exist" in r.stderr and not out.exists()
