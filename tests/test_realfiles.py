"""Files as users hold them (tests/fixtures/real, made by make_real.py with the frameworks themselves):
each builds a model that matches the framework's own outputs within 1e-5, or is refused with exit 2."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from lstmgen.build import build
from lstmgen.cli.main import main
from lstmgen.errors import ConfigError, LstmgenError, UnknownOrderError, WeightFileError
from lstmgen.run import run_model_states
from lstmgen.weights import list_layers, load_layers, load_weights

REAL = Path(__file__).parent / "fixtures" / "real"
ATOL = 1e-5
ONNX = ("l1_uni_bf", "l2_uni_tm", "l1_bi_bf", "l2_bi_bf")


def _io(case: str) -> dict[str, np.ndarray]:
    with np.load(REAL / f"{case}.io.npz") as z:
        return {k: z[k] for k in z.files}


def _build_run(
    tmp_path: Path, weights: Path, options: dict[str, Any], x: np.ndarray, **kw: Any
) -> tuple[np.ndarray, list[tuple[np.ndarray, np.ndarray]], list[str]]:
    out = tmp_path / "m.tflite"
    result = build(out, {"batch_size": 2, **options}, weights, **kw)
    assert result.verification is not None and result.verification.passed
    y, finals = run_model_states(out, x)
    return y, finals, result.notes


def _close(got: np.ndarray, want: np.ndarray, what: str) -> None:
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    err = float(np.abs(got - want).max())
    assert err <= ATOL, f"{what}: max abs error {err:.3g} > {ATOL}"


# --- ONNX from torch.onnx.export, both exporters --------------------------------------------------


@pytest.mark.parametrize("topology", ONNX)
@pytest.mark.parametrize("exporter", ["ts", "dynamo"])
def test_torch_onnx_export_matches_torch(tmp_path: Path, exporter: str, topology: str) -> None:
    pytest.importorskip("onnx")
    case = f"onnx_{exporter}_{topology}"
    io = _io(case)
    layers, bidir = int(topology[1]), "_bi_" in topology
    options = {"num_layers": layers, "bidirectional": bidir}
    y, finals, notes = _build_run(tmp_path, REAL / f"{case}.onnx", options, io["x"])
    _close(y, io["y"], "y")  # the model's layout is the graph input's (batch_first -> batch-major)
    # torch's h_n/c_n: [layers * directions, B, H], in the order of lstmgen's ops.
    _close(np.stack([h for h, _ in finals]), io["h"], "h_n")
    _close(np.stack([c for _, c in finals]), io["c"], "c_n")
    if exporter == "ts":
        assert any("zeros whatever the batch size" in n for n in notes), notes


def test_dynamo_export_with_a_dynamic_batch_matches_torch(tmp_path: Path) -> None:
    """dynamic_shapes batch: the zero states are Expand(0, Concat(.., Shape(x), ..)), sliced per layer."""
    pytest.importorskip("onnx")
    case = "onnx_dynamo_l2_bi_bf_dynbatch"
    io = _io(case)
    options = {"num_layers": 2, "bidirectional": True}
    y, finals, notes = _build_run(tmp_path, REAL / f"{case}.onnx", options, io["x"])
    _close(y, io["y"], "y")
    _close(np.stack([h for h, _ in finals]), io["h"], "h_n")
    assert any("zeros whatever the batch size" in n for n in notes), notes


def test_user_layout_wins_over_the_onnx_graph(tmp_path: Path) -> None:
    """A batch_first export built time-major: the user's layout, with a note; same numbers."""
    pytest.importorskip("onnx")
    io = _io("onnx_dynamo_l1_uni_bf")
    x = np.ascontiguousarray(io["x"].transpose(1, 0, 2))
    y, _, notes = _build_run(tmp_path, REAL / "onnx_dynamo_l1_uni_bf.onnx", {"time_major": True}, x)
    _close(y, io["y"].transpose(1, 0, 2), "y")
    assert any("time-major [T,B,I] as requested" in n for n in notes), notes


# --- Keras -------------------------------------------------------------------------------------------

KERAS = [
    pytest.param("k3_stacked_head", "k3_stacked_head.keras", {"num_layers": 2}, id="keras3-.keras-lstm_1-lstm_2-head"),
    pytest.param(
        "k3_stacked_head",
        "k3_stacked_head.weights.h5",
        {"num_layers": 2, "return_sequences": False},
        id="keras3-.weights.h5-stated-last-step",
    ),
    pytest.param("k3_encoder", "k3_encoder.keras", {}, id="keras3-encoder-relu-go_backwards-no-bias"),
    pytest.param("tk2_stacked_head", "tk2_stacked_head.h5", {"num_layers": 2}, id="tfkeras2-full-h5"),
    pytest.param(
        "tk2_stacked_head",
        "tk2_stacked_head.weights.h5",
        {"num_layers": 2, "return_sequences": False},
        id="tfkeras2-.weights.h5",
    ),
    pytest.param("tk2_time_major", "tk2_time_major.h5", {}, id="tfkeras2-time_major"),
]


@pytest.mark.parametrize(("case", "file", "options"), KERAS)
def test_keras_files_match_keras(tmp_path: Path, case: str, file: str, options: dict[str, Any]) -> None:
    pytest.importorskip("h5py")
    io = _io(case)
    y, _, _ = _build_run(tmp_path, REAL / file, options, io["x"])
    _close(y, io["y"], "y")


def test_keras_names_are_the_layers_keras_names() -> None:
    pytest.importorskip("h5py")
    assert list_layers(REAL / "k3_stacked_head.keras") == ("keras", [("lstm_1",), ("lstm_2",)])
    assert list_layers(REAL / "k3_stacked_head.weights.h5") == ("keras", [("lstm_1",), ("lstm_2",)])
    assert list_layers(REAL / "tk2_stacked_head.h5")[1] == [("lstm_1",), ("lstm_2",)]
    w = load_weights(REAL / "k3_stacked_head.keras", layer="lstm_2")
    assert w.layer == "lstm_2" and w.implied()["num_units"] == 3 and w.hyperparameters["return_sequences"] is False
    w = load_weights(REAL / "k3_encoder.keras", layer="encoder")
    assert w.hyperparameters["activation"] == "relu" and w.hyperparameters["go_backwards"] is True


@pytest.mark.parametrize(
    ("file", "words"),
    [
        ("k3_masking.keras", ("mask", "Masking 'masking'", "every step", ".weights.h5")),
        ("k3_hard_sigmoid.keras", ("recurrent_activation='hard_sigmoid'", "logistic sigmoid")),
    ],
)
def test_keras_refusals(tmp_path: Path, file: str, words: tuple[str, ...]) -> None:
    pytest.importorskip("h5py")
    result = CliRunner().invoke(main, ["build", "--weights", str(REAL / file), "-o", str(tmp_path / "m.tflite")])
    assert result.exit_code == 2, result.output
    for word in words:
        assert word in result.output, result.output
    assert not (tmp_path / "m.tflite").exists()


# --- TF1 variables dumped as {v.name: v.eval()} -------------------------------------------------------

TF1 = [
    pytest.param("tf1_dump_single", {}, id="single-with-dense-head"),
    pytest.param("tf1_dump_stacked", {"num_layers": 2}, id="multi_rnn_cell"),
    pytest.param("tf1_dump_bidir", {"bidirectional": True}, id="bidirectional_dynamic_rnn"),
]


@pytest.mark.parametrize(("case", "options"), TF1)
def test_tf1_dumps_match_tf(tmp_path: Path, case: str, options: dict[str, Any]) -> None:
    io = _io(case)
    y, _, _ = _build_run(tmp_path, REAL / f"{case}.npz", options, io["x"])
    _close(y, io["y"], "y")


def test_tf1_scopes_and_layer() -> None:
    path = REAL / "tf1_dump_stacked.npz"
    cells = [("rnn/multi_rnn_cell/cell_0/lstm_cell",), ("rnn/multi_rnn_cell/cell_1/lstm_cell",)]
    assert list_layers(path) == ("tf1", cells)
    w = load_weights(path, layer="rnn/multi_rnn_cell/cell_1/lstm_cell")
    assert w.layer == "rnn/multi_rnn_cell/cell_1/lstm_cell" and w.implied()["num_units"] == 3
    assert w.forget_bias_default == 1.0
    single = load_weights(REAL / "tf1_dump_single.npz")  # one cell scope, auto-picked; the dense head is ignored
    assert single.layer == "rnn/lstm_cell" and any("ignored 2 other" in n for n in single.notes)
    with pytest.raises(LstmgenError, match="cell_9"):
        load_weights(path, layer="rnn/multi_rnn_cell/cell_9/lstm_cell")


# --- PyTorch reverse-only cells -------------------------------------------------------------------


def test_torch_reverse_cell_alone_is_refused(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    sd = {k: v.numpy() for k, v in torch.nn.LSTM(3, 4, bidirectional=True).state_dict().items()}
    path = tmp_path / "bi.npz"
    np.savez(path, **sd)
    for extra in ({}, {"go_backwards": True}):
        with pytest.raises(ConfigError, match="aligned to the input positions.*--bidirectional"):
            build(tmp_path / "m.tflite", {"batch_size": 1, **extra}, path, layer="l0_reverse", verify=False)
    assert not (tmp_path / "m.tflite").exists()


# --- lstmgen cells ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("file", "lines"),
    [
        ("k3_stacked_head.keras", ["[0] lstm_1: LSTM, forward, input=3 units=4", "[1] lstm_2: LSTM, forward, input=4"]),
        ("k3_encoder.keras", ["[0] encoder: LSTM, backward, input=3 units=4; activation=relu, go_backwards=True"]),
        ("tf1_dump_bidir.npz", ["[0] bidirectional_rnn/fw/lstm_cell: LSTM, forward", "bidirectional_rnn/bw/lstm_cell"]),
        ("onnx_ts_l2_bi_bf.onnx", ["[1] /LSTM_1/reverse: LSTM, backward, input=8 units=4"]),
    ],
)
def test_cells_lists_every_format(file: str, lines: list[str]) -> None:
    if file.endswith((".keras", ".onnx")):
        pytest.importorskip("h5py" if file.endswith(".keras") else "onnx")
    result = CliRunner().invoke(main, ["cells", str(REAL / file)])
    assert result.exit_code == 0, result.output
    for line in lines:
        assert line in result.output, result.output


def test_cells_json_and_groups(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    sd = {f"enc.{k}": v.numpy() for k, v in torch.nn.LSTM(3, 4, bidirectional=True).state_dict().items()}
    sd |= {f"dec.{k}": v.numpy() for k, v in torch.nn.LSTM(8, 2, proj_size=1).state_dict().items()}
    np.savez(tmp_path / "sd.npz", **sd)
    result = CliRunner().invoke(main, ["cells", str(tmp_path / "sd.npz"), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    cells = [c for row in doc["layers"] for c in row]
    assert doc["format"] == "torch" and doc["note"] and "several unrelated groups" in doc["note"]
    assert [(c["name"], c["direction"], c["kind"]) for c in cells] == [
        ("dec.l0", "forward", "LSTM projection"),
        ("enc.l0", "forward", "LSTM"),
        ("enc.l0_reverse", "backward", "LSTM"),
    ]
    one = CliRunner().invoke(main, ["cells", str(tmp_path / "sd.npz"), "--layer", "enc", "--json"])
    assert [[c["name"] for c in row] for row in json.loads(one.stdout)["layers"]] == [["enc.l0", "enc.l0_reverse"]]
    bad = CliRunner().invoke(main, ["cells", str(tmp_path / "missing.npz")])
    assert bad.exit_code == 2 and "does not exist" in bad.output


def test_keras3_file_without_layer_names_is_matched_by_position(tmp_path: Path) -> None:
    """Groups named by class and position ('lstm', 'lstm_1') where the Keras names are 'lstm_1', 'lstm_2':
    without the names in the file, cells pair with the config in model order, never by the lookalike name."""
    h5py = pytest.importorskip("h5py")
    src = REAL / "k3_stacked_head.keras"
    with zipfile.ZipFile(src) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    weights = tmp_path / "model.weights.h5"
    weights.write_bytes(members["model.weights.h5"])
    with h5py.File(weights, "r+") as h5:
        for group in ("layers/lstm/vars", "layers/lstm_1/vars"):
            del h5[group].attrs["name"]
    members["model.weights.h5"] = weights.read_bytes()
    path = tmp_path / "old.keras"
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    assert list_layers(path) == ("keras", [("lstm_1",), ("lstm_2",)])
    io = _io("k3_stacked_head")
    y, _, _ = _build_run(tmp_path, path, {"num_layers": 2}, io["x"])
    _close(y, io["y"], "y")


# --- Keras layer order: recorded (config, layer_names), numbered (one class), or refused ------------------

MIX = ["enc", "bi/forward_layer", "bi/backward_layer", "top"]


BI = ("bi/forward_layer", "bi/backward_layer")


@pytest.mark.parametrize(
    ("case", "file", "layers"),
    [
        ("k3_order_mix", "k3_order_mix.keras", [("enc",), BI, ("top",)]),
        ("k3_order_mix", "k3_order_mix.h5", [("enc",), BI, ("top",)]),  # Keras 3's legacy full-model .h5
        # tf_keras names no layer in its weight groups: group 'lstm_1' is Keras' 'lstm_3' (the top, last
        # step only), not Keras' 'lstm_1'; the config places each group by class and position.
        ("tk2_order_mix", "tk2_order_mix.keras", [("lstm_1",), BI, ("lstm_3",)]),
        # Into a nested model and through its Dropout: the wiring is followed across the boundary.
        ("k3_order_nested", "k3_order_nested.keras", [("first",), ("encoder/z1",), ("encoder/a2",)]),
    ],
)
def test_keras_model_order_from_the_model_config(tmp_path: Path, case: str, file: str, layers: list) -> None:
    """Names out of alphabetical order with a Bidirectional between them: the config's order and settings."""
    pytest.importorskip("h5py")
    assert list_layers(REAL / file) == ("keras", layers)
    io = _io(case)
    y, _, _ = _build_run(tmp_path, REAL / file, {"num_layers": 3}, io["x"])
    _close(y, io["y"], "y")


@pytest.mark.parametrize("file", ["k3_order_mix.weights.h5", "tk2_order_mix.weights.h5"])
def test_keras_weights_only_stack_of_mixed_classes_is_refused(tmp_path: Path, file: str) -> None:
    """A .weights.h5 keeps groups lstm, bidirectional, lstm_1: the LSTM/Bidirectional order is not in it."""
    pytest.importorskip("h5py")
    path = REAL / file
    enc = "enc" if file.startswith("k3") else "lstm"
    out = tmp_path / "m.tflite"
    result = CliRunner().invoke(main, ["build", "--weights", str(path), "--num-layers", "3", "-o", str(out)])
    assert result.exit_code == 2, result.output
    for words in ("does not record their order", "bidirectional, lstm, lstm_1", "model.save('m.keras')", "--layer"):
        assert words in result.output, result.output
    assert not out.exists()
    with pytest.raises(UnknownOrderError):
        list_layers(path)
    listing = CliRunner().invoke(main, ["cells", str(path)])
    assert listing.exit_code == 0 and "unknown layer order" in listing.output and "[0]" not in listing.output
    assert f"[?] {enc}: LSTM, forward, input=6 units=6" in listing.output, listing.output
    doc = json.loads(CliRunner().invoke(main, ["cells", str(path), "--json"]).stdout)
    assert {c["layer_index"] for row in doc["layers"] for c in row} == {None} and "order" in doc["note"]
    # One layer at a time is still there.
    w = load_weights(path, layer=enc)
    assert w.layer == enc and w.implied()["input_size"] == 6
    bi = "bi" if file.startswith("k3") else "bidirectional"
    assert [c.direction for c in load_layers(path, layer=bi)[0]] == ["forward", "backward"]


def test_keras_weights_only_stack_of_one_class_is_ordered_by_group_number(tmp_path: Path) -> None:
    """Eleven default-named LSTMs: groups lstm, lstm_1, ..., lstm_10 (alphabetically lstm_10 precedes
    lstm_2), Keras names lstm_1 ... lstm_11. The groups' numbers are the model order; a note says so."""
    pytest.importorskip("h5py")
    path = REAL / "k3_order_default.weights.h5"
    assert list_layers(path)[1] == [(f"lstm_{k}",) for k in range(1, 12)]
    io = _io("k3_order_default")
    y, _, notes = _build_run(tmp_path, path, {"num_layers": 11}, io["x"])
    _close(y, io["y"], "y")
    assert any("records no model order" in n and "lstm_9, lstm_10)" in n for n in notes), notes


@pytest.mark.parametrize(
    ("case", "file", "layers"),
    [
        ("k3_order_mix", "k3_order_mix.keras", 3),
        ("tk2_order_mix", "tk2_order_mix.keras", 3),
        ("k3_order_default", "k3_order_default.weights.h5", 11),
    ],
)
def test_a_wrong_layer_order_is_caught_by_the_keras_outputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str, file: str, layers: int
) -> None:
    """The bug these tests guard: layers stacked alphabetically by storage name. Every size chains, and
    the source reference gets the same order, so the build passes; only Keras' own outputs tell."""
    pytest.importorskip("h5py")
    from lstmgen.weights import keras_topology as keras_reader

    def alphabetical(groups: list[Any], source: str) -> tuple[list[Any], None]:
        return sorted(groups, key=lambda g: g[0].path), None

    monkeypatch.setattr(keras_reader, "_model_order", alphabetical)
    io = _io(case)
    if file.endswith(".keras"):  # the config's wiring catches it first
        with pytest.raises(WeightFileError, match="does not feed LSTM layer"):
            build(tmp_path / "m.tflite", {"batch_size": 2, "num_layers": layers}, REAL / file)
        monkeypatch.setattr(keras_reader, "_check_chained", lambda layers, source: None)
    y, _, _ = _build_run(tmp_path, REAL / file, {"num_layers": layers}, io["x"])
    with pytest.raises(AssertionError, match="max abs error"):
        _close(y, io["y"], "y")


@pytest.mark.parametrize(
    ("file", "words"),
    [
        ("k3_order_dense_between.keras", ("does not feed LSTM layer 'a' straight into 'b'", "'d'", "--layer a")),
        ("k3_order_parallel.keras", ("does not feed LSTM layer 'p1' straight into 'p2'", "input_layer", "--layer p1")),
    ],
)
def test_keras_layers_the_model_does_not_chain_are_no_stack(tmp_path: Path, file: str, words: tuple[str, ...]) -> None:
    """A Dense between two LSTMs (sizes still chain) or parallel LSTMs: building them as a stack would
    drop the Dense or rewire the model and still pass against the source; each layer alone is fine."""
    pytest.importorskip("h5py")
    out = tmp_path / "m.tflite"
    result = CliRunner().invoke(main, ["build", "--weights", str(REAL / file), "--num-layers", "2", "-o", str(out)])
    assert result.exit_code == 2, result.output
    for word in words:
        assert word in result.output, result.output
    assert not out.exists()
    first = words[-1].split()[-1]
    assert build(out, {"batch_size": 1}, REAL / file, layer=first).verification.passed


@pytest.mark.parametrize("file", ["k3_stacked_head.weights.h5", "tk2_stacked_head.weights.h5"])
def test_keras_weights_only_stack_says_where_other_layers_are_unknown(tmp_path: Path, file: str) -> None:
    """LSTM, LSTM, Dropout, Dense saved weights-only: the Dense's place is not in the file; the build
    says it assumes no such layer between the LSTMs (the .keras file's wiring is checked instead)."""
    pytest.importorskip("h5py")
    case = file.split(".")[0]
    io = _io(case)
    y, _, notes = _build_run(tmp_path, REAL / file, {"num_layers": 2, "return_sequences": False}, io["x"])
    _close(y, io["y"], "y")
    assert any("other layers (dense)" in n and "none lies between" in n for n in notes), notes
    _, _, notes = _build_run(
        tmp_path, REAL / "k3_order_default.weights.h5", {"num_layers": 11}, _io("k3_order_default")["x"]
    )
    assert not any("other layers" in n for n in notes), notes
