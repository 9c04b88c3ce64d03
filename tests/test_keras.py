"""The keras reader: .weights.h5 / full-model .h5 / .keras / .npz against Keras' own outputs, and its errors."""

from __future__ import annotations

import json
import shutil
import sys
import zipfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result
from support import TF_FIXTURES, tf_manifest

from lstmgen.build import build
from lstmgen.cli.main import main
from lstmgen.errors import ConfigError, WeightFileError
from lstmgen.run import run_model
from lstmgen.weights import get_reader, load_weights
from lstmgen.weights import open as open_weights

h5py = pytest.importorskip("h5py")

ATOL = 1e-5
GATES = ("input", "forget", "cell", "output")  # Keras' packed order i, f, c, o in TFLite names


def _flip(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a[:, ::-1])


# Oracle cases: (weight file, --layer, how to feed x, expected y/h/c from the fixture's io.npz).
# Each function takes io.npz and returns (input, expected y, expected h or None, expected c or None,
# whether to flip the model's output back in time before comparing).
Feed = Callable[[Any], tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None, bool]]


def _plain(io: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None, bool]:
    return io["x"], io["y"], io["h"], io["c"], False


def _stacked0(io: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None, bool]:
    return io["x"], io["y_layer0"], io["h_layer0"], io["c_layer0"], False


def _stacked1(io: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None, bool]:
    # Keras fed layer 1 exactly layer 0's output, which the fixture recorded.
    return io["y_layer0"], io["y"], io["h"], io["c"], False


def _bidir_fw(io: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None, bool]:
    return io["x"], io["y"][..., :6], io["h_fw"], io["c_fw"], False


def _bidir_bw(io: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None, bool]:
    # Keras runs the backward half on x reversed in time and flips its output back to input order.
    return _flip(io["x"]), io["y"][..., 6:], io["h_bw"], io["c_bw"], True


def _go_backwards(io: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None, bool]:
    # The cell on x reversed in time: Keras 3 returns a go_backwards layer's y in processing order.
    return _flip(io["x"]), io["y"], io["h"], io["c"], False


ORACLE_CASES = [
    pytest.param("keras3_lstm.weights.h5", None, _plain, id="keras3-weights.h5"),
    pytest.param("keras3_lstm.keras", None, _plain, id="keras3-.keras"),
    pytest.param("keras3_lstm.weights.npz", None, _plain, id="keras3-npz"),
    pytest.param("tfkeras2_lstm.weights.h5", None, _plain, id="tfkeras2-classic-weights.h5"),
    pytest.param("tfkeras2_lstm_v3.weights.h5", None, _plain, id="tfkeras2-v3-weights.h5"),
    pytest.param("tfkeras2_lstm.h5", None, _plain, id="tfkeras2-full-model.h5"),
    pytest.param("tfkeras2_lstm.weights.npz", None, _plain, id="tfkeras2-npz-bare-keys"),
    pytest.param("keras3_no_bias.weights.h5", None, _plain, id="no-bias-weights.h5"),
    pytest.param("keras3_no_bias.keras", None, _plain, id="no-bias-.keras"),
    pytest.param("keras3_no_bias.weights.npz", None, _plain, id="no-bias-npz"),
    pytest.param("keras3_stacked.weights.h5", "lstm", _stacked0, id="stacked-layer0-weights.h5"),
    pytest.param("keras3_stacked.keras", "lstm", _stacked0, id="stacked-layer0-.keras"),
    pytest.param("keras3_stacked.weights.npz", "lstm", _stacked0, id="stacked-layer0-npz"),
    pytest.param("keras3_stacked.weights.h5", "lstm_1", _stacked1, id="stacked-layer1-weights.h5"),
    pytest.param("keras3_stacked.keras", "lstm_1", _stacked1, id="stacked-layer1-.keras"),
    pytest.param("keras3_stacked.weights.npz", "lstm_1", _stacked1, id="stacked-layer1-npz"),
    pytest.param("keras3_bidir.weights.h5", "bidirectional/forward_layer", _bidir_fw, id="bidir-fw-weights.h5"),
    pytest.param("keras3_bidir.keras", "bidirectional/forward_layer", _bidir_fw, id="bidir-fw-.keras"),
    pytest.param("keras3_bidir.weights.npz", "forward_lstm", _bidir_fw, id="bidir-fw-npz-keras-name"),
    pytest.param("keras3_bidir.weights.h5", "bidirectional/backward_layer", _bidir_bw, id="bidir-bw-weights.h5"),
    pytest.param("keras3_bidir.keras", "bidirectional/backward_layer", _bidir_bw, id="bidir-bw-.keras"),
    pytest.param("keras3_bidir.weights.npz", "backward_layer", _bidir_bw, id="bidir-bw-npz-suffix"),
    pytest.param("keras3_go_backwards.weights.h5", None, _go_backwards, id="go-backwards-weights-only-reversed-x"),
    pytest.param("keras3_go_backwards.keras", None, _go_backwards, id="go-backwards-.keras-reversed-x"),
]


def _io(name: str) -> Any:
    case = name.split(".")[0].removesuffix("_v3")
    return np.load(TF_FIXTURES / f"{case}.io.npz")


@pytest.mark.runtime
@pytest.mark.parametrize(("weights", "layer", "feed"), ORACLE_CASES)
def test_keras_weights_match_keras(weights: str, layer: str | None, feed: Feed, tmp_path: Path) -> None:
    x, y_ref, h_ref, c_ref, flip_back = feed(_io(weights))
    out = tmp_path / "m.tflite"
    w = load_weights(TF_FIXTURES / weights, layer=layer)
    if w.direction == "backward":  # built here as the plain op a backward direction is made of
        assert flip_back or w.hyperparameters["go_backwards"] is True
        # Not the file's own LSTM any more (its config says backwards): no source reference for it.
        hyper = {"activation": "tanh"} if w.hyperparameters else {}
        w = replace(w, direction="forward", hyperparameters=hyper, origin=None)
    result = build(out, {"batch_size": x.shape[0]}, w)
    assert result.verification is not None and result.verification.passed
    assert result.weights_format == "keras"
    assert (result.config.input_size, result.config.num_units) == (x.shape[2], y_ref.shape[2])
    assert result.config.cell_clip == 0.0 and result.config.forget_bias == 0.0
    y, h, c = run_model(out, x)
    if flip_back:
        y = _flip(y)
    np.testing.assert_allclose(y, y_ref, atol=ATOL, rtol=0)
    if h_ref is not None:
        np.testing.assert_allclose(h.reshape(h_ref.shape), h_ref, atol=ATOL, rtol=0)
    if c_ref is not None:
        np.testing.assert_allclose(c.reshape(c_ref.shape), c_ref, atol=ATOL, rtol=0)


@pytest.mark.runtime
def test_last_step_weights_only_gives_keras_last_output(tmp_path: Path) -> None:
    """Keras' return_sequences=False output is the last step of the cell's sequence."""
    io = _io("keras3_last_step")
    out = tmp_path / "m.tflite"
    build(out, {"batch_size": 3}, TF_FIXTURES / "keras3_last_step.weights.h5")
    y, h, _ = run_model(out, io["x"])
    np.testing.assert_allclose(y[:, -1], io["y"], atol=ATOL, rtol=0)
    np.testing.assert_allclose(h, io["h"], atol=ATOL, rtol=0)


@pytest.mark.runtime
def test_swapped_gate_order_is_caught(tmp_path: Path) -> None:
    """Swapping two gate blocks (reading i,f,c,o as TF1's i,j,f,o would) must visibly fail against Keras."""
    io = _io("tfkeras2_lstm")
    good = load_weights(TF_FIXTURES / "tfkeras2_lstm.weights.npz")
    bad = dict(good.tensors)
    for kind in ("input_to_{}_weights", "recurrent_to_{}_weights", "{}_gate_bias"):
        bad[kind.format("forget")], bad[kind.format("cell")] = (
            good.tensors[kind.format("cell")],
            good.tensors[kind.format("forget")],
        )
    out = tmp_path / "bad.tflite"
    build(out, {"batch_size": 3}, replace(good, tensors=bad), verify=False)
    y, _, _ = run_model(out, io["x"])
    assert np.abs(y - io["y"]).max() > 1e-2


# ------------------------------------------------------------------------------- reader unit tests


@pytest.mark.parametrize(
    ("weights", "cells"),
    [
        pytest.param("keras3_lstm.weights.h5", ["lstm"], id="keras3-h5"),
        pytest.param("keras3_lstm.keras", ["lstm"], id="keras3-.keras"),
        pytest.param("keras3_lstm.weights.npz", ["lstm"], id="keras3-npz"),
        pytest.param("tfkeras2_lstm.weights.h5", ["lstm"], id="tfkeras2-classic"),
        pytest.param("tfkeras2_lstm.h5", ["lstm"], id="tfkeras2-full"),
        pytest.param("tfkeras2_lstm.weights.npz", [""], id="bare-npz"),
        pytest.param("keras3_stacked.weights.h5", ["lstm", "lstm_1"], id="stacked-h5"),
        pytest.param("keras3_stacked.keras", ["lstm", "lstm_1"], id="stacked-.keras"),
        pytest.param("keras3_stacked.weights.npz", ["lstm", "lstm_1"], id="stacked-npz"),
        pytest.param(
            "keras3_bidir.weights.h5", ["bidirectional/forward_layer", "bidirectional/backward_layer"], id="bidir-h5"
        ),
        pytest.param(
            "keras3_bidir.keras", ["bidirectional/forward_layer", "bidirectional/backward_layer"], id="bidir-.keras"
        ),
        pytest.param(
            "keras3_bidir.weights.npz", ["bidirectional/forward_layer", "bidirectional/backward_layer"], id="bidir-npz"
        ),
    ],
)
def test_list_cells_names_are_the_same_for_every_file_type(weights: str, cells: list[str]) -> None:
    assert open_weights(TF_FIXTURES / weights, "keras").cell_names() == cells
    for name in cells:  # every listed name selects its cell
        assert (load_weights(TF_FIXTURES / weights, layer=name or None).layer or "") == name


def test_manifest_layer_names_are_listed() -> None:
    for case in ("keras3_lstm", "keras3_stacked"):
        expected = tf_manifest()[case]["hyperparameters"]["layer_names"]
        assert open_weights(TF_FIXTURES / f"{case}.keras", "keras").cell_names() == expected


def test_layout_is_transposed_views_in_gate_order_ifco() -> None:
    raw = dict(np.load(TF_FIXTURES / "tfkeras2_lstm.weights.npz"))
    w = get_reader("keras").read(raw, "mem")
    n = raw["recurrent_kernel"].shape[0]
    for k, gate in enumerate(GATES):
        block = slice(k * n, (k + 1) * n)
        np.testing.assert_array_equal(w.tensors[f"input_to_{gate}_weights"], raw["kernel"][:, block].T)
        np.testing.assert_array_equal(w.tensors[f"recurrent_to_{gate}_weights"], raw["recurrent_kernel"][:, block].T)
        np.testing.assert_array_equal(w.tensors[f"{gate}_gate_bias"], raw["bias"][block])
        # Views, not copies: the model writer copies each array exactly once.
        assert np.shares_memory(w.tensors[f"input_to_{gate}_weights"], raw["kernel"])
        assert np.shares_memory(w.tensors[f"recurrent_to_{gate}_weights"], raw["recurrent_kernel"])
    assert w.forget_bias_default == 0.0 and w.format == "keras"
    assert w.implied() == {"num_units": 6, "input_size": 5, "use_peepholes": False, "num_proj": None}
    assert any("cell_clip" in n and "10" in n for n in w.notes)


@pytest.mark.parametrize(
    ("weights", "hyper"),
    [
        pytest.param("keras3_lstm.keras", {"activation": "tanh"}, id="keras-config"),
        pytest.param("tfkeras2_lstm.h5", {"activation": "tanh"}, id="full-h5-model_config"),
        pytest.param("keras3_lstm.weights.h5", {}, id="weights-only"),
    ],
)
def test_config_hyperparameters(weights: str, hyper: dict[str, object]) -> None:
    w = load_weights(TF_FIXTURES / weights)
    assert dict(w.hyperparameters) == hyper
    assert any("weights only" in n for n in w.notes) == (not hyper)


def test_no_bias_gives_zero_biases() -> None:
    w = load_weights(TF_FIXTURES / "keras3_no_bias.keras")
    for gate in GATES:
        assert not w.tensors[f"{gate}_gate_bias"].any() and w.tensors[f"{gate}_gate_bias"].shape == (6,)
    assert any("use_bias=False" in n for n in w.notes)


@pytest.mark.parametrize(
    ("keys", "fmt"),
    [
        pytest.param({"kernel", "recurrent_kernel", "bias"}, "keras", id="bare"),
        pytest.param({"kernel", "recurrent_kernel"}, "keras", id="bare-no-bias"),
        pytest.param({"a/lstm/lstm_cell/kernel", "a/lstm/lstm_cell/recurrent_kernel"}, "keras", id="paths"),
        pytest.param({"lstm/lstm_cell/kernel:0", "lstm/lstm_cell/recurrent_kernel:0"}, "keras", id="tf-names"),
        pytest.param({"kernel", "bias"}, "tf1", id="tf1-not-keras"),
        pytest.param({"recurrent_kernel"}, None, id="no-kernel"),
    ],
)
def test_matches(keys: set[str], fmt: str | None) -> None:
    assert get_reader("keras").matches(frozenset(keys)) == (fmt == "keras")


def test_auto_detects_keras_npz() -> None:
    w = load_weights(TF_FIXTURES / "keras3_stacked.weights.npz", layer="lstm_1")
    assert w.format == "keras" and w.layer == "lstm_1" and w.implied()["input_size"] == 6


def test_bare_dict_with_no_layer_is_read() -> None:
    """What the tf-checkpoint reader hands over for a Keras cell inside a TF2 checkpoint."""
    raw = dict(np.load(TF_FIXTURES / "ckpt_tf2_keras.weights.npz"))
    w = get_reader("keras").read(raw, "ckpt [layer/cell]")
    assert w.layer is None and w.implied()["num_units"] == 6


def test_classic_bidirectional_and_other_layers(tmp_path: Path) -> None:
    """A tf.keras 2 style file: Bidirectional halves get the Keras 3 names; a GRU and a Dense are not cells."""
    rng = np.random.default_rng(0)
    path = tmp_path / "classic.h5"

    def put(layer: str, names: dict[str, tuple[int, ...]]) -> None:
        g = f.create_group(layer)
        g.attrs["weight_names"] = [n.encode() for n in names]
        for n, shape in names.items():
            g.create_dataset(n, data=rng.standard_normal(shape).astype(np.float32))

    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [b"bidirectional", b"gru", b"dense"]
        put(
            "bidirectional",
            {
                f"bidirectional/{d}_lstm/lstm_cell/{k}:0": s
                for d in ("forward", "backward")
                for k, s in (("kernel", (5, 24)), ("recurrent_kernel", (6, 24)), ("bias", (24,)))
            },
        )
        put("gru", {"gru/gru_cell/kernel:0": (12, 9), "gru/gru_cell/recurrent_kernel:0": (3, 9)})
        put("dense", {"dense/kernel:0": (6, 2), "dense/bias:0": (2,)})
    assert open_weights(path, "keras").cell_names() == ["bidirectional/forward_layer", "bidirectional/backward_layer"]
    w = load_weights(path, layer="backward_lstm")
    assert w.layer == "bidirectional/backward_layer"
    assert any("backward half" in n for n in w.notes)


def test_classic_split_attributes_keep_model_order(tmp_path: Path) -> None:
    """Keras 2 splits long attributes into layer_names0, layer_names1, ...; the file's layer order is kept."""
    path = tmp_path / "split.h5"
    order = ["lstm_10", "lstm_2"]  # model order, deliberately not the natural order
    with h5py.File(path, "w") as f:
        for i, layer in enumerate(order):
            f.attrs[f"layer_names{i}"] = [layer.encode()]
            g = f.create_group(layer)
            names = [f"{layer}/lstm_cell/kernel:0", f"{layer}/lstm_cell/recurrent_kernel:0"]
            g.attrs["weight_names0"] = [n.encode() for n in names]
            g.create_dataset(names[0], data=np.ones((5, 24), np.float32))
            g.create_dataset(names[1], data=np.ones((6, 24), np.float32))
    assert open_weights(path, "keras").cell_names() == order
    assert load_weights(path, layer="lstm_2").implied()["num_units"] == 6


# ------------------------------------------------------------------------------- crafted .keras files


def _keras_with(tmp_path: Path, base: str, **changes: Any) -> Path:
    """A copy of a fixture's .keras archive whose (first) LSTM config has `changes` applied."""
    src = TF_FIXTURES / base
    dst = tmp_path / f"crafted_{base}"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                layer = next(lay for lay in config["config"]["layers"] if lay["class_name"] == "LSTM")
                layer["config"].update(changes)
                data = json.dumps(config).encode()
            zout.writestr(item, data)
    return dst


@pytest.mark.parametrize(
    ("activation", "expected"),
    [
        pytest.param("relu", "relu", id="relu"),
        pytest.param("relu6", "relu6", id="relu6"),
        pytest.param("hard_tanh", "relu_n1_to_1", id="hard_tanh"),
    ],
)
def test_activation_is_mapped(tmp_path: Path, activation: str, expected: str) -> None:
    w = load_weights(_keras_with(tmp_path, "keras3_lstm.keras", activation=activation))
    assert w.implied()["activation"] == expected


def test_config_activation_is_cross_checked_with_options(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="activation"):
        build(tmp_path / "m.tflite", {"activation": "relu"}, TF_FIXTURES / "keras3_lstm.keras", verify=False)
    assert not (tmp_path / "m.tflite").exists()


def test_dropout_and_unroll_are_notes(tmp_path: Path) -> None:
    w = load_weights(_keras_with(tmp_path, "keras3_lstm.keras", dropout=0.2, recurrent_dropout=0.1, unroll=True))
    text = " ".join(w.notes)
    assert "dropout=0.2" in text and "recurrent_dropout=0.1" in text and "training" in text and "unroll" in text


# ------------------------------------------------------------------------------- CLI: bad input


def _cli(*args: object) -> Result:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result


def _truncated(tmp_path: Path, base: str) -> Path:
    data = (TF_FIXTURES / base).read_bytes()
    path = tmp_path / f"cut_{base}"
    path.write_bytes(data[: len(data) // 2])
    return path


def _garbage(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.write_bytes(b"definitely not a keras file\n" * 10)
    return path


def _dense_only(tmp_path: Path) -> Path:
    path = tmp_path / "dense.weights.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("layers/dense/vars/0", data=np.zeros((5, 3), np.float32))
        f.create_dataset("layers/dense/vars/1", data=np.zeros((3,), np.float32))
    return path


def _mismatched_h5(tmp_path: Path) -> Path:
    path = tmp_path / "mismatch.weights.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("layers/lstm/cell/vars/0", data=np.zeros((5, 24), np.float32))
        f.create_dataset("layers/lstm/cell/vars/1", data=np.zeros((7, 28), np.float32))
        f.create_dataset("layers/lstm/cell/vars/2", data=np.zeros((28,), np.float32))
    return path


def _mismatched_npz(tmp_path: Path) -> Path:
    path = tmp_path / "mismatch.npz"
    np.savez(path, kernel=np.zeros((5, 24), np.float32), recurrent_kernel=np.zeros((7, 28), np.float32))
    return path


def _bad_bias_npz(tmp_path: Path) -> Path:
    path = tmp_path / "bias.npz"
    z = np.zeros
    np.savez(path, kernel=z((5, 24), np.float32), recurrent_kernel=z((6, 24), np.float32), bias=z(36, np.float32))
    return path


def _fixture(name: str) -> Callable[[Path], Path]:
    return lambda tmp_path: TF_FIXTURES / name


BAD_INPUTS = [
    pytest.param(lambda p: _truncated(p, "keras3_lstm.weights.h5"), [], ["truncated", "HDF5"], id="truncated-h5"),
    pytest.param(lambda p: _truncated(p, "keras3_lstm.keras"), [], ["truncated", ".keras"], id="truncated-keras"),
    pytest.param(lambda p: _garbage(p, "x.keras"), [], ["not a readable .keras"], id="not-a-zip-keras"),
    pytest.param(lambda p: _garbage(p, "x.weights.h5"), [], ["not a readable HDF5"], id="not-hdf5"),
    pytest.param(_dense_only, [], ["no Keras LSTM weights", "/layers/dense/vars/0 [5, 3]"], id="h5-without-lstm"),
    pytest.param(
        _mismatched_h5,
        [],
        ["kernel has shape [5, 24]", "[7, 28]", "expected kernel [input_size, 28]"],
        id="h5-shape-mismatch",
    ),
    pytest.param(_mismatched_npz, [], ["kernel has shape [5, 24]", "[7, 28]"], id="npz-shape-mismatch"),
    pytest.param(_bad_bias_npz, [], ["bias has shape [36]", "CuDNNLSTM"], id="npz-bias-6n"),
    pytest.param(  # a stack is built whole by default (a note); more layers than it has is refused
        _fixture("keras3_stacked.weights.h5"),
        ["--num-layers", "3"],
        ["--num-layers 3", "only 2 LSTM layer(s)", "lstm; lstm_1"],
        id="too-many-layers",
    ),
    pytest.param(
        _fixture("keras3_bidir.keras"),
        ["--no-bidirectional"],
        ["bidirectional weights", "bidirectional = false", "--layer"],
        id="bidir-stated-false",
    ),
    pytest.param(
        _fixture("keras3_stacked.keras"), ["--layer", "lstm_7"], ["'lstm_7'", "'lstm', 'lstm_1'"], id="unknown-layer"
    ),
    pytest.param(
        _fixture("keras3_stacked.weights.npz"),
        ["--layer", "dense"],
        ["'dense'", "'lstm', 'lstm_1'"],
        id="unknown-layer-npz",
    ),
    pytest.param(
        lambda p: _keras_with(p, "keras3_lstm.keras", stateful=True), [], ["stateful=True", "planned"], id="stateful"
    ),
    pytest.param(
        lambda p: _keras_with(p, "keras3_lstm.keras", activation="sigmoid"),
        [],
        ["activation='sigmoid'", "tanh"],
        id="activation-sigmoid",
    ),
    pytest.param(
        lambda p: _keras_with(p, "keras3_lstm.keras", activation="linear"),
        [],
        ["activation='linear'", "stale"],
        id="activation-linear",
    ),
    pytest.param(
        lambda p: _keras_with(p, "keras3_lstm.keras", activation="elu"),
        [],
        ["activation='elu'", "Supported Keras activations"],
        id="activation-elu",
    ),
    pytest.param(
        lambda p: _keras_with(p, "keras3_lstm.keras", recurrent_activation="hard_sigmoid"),
        [],
        ["recurrent_activation='hard_sigmoid'", "sigmoid"],
        id="recurrent-activation",
    ),
    pytest.param(
        lambda p: _keras_with(p, "keras3_lstm.keras", units=7), [], ["units=7", "6 rows"], id="units-mismatch"
    ),
    pytest.param(
        _fixture("keras3_lstm.keras"), ["--activation", "relu"], ["activation", "disagrees"], id="option-vs-config"
    ),
]


@pytest.mark.parametrize(("make", "extra", "needles"), BAD_INPUTS)
def test_cli_bad_input(tmp_path: Path, make: Callable[[Path], Path], extra: list[str], needles: list[str]) -> None:
    weights = make(tmp_path)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "m.tflite"
    result = _cli("build", "--weights", weights, *extra, "-o", out, "-q")
    assert result.exit_code == 2, result.output
    message = " ".join(result.stderr.split())
    assert message.startswith("lstmgen: error:") and message.count("lstmgen: error:") == 1, message
    for needle in needles:
        assert needle in message, f"{needle!r} not in: {message}"
    assert list(out_dir.iterdir()) == [], "no output (and no temp file) may be left behind"


def test_cli_missing_h5py_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "h5py", None)  # makes `import h5py` raise ImportError
    out = tmp_path / "m.tflite"
    result = _cli("build", "--weights", TF_FIXTURES / "keras3_lstm.weights.h5", "-o", out)
    assert result.exit_code == 2
    assert "pip install 'lstmgen[h5]'" in result.stderr and not out.exists()


def test_npz_still_works_without_h5py(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "h5py", None)
    assert load_weights(TF_FIXTURES / "keras3_lstm.weights.npz").layer == "lstm"


def test_keras_archive_is_not_extracted(tmp_path: Path) -> None:
    """Reading a .keras file leaves nothing beside it (no extracted model.weights.h5)."""
    path = tmp_path / "m.keras"
    shutil.copy(TF_FIXTURES / "keras3_lstm.keras", path)
    load_weights(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.keras"]


def test_unknown_bare_keys_are_refused() -> None:
    raw = dict(np.load(TF_FIXTURES / "tfkeras2_lstm.weights.npz"))
    with pytest.raises(WeightFileError, match="unknown key"):
        get_reader("keras").read({**raw, "kernal": raw["kernel"]}, "typo.npz")


@pytest.mark.runtime
def test_cli_build_from_keras_prints_the_layer(tmp_path: Path) -> None:
    out = tmp_path / "m.tflite"
    result = _cli("build", "--weights", TF_FIXTURES / "keras3_stacked.keras", "--layer", "lstm_1", "-o", out, "-q")
    assert result.exit_code == 0, result.output
    assert "keras3_stacked.keras [lstm_1]" in result.output and "num_units=4 input_size=6" in result.output
    assert "PASS" in result.output and out.exists()


def test_weights_only_layer_order_from_the_storage_group_numbers() -> None:
    """Keras 3 / tf_keras .weights.h5 groups: '<class>[_k]' per model, k = position among that class.
    One class in one model orders numerically (lstm_10 after lstm_9); anything else is refused."""
    from lstmgen.errors import UnknownOrderError
    from lstmgen.weights.keras_cells import _Cell
    from lstmgen.weights.keras_topology import _model_order

    def layers(*paths: str) -> list[tuple[_Cell, ...]]:
        return [(_Cell(p, "", {}, path=p),) for p in paths]

    names = ["lstm", *(f"lstm_{k}" for k in range(1, 11))]
    ordered, note = _model_order(layers(*sorted(names)), "f")
    assert [g[0].path for g in ordered] == names and note and "lstm_9, lstm_10)" in note
    ordered, _ = _model_order(layers("bidirectional_1/forward_layer", "bidirectional/forward_layer"), "f")
    assert [g[0].path for g in ordered] == ["bidirectional/forward_layer", "bidirectional_1/forward_layer"]
    assert _model_order(layers("enc"), "f")[1] is None  # one layer: nothing to order
    for paths in (
        ("lstm", "bidirectional/forward_layer", "lstm_1"),  # LSTM vs Bidirectional: order lost
        ("lstm", "sequential/lstm"),  # top level vs a nested model
        ("lstm", "rnn"),  # LSTM vs RNN(LSTMCell)
        ("enc", "top"),  # no storage numbering at all
    ):
        with pytest.raises(UnknownOrderError, match="does not record their order"):
            _model_order(layers(*paths), "f")
    ranked = [(_Cell("b", "", {}, rank=1),), (_Cell("a", "", {}, rank=0),)]
    assert [g[0].name for g in _model_order(ranked, "f")[0]] == ["a", "b"]
