"""`lstmgen run` on TF's converter output with a head: the whole model runs, input to the model's output."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from support import ROOT, invoke

pytestmark = pytest.mark.runtime
HEADS = ROOT / "tests" / "fixtures" / "heads"  # made by make_tf_heads.py: Keras LSTM(8) -> Dense(3, softmax)
needs_tflm = pytest.mark.skipif(importlib.util.find_spec("tflite_micro") is None, reason="tflite-micro not installed")


def _sigmoid(v: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-v))


def keras_classifier(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The Keras model the classifier was converted from, in float64 from its .h5: (softmax output, h, c)."""
    h5py = pytest.importorskip("h5py")
    with h5py.File(HEADS / "tf_classifier.h5", "r") as f:
        w = f["model_weights"]
        kernel, recurrent, bias = (w[f"lstm/lstm/lstm_cell/{k}:0"][()] for k in ("kernel", "recurrent_kernel", "bias"))
        dense_w, dense_b = w["dense/dense/kernel:0"][()], w["dense/dense/bias:0"][()]
    n = recurrent.shape[0]
    h = np.zeros((x.shape[0], n))
    c = np.zeros((x.shape[0], n))
    for t in range(x.shape[1]):
        z = x[:, t].astype(np.float64) @ kernel + h @ recurrent + bias
        i, f, g, o = (z[:, k * n : (k + 1) * n] for k in range(4))  # Keras gate order i, f, c, o
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        h = _sigmoid(o) * np.tanh(c)
    logits = h @ dense_w + dense_b
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True), h, c


@pytest.fixture
def x(tmp_path: Path) -> Path:
    path = tmp_path / "x.npy"
    np.save(path, np.random.default_rng(5).standard_normal((1, 12, 6)).astype(np.float32))
    return path


def test_a_converter_classifier_runs_whole(tmp_path: Path, x: Path) -> None:
    """Input -> LSTM -> last step -> Dense -> softmax: the class probabilities of the Keras model, and its LSTM's
    final h and c in --final-state."""
    y, s = tmp_path / "y.npy", tmp_path / "s.npz"
    r = invoke("run", HEADS / "tf_classifier.tflite", "--input", x, "--output", y, "--final-state", s)
    assert r.exit_code == 0, r.output
    assert "the whole model ran in one invoke, input to its output [1, 3]" in r.output
    assert "STRIDED_SLICE (op 1), FULLY_CONNECTED (op 2), SOFTMAX (op 3)" in r.output
    want, h, c = keras_classifier(np.load(x))
    got = np.load(y)
    assert got.shape == (1, 3) and np.abs(got - want).max() < 1e-5, (got, want)
    with np.load(s) as state:
        assert np.abs(state["h"] - h).max() < 1e-5 and np.abs(state["c"] - c).max() < 1e-5
    # the comparison can fail: the same input reversed in time gives other probabilities
    assert np.abs(keras_classifier(np.load(x)[:, ::-1])[0] - got).max() > 1e-3


@needs_tflm
def test_the_int8_classifier_runs_the_same_in_tflm(tmp_path: Path, x: Path) -> None:
    """The full-int8 conversion, whole, in LiteRT and in TFLM: the same int8 output; near the float model."""
    outputs = {}
    for runtime in ("auto", "micro"):
        y = tmp_path / f"y_{runtime}.npy"
        r = invoke("run", HEADS / "tf_classifier_int8.tflite", "--input", x, "--output", y, "--runtime", runtime)
        assert r.exit_code == 0, r.output
        outputs[runtime] = np.load(y)
    assert np.array_equal(outputs["auto"], outputs["micro"]), outputs
    assert np.abs(outputs["micro"] - keras_classifier(np.load(x))[0]).max() < 0.05


def test_initial_states_of_stacked_lstms_inside_a_graph(tmp_path: Path, x: Path) -> None:
    """h_0, c_0, h_1, c_1: one pair per LSTM op of the stacked classifier; a non-zero state changes the output."""
    zero, s = tmp_path / "zero.npy", tmp_path / "s.npz"
    assert invoke("run", HEADS / "tf_stacked.tflite", "--input", x, "--output", zero, "--final-state", s).exit_code == 0
    with np.load(s) as state:
        assert {k: state[k].shape for k in state} == {"h_0": (1, 8), "c_0": (1, 8), "h_1": (1, 5), "c_1": (1, 5)}
    np.savez(tmp_path / "init.npz", c_1=np.full((1, 5), 0.5, np.float32))
    other = tmp_path / "other.npy"
    r = invoke("run", HEADS / "tf_stacked.tflite", "--input", x, "--output", other, "--initial-state",
               tmp_path / "init.npz")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert np.abs(np.load(other) - np.load(zero)).max() > 1e-4


def test_what_a_whole_model_cannot_do_is_refused(tmp_path: Path, x: Path) -> None:
    y = tmp_path / "y.npy"
    chunked = invoke("run", HEADS / "tf_classifier.tflite", "--input", x, "--output", y, "--chunk", "4")
    assert chunked.exit_code == 2 and "Run it without --chunk" in chunked.output, chunked.output
    np.save(tmp_path / "wrong.npy", np.zeros((1, 28, 28), np.float32))
    wrong = invoke("run", HEADS / "tf_classifier.tflite", "--input", tmp_path / "wrong.npy", "--output", y)
    assert wrong.exit_code == 2 and "takes input of shape [1, 12, 6]" in wrong.output, wrong.output
    np.savez(tmp_path / "bad.npz", h=np.zeros((1, 7), np.float32))
    bad = invoke("run", HEADS / "tf_classifier.tflite", "--input", x, "--output", y, "--initial-state",
                 tmp_path / "bad.npz")  # fmt: skip
    assert bad.exit_code == 2 and "expected [1, 8] floats" in bad.output, bad.output
    assert not y.exists()
