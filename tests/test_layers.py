"""list_layers / load_layers for every reader: layer order, bidirectional pairs, directions, flags, errors.

The numeric tests build one backward cell as an ordinary forward op, fed the time-reversed input, and
compare with the framework's backward output: what a bidirectional or go_backwards model is made of.
"""

from __future__ import annotations

import importlib
import json
import warnings
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support import TF_FIXTURES, assert_close

from lstmgen.errors import WeightFileError
from lstmgen.weights import list_layers, load_layers, load_weights
from lstmgen.weights import open as open_weights
from lstmgen.weights.base import CellWeights

ATOL = 1e-5


def _optional(name: str) -> Any:
    """A module, or None when it is not installed (e.g. torch in the tflite-runtime venv)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


torch = _optional("torch")
safetensors_torch = _optional("safetensors.torch")
h5py = _optional("h5py")
onnx = _optional("onnx")
_optional("onnx.numpy_helper")  # onnx.numpy_helper.from_array below
ort = _optional("onnxruntime")
needs_torch = pytest.mark.skipif(torch is None or safetensors_torch is None, reason="needs torch and safetensors")
needs_h5py = pytest.mark.skipif(h5py is None, reason="needs h5py")
needs_onnx = pytest.mark.skipif(onnx is None or ort is None, reason="needs onnx and onnxruntime")
# Flags a builder maps to model structure; a single op built from the cell ignores them.
_FLAGS = ("go_backwards", "return_sequences", "onnx_reverse")


def as_forward(w: CellWeights) -> CellWeights:
    """The cell as a plain forward op: what the builder emits per direction (the flags shape the graph)."""
    hyper = {k: v for k, v in w.hyperparameters.items() if k not in _FLAGS}
    return replace(w, direction="forward", hyperparameters=hyper, origin=None)  # no longer the file's own LSTM


def build_run(tmp_path: Path, w: CellWeights, x: np.ndarray, **options: Any) -> tuple[np.ndarray, ...]:
    from lstmgen.build import build
    from lstmgen.run import run_model

    out = tmp_path / "cell.tflite"
    result = build(out, {"batch_size": x.shape[1] if options.get("time_major") else x.shape[0], **options}, w)
    assert result.verification is not None and result.verification.passed
    return tuple(run_model(out, x))[:3]


def cell_table(layers: list[list[CellWeights]]) -> list[list[tuple[str | None, str]]]:
    return [[(w.layer, w.direction) for w in row] for row in layers]


# ============================================================================================ torch

B, T, IN, H = 3, 7, 5, 6
PH, P = 8, 4


def make_lstm(layers: int, proj: int = 0, bidirectional: bool = False, seed: int = 0) -> Any:
    torch.manual_seed(seed)
    lstm = torch.nn.LSTM(IN, PH if proj else H, num_layers=layers, batch_first=True, proj_size=proj,
                   bidirectional=bidirectional)  # fmt: skip
    with torch.no_grad():
        for p in lstm.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
    return lstm.eval()


def save_sd(state: Mapping[str, Any], path: Path) -> Path:
    if path.suffix == ".pt":
        torch.save(dict(state), path)
    elif path.suffix == ".safetensors":
        safetensors_torch.save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        np.savez(path, **{k: v.detach().numpy() for k, v in state.items()})
    return path


def prefixed(module: Any, prefix: str) -> dict[str, Any]:
    return {f"{prefix}{k}": v for k, v in module.state_dict().items()}


def torch_run(lstm: Any, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", "LSTM with projections is not supported with oneDNN")
        y, (h, c) = lstm(torch.from_numpy(x))
    return y.numpy(), h.numpy(), c.numpy()


_SHAPES = [(2, 0, False), (2, P, False), (3, 0, False), (3, P, False), (1, 0, True), (1, P, True), (2, 0, True)]
TORCH_SHAPES = [
    pytest.param(layers, proj, bidir, id=f"{layers}layer{'-proj' if proj else ''}{'-bidir' if bidir else ''}")
    for layers, proj, bidir in [*_SHAPES, (2, P, True)]
]


@needs_torch
@pytest.mark.parametrize("fmt", ["pt", "safetensors", "npz"])
@pytest.mark.parametrize(("layers", "proj", "bidir"), TORCH_SHAPES)
def test_torch_layers(tmp_path: Path, layers: int, proj: int, bidir: bool, fmt: str) -> None:
    lstm = make_lstm(layers, proj, bidir)
    path = save_sd(prefixed(lstm, "encoder.lstm."), tmp_path / f"w.{fmt}")
    expected = [
        (f"encoder.lstm.l{k}", f"encoder.lstm.l{k}_reverse") if bidir else (f"encoder.lstm.l{k}",)
        for k in range(layers)
    ]
    assert list_layers(path) == ("torch", expected)
    assert open_weights(path, "torch").cells() == expected
    loaded = load_layers(path)
    assert cell_table(loaded) == [[(n, "backward" if n.endswith("_reverse") else "forward") for n in row]
                                  for row in expected]  # fmt: skip
    for row in loaded:
        for w in row:
            assert dict(w.hyperparameters) == {"activation": "tanh"}
            assert w.implied()["num_proj"] == (proj or None)
            # The bulk path gives the same arrays (and notes) as loading each cell alone.
            alone = load_weights(path, layer=w.layer)
            assert alone.direction == w.direction and alone.notes == w.notes
            for k, v in alone.tensors.items():
                np.testing.assert_array_equal(w.tensors[k], v)
    # A later layer reads the previous layer's output: both directions concatenated when bidirectional.
    if layers > 1:
        width = (proj or H) * (2 if bidir else 1)
        assert loaded[1][0].implied()["input_size"] == width


@needs_torch
def test_torch_layer_selects_module_or_cell(tmp_path: Path) -> None:
    state = prefixed(make_lstm(2, bidirectional=True), "encoder.lstm.") | prefixed(make_lstm(1, seed=1), "decoder.")
    path = save_sd(state, tmp_path / "w.safetensors")
    with pytest.raises(WeightFileError) as err:
        list_layers(path)
    message = str(err.value)
    for needle in ("2 nn.LSTM modules", "'decoder' (1 cells)", "'encoder.lstm' (4 cells)", "--layer <module>"):
        assert needle in message, message
    with pytest.raises(WeightFileError, match="2 nn.LSTM modules"):
        load_layers(path)
    pair = [("encoder.lstm.l0", "encoder.lstm.l0_reverse"), ("encoder.lstm.l1", "encoder.lstm.l1_reverse")]
    assert list_layers(path, layer="encoder.lstm")[1] == pair
    assert list_layers(path, layer="lstm")[1] == pair  # a dot-boundary suffix of the module path
    assert list_layers(path, layer="decoder")[1] == [("decoder.l0",)]
    assert list_layers(path, layer="encoder.lstm.l1_reverse")[1] == [("encoder.lstm.l1_reverse",)]
    with pytest.raises(WeightFileError, match="names no LSTM cell"):
        list_layers(path, layer="lstm.nope")


@needs_torch
def test_torch_unprefixed_and_orphan_reverse(tmp_path: Path) -> None:
    lstm = make_lstm(2, bidirectional=True)
    path = save_sd(lstm.state_dict(), tmp_path / "w.npz")
    assert list_layers(path) == ("torch", [("l0", "l0_reverse"), ("l1", "l1_reverse")])
    assert list_layers(path, layer="1")[1] == [("l1",)]  # --layer 1: l1 of the only module
    orphan = {k: v for k, v in lstm.state_dict().items() if not k.endswith("_l1")}
    with pytest.raises(WeightFileError, match="l1_reverse has no forward partner l1"):
        list_layers(save_sd(orphan, tmp_path / "orphan.npz"))


@needs_torch
@pytest.mark.parametrize("fmt", ["pt", "npz"])
def test_torch_load_layers_reads_the_file_once(tmp_path: Path, fmt: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from lstmgen import weights
    from lstmgen.weights import torch_sd

    path = save_sd(make_lstm(3, P, True).state_dict(), tmp_path / f"w.{fmt}")
    calls: list[str] = []
    for module, name in ((torch_sd, "_open_state_dict"), (weights, "NpzArrays")):
        real = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *a, _real=real, _n=name: calls.append(_n) or _real(*a))
    assert sum(len(row) for row in load_layers(path)) == 6
    assert len(calls) == 1, calls


@needs_torch
@pytest.mark.runtime
@pytest.mark.parametrize("proj", [0, P], ids=["plain", "proj"])
def test_torch_backward_cells_match_torch(tmp_path: Path, proj: int) -> None:
    """Each _reverse cell, built as a forward op on the time-reversed input, is torch's backward output."""
    lstm = make_lstm(2, proj, bidirectional=True)
    path = save_sd(lstm.state_dict(), tmp_path / "w.pt")
    x = np.random.default_rng(1).standard_normal((B, T, IN)).astype(np.float32)
    y, h, c = torch_run(lstm, x)
    first = torch.nn.LSTM(IN, PH if proj else H, batch_first=True, proj_size=proj, bidirectional=True).eval()
    first.load_state_dict({k.replace("_l0", "_l0"): v for k, v in lstm.state_dict().items() if "_l0" in k})
    y0, _, _ = torch_run(first, x)  # layer 0's output: layer 1's input
    out = proj or H
    layers = load_layers(path)
    for k, (feed, want_y) in enumerate(((x, y0), (y0, y))):
        fw, bw = layers[k]
        assert (fw.direction, bw.direction) == ("forward", "backward")
        got = build_run(tmp_path, fw, feed)
        assert_close(got, (want_y[..., :out], h[2 * k], c[2 * k]), ATOL)
        got = build_run(tmp_path, as_forward(bw), np.ascontiguousarray(feed[:, ::-1]))
        assert_close((got[0][:, ::-1], *got[1:]), (want_y[..., out:], h[2 * k + 1], c[2 * k + 1]), ATOL)


# ============================================================================================ keras


@needs_h5py
@pytest.mark.parametrize("suffix", [".keras", ".weights.h5", ".weights.npz"])
@pytest.mark.parametrize(
    ("case", "expected"),
    [
        pytest.param("keras3_lstm", [("lstm",)], id="single"),
        pytest.param("keras3_stacked", [("lstm",), ("lstm_1",)], id="stacked"),
        pytest.param("keras3_bidir", [("bidirectional/forward_layer", "bidirectional/backward_layer")], id="bidir"),
        pytest.param("keras3_go_backwards", [("lstm",)], id="go-backwards"),
        pytest.param("keras3_last_step", [("lstm",)], id="last-step"),
    ],
)
def test_keras_layers(case: str, suffix: str, expected: list[tuple[str, ...]]) -> None:
    path = TF_FIXTURES / f"{case}{suffix}"
    assert list_layers(path) == ("keras", expected)
    loaded = load_layers(path)
    assert [[w.layer for w in row] for row in loaded] == [list(row) for row in expected]
    for row in loaded:
        for w in row:
            if w.layer.endswith("backward_layer"):  # by config, or by name in a weights-only file
                assert w.direction == "backward"
            assert w.implied()["num_units"] == (4 if w.layer == "lstm_1" else 6)


# (case, file) -> per cell: (direction, hyperparameters). Weights-only files state no config, so a
# go_backwards or last-step layer cannot be told from a plain one there (the notes say so).
KERAS_FLAGS = [
    ("keras3_stacked.keras", [("forward", {"activation": "tanh"}), ("forward", {"activation": "tanh"})]),
    ("keras3_bidir.keras", [("forward", {"activation": "tanh"}), ("backward", {"activation": "tanh"})]),
    ("keras3_bidir.weights.h5", [("forward", {}), ("backward", {})]),
    ("keras3_bidir.weights.npz", [("forward", {}), ("backward", {})]),
    ("keras3_go_backwards.keras", [("backward", {"activation": "tanh", "go_backwards": True})]),
    ("keras3_go_backwards.weights.h5", [("forward", {})]),
    ("keras3_last_step.keras", [("forward", {"activation": "tanh", "return_sequences": False})]),
    ("keras3_last_step.weights.h5", [("forward", {})]),
]


@needs_h5py
@pytest.mark.parametrize(("name", "cells"), [pytest.param(n, c, id=n) for n, c in KERAS_FLAGS])
def test_keras_directions_and_flags(name: str, cells: list[tuple[str, dict[str, object]]]) -> None:
    got = [(w.direction, dict(w.hyperparameters)) for row in load_layers(TF_FIXTURES / name) for w in row]
    assert got == cells
    for w in (w for row in load_layers(TF_FIXTURES / name) for w in row):
        alone = load_weights(TF_FIXTURES / name, layer=w.layer)
        assert (alone.direction, dict(alone.hyperparameters)) == (w.direction, dict(w.hyperparameters))


@needs_h5py
def test_keras_layer_restricts(tmp_path: Path) -> None:
    bidir, stacked = TF_FIXTURES / "keras3_bidir.keras", TF_FIXTURES / "keras3_stacked.weights.h5"
    pair = [("bidirectional/forward_layer", "bidirectional/backward_layer")]
    assert list_layers(bidir, layer="bidirectional")[1] == pair
    assert list_layers(bidir, layer="bidirectional/backward_layer")[1] == [("bidirectional/backward_layer",)]
    assert list_layers(bidir, layer="backward_lstm")[1] == [("bidirectional/backward_layer",)]  # Keras' name
    assert list_layers(stacked, layer="lstm_1")[1] == [("lstm_1",)]
    with pytest.raises(WeightFileError, match="'lstm_7' is not an LSTM cell"):
        list_layers(stacked, layer="lstm_7")


def _edit_keras(tmp_path: Path, base: str, edit: Callable[[dict[str, Any]], None]) -> Path:
    """A copy of a fixture .keras archive with its config.json changed by `edit`."""
    dst = tmp_path / f"edited_{base}"
    with zipfile.ZipFile(TF_FIXTURES / base) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename == "config.json":
                config = json.loads(data)
                edit(config)
                data = json.dumps(config).encode()
            zout.writestr(item, data)
    return dst


def _bidir_config(config: dict[str, Any]) -> dict[str, Any]:
    return next(lay for lay in config["config"]["layers"] if lay["class_name"] == "Bidirectional")["config"]


@needs_h5py
def test_keras_bidirectional_last_step_flags_both_halves(tmp_path: Path) -> None:
    def edit(config: dict[str, Any]) -> None:
        cfg = _bidir_config(config)
        for half in (cfg["layer"], cfg["backward_layer"]):
            half["config"]["return_sequences"] = False

    path = _edit_keras(tmp_path, "keras3_bidir.keras", edit)
    (fw, bw), = load_layers(path)  # fmt: skip
    assert (fw.direction, bw.direction) == ("forward", "backward")
    assert dict(fw.hyperparameters) == dict(bw.hyperparameters) == {"activation": "tanh", "return_sequences": False}


@needs_h5py
def test_keras_merge_mode_other_than_concat_is_refused(tmp_path: Path) -> None:
    path = _edit_keras(tmp_path, "keras3_bidir.keras", lambda c: _bidir_config(c).update(merge_mode="sum"))
    for call in (list_layers, load_layers):
        with pytest.raises(WeightFileError, match=r"merge_mode='sum'.*concat"):
            call(path)
    half = load_weights(path, layer="bidirectional/forward_layer")  # one half alone is still exact
    assert any("merge_mode='sum'" in n for n in half.notes)


@needs_h5py
def test_keras_bidirectional_of_a_go_backwards_layer_is_refused(tmp_path: Path) -> None:
    def edit(config: dict[str, Any]) -> None:
        cfg = _bidir_config(config)
        cfg["layer"]["config"]["go_backwards"] = True
        cfg["backward_layer"]["config"]["go_backwards"] = False

    path = _edit_keras(tmp_path, "keras3_bidir.keras", edit)
    with pytest.raises(WeightFileError, match="forward half 'bidirectional/forward_layer'.*go_backwards=True"):
        load_layers(path)


@needs_h5py
def test_keras_stateful_is_still_refused(tmp_path: Path) -> None:
    def edit(config: dict[str, Any]) -> None:
        next(lay for lay in config["config"]["layers"] if lay["class_name"] == "LSTM")["config"]["stateful"] = True

    with pytest.raises(WeightFileError, match="stateful=True"):
        load_layers(_edit_keras(tmp_path, "keras3_lstm.keras", edit))


@needs_h5py
def test_keras_load_layers_opens_the_file_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from lstmgen.weights import keras_h5 as keras

    calls: list[Path] = []
    real = keras._open_cells
    monkeypatch.setattr(keras, "_open_cells", lambda p: calls.append(p) or real(p))
    assert len(load_layers(TF_FIXTURES / "keras3_stacked.keras")) == 2
    assert len(calls) == 1


def _keras_io(case: str) -> Any:
    return np.load(TF_FIXTURES / f"{case}.io.npz")


@needs_h5py
@pytest.mark.runtime
def test_keras_go_backwards_cell_matches_keras(tmp_path: Path) -> None:
    """go_backwards: the cell on the reversed input gives Keras' y as is (Keras keeps processing order)."""
    io = _keras_io("keras3_go_backwards")
    (w,), = load_layers(TF_FIXTURES / "keras3_go_backwards.keras")  # fmt: skip
    assert w.direction == "backward" and w.hyperparameters["go_backwards"] is True
    got = build_run(tmp_path, as_forward(w), np.ascontiguousarray(io["x"][:, ::-1]))
    assert_close(got, (io["y"], io["h"], io["c"]), ATOL)


@needs_h5py
@pytest.mark.runtime
def test_keras_last_step_cell_matches_keras(tmp_path: Path) -> None:
    io = _keras_io("keras3_last_step")
    (w,), = load_layers(TF_FIXTURES / "keras3_last_step.keras")  # fmt: skip
    assert w.hyperparameters["return_sequences"] is False
    y, h, c = build_run(tmp_path, as_forward(w), io["x"])
    assert_close((y[:, -1], h, c), (io["y"], io["h"], io["c"]), ATOL)


@needs_h5py
@pytest.mark.runtime
@pytest.mark.parametrize("name", ["keras3_bidir.keras", "keras3_bidir.weights.h5"])
def test_keras_bidirectional_cells_match_keras(tmp_path: Path, name: str) -> None:
    io = _keras_io("keras3_bidir")
    (fw, bw), = load_layers(TF_FIXTURES / name)  # fmt: skip
    assert_close(build_run(tmp_path, fw, io["x"]), (io["y"][..., :6], io["h_fw"], io["c_fw"]), ATOL)
    y, h, c = build_run(tmp_path, as_forward(bw), np.ascontiguousarray(io["x"][:, ::-1]))
    assert_close((y[:, ::-1], h, c), (io["y"][..., 6:], io["h_bw"], io["c_bw"]), ATOL)


# ============================================================================================= onnx

NB, NT, NI, NH = 3, 7, 5, 6


def onnx_arrays(seed: int, dirs: int, peepholes: bool = True) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {
        "W": rng.standard_normal((dirs, 4 * NH, NI)),
        "R": rng.standard_normal((dirs, 4 * NH, NH)),
        "B": rng.standard_normal((dirs, 8 * NH)),
    }
    if peepholes:
        out["P"] = rng.standard_normal((dirs, 3 * NH))
    return {k: (v * 0.5).astype(np.float32) for k, v in out.items()}


def onnx_model(nodes: list[Any], inits: dict[str, np.ndarray], in_size: int = NI) -> Any:
    graph = onnx.helper.make_graph(
        nodes,
        "g",
        [onnx.helper.make_tensor_value_info("X", onnx.TensorProto.FLOAT, [NT, NB, in_size])],
        [onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in nodes[-1].output],
        [onnx.numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    return onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 14)], ir_version=8)


def one_node(direction: str, seed: int = 0, **attrs: Any) -> tuple[Any, dict[str, np.ndarray]]:
    arrays = onnx_arrays(seed, 2 if direction == "bidirectional" else 1)
    node = onnx.helper.make_node("LSTM", ["X", "W", "R", "B", "", "", "", "P"], ["Y", "Y_h", "Y_c"], name="lstm",
                            hidden_size=NH, direction=direction, **attrs)  # fmt: skip
    return onnx_model([node], arrays), arrays


@needs_onnx
def test_onnx_layers_in_graph_order(tmp_path: Path) -> None:
    a1, a2 = onnx_arrays(1, 1), onnx_arrays(2, 2)
    nodes = [
        onnx.helper.make_node("LSTM", ["X", "W1", "R1", "B1"], ["Y1"], hidden_size=NH, name="enc"),
        onnx.helper.make_node("LSTM", ["Y1", "W2", "R2", "B2"], ["Y2"], hidden_size=NH, direction="bidirectional"),
        onnx.helper.make_node("LSTM", ["Y2", "W3", "R3"], ["Y3"], hidden_size=NH, direction="reverse", name="back"),
    ]
    inits = {f"{k}1": v for k, v in a1.items() if k != "P"} | {f"{k}2": v for k, v in a2.items() if k != "P"}
    inits |= {"W3": a1["R"], "R3": a1["R"]}
    path = tmp_path / "m.onnx"
    onnx.save(onnx_model(nodes, inits), str(path))
    expected = [("enc/forward",), ("LSTM_1/forward", "LSTM_1/reverse"), ("back/reverse",)]
    assert list_layers(path) == ("onnx", expected)
    loaded = load_layers(path)
    assert cell_table(loaded) == [
        [("enc/forward", "forward")],
        [("LSTM_1/forward", "forward"), ("LSTM_1/reverse", "backward")],
        [("back/reverse", "backward")],
    ]
    hyper = [[dict(w.hyperparameters) for w in row] for row in loaded]
    plain = {"activation": "tanh"}
    # Only the node fed by the graph input states the model's layout (layout=0: time-major).
    # Only a reverse-only node says its (input-aligned) output differs from Keras' go_backwards.
    assert hyper == [[plain | {"time_major": True}], [plain, plain], [plain | {"onnx_reverse": True}]]
    np.testing.assert_array_equal(loaded[1][1].tensors["input_to_input_weights"], a2["W"][1][:NH])
    assert list_layers(path, layer="LSTM_1")[1] == [("LSTM_1/forward", "LSTM_1/reverse")]
    assert list_layers(path, layer="LSTM_1/reverse")[1] == [("LSTM_1/reverse",)]
    assert load_weights(path, layer="back").direction == "backward"  # a one-cell node by its name
    with pytest.raises(WeightFileError, match="'mid' is not an LSTM node or cell"):
        list_layers(path, layer="mid")
    with pytest.raises(WeightFileError, match="bidirectional, so it holds two cells.*--layer LSTM_1/forward"):
        load_weights(path, layer="LSTM_1")


@needs_onnx
def test_onnx_reverse_half_uses_its_own_activations(tmp_path: Path) -> None:
    model, _ = one_node("bidirectional", activations=["Sigmoid", "Tanh", "Tanh", "Sigmoid", "Relu", "Relu"])
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    (fw, bw), = load_layers(path)  # fmt: skip
    assert (fw.implied()["activation"], bw.implied()["activation"]) == ("tanh", "relu")


@needs_onnx
def test_onnx_npz_layers(tmp_path: Path) -> None:
    a2 = onnx_arrays(3, 2)
    path = tmp_path / "bi.npz"
    np.savez(path, **a2)
    assert list_layers(path) == ("onnx", [("forward", "reverse")])
    fw, bw = load_layers(path)[0]
    assert (fw.direction, bw.direction) == ("forward", "backward") and (fw.layer, bw.layer) == ("forward", "reverse")
    np.testing.assert_array_equal(bw.tensors["cell_to_output_weights"], a2["P"][1][NH : 2 * NH])
    assert "onnx_reverse" not in bw.hyperparameters  # a 2-direction .npz is a bidirectional node
    one = tmp_path / "one.npz"
    np.savez(one, **onnx_arrays(4, 1))
    assert list_layers(one) == ("onnx", [("forward",)])
    with pytest.raises(WeightFileError, match="'reverse'.*forward"):
        list_layers(one, layer="reverse")


@needs_onnx
def test_onnx_load_layers_parses_the_model_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from lstmgen.weights import onnx_lstm

    model, _ = one_node("bidirectional")
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    calls: list[Path] = []
    real = onnx_lstm._load_model
    monkeypatch.setattr(onnx_lstm, "_load_model", lambda p: calls.append(p) or real(p))
    assert len(load_layers(path)[0]) == 2 and len(calls) == 1


@needs_onnx
@pytest.mark.runtime
@pytest.mark.parametrize("direction", ["reverse", "bidirectional"])
def test_onnx_reverse_cell_matches_onnxruntime(tmp_path: Path, direction: str) -> None:
    """The reverse cell on the time-reversed input, its output reversed back, is ONNX's reverse Y."""
    model, _ = one_node(direction, seed=5)
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    x = np.random.default_rng(6).standard_normal((NT, NB, NI)).astype(np.float32)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    y, h, c = session.run(None, {"X": x})
    d = 1 if direction == "bidirectional" else 0
    bw = load_layers(path)[0][-1]
    assert bw.direction == "backward" and bw.hyperparameters.get("onnx_reverse", False) is (d == 0)
    got = build_run(tmp_path, as_forward(bw), np.ascontiguousarray(x[::-1]), time_major=True)
    assert_close((got[0][::-1], *got[1:]), (y[:, d], h[d], c[d]), ATOL)


# =================================================================================== tf-checkpoint


def _tf1_cell(rng: np.random.Generator, scope: str, i: int, n: int) -> dict[str, np.ndarray]:
    return {
        f"{scope}/kernel": rng.standard_normal((i + n, 4 * n)).astype(np.float32),
        f"{scope}/bias": rng.standard_normal(4 * n).astype(np.float32),
    }


def _checkpoint(tmp_path: Path, scopes: list[tuple[str, int]]) -> Path:
    from tf_bundle_writer import write_bundle

    rng = np.random.default_rng(0)
    tensors: dict[str, np.ndarray] = {"global_step": np.array(7, np.int64)}
    for scope, i in scopes:
        tensors |= _tf1_cell(rng, scope, i, 4)
    return write_bundle(tmp_path / "ck" / "model.ckpt", tensors).prefix


MULTI = [("rnn/multi_rnn_cell/cell_0/lstm_cell", 5), ("rnn/multi_rnn_cell/cell_1/lstm_cell", 4)]
BIDIR = [("bidirectional_rnn/fw/lstm_cell", 5), ("bidirectional_rnn/bw/lstm_cell", 5)]
STACK_BIDIR = [
    (f"stack_bidirectional_rnn/cell_{k}/bidirectional_rnn/{d}/lstm_cell", 5 if k == 0 else 8)
    for k in range(2)
    for d in ("bw", "fw")
]


@pytest.mark.parametrize(
    ("scopes", "expected"),
    [
        pytest.param(MULTI, [(MULTI[0][0],), (MULTI[1][0],)], id="multi-rnn-cell"),
        pytest.param(BIDIR, [(BIDIR[0][0], BIDIR[1][0])], id="bidirectional-dynamic-rnn"),
        pytest.param(
            STACK_BIDIR,
            [(STACK_BIDIR[1][0], STACK_BIDIR[0][0]), (STACK_BIDIR[3][0], STACK_BIDIR[2][0])],
            id="stack-bidirectional",
        ),
    ],
)
def test_tf_checkpoint_groups(tmp_path: Path, scopes: list[tuple[str, int]], expected: list[tuple[str, ...]]) -> None:
    prefix = _checkpoint(tmp_path, scopes)
    assert list_layers(prefix) == ("tf-checkpoint", expected)
    loaded = load_layers(prefix)
    assert cell_table(loaded) == [[(s, "backward" if "/bw/" in s else "forward") for s in row] for row in expected]
    assert all(w.forget_bias_default == 1.0 and w.format == "tf-checkpoint" for row in loaded for w in row)


def test_tf_checkpoint_unrelated_groups_need_layer(tmp_path: Path) -> None:
    prefix = _checkpoint(tmp_path, [*MULTI, *BIDIR, ("decoder/lstm_cell", 4)])
    with pytest.raises(WeightFileError) as err:
        list_layers(prefix)
    message = str(err.value)
    for needle in ("3 unrelated groups", "bidirectional_rnn", "decoder/lstm_cell", "rnn/multi_rnn_cell", "--layer"):
        assert needle in message, message
    assert list_layers(prefix, layer="rnn/multi_rnn_cell")[1] == [(MULTI[0][0],), (MULTI[1][0],)]
    assert list_layers(prefix, layer="bidirectional_rnn")[1] == [(BIDIR[0][0], BIDIR[1][0])]
    assert list_layers(prefix, layer=BIDIR[1][0])[1] == [(BIDIR[1][0],)]
    assert load_weights(prefix, layer=BIDIR[1][0]).direction == "backward"
    with pytest.raises(WeightFileError, match="'rnn' is neither a group"):
        list_layers(prefix, layer="rnn")


def test_tf_checkpoint_fixture_is_one_layer() -> None:
    # The fixture's unrelated dense layer is not a cell.
    assert list_layers(TF_FIXTURES / "ckpt_tf1_peephole_proj") == ("tf-checkpoint", [("rnn/lstm_cell",)])
    (w,), = load_layers(TF_FIXTURES / "ckpt_tf2_keras" / "ckpt")  # fmt: skip
    assert w.direction == "forward" and w.implied()["num_units"] == 6


# ======================================================================================= npz (one cell)


@pytest.mark.parametrize("fmt", ["tflite", "tf1"])
def test_single_cell_npz_formats(tmp_path: Path, fmt: str) -> None:
    from support import random_tflite_weights

    rng = np.random.default_rng(0)
    if fmt == "tflite":
        arrays = random_tflite_weights()
    else:
        arrays = {"kernel": rng.standard_normal((9, 16)).astype(np.float32), "bias": np.zeros(16, np.float32)}
    path = tmp_path / "w.npz"
    np.savez(path, **arrays)
    assert list_layers(path) == (fmt, [("",)])
    assert open_weights(path, fmt).cells() == [("",)]
    (w,), = load_layers(path)  # fmt: skip
    assert w.format == fmt and w.direction == "forward" and f"format detected from keys: {fmt}" in w.notes
    assert open_weights(path, fmt).load("").format == fmt  # the listed name is accepted
    with pytest.raises(WeightFileError, match="holds a single cell"):
        list_layers(path, layer="x")
    with pytest.raises(WeightFileError, match=".npz files only"):
        (tmp_path / "w.h5").write_bytes(b"not an npz")
        open_weights(tmp_path / "w.h5", fmt).cells()
