"""`lstmgen export`: a model's weights back out in each framework's layout, round-tripped bitwise."""

from __future__ import annotations

import importlib.util
import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from lstmgen.build import build
from lstmgen.check.verify import open_model_session
from lstmgen.cli.main import main
from lstmgen.errors import ConfigError
from lstmgen.export import FORMATS, SUPPORTED, export_weights, model_layers
from lstmgen.modelinfo import read_lstm_model
from lstmgen.run import run_model
from lstmgen.weights import load_layers, load_weights

FIXTURES = Path(__file__).parent / "fixtures"
REAL = FIXTURES / "real"
TF = FIXTURES / "tf"
SIZES = {"num_units": 4, "input_size": 3, "batch_size": 1, "init": "uniform", "seed": 7}
TOPOLOGIES = {
    "single": {},
    "peephole-projection": {"use_peepholes": True, "num_proj": 3},
    "stacked": {"num_layers": 2},
    "bidirectional": {"bidirectional": True},
    "bidirectional-stacked": {"num_layers": 2, "bidirectional": True},
    "go-backwards": {"go_backwards": True},
    "cifg-layer-norm": {"cifg": True, "layer_norm": True},
}


def _cells(path: Path) -> list[list[dict[str, np.ndarray]]]:
    layers, _ = model_layers(read_lstm_model(path))
    return [[c.tensors for c in row] for row in layers]


def _fits(fmt: str, options: dict[str, Any]) -> bool:
    """Whether the format can hold the topology (the export refuses otherwise)."""
    features = {"use_peepholes": "peepholes", "num_proj": "projection", "cifg": "CIFG", "layer_norm": "layer norm"}
    if {features[k] for k in options if k in features} - SUPPORTED[fmt]:
        return False
    cells = options.get("num_layers", 1) * (2 if options.get("bidirectional") else 1)
    return not ((fmt == "tflite" and cells > 1) or (fmt == "onnx" and options.get("num_layers", 1) > 1))


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_round_trip_is_bitwise(tmp_path: Path, topology: str, fmt: str) -> None:
    """build -> export -> read back with lstmgen's reader: the same float32 arrays, bit for bit."""
    options = TOPOLOGIES[topology]
    model = tmp_path / "m.tflite"
    build(model, SIZES | options, verify=False)
    out = tmp_path / "w.npz"
    if not _fits(fmt, options):
        with pytest.raises(ConfigError, match="cannot hold|holds one"):
            export_weights(model, out, fmt)
        assert not out.exists()
        return
    result = export_weights(model, out, fmt)
    back = load_layers(out, fmt, None)
    want = _cells(model)
    assert [len(r) for r in back] == [len(r) for r in want]
    for row_back, row_want in zip(back, want, strict=True):
        for got, exp in zip(row_back, row_want, strict=True):
            assert set(got.tensors) == set(exp), set(got.tensors) ^ set(exp)
            for key, value in exp.items():
                g = np.asarray(got.tensors[key])
                assert g.dtype == np.float32 and g.tobytes() == value.tobytes(), key
    # Rebuilt from the export: the same model weights (TF1 adds its forget bias unless told 0).
    again = tmp_path / "again.tflite"
    extra = {"forget_bias": 0.0} if fmt == "tf1" else {}
    topo = {k: v for k, v in options.items() if k in ("num_layers", "bidirectional", "go_backwards")}
    build(again, {"batch_size": 1, **topo, **extra}, out, weights_format=fmt, verify=False)
    rebuilt = _cells(again)
    for row_a, row_b in zip(rebuilt, want, strict=True):
        for a, b in zip(row_a, row_b, strict=True):
            assert all(a[k].tobytes() == b[k].tobytes() for k in b)
    if topology == "go-backwards":
        assert any("time-reversed input" in n for n in result.notes)


def test_source_arrays_come_back(tmp_path: Path) -> None:
    """source -> build -> export: the framework's own arrays, bitwise (Keras, torch)."""
    h5py = pytest.importorskip("h5py")
    model = tmp_path / "k.tflite"
    build(model, {"batch_size": 2, "num_layers": 2}, REAL / "k3_stacked_head.keras", verify=False)
    export_weights(model, tmp_path / "k.npz", "keras")
    with np.load(tmp_path / "k.npz") as z:
        keys = sorted(k for k in z.files if k != "lstmgen_settings")  # the op settings a default build needs
        exported = {k: z[k] for k in z.files}
    assert json.loads(str(exported["lstmgen_settings"]))["batch_size"] == 2
    assert keys == sorted(f"lstm{s}/{k}" for s in ("", "_1") for k in ("kernel", "recurrent_kernel", "bias"))
    # Keras' own datasets in the .keras archive (first LSTM: layers/lstm, second: layers/lstm_1).
    archive = zipfile.ZipFile(REAL / "k3_stacked_head.keras")
    with archive as zf, h5py.File(io.BytesIO(zf.read("model.weights.h5"))) as h5:
        for layer in ("lstm", "lstm_1"):
            for i, role in enumerate(("kernel", "recurrent_kernel", "bias")):
                assert exported[f"{layer}/{role}"].tobytes() == h5[f"layers/{layer}/cell/vars/{i}"][()].tobytes()

    torch = pytest.importorskip("torch")
    sd = {k: v.numpy() for k, v in torch.nn.LSTM(3, 4, num_layers=2, proj_size=2).state_dict().items()}
    np.savez(tmp_path / "sd.npz", **sd)
    build(tmp_path / "t.tflite", {"batch_size": 1, "num_layers": 2}, tmp_path / "sd.npz", verify=False)
    export_weights(tmp_path / "t.tflite", tmp_path / "t.npz", "torch")
    with np.load(tmp_path / "t.npz") as z:
        for k in ("weight_ih_l0", "weight_hh_l0", "weight_hr_l0", "weight_ih_l1", "weight_hh_l1", "weight_hr_l1"):
            assert z[k].tobytes() == sd[k].tobytes(), k
        assert z["bias_ih_l1"].tobytes() == (sd["bias_ih_l1"] + sd["bias_hh_l1"]).tobytes()  # one bias per gate
        assert not z["bias_hh_l1"].any()


def test_converter_models_export(tmp_path: Path) -> None:
    """TF's converter output (float and full-int8): exported; the int8 one dequantized, with a note."""
    result = export_weights(TF / "tfkeras2_float_lstm.tflite", tmp_path / "f.npz", "keras")
    assert not any("dequantized" in n for n in result.notes)
    assert any("cell_clip 10" in n for n in result.notes)  # the converter's clip, said (it is not a weight)
    with np.load(tmp_path / "f.npz") as got, np.load(TF / "tfint8_lstm.weights.npz") as keras_arrays:
        for key in ("kernel", "recurrent_kernel", "bias"):  # the Keras model the converter was given
            assert got[key].tobytes() == keras_arrays[key].tobytes(), key
    result = export_weights(TF / "tfint8_lstm.tflite", tmp_path / "q.npz", "keras")
    assert any("dequantized from" in n and "int8" in n for n in result.notes), result.notes
    with np.load(tmp_path / "q.npz") as got, np.load(TF / "tfint8_lstm.weights.npz") as keras_arrays:
        err = max(float(np.abs(got[k] - keras_arrays[k]).max()) for k in ("kernel", "recurrent_kernel"))
    assert 0 < err < 0.05  # int8 steps of the float weights


@pytest.mark.parametrize("mode", ["float16", "dynamic-int8"])
def test_quantized_models_export_dequantized(tmp_path: Path, mode: str) -> None:
    model = tmp_path / "m.tflite"
    build(model, SIZES | {"quantize": mode}, verify=False)
    result = export_weights(model, tmp_path / "w.npz", "torch")
    assert load_weights(tmp_path / "w.npz", "torch").implied()["num_units"] == 4
    assert any("dequantized" in n for n in result.notes), result.notes


def test_cli_export_json_and_refusal(tmp_path: Path) -> None:
    model = tmp_path / "m.tflite"
    build(model, SIZES | {"num_layers": 2}, verify=False)
    runner = CliRunner()
    ok = runner.invoke(main, ["export", str(model), "--format", "tf1", "-o", str(tmp_path / "w.npz"), "--json"])
    assert ok.exit_code == 0, ok.output
    doc = json.loads(ok.stdout)
    assert doc["ok"] and doc["layers"] == [["forward"], ["forward"]]
    assert "rnn/multi_rnn_cell/cell_1/lstm_cell/kernel" in doc["keys"]
    bad = runner.invoke(main, ["export", str(model), "--format", "onnx", "-o", str(tmp_path / "o.npz")])
    assert bad.exit_code == 2 and "--layer K" in bad.output and not (tmp_path / "o.npz").exists()
    one = runner.invoke(main, ["export", str(model), "--format", "onnx", "--layer", "1", "-o", str(tmp_path / "o.npz")])
    assert one.exit_code == 0, one.output



def test_export_never_writes_over_its_model(tmp_path: Path) -> None:
    """Red team: `export m.tflite -o m.tflite` exited 0 and left an .npz where the model was."""
    model = tmp_path / "m.tflite"
    build(model, SIZES, verify=False)
    before = model.read_bytes()
    bad = CliRunner().invoke(main, ["export", str(model), "--format", "tf1", "-o", str(model)])
    assert bad.exit_code == 2 and "destroy the input" in bad.output, bad.output
    assert model.read_bytes() == before

HEADS = FIXTURES / "heads"  # TF's converter output: Keras LSTM(8) -> Dense(3, softmax), float and int8


@pytest.mark.runtime
@pytest.mark.parametrize("name", ["tf_classifier", "tf_classifier_int8"])
def test_the_lstm_of_a_model_with_a_head_round_trips(tmp_path: Path, name: str) -> None:
    """export takes the fused LSTM op out of a converter's classifier (the head left out, said in a note); an LSTM
    built from the export, fed the op's own input tensor inside the original model, gives the op's output."""
    source = HEADS / f"{name}.tflite"
    result = export_weights(source, tmp_path / "w.npz", "tflite")
    assert any("left out: STRIDED_SLICE (op 1), FULLY_CONNECTED (op 2), SOFTMAX (op 3)" in n for n in result.notes), (
        result.notes
    )
    lm = read_lstm_model(source, head_ok=True)
    op = lm.model.operators[lm.lstms[0].op_index]
    session = open_model_session(lm, "auto")  # the whole model, every intermediate tensor kept
    x = np.random.default_rng(3).standard_normal((1, 12, 6)).astype(np.float32)
    session.invoke(x)
    op_in, op_out = session.tensor(op.inputs[0]), session.tensor(op.outputs[0])
    built = tmp_path / "lstm.tflite"
    build(built, {"batch_size": 1, "time_steps": 12, "cell_clip": 10.0}, tmp_path / "w.npz", verify=False)
    y = run_model(built, op_in)[0]
    assert y.shape == op_out.shape == (1, 12, 8)
    err = float(np.abs(y - op_out).max())
    if name == "tf_classifier":
        assert err <= 1e-6, err  # the same float weights in the same kernel
    else:  # the float LSTM of the dequantized weights vs the int8 kernel: within its rounding
        scale = lm.model.tensors[op.outputs[0]].quantization.scale[0]
        assert err <= 2 * scale, (err, scale)  # measured 0.0034, 0.6 of a step
    # the check can fail: the exported cell with two gates swapped is far off
    with np.load(tmp_path / "w.npz") as z:
        arrays = dict(z)
    arrays["input_to_input_weights"], arrays["input_to_forget_weights"] = (
        arrays["input_to_forget_weights"],
        arrays["input_to_input_weights"],
    )
    np.savez(tmp_path / "bad.npz", **arrays)
    build(built, {"batch_size": 1, "time_steps": 12, "cell_clip": 10.0}, tmp_path / "bad.npz", verify=False)
    assert float(np.abs(run_model(built, op_in)[0] - op_out).max()) > 10 * max(err, 1e-3)


def test_cli_export_of_a_model_with_a_head(tmp_path: Path) -> None:
    out = tmp_path / "st.npz"
    r = CliRunner().invoke(main, ["export", str(HEADS / "tf_stacked.tflite"), "--format", "keras", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "note: only the fused LSTM ops' weights are exported" in r.output and "SOFTMAX (op 4)" in r.output
    with np.load(out) as z:
        assert sorted(z) == ["lstm/bias", "lstm/kernel", "lstm/recurrent_kernel", "lstm_1/bias", "lstm_1/kernel",
                             "lstm_1/recurrent_kernel", "lstmgen_settings"]  # fmt: skip


@pytest.mark.skipif(importlib.util.find_spec("tflite_micro") is None, reason="tflite-micro not installed")
def test_the_verify_micro_hint_leads_somewhere(tmp_path: Path) -> None:
    """verify --micro refuses an LSTM inside a graph and says: export, build, verify that with --micro. Each step
    of that works on the int8 LSTM -> LOGISTIC fixture."""
    runner = CliRunner()
    model = HEADS / "int8_head.tflite"
    refused = runner.invoke(main, ["verify", str(model), "--micro"])
    assert refused.exit_code == 2 and "lstmgen export MODEL --format tflite -o lstm.npz" in refused.output
    steps = [
        ["export", str(model), "--format", "tflite", "-o", str(tmp_path / "lstm.npz")],
        ["build", "--weights", str(tmp_path / "lstm.npz"), "--time-steps", "10", "--cell-clip", "10", "--batch-size",
         "1", "-o", str(tmp_path / "lstm.tflite")],
        ["verify", str(tmp_path / "lstm.tflite"), "--micro"],
    ]  # fmt: skip
    for args in steps:
        r = runner.invoke(main, args)
        assert r.exit_code == 0, (args, r.output)
