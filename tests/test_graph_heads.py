"""Fused LSTM ops inside a larger graph (a converter's head): inspect describes them, verify checks each op alone."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from support import ROOT, TF_FIXTURES, invoke, keras_gates_swapped

from lstmgen.errors import ModelFileError
from lstmgen.modelinfo import read_lstm_model
from lstmgen.runtimes.interpreter import Session
from lstmgen.tflite.reader import read_model

pytestmark = pytest.mark.runtime
HEADS = ROOT / "tests" / "fixtures" / "heads"  # made by make_heads.py from TF's converter output
FLOAT = HEADS / "float_head.tflite"  # TANH -> LSTM (op 1) -> FULLY_CONNECTED -> SOFTMAX, + an empty subgraph
INT8 = HEADS / "int8_head.tflite"  # LSTM (int8) -> LOGISTIC
KERAS_W = TF_FIXTURES / "tfint8_lstm.weights.npz"  # the Keras weights both LSTMs were converted from
N = 16


def _swapped(tmp_path: Path, a: str = "i", b: str = "f") -> Path:
    """The Keras weights with two gate blocks swapped."""
    return keras_gates_swapped(KERAS_W, N, a, b, tmp_path / "swapped.npz")


def test_fixture_keeps_its_empty_subgraph() -> None:
    assert read_model(FLOAT.read_bytes(), str(FLOAT)).empty_subgraphs == 1


def test_inspect_describes_the_lstm_inside_the_graph() -> None:
    result = invoke("inspect", FLOAT)
    assert result.exit_code == 0, result.output
    assert "fused LSTM ops inside a larger graph (op 1: float32 [1, 10, 8] -> float32 [1, 10, 16])" in result.output
    assert "TANH (op 0), FULLY_CONNECTED (op 2), SOFTMAX (op 3)" in result.output
    assert "1 empty extra subgraph(s) ignored" in result.output
    assert "WHILE" not in result.output
    doc = json.loads(invoke("inspect", FLOAT, "--json").stdout)
    graph = doc["graph"]
    assert [o["op"] for o in graph["unchecked_ops"]] == ["TANH", "FULLY_CONNECTED", "SOFTMAX"]
    assert graph["lstm_ops"][0]["op_index"] == 1 and graph["model_outputs"][0]["shape"] == [1, 10, 4]
    assert doc["num_units"] == N and doc["layers"][0]["op_index"] == 1


@pytest.mark.parametrize("model", [FLOAT, INT8], ids=["float", "int8"])
def test_verify_checks_the_lstm_op_and_says_what_it_left_alone(model: Path) -> None:
    result = invoke("verify", model)
    assert result.exit_code == 0, result.output
    assert "checked: UNIDIRECTIONAL_SEQUENCE_LSTM op" in result.output
    assert "NOT checked: the rest of the graph" in result.output
    doc = json.loads(invoke("verify", model, "--json").stdout)
    assert doc["ok"] and any(line.startswith("NOT checked") for line in doc["scope"])


def test_the_lstm_input_is_the_tensor_the_interpreter_computed() -> None:
    result = invoke("verify", FLOAT)
    assert "input: tensor 0 'serving_default_input_1:0' [1, 10, 8], as the interpreter computed it" in result.output


@pytest.mark.parametrize("model", [FLOAT, INT8], ids=["float", "int8"])
def test_verify_against_the_source_passes_for_the_right_weights(model: Path) -> None:
    result = invoke("verify", model, "--weights", KERAS_W, "--json")
    assert result.exit_code == 0, result.output
    src = json.loads(result.stdout)["against_source"]
    assert src["passed"] and src["reference"] == "keras"
    assert src["max_abs_error"] < (1e-5 if model == FLOAT else 0.05)


@pytest.mark.parametrize("model", [FLOAT, INT8], ids=["float", "int8"])
@pytest.mark.parametrize("gates", [("i", "f"), ("c", "o")])
def test_verify_against_the_source_fails_for_swapped_gates(model: Path, gates: tuple[str, str], tmp_path: Path) -> None:
    result = invoke("verify", model, "--weights", _swapped(tmp_path, *gates))
    assert result.exit_code == 1, result.output
    assert "does not compute the source LSTM" in result.output


def test_a_wrong_read_of_the_lstm_input_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The file reference must run on the op's own input: a read that is off by 1 % fails the check."""
    lstm_input = read_lstm_model(FLOAT, head_ok=True).model.operators[1].inputs[0]
    real = Session.tensor

    def off(self: Session, index: int) -> np.ndarray:
        value = real(self, index)
        return value * 1.01 if index == lstm_input else value

    monkeypatch.setattr(Session, "tensor", off)
    result = invoke("verify", FLOAT)
    assert result.exit_code == 1, result.output


def test_commands_that_need_lstm_ops_only_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError) as info:
        read_lstm_model(FLOAT)
    text = str(info.value)
    assert "lstmgen evaluates only the LSTM ops, not FULLY_CONNECTED, SOFTMAX, TANH" in text
    assert "check the fused LSTM ops of such a model in isolation" in text and "WHILE" not in text
    np.save(tmp_path / "x.npy", np.zeros((1, 10, 8), np.float32))
    result = invoke("run", FLOAT, "--input", tmp_path / "x.npy", "--output", tmp_path / "y.npy")
    assert result.exit_code == 0 and np.load(tmp_path / "y.npy").shape == (1, 10, 4), result.output  # the whole model


def test_micro_cannot_check_an_op_inside_a_graph() -> None:
    result = invoke("verify", INT8, "--runtime", "micro")
    assert result.exit_code == 2, result.output
    assert "TensorFlow Lite Micro keeps none" in result.output


def test_stacked_ops_need_as_many_source_cells(tmp_path: Path) -> None:
    stacked = tmp_path / "two.npz"
    w = dict(np.load(KERAS_W))
    second = {**w, "kernel": np.ones((N, 4 * N), np.float32)}  # layer 1 takes layer 0's N features
    np.savez(stacked, **{f"lstm_0/{n}": v for n, v in w.items()}, **{f"lstm_1/{n}": v for n, v in second.items()})
    result = invoke("verify", FLOAT, "--weights", stacked, "--weights-format", "keras", "--num-layers", "2")
    # A stated layer count the model does not have: a FAIL naming the difference (verify reads the model's).
    assert result.exit_code == 1, result.output
    assert "--num-layers 2 was stated, the model has 1" in result.output


def test_json_fits_the_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((ROOT / "schemas" / "report.schema.json").read_text())
    for args in (("inspect", FLOAT, "--json"), ("verify", FLOAT, "--json"), ("verify", INT8, "--json")):
        jsonschema.validate(json.loads(invoke(*args).stdout), schema)


# TF's converter output with the heads users have (make_tf_heads.py): a Keras classifier, float and int8,
# and two stacked LSTMs (the second op's input is the first op's output), with the whole-model .h5 files.
TF_CASES = {
    "classifier": (HEADS / "tf_classifier.tflite", HEADS / "tf_classifier.h5", (), "lstm"),
    "classifier-int8": (
        HEADS / "tf_classifier_int8.tflite",
        HEADS / "tf_classifier.h5",
        ("--max-error", "0.15"),
        "lstm",
    ),
    "stacked": (HEADS / "tf_stacked.tflite", HEADS / "tf_stacked.h5", ("--num-layers", "2"), "lstm_1"),
}


def _h5_swapped(src: Path, layer: str, tmp_path: Path, a: str = "i", b: str = "f") -> Path:
    """A copy of a whole-model Keras .h5 with two gate blocks of one LSTM layer swapped."""
    h5py = pytest.importorskip("h5py")
    dst = tmp_path / src.name
    dst.write_bytes(src.read_bytes())
    order = {"i": 0, "f": 1, "c": 2, "o": 3}
    with h5py.File(dst, "r+") as f:
        for key in ("kernel", "recurrent_kernel", "bias"):
            ds = f[f"model_weights/{layer}/{layer}/lstm_cell/{key}:0"]
            arr = ds[()]
            n = arr.shape[-1] // 4
            sa, sb = (slice(order[g] * n, (order[g] + 1) * n) for g in (a, b))
            out = arr.copy()
            out[..., sa], out[..., sb] = arr[..., sb], arr[..., sa]
            ds[...] = out
    return dst


@pytest.mark.parametrize("case", TF_CASES)
def test_tf_converter_models_with_heads_pass_against_their_keras_files(case: str) -> None:
    model, weights, flags, _ = TF_CASES[case]
    assert invoke("inspect", model).exit_code == 0
    result = invoke("verify", model, "--weights", weights, *flags)
    assert result.exit_code == 0, result.output
    assert "NOT checked: the rest of the graph" in result.output and "against the source (keras)" in result.output


@pytest.mark.parametrize("case", TF_CASES)
@pytest.mark.parametrize("gates", [("i", "f"), ("c", "o")])
def test_tf_converter_models_with_heads_fail_for_swapped_gates(
    case: str, gates: tuple[str, str], tmp_path: Path
) -> None:
    model, weights, flags, layer = TF_CASES[case]
    result = invoke("verify", model, "--weights", _h5_swapped(weights, layer, tmp_path, *gates), *flags)
    assert result.exit_code == 1, result.output
    assert "does not compute the source LSTM" in result.output


def test_the_while_loop_hint_only_without_fused_lstm_ops() -> None:
    """A WHILE loop (TF's Keras 3 LSTM) without a fused op gets the hint; a head around a fused op does not."""
    import tflite

    from lstmgen.modelinfo import describe_graph

    model = read_model(FLOAT.read_bytes(), str(FLOAT))
    tanh = model.operators[0]
    looped = replace(model, operators=(replace(tanh, opcode=tflite.BuiltinOperator.WHILE, options=None),))
    looped = replace(looped, outputs=tanh.outputs)
    with pytest.raises(ModelFileError, match="WHILE loop of small ops.*lstmgen build --weights your_model.keras"):
        describe_graph(looped, "looped.tflite")
    with pytest.raises(ModelFileError) as info:
        describe_graph(model, "head.tflite")
    assert "WHILE" not in str(info.value)


def test_weights_of_another_size_fail_before_the_run() -> None:
    """Source cells whose sizes differ from the op's: the verdict, as for a model of LSTM ops only (was exit 70)."""
    result = invoke("verify", FLOAT, "--weights", HEADS / "tf_classifier.h5")
    assert result.exit_code == 1, result.output
    assert "not this LSTM, its sizes differ" in result.output and "internal error" not in result.output
