"""The public Python API (lstmgen.build/verify/run/inspect/export) on files and on live framework objects.

Live objects go through the readers of their saved forms: a torch module and its saved state_dict, a
Keras layer and the .keras file of its model, an onnx.ModelProto and its .onnx file, a dict of arrays
and its .npz give byte-identical models. The framework object is also run itself (a third witness).
Keras is not installed in the test environment: its objects are stood in for by minimal duck-typed
layers (get_config, get_weights, a NumPy call) made from the committed .keras fixtures.
"""

from __future__ import annotations

import importlib.util
import json
import zipfile
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from support import ROOT, TF_FIXTURES, invoke

import lstmgen
from lstmgen.errors import ConfigError, VerificationError, WeightFileError
from lstmgen.weights import open as open_weights

EXAMPLES = ROOT / "examples"
needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs torch")
needs_onnx = pytest.mark.skipif(importlib.util.find_spec("onnx") is None, reason="needs onnx")


# ------------------------------------------------------------------------------------ files, bytes


def test_build_in_memory_then_save_and_use_everywhere(tmp_path: Path) -> None:
    result = lstmgen.build(EXAMPLES / "weights_tf1.npz", cell_clip=3.0, proj_clip=1.0)
    assert result.path is None and result.report is not None and result.report.passed
    assert result.data[4:8] == b"TFL3" and "wrote (in memory)" in result.summary
    saved = result.save(tmp_path / "m.tflite")
    assert saved.read_bytes() == result.data
    assert lstmgen.inspect(result)["num_units"] == 32 == lstmgen.inspect(saved)["num_units"]
    assert lstmgen.verify(result.data, EXAMPLES / "weights_tf1.npz", cell_clip=3.0, proj_clip=1.0).passed
    y, h, c = lstmgen.run(result, np.zeros((1, 20, 16), np.float32))
    assert y.shape == (1, 20, 24) and h.shape == (1, 24) and c.shape == (1, 32)
    exported = lstmgen.export(result, tmp_path / "w.npz", "tflite")
    assert (tmp_path / "w.npz").is_file() and exported.format == "tflite"


def test_build_out_equals_cli_and_config_file(tmp_path: Path) -> None:
    assert invoke("build", "--config", EXAMPLES / "cell.toml", "-o", tmp_path / "cli.tflite", "-q").exit_code == 0
    result = lstmgen.build(config=EXAMPLES / "cell.toml", out=tmp_path / "api.tflite")
    assert result.path == tmp_path / "api.tflite"
    assert (tmp_path / "api.tflite").read_bytes() == (tmp_path / "cli.tflite").read_bytes() == result.data
    assert f"wrote {tmp_path / 'api.tflite'}" in result.summary
    assert result.to_dict()["verification"]["passed"] is True
    assert lstmgen.build(EXAMPLES / "cell.toml").data == result.data  # a config file as the source


def test_a_renamed_or_repacked_weight_file_gives_the_same_bytes(tmp_path: Path) -> None:
    """The model records what the weights are, not where they were: the file's name is no part of it."""
    arrays = dict(np.load(EXAMPLES / "weights_tf1.npz"))
    np.savez(tmp_path / "other_name.npz", **arrays)
    a = lstmgen.build(EXAMPLES / "weights_tf1.npz", verify=False)
    b = lstmgen.build(tmp_path / "other_name.npz", verify=False)
    c = lstmgen.build(arrays, verify=False)  # a dict of arrays is read as the .npz of the same keys
    assert a.data == b.data == c.data
    assert "format detected from keys: tf1" in c.details.notes


def test_bad_sources_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(WeightFileError, match="cannot read weights from a int"):
        lstmgen.build(42)
    with pytest.raises(WeightFileError, match="match no known layout"):
        lstmgen.build({"foo": np.zeros(3, np.float32)})
    with pytest.raises(ConfigError, match="unknown option"):
        lstmgen.build(None, num_unitz=4)
    (tmp_path / "d").mkdir()
    with pytest.raises(Exception, match="directory"):
        lstmgen.build(None, tmp_path / "d", num_units=4, input_size=3)


def test_a_failed_verification_saves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "m.tflite"
    with pytest.raises(VerificationError):
        # max_error far below int8's error: the source check fails, nothing is written
        lstmgen.build(
            EXAMPLES / "kws_tf1.npz", out, quantize="int8", calibration_data=EXAMPLES / "calib.npy", max_error=1e-9
        )
    assert not out.exists()


# ------------------------------------------------------------------------------------ torch


@needs_torch
@pytest.mark.parametrize("options", [{}, {"num_layers": 2, "bidirectional": True}])
def test_torch_module_builds_the_bytes_of_its_saved_state_dict(tmp_path: Path, options: dict[str, Any]) -> None:
    import torch

    torch.manual_seed(0)
    lstm = torch.nn.LSTM(5, 7, num_layers=options.get("num_layers", 1), bidirectional=bool(options), batch_first=True)
    torch.save(lstm.state_dict(), tmp_path / "w.pt")
    live = lstmgen.build(lstm, **options)
    saved = lstmgen.build(tmp_path / "w.pt", **options)
    assert live.data == saved.data
    flags = ["--num-layers", "2", "--bidirectional"] if options else []
    assert invoke("build", "--weights", tmp_path / "w.pt", *flags, "-o", tmp_path / "cli.tflite", "-q").exit_code == 0
    assert (tmp_path / "cli.tflite").read_bytes() == live.data  # the CLI on the saved file: the same bytes
    fw = live.framework
    assert fw is not None and fw.passed and fw.max_abs_error is not None and fw.max_abs_error < 1e-6
    assert "against torch" in live.summary and saved.framework is None


@needs_torch
def test_a_state_dict_of_tensors_is_a_dict_source() -> None:
    import torch

    torch.manual_seed(4)
    lstm = torch.nn.LSTM(3, 5, proj_size=2, batch_first=True)
    from_dict = lstmgen.build(lstm.state_dict())  # tensors, not arrays: converted as the live module's are
    assert from_dict.data == lstmgen.build(lstm).data and from_dict.framework is None  # a dict runs nothing


@needs_torch
def test_torch_module_holding_an_lstm_with_layer(tmp_path: Path) -> None:
    import torch

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.enc = torch.nn.LSTM(5, 7)  # time-major, as nn.LSTM defaults
            self.head = torch.nn.Linear(7, 2)

    torch.manual_seed(1)
    net = Net()
    torch.save(net.state_dict(), tmp_path / "net.pt")
    live = lstmgen.build(net, layer="enc", time_major=True)
    assert live.data == lstmgen.build(tmp_path / "net.pt", layer="enc", time_major=True).data
    assert live.framework is not None and live.framework.passed
    report = lstmgen.verify(live, net, layer="enc", time_major=True)
    assert report.passed and report.against_source is not None and report.framework.passed


@needs_torch
def test_torch_witness_fails_on_a_module_that_computes_something_else(tmp_path: Path) -> None:
    """The third witness can fail: a subclass whose forward differs from what its weights say."""
    import torch

    class Shifted(torch.nn.LSTM):
        def forward(self, x: Any, hx: Any = None) -> Any:  # type: ignore[override]
            y, state = super().forward(x, hx)
            return y + 1e-3, state

    torch.manual_seed(2)
    odd = Shifted(4, 6, batch_first=True)
    with pytest.raises(VerificationError, match="against torch .* itself"):
        lstmgen.build(odd, tmp_path / "m.tflite")
    assert not (tmp_path / "m.tflite").exists()
    assert lstmgen.build(odd, verify=False).data  # without verification nothing runs the object


@needs_torch
def test_torch_witness_runs_a_training_module_as_at_inference() -> None:
    """Dropout between layers in training mode would make torch's output random: the witness runs eval()."""
    import torch

    torch.manual_seed(3)
    lstm = torch.nn.LSTM(4, 6, num_layers=2, dropout=0.5, batch_first=True).double()  # float64, training
    result = lstmgen.build(lstm, num_layers=2)
    assert result.framework is not None and result.framework.passed and lstm.training
    assert "converted from float64" in result.summary


@needs_torch
def test_torch_witness_is_skipped_with_options_the_module_lacks() -> None:
    import torch

    lstm = torch.nn.LSTM(4, 6, batch_first=True)
    result = lstmgen.build(lstm, cell_clip=3.0)
    assert result.framework is not None and result.framework.passed is None
    assert "cell_clip=3.0" in result.framework.reason and "not run" in result.summary


# ------------------------------------------------------------------------------------ onnx


@needs_onnx
def test_onnx_model_proto_builds_the_bytes_of_its_file() -> None:
    import onnx

    proto = onnx.load(str(EXAMPLES / "model.onnx"))
    assert lstmgen.build(proto).data == lstmgen.build(EXAMPLES / "model.onnx").data


# ------------------------------------------------------------------------------------ Keras (duck-typed)


def _keras_act(name: str) -> Any:
    return {"tanh": np.tanh, "sigmoid": lambda z: 1 / (1 + np.exp(-z)), "relu": lambda z: np.maximum(z, 0)}[name]


class FakeLSTM:
    """A Keras LSTM as lstmgen sees one: name, get_config(), get_weights(), and a call (Keras' equations)."""

    def __init__(self, config: dict[str, Any], weights: list[np.ndarray]) -> None:
        self.name, self._config, self._weights = config["name"], config, weights

    def get_config(self) -> dict[str, Any]:
        return self._config

    def get_weights(self) -> list[np.ndarray]:
        return self._weights

    def __call__(self, x: np.ndarray) -> np.ndarray:
        k, r = (w.astype(np.float64) for w in self._weights[:2])
        b = self._weights[2] if len(self._weights) > 2 else np.zeros(k.shape[1])
        act, rec = _keras_act(self._config["activation"]), _keras_act(self._config["recurrent_activation"])
        n = r.shape[0]
        h, c, ys = np.zeros((x.shape[0], n)), np.zeros((x.shape[0], n)), []
        steps = x[:, ::-1] if self._config.get("go_backwards") else x
        for t in range(x.shape[1]):
            z = steps[:, t] @ k + h @ r + b
            i, f, g, o = (z[:, j * n : (j + 1) * n] for j in range(4))
            c = rec(f) * c + rec(i) * act(g)
            h = rec(o) * act(c)
            ys.append(h)
        y = np.stack(ys, 1)
        return y if self._config.get("return_sequences") else y[:, -1]


class Bidirectional:
    def __init__(self, config: dict[str, Any], forward: FakeLSTM, backward: FakeLSTM) -> None:
        self.name, self._config, self.forward_layer, self.backward_layer = config["name"], config, forward, backward

    def get_config(self) -> dict[str, Any]:
        return self._config

    def get_weights(self) -> list[np.ndarray]:
        return [*self.forward_layer.get_weights(), *self.backward_layer.get_weights()]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        fw, bw = self.forward_layer(x), self.backward_layer(x)
        if bw.ndim == 3:
            bw = bw[:, ::-1]  # Keras flips the backward half's outputs back to input order
        return np.concatenate([fw, bw], -1)


class Sequential:
    def __init__(self, config: dict[str, Any], layers: list[Any]) -> None:
        self.name, self._config, self.layers = config["name"], config, layers

    def get_config(self) -> dict[str, Any]:
        return self._config

    def get_weights(self) -> list[np.ndarray]:
        return [w for layer in self.layers for w in layer.get_weights()]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        for layer in self.layers:
            x = layer(x)
        return x


FakeLSTM.__name__ = "LSTM"  # Keras objects are recognised by their class names, as in a model config


def fake_keras(path: Path) -> Sequential:
    """The Keras model saved in `path` (.keras), as duck-typed layers holding its config and arrays."""
    config = json.loads(zipfile.ZipFile(path).read("config.json"))
    with open_weights(path) as source:
        raw = {name: source.load(name).origin.arrays for name in source.cell_names()}  # type: ignore[union-attr]

    def lstm(cfg: dict[str, Any], name: str) -> FakeLSTM:
        return FakeLSTM(
            cfg, [np.asarray(raw[name][r]) for r in ("kernel", "recurrent_kernel", "bias") if r in raw[name]]
        )

    layers: list[Any] = []
    for item in config["config"]["layers"]:
        cfg = item["config"]
        if item["class_name"] == "LSTM":
            layers.append(lstm(cfg, cfg["name"]))
        elif item["class_name"] == "Bidirectional":
            back = cfg.get("backward_layer") or {"config": {**cfg["layer"]["config"], "go_backwards": True}}
            halves = [
                lstm(c["config"], f"{cfg['name']}/{h}")
                for c, h in ((cfg["layer"], "forward_layer"), (back, "backward_layer"))
            ]
            layers.append(Bidirectional(cfg, *halves))
    return Sequential(config["config"], layers)


KERAS_CASES = {
    "keras3_lstm.keras": {},
    "keras3_bidir.keras": {"bidirectional": True},
    "keras3_stacked.keras": {"num_layers": 2},
    "keras3_last_step.keras": {},
    "keras3_go_backwards.keras": {},
    "keras3_no_bias.keras": {},
}


@pytest.mark.parametrize("name", sorted(KERAS_CASES))
def test_keras_model_and_layer_build_the_bytes_of_the_keras_file(name: str) -> None:
    options = KERAS_CASES[name]
    model = fake_keras(TF_FIXTURES / name)
    from_file = lstmgen.build(TF_FIXTURES / name, **options)
    live = lstmgen.build(model, **options)
    assert live.data == from_file.data
    assert live.framework is not None and live.framework.passed, live.summary
    if len(model.layers) == 1:  # the layer alone: the same model
        layer = lstmgen.build(model.layers[0], **options)
        assert layer.data == from_file.data and layer.framework is not None and layer.framework.passed


def test_keras_witness_fails_on_a_layer_that_computes_something_else(tmp_path: Path) -> None:
    layer = fake_keras(TF_FIXTURES / "keras3_lstm.keras").layers[0]

    class Odd(FakeLSTM):  # its weights and config say one thing, its call computes another
        def __call__(self, x: np.ndarray) -> np.ndarray:
            return super().__call__(x) * 1.01

    Odd.__name__ = "LSTM"
    with pytest.raises(VerificationError, match="against keras itself"):
        lstmgen.build(Odd(layer.get_config(), layer.get_weights()), tmp_path / "m.tflite")
    assert not (tmp_path / "m.tflite").exists()


def test_verify_counts_the_keras_witness(tmp_path: Path) -> None:
    layer = fake_keras(TF_FIXTURES / "keras3_lstm.keras").layers[0]
    model = lstmgen.build(layer, verify=False)
    good = lstmgen.verify(model, layer)
    assert good.passed and good.framework.passed and good.against_source is not None and good.against_source.passed

    class Odd(FakeLSTM):
        def __call__(self, x: np.ndarray) -> np.ndarray:
            return super().__call__(x) + 1e-3

    Odd.__name__ = "LSTM"
    bad = lstmgen.verify(model.data, Odd(layer.get_config(), layer.get_weights()))
    assert bad.against_source is not None and bad.against_source.passed  # the weights are right ...
    assert bad.framework.passed is False and not bad.passed  # ... but the object computes something else
    assert bad.to_dict()["framework"]["passed"] is False
    with pytest.raises(ConfigError, match="pass the source"):
        lstmgen.verify(model, cell_clip=3.0)


def test_keras_model_with_a_head_builds_its_lstm_and_says_why_no_witness() -> None:
    model = fake_keras(ROOT / "tests" / "fixtures" / "real" / "k3_stacked_head.keras")
    config = json.loads(zipfile.ZipFile(ROOT / "tests/fixtures/real/k3_stacked_head.keras").read("config.json"))
    classes = [item["class_name"] for item in config["config"]["layers"]]
    assert "Dense" in classes
    model.layers.append(type("Dense", (), {"name": "dense", "get_weights": lambda self: [], "layers": None})())
    n = sum(1 for c in classes if c in ("LSTM", "Bidirectional"))
    live = lstmgen.build(model, num_layers=n)
    assert live.data == lstmgen.build(ROOT / "tests/fixtures/real/k3_stacked_head.keras", num_layers=n).data
    assert live.framework is not None and live.framework.passed is None and "Dense" in live.framework.reason


def test_the_witness_feeds_a_keras_model_its_declared_time_steps() -> None:
    """tf_keras refuses other lengths than its Input((7, 5)) declares: the witness uses 7 on a dynamic model."""
    model = fake_keras(TF_FIXTURES / "keras3_lstm.keras")

    class Fixed(Sequential):
        inputs: ClassVar[list[np.ndarray]] = [np.zeros((0, 7, 5))]  # as a Keras model's .inputs: (None, 7, 5)

        def __call__(self, x: np.ndarray) -> np.ndarray:
            if x.shape[1] != 7:
                raise ValueError(
                    f'Input 0 of layer "sequential" is incompatible: expected (None, 7, 5), found {x.shape}'
                )
            return super().__call__(x)

    Fixed.__name__ = "Sequential"
    fixed = Fixed(model.get_config(), model.layers)
    result = lstmgen.build(fixed)
    assert result.framework is not None and result.framework.passed and result.framework.input_shape == [1, 7, 5]
    refused = lstmgen.build(fixed, time_steps=9)  # a fixed model of another length: the object refuses it
    assert refused.framework is not None and refused.framework.passed is None
    assert "refused the input: ValueError" in refused.framework.reason and refused.report.passed


def test_an_unbuilt_keras_layer_is_refused_with_what_to_do() -> None:
    config = fake_keras(TF_FIXTURES / "keras3_lstm.keras").layers[0].get_config()
    with pytest.raises(WeightFileError, match="has no weights yet"):
        lstmgen.build(FakeLSTM(config, []))


def test_keras_layer_with_a_config_lstmgen_refuses_is_refused_as_the_file_is() -> None:
    model = fake_keras(TF_FIXTURES / "keras3_lstm.keras")
    layer = model.layers[0]
    stateful = FakeLSTM({**layer.get_config(), "stateful": True}, layer.get_weights())
    with pytest.raises(WeightFileError, match="stateful=True"):
        lstmgen.build(stateful)
