"""cuDNN-trained weights (tests/fixtures/cudnn, made by make_cudnn.py with TF / tf_keras): each builds by
default into a model matching the framework's own conversion, and the forget_bias the file's cell
class sets is what the source reference holds the model to."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support import invoke

from lstmgen.build import build
from lstmgen.run import run_model_states
from lstmgen.weights import tf_scopes

CUDNN = Path(__file__).parent / "fixtures" / "cudnn"
TF1 = {
    "tf1_cudnn_single": {},
    "tf1_cudnn_stacked": {"num_layers": 2},
    "tf1_cudnn_bidir": {"bidirectional": True},
}


def _io(case: str) -> dict[str, np.ndarray]:
    with np.load(CUDNN / f"{case}.io.npz") as z:
        return {k: z[k] for k in z.files}


def _matches(tmp_path: Path, weights: Path, options: dict[str, Any], case: str) -> list[str]:
    """Build by default, check the verification passed and the outputs match the framework's; the notes."""
    io, out = _io(case), tmp_path / "m.tflite"
    result = build(out, {"batch_size": 2, **options}, weights)
    assert result.verification is not None and result.verification.passed
    y, _ = run_model_states(out, io["x"])
    assert y.shape == io["y"].shape
    bound = 1e-5 * np.maximum(1.0, np.abs(io["y"]))
    assert (np.abs(y - io["y"]) <= bound).all(), float(np.abs(y - io["y"]).max())
    return result.notes


@pytest.mark.parametrize("stored", ["checkpoint", "dump"])
@pytest.mark.parametrize("case", sorted(TF1))
def test_tf1_cudnn_checkpoint_builds_with_forget_bias_0(tmp_path: Path, case: str, stored: str) -> None:
    weights = CUDNN / (case if stored == "checkpoint" else f"{case}.npz")
    notes = _matches(tmp_path, weights, TF1[case], case)
    fb = [n for n in notes if n.startswith("forget_bias")]
    assert fb and fb[0].startswith("forget_bias 0 (CudnnCompatibleLSTMCell"), notes
    assert "Must set it manually to 0.0" in fb[0]


@pytest.mark.parametrize("stored", ["tf1_cudnn_single", "tf1_cudnn_single.npz"])
def test_tf1_cudnn_forget_bias_1_fails_verify_without_flags(tmp_path: Path, stored: str) -> None:
    weights, out = CUDNN / stored, tmp_path / "m1.tflite"
    built = invoke("build", "--weights", weights, "--forget-bias", 1, "-o", out)
    assert built.exit_code == 0, built.output
    assert "contradicts the file's cell class CudnnCompatibleLSTMCell" in built.output
    verified = invoke("verify", out, "--weights", weights)
    assert verified.exit_code == 1, verified.output
    assert "against the source (tf1-lstmcell)" in verified.output and "FAIL" in verified.output


def test_reader_guessing_the_class_wrong_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reader that takes CudnnCompatibleLSTMCell for LSTMCell (forget_bias 1) builds a model the source
    reference, which reads the class from the scope name itself, refuses."""
    monkeypatch.setitem(tf_scopes.CELL_CLASSES, "cudnn_compatible_lstm_cell", tf_scopes.DEFAULT_CLASS)
    result = invoke("build", "--weights", CUDNN / "tf1_cudnn_stacked.npz", "--num-layers", 2, "-o", tmp_path / "m")
    assert result.exit_code == 1, result.output
    assert "does not compute the source LSTM" in result.output


def test_lstm_block_fused_cell_is_named(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    weights = tmp_path / "fused.npz"
    np.savez(
        weights,
        **{
            "lstm_fused_cell/kernel:0": rng.standard_normal((7, 16)).astype(np.float32),
            "lstm_fused_cell/bias:0": rng.standard_normal(16).astype(np.float32),
        },
    )
    result = build(tmp_path / "m.tflite", {}, weights)
    assert "cell class LSTMBlockFusedCell, from the scope name 'lstm_fused_cell'" in result.notes
    assert any(n.startswith("forget_bias 1 folded") and "LSTMBlockFusedCell" in n for n in result.notes)


KERAS2 = {
    "k2_cudnn": ("k2_cudnn.h5", {}),
    "k2_cudnn_weights": ("k2_cudnn_weights.hdf5", {}),
    "k2_cudnn_stacked": ("k2_cudnn_stacked.h5", {"num_layers": 2}),
    "k2_cudnn_backwards": ("k2_cudnn_backwards.h5", {}),
    "k2_cudnn_ckpt": ("k2_cudnn_ckpt/ckpt", {}),
}


@pytest.mark.parametrize("case", sorted(KERAS2))
def test_keras2_cudnnlstm_matches_tf_keras_conversion(tmp_path: Path, case: str) -> None:
    """Outputs of the same architecture with LSTM layers loaded from the file by tf_keras' legacy loader."""
    pytest.importorskip("h5py")
    name, options = KERAS2[case]
    notes = _matches(tmp_path, CUDNN / name, options, case)
    assert any("CuDNNLSTM" in n and "_convert_rnn_weights" in n for n in notes), notes


def test_keras2_cudnnlstm_summing_the_biases_alone_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The old hint (add the bias halves, keep the kernels) builds a model the cuDNN source reference refuses."""
    pytest.importorskip("h5py")
    from lstmgen.weights import keras_convert as keras

    def halves_only(kernel: np.ndarray, recurrent: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, ...]:
        return kernel, recurrent, bias[: bias.size // 2] + bias[bias.size // 2 :]

    monkeypatch.setattr(keras, "keras_from_cudnn", halves_only)
    result = invoke("build", "--weights", CUDNN / "k2_cudnn.h5", "-o", tmp_path / "m.tflite")
    assert result.exit_code == 1, result.output
    assert "verification failed" in result.output and "differ" in result.output


def test_hdf5_is_detected_by_its_signature(tmp_path: Path) -> None:
    pytest.importorskip("h5py")
    renamed = tmp_path / "model.weights"
    renamed.write_bytes((CUDNN / "k2_cudnn.h5").read_bytes())
    result = invoke("build", "--weights", renamed, "-o", tmp_path / "m.tflite")
    assert result.exit_code == 0, result.output
    not_hdf5 = tmp_path / "notes.hdf5"
    not_hdf5.write_text("not an HDF5 file")
    refused = invoke("build", "--weights", not_hdf5, "-o", tmp_path / "n.tflite")
    assert refused.exit_code == 2 and "cannot tell its format" in refused.output


OPAQUE = {
    "opaque_l1": {"num_units": 4, "input_size": 3},
    "opaque_l2_bi": {"num_units": 4, "input_size": 3, "num_layers": 2, "bidirectional": True},
}


@pytest.mark.parametrize("stored", ["dump", "checkpoint"])
@pytest.mark.parametrize("case", sorted(OPAQUE))
def test_opaque_kernel_with_sizes_matches_lstmcell(tmp_path: Path, case: str, stored: str) -> None:
    notes = _matches(tmp_path, CUDNN / (f"{case}.npz" if stored == "dump" else case), OPAQUE[case], case)
    assert any("CudnnLSTM opaque buffer" in n for n in notes), notes


@pytest.mark.parametrize("stored", ["opaque_l2_bi.npz", "opaque_l2_bi"])
@pytest.mark.parametrize(
    ("flags", "needles"),
    [
        ([], ["needs --num-units and --input-size", "--num-units 4 --input-size 3 --num-layers 2 --bidirectional"]),
        (["--num-units", 4, "--input-size", 5], ["has 736 floats", "make", "Layouts of that length"]),
    ],
)
def test_opaque_without_fitting_sizes_is_refused(
    tmp_path: Path, flags: list[object], needles: list[str], stored: str
) -> None:
    result = invoke("build", "--weights", CUDNN / stored, *flags, "-o", tmp_path / "m.tflite")
    assert result.exit_code == 2, result.output
    for needle in needles:
        assert needle in result.output, result.output
    assert not (tmp_path / "m.tflite").exists()


def test_opaque_reader_gate_order_bug_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reader taking the buffer's gates in TF's order (i, c, f, o) is refused by the cuDNN source reference."""
    from lstmgen.weights import cudnn

    monkeypatch.setattr(cudnn, "GATE_NAMES", ("input", "cell", "forget", "output"))
    flags = ["--num-units", 4, "--input-size", 3]
    result = invoke("build", "--weights", CUDNN / "opaque_l1.npz", *flags, "-o", tmp_path / "m.tflite")
    assert result.exit_code == 1, result.output
    assert "differ" in result.output


def test_keras_2_2_sequential_list_config(tmp_path: Path) -> None:
    """Keras 2.0-2.2 stored a Sequential's model_config 'config' as the bare list of its layers."""
    h5py = pytest.importorskip("h5py")
    import json
    import shutil

    old = tmp_path / "keras224.h5"
    shutil.copy(CUDNN / "k2_cudnn.h5", old)
    with h5py.File(old, "r+") as h5:
        config = json.loads(h5.attrs["model_config"])
        config["config"] = [c for c in config["config"]["layers"] if c["class_name"] != "InputLayer"]
        h5.attrs["model_config"] = json.dumps(config).encode()
        h5["model_weights"].attrs["keras_version"] = b"2.2.4"
    notes = _matches(tmp_path, old, {}, "k2_cudnn")
    assert not any("no Keras layer config" in n for n in notes), notes


@pytest.mark.parametrize(
    ("weights", "flags", "cls"),
    [
        ("k2_cudnn.h5", [], "CuDNNLSTM"),
        ("opaque_l1.npz", ["--num-units", 4, "--input-size", 3], "CudnnLSTM"),
    ],
)
def test_cudnn_forget_bias_note_and_contradiction(tmp_path: Path, weights: str, flags: list[object], cls: str) -> None:
    pytest.importorskip("h5py")
    default = invoke("build", "--weights", CUDNN / weights, *flags, "-o", tmp_path / "m0.tflite")
    assert default.exit_code == 0, default.output
    prefix = "Keras 2 " if cls == "CuDNNLSTM" else ""
    assert f"forget_bias 0 ({prefix}{cls}: cuDNN adds no forget bias" in default.output
    out = tmp_path / "m1.tflite"
    built = invoke("build", "--weights", CUDNN / weights, *flags, "--forget-bias", 1, "-o", out)
    assert built.exit_code == 0, built.output
    assert f"contradicts the file's cell class {cls}" in built.output
    verified = invoke("verify", out, "--weights", CUDNN / weights, *flags)
    assert verified.exit_code == 1 and "does not compute the source LSTM" in verified.output, verified.output


def test_canonical_cells_win_over_the_opaque_buffer_beside_them(tmp_path: Path) -> None:
    """CudnnLSTM's checkpoints hold the canonical cells and the opaque buffer: the cells are read."""
    both = tmp_path / "both.npz"
    with np.load(CUDNN / "tf1_cudnn_single.npz") as cells, np.load(CUDNN / "opaque_l1.npz") as blob:
        np.savez(both, **{k: cells[k] for k in cells.files}, **{k: blob[k] for k in blob.files})
    result = build(tmp_path / "m.tflite", {}, both)
    assert result.weights_format == "tf1"
    assert any(n.startswith("forget_bias 0 (CudnnCompatibleLSTMCell") for n in result.notes)
