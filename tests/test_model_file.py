"""The written flatbuffer: structure, every slot and buffer, alignment, determinism, metadata."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tflite
from support import random_tflite_weights

from lstmgen.build import build
from lstmgen.config import CellConfig
from lstmgen.modelinfo import describe_graph
from lstmgen.pipeline.layout import layout
from lstmgen.tflite.reader import read_model
from lstmgen.tflite.records import DATA_ALIGNMENT
from lstmgen.tflite.slots import WEIGHT_SLOTS, Slot
from lstmgen.tflite.writer import serialize

N, I, P, B = 6, 5, 4, 3  # noqa: E741  (the op's own size names)


def _model(peepholes: bool = True, proj: bool = True, **cfg: object) -> tuple[bytes, dict[str, np.ndarray]]:
    w = random_tflite_weights(N, I, P if proj else None, peepholes=peepholes, projection_bias=proj)
    config = CellConfig(
        num_units=N,
        input_size=I,
        num_proj=P if proj else None,
        use_peepholes=peepholes,
        batch_size=B,
        forget_bias=0.0,
        **cfg,
    )
    return bytes(serialize(layout(config, w))), w


def _weights(model) -> dict[str, np.ndarray]:
    """Slot key -> constant data of the model's only LSTM op, read back through the slot table."""
    op = model.operators[0]
    return {s.slot.key: model.tensors[op.inputs[s.slot]].data for s in WEIGHT_SLOTS if op.inputs[s.slot] >= 0}


def test_every_slot_and_buffer_round_trips() -> None:
    data, w = _model()
    model = read_model(data)
    (op,) = model.operators
    assert op.opcode == tflite.BuiltinOperator.UNIDIRECTIONAL_SEQUENCE_LSTM == 44
    assert len(op.inputs) == 24 and len(op.outputs) == 1 and op.intermediates == ()
    for spec in WEIGHT_SLOTS:
        idx = op.inputs[spec.slot]
        if spec.slot.key in w:
            t = model.tensors[idx]
            assert t.name == f"lstm/{spec.slot.key}"
            assert t.dtype == np.float32 and not t.is_variable
            np.testing.assert_array_equal(t.data, w[spec.slot.key])
        else:
            assert idx == -1, spec.slot.key
    h, c = (model.tensors[op.inputs[s]] for s in (Slot.OUTPUT_STATE, Slot.CELL_STATE))
    assert (h.shape, c.shape) == ((B, P), (B, N))
    assert h.is_variable and c.is_variable and h.data is None and c.data is None


def test_options_table_is_always_written_with_the_activation() -> None:
    data, _ = _model(cell_clip=2.5, proj_clip=0.5, activation="relu")
    op = read_model(data).operators[0]
    assert op.options is not None and op.options.table == "UnidirectionalSequenceLSTMOptions"
    assert op.options.get("FusedActivationFunction") == tflite.ActivationFunctionType.RELU
    assert op.options.get("CellClip") == 2.5 and op.options.get("ProjClip") == 0.5
    tanh = read_model(_model()[0]).operators[0].options
    assert tanh is not None and tanh.get("FusedActivationFunction") == tflite.ActivationFunctionType.TANH


def test_raw_file_structure() -> None:
    data, _ = _model()
    assert data[4:8] == b"TFL3"
    m = tflite.Model.GetRootAs(data, 0)
    assert m.Version() == 3
    assert m.Buffers(0).DataLength() == 0  # the empty sentinel
    code = m.OperatorCodes(0)
    assert code.DeprecatedBuiltinCode() == 44 and code.BuiltinCode() == 44 and code.Version() == 1
    sig = m.SignatureDefs(0)
    assert sig.SignatureKey() == b"serving_default" and sig.Inputs(0).Name() == b"input"
    assert m.Subgraphs(0).Name() == b"main"


def test_weight_buffers_are_16_byte_aligned() -> None:
    data, _ = _model()
    m = tflite.Model.GetRootAs(data, 0)
    checked = 0
    for i in range(1, m.BuffersLength()):
        buf = m.Buffers(i)
        if buf.DataLength():
            # Vector data starts right after its uint32 length, at the offset flatbuffers reports.
            start = buf._tab.Vector(buf._tab.Offset(4))
            assert start % DATA_ALIGNMENT == 0, (i, start)
            checked += 1
    assert checked >= 17


def test_metadata_min_runtime_and_hyperparameters() -> None:
    data, _ = _model(cell_clip=1.5)
    meta = read_model(data).metadata_dict()
    assert meta["min_runtime_version"] == b"1.13.1".ljust(16, b"\0")
    hp = json.loads(meta["lstmgen"])["hyperparameters"]
    assert hp["num_units"] == N and hp["num_proj"] == P and hp["cell_clip"] == 1.5 and hp["output_size"] == P


def test_dynamic_time_axis_has_a_signature() -> None:
    data, _ = _model()
    model = read_model(data)
    lm = describe_graph(model, "m")
    assert lm.input.shape == (B, 1, I)
    assert lm.input.shape_signature == (B, -1, I)
    fixed = read_model(_model(time_steps=7, time_major=True)[0])
    assert fixed.tensors[0].shape == (7, B, I) and fixed.tensors[0].shape_signature is None


def test_identical_inputs_give_identical_bytes(tmp_path: Path) -> None:
    a, b = tmp_path / "a.tflite", tmp_path / "b.tflite"
    for out in (a, b):
        build(out, {"num_units": 8, "input_size": 3, "use_peepholes": True, "num_proj": 5, "seed": 7}, verify=False)
    assert a.read_bytes() == b.read_bytes()
    c = tmp_path / "c.tflite"
    build(c, {"num_units": 8, "input_size": 3, "use_peepholes": True, "num_proj": 5, "seed": 8}, verify=False)
    assert c.read_bytes() != a.read_bytes()


def test_writer_copies_non_contiguous_and_big_endian_data() -> None:
    w = random_tflite_weights(N, I)
    w["input_to_cell_weights"] = np.ascontiguousarray(w["input_to_cell_weights"].T).T  # Fortran order
    w["forget_gate_bias"] = w["forget_gate_bias"].astype(">f4")
    config = CellConfig(num_units=N, input_size=I, forget_bias=0.0)
    model = read_model(bytes(serialize(layout(config, w))))
    got = _weights(model)
    np.testing.assert_array_equal(got["input_to_cell_weights"], w["input_to_cell_weights"])
    np.testing.assert_array_equal(got["forget_gate_bias"], w["forget_gate_bias"])


@pytest.mark.parametrize("forget_bias", [0.0, 1.0, -0.75])
def test_forget_bias_is_folded_into_the_forget_gate_only(forget_bias: float) -> None:
    w = random_tflite_weights(N, I)
    config = CellConfig(num_units=N, input_size=I, forget_bias=forget_bias)
    got = _weights(read_model(bytes(serialize(layout(config, w)))))
    np.testing.assert_allclose(got["forget_gate_bias"], w["forget_gate_bias"] + forget_bias, rtol=0, atol=0)
    for gate in ("input", "cell", "output"):
        np.testing.assert_array_equal(got[f"{gate}_gate_bias"], w[f"{gate}_gate_bias"])


def test_read_model_rejects_non_tflite() -> None:
    from lstmgen.errors import ModelFileError

    with pytest.raises(ModelFileError, match="not a TensorFlow Lite model"):
        read_model(b"\x89PNG\r\n\x1a\n" + b"\0" * 32, "x.png")
    data, _ = _model()
    with pytest.raises(ModelFileError, match="truncated or corrupt"):
        read_model(data[: len(data) // 3], "half.tflite")
