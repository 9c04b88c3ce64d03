"""TensorFlow Lite Micro: target rules (targets/micro.py) and the TFLM runner, checked against TFLite and NumPy."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tflite
from support import TF_FIXTURES

from lstmgen.build import build
from lstmgen.config import TARGETS
from lstmgen.errors import ConfigError, LstmgenError, ModelFileError, RuntimeNotAvailable
from lstmgen.numerics.graph import evaluate
from lstmgen.run import run_model, run_model_states
from lstmgen.targets.micro import MICRO_BUILTIN_OPS, MICRO_RULES
from lstmgen.targets.rules import check_target, find_problems
from lstmgen.tflite.reader import read_model
from lstmgen.tflite.records import ModelRecord, OperatorRecord, Options, Quantization, TensorRecord
from lstmgen.tflite.slots import Slot
from lstmgen.tflite.writer import serialize

HAVE_TFLM = importlib.util.find_spec("tflite_micro") is not None
needs_tflm = pytest.mark.skipif(
    not HAVE_TFLM,
    reason="tflite-micro is not installed (pip install tflite-micro; wheels: Linux x86-64, CPython 3.10-3.13)",
)
BO = tflite.BuiltinOperator
F32, F16, I8, I16, I32 = (np.dtype(t) for t in (np.float32, np.float16, np.int8, np.int16, np.int32))
CELL = {"num_units": 6, "input_size": 5, "batch_size": 3, "time_steps": 7}
INT8_MODEL = TF_FIXTURES / "tfint8_lstm.tflite"
TOL = 1e-5


def _build(tmp_path: Path, name: str = "m", **options: Any) -> Path:
    path = tmp_path / f"{name}.tflite"
    build(path, CELL | options, verify=False)
    return path


def _record(path: Path) -> ModelRecord:
    """The model's records with data copied out of the file (so they can be edited and re-serialized)."""
    m = read_model(path.read_bytes())
    return dataclasses.replace(
        m, tensors=tuple(dataclasses.replace(t, data=None if t.data is None else np.array(t.data)) for t in m.tensors)
    )


def _save(m: ModelRecord, path: Path) -> Path:
    path.write_bytes(bytes(serialize(m)))
    return path


def _with_inputs(m: ModelRecord, inputs: list[int]) -> ModelRecord:
    return dataclasses.replace(m, operators=(dataclasses.replace(m.operators[0], inputs=tuple(inputs)),))


def _features(m: ModelRecord) -> set[str]:
    return {p.feature for p in find_problems(m, "micro")}


# ------------------------------------------------------------------------- variants of a plain model


def _twenty_inputs(m: ModelRecord) -> ModelRecord:
    return _with_inputs(m, list(m.operators[0].inputs[:20]))


def _non_variable(m: ModelRecord) -> ModelRecord:
    tensors = list(m.tensors)
    for s in (Slot.OUTPUT_STATE, Slot.CELL_STATE):
        i = m.operators[0].inputs[s]
        tensors[i] = dataclasses.replace(tensors[i], is_variable=False)
    return dataclasses.replace(m, tensors=tuple(tensors))


def _hybrid(m: ModelRecord) -> ModelRecord:
    tensors = list(m.tensors)
    for s in range(1, 9):
        i = m.operators[0].inputs[s]
        t = tensors[i]
        scale = float(np.abs(t.data).max()) / 127
        q = np.round(t.data / scale).astype(np.int8)
        tensors[i] = dataclasses.replace(t, dtype=I8, data=q, quantization=Quantization((scale,), (0,)))
    return dataclasses.replace(m, tensors=tuple(tensors))


# variant -> (rule feature it must trip, what TFLM itself does with it: a kernel message it refuses
# with, or None when it loads and runs anyway)
REFUSED_BY_TFLM = {
    "twenty_inputs": (_twenty_inputs, "20-input LSTM form", "node->inputs->size != 24"),
    "non_variable": (_non_variable, "non-variable state", "is_variable was not true"),
}


# ------------------------------------------------------------------------------------ rule table


def test_rule_table_is_well_formed() -> None:
    features = [r.feature for r in MICRO_RULES]
    assert len(features) == len(set(features))
    assert all(callable(r.check) and r.message.endswith(".") for r in MICRO_RULES)
    names = {k for k in vars(tflite.BuiltinOperator) if not k.startswith("_")}
    assert names >= MICRO_BUILTIN_OPS
    assert "BIDIRECTIONAL_SEQUENCE_LSTM" not in MICRO_BUILTIN_OPS
    assert {"UNIDIRECTIONAL_SEQUENCE_LSTM", "REVERSE_V2", "STRIDED_SLICE", "CONCATENATION"} <= MICRO_BUILTIN_OPS
    assert TARGETS == ("tflite", "micro", "ethos-u")


def test_plain_model_passes_every_target(tmp_path: Path) -> None:
    for options in ({}, {"time_major": True}, {"cell_clip": 3.0}):
        m = read_model(_build(tmp_path, **options).read_bytes())
        assert check_target(m, "micro") == []
        assert check_target(m, "tflite") == []


def test_unknown_target_is_an_error(tmp_path: Path) -> None:
    m = read_model(_build(tmp_path).read_bytes())
    with pytest.raises(ConfigError, match="target 'edgetpu' is unknown; choose one of tflite, micro"):
        check_target(m, "edgetpu")


@pytest.mark.parametrize(
    ("options", "feature", "words"),
    [
        ({"use_peepholes": True}, "peepholes", "cell_to_input_weights, cell_to_forget_weights, cell_to_output_weights"),
        ({"num_proj": 4}, "projection", "projection_weights"),
        ({"use_peepholes": True, "num_proj": 4}, "projection", "ValidateTensorStatus"),
        ({"cifg": True}, "CIFG (no input gate)", "no input_to_input_weights, recurrent_to_input_weights"),
        ({"layer_norm": True}, "layer normalization", "input_layer_norm_coefficients"),
        ({"activation": "relu"}, "cell activation other than TANH", "relu"),
        ({"time_steps": None}, "dynamic shape", "shape_signature [3, -1, 5]"),
        ({"dynamic_batch": True}, "dynamic shape", "shape_signature [-1, 7, 5]"),
    ],
    ids=[
        "peepholes",
        "projection",
        "peephole+projection",
        "cifg",
        "layer_norm",
        "relu",
        "dynamic time",
        "dynamic batch",
    ],
)
def test_built_variants_are_flagged(tmp_path: Path, options: dict[str, Any], feature: str, words: str) -> None:
    m = read_model(_build(tmp_path, **options).read_bytes())
    problems = check_target(m, "micro")
    hit = [p for p in problems if p.startswith(feature + " (")]
    assert hit, problems
    assert words in hit[0]
    assert check_target(m, "tflite") == []


@pytest.mark.parametrize("variant", [*REFUSED_BY_TFLM, "hybrid"])
def test_edited_variants_are_flagged(tmp_path: Path, variant: str) -> None:
    if variant == "hybrid":
        edit, feature = _hybrid, "hybrid (int8 weights, float activations)"
    else:
        edit, feature, _ = REFUSED_BY_TFLM[variant]
    assert feature in _features(edit(_record(_build(tmp_path))))


def test_ops_without_kernel_and_unsupported_types_are_flagged() -> None:
    x = TensorRecord("x", (2, 4, 3), F32)
    bidi = ModelRecord(
        (x, TensorRecord("y", (2, 4, 3), F32)),
        (OperatorRecord(BO.BIDIRECTIONAL_SEQUENCE_LSTM, 1, (0,), (1,)),),
        (0,),
        (1,),
    )
    (p,) = check_target(bidi, "micro")
    assert p.startswith("operator without a TFLM kernel (operator 0 BIDIRECTIONAL_SEQUENCE_LSTM)")
    f16 = ModelRecord(
        (TensorRecord("w", (2,), F16, data=np.ones(2, F16)), TensorRecord("y", (2,), F32)),
        (OperatorRecord(BO.DEQUANTIZE, 1, (0,), (1,)),),
        (),
        (1,),
    )
    (p,) = check_target(f16, "micro")
    assert "DEQUANTIZE float16->float32" in p and "no float16" in p


def _edit_tensor(m: ModelRecord, index: int, **changes: Any) -> ModelRecord:
    tensors = list(m.tensors)
    tensors[index] = dataclasses.replace(tensors[index], **changes)
    return dataclasses.replace(m, tensors=tuple(tensors))


def test_quantized_lstm_rules() -> None:
    m = _record(INT8_MODEL)
    op = m.operators[0]
    c = m.tensors[op.inputs[Slot.CELL_STATE]]
    assert c.quantization.scale == (2.0**-14,)
    odd = _edit_tensor(m, op.inputs[Slot.CELL_STATE], quantization=Quantization((1e-4,), (0,)))
    assert _features(odd) == {"int16 cell-state scale not a power of two"}
    wide = _edit_tensor(m, op.inputs[Slot.CELL_STATE], dtype=I32)
    (p,) = check_target(wide, "micro")
    assert p.startswith("LSTM type combination (operator 0: cell_state is int32, expected int16)")
    float_weights = _edit_tensor(m, op.inputs[Slot.INPUT_TO_FORGET_WEIGHTS], dtype=F32)
    assert "operator 0: int8 input with float32 weights" in check_target(float_weights, "micro")[0]
    empty_out = _edit_tensor(m, op.outputs[0], shape=())
    assert _features(empty_out) == {"LSTM output shape not stored"}


def test_int8_concatenation_must_not_rescale() -> None:
    a = TensorRecord("a", (2, 3), I8, quantization=Quantization((0.05,), (3,)))
    b = dataclasses.replace(a, name="b", data=np.zeros((2, 3), np.int8))
    y = TensorRecord("y", (2, 6), I8, quantization=Quantization((0.1,), (3,)))
    m = ModelRecord(
        (a, b, y),
        (OperatorRecord(BO.CONCATENATION, 1, (0, 1), (2,), Options("ConcatenationOptions", (("Axis", 1),))),),
        (0,),
        (2,),
    )
    (p,) = check_target(m, "micro")
    assert p.startswith("int8 CONCATENATION that rescales (operator 0: input tensor 0 has (scale, zero point) (0.05")
    same = dataclasses.replace(m, tensors=(a, b, dataclasses.replace(y, quantization=a.quantization)))
    assert check_target(same, "micro") == []


# ------------------------------------------------------------------------------ TFLM experiments


TOPOLOGIES = {
    "batch-major": {"cell_clip": 2.0},
    "time-major": {"time_major": True},
    "go_backwards": {"go_backwards": True},
    "last step": {"return_sequences": False},
    "bidirectional": {"bidirectional": True},
    "2 layers": {"num_layers": 2},
    "2 bidirectional layers, last step": {"bidirectional": True, "num_layers": 2, "return_sequences": False},
}


@needs_tflm
@pytest.mark.parametrize("topology", list(TOPOLOGIES))
def test_float_models_match_tflite_and_reference(tmp_path: Path, topology: str) -> None:
    from lstmgen.runtimes.micro import open_micro_session

    path = _build(tmp_path, **TOPOLOGIES[topology])
    m = read_model(path.read_bytes())
    assert check_target(m, "micro") == []
    b, t, i = CELL["batch_size"], CELL["time_steps"], CELL["input_size"]
    shape = (t, b, i) if TOPOLOGIES[topology].get("time_major") else (b, t, i)
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32) * 2
    y_lite, states_lite = run_model_states(path, x)
    ev = evaluate(m, {m.inputs[0]: x})
    lstm_ops = [k for k, op in enumerate(m.operators) if op.opcode == BO.UNIDIRECTIONAL_SEQUENCE_LSTM]
    s = open_micro_session(path)
    assert s.runtime == "tflite-micro" and s.version.startswith("0.dev")
    y = s.invoke(x)
    states = s.state()
    assert y.dtype == np.float32 and y.shape == y_lite.shape
    np.testing.assert_allclose(y, y_lite, atol=TOL, rtol=0)
    np.testing.assert_allclose(y, ev.values[m.outputs[0]], atol=TOL, rtol=0)
    assert len(states) == len(states_lite) == len(lstm_ops)
    for (h, c), (h_lite, c_lite), k in zip(states, states_lite, lstm_ops, strict=True):
        h_ref, c_ref = ev.final_states[k]
        for got, lite, ref in ((h, h_lite, h_ref), (c, c_lite, c_ref)):
            np.testing.assert_allclose(got.reshape(lite.shape), lite, atol=TOL, rtol=0)
            np.testing.assert_allclose(got.reshape(ref.shape), ref, atol=TOL, rtol=0)


@needs_tflm
def test_state_persists_across_invokes_and_reset_zeroes_it(tmp_path: Path) -> None:
    from lstmgen.runtimes.micro import open_micro_session

    path = _build(tmp_path)
    x = np.random.default_rng(2).standard_normal((3, 14, 5)).astype(np.float32)
    y_lite, h_lite, c_lite = run_model(path, x, chunk=7)  # TFLite, two invokes carrying the state
    s = open_micro_session(path)
    y = np.concatenate([s.invoke(x[:, :7]), s.invoke(x[:, 7:])], axis=1)
    ((h, c),) = s.state()
    np.testing.assert_allclose(y, y_lite, atol=TOL, rtol=0)
    np.testing.assert_allclose(h, h_lite, atol=TOL, rtol=0)
    np.testing.assert_allclose(c, c_lite, atol=TOL, rtol=0)
    s.reset()
    assert not np.any(s.state()[0][0]) and not np.any(s.state()[0][1])
    np.testing.assert_array_equal(s.invoke(x[:, :7]), y[:, :7])


@needs_tflm
def test_session_refuses_what_tflm_cannot_do(tmp_path: Path) -> None:
    from lstmgen.runtimes.micro import open_micro_session

    s = open_micro_session(_build(tmp_path))
    with pytest.raises(ModelFileError, match=r"only with its stored input shape \[3, 7, 5\]"):
        s.invoke(np.zeros((3, 8, 5), np.float32))
    with pytest.raises(LstmgenError, match="can only write subgraph inputs"):
        s.reset({0: (np.ones((3, 6), np.float32), None)})
    s.reset({0: (np.zeros((3, 6), np.float32), np.zeros((3, 6), np.float32))})  # zeros: what TFLM does anyway
    with pytest.raises(ModelFileError, match="TensorFlow Lite Micro cannot run this model:\n  - peepholes"):
        open_micro_session(_build(tmp_path, "p", use_peepholes=True))


@needs_tflm
@pytest.mark.parametrize("variant", list(REFUSED_BY_TFLM))
def test_tflm_itself_refuses_the_flagged_variants(tmp_path: Path, variant: str) -> None:
    from lstmgen.runtimes.micro import open_micro_session

    edit, _, message = REFUSED_BY_TFLM[variant]
    path = _save(edit(_record(_build(tmp_path))), tmp_path / f"{variant}.tflite")
    with pytest.raises(ModelFileError, match="refused the model") as err:
        open_micro_session(path, check=False)
    assert message in str(err.value)


@needs_tflm
@pytest.mark.parametrize("options", [{"use_peepholes": True}, {"num_proj": 4}])
def test_tflm_itself_refuses_peepholes_and_projection(tmp_path: Path, options: dict[str, Any]) -> None:
    from lstmgen.runtimes.micro import open_micro_session

    with pytest.raises(ModelFileError, match=r"lstm_eval.cc:\d+ internal_tensors_\[i\] == nullptr"):
        open_micro_session(_build(tmp_path, **options), check=False)


@needs_tflm
def test_silently_wrong_variants_run_in_tflm(tmp_path: Path) -> None:
    """Why hybrid and non-tanh activations are rules: TFLM loads them and returns wrong numbers."""
    from lstmgen.runtimes.micro import open_micro_session

    x = np.random.default_rng(3).standard_normal((3, 7, 5)).astype(np.float32)
    plain = _build(tmp_path)
    hybrid = _save(_hybrid(_record(plain)), tmp_path / "hybrid.tflite")
    y = open_micro_session(hybrid, check=False).invoke(x)
    y_plain = run_model(plain, x)[0]
    assert not np.allclose(y, y_plain, atol=0.1, equal_nan=False)  # NaN or garbage, not a quantization error
    outs = []
    for act in ("relu", "relu6", "relu_n1_to_1"):
        path = _build(tmp_path, act, activation=act)
        outs.append(open_micro_session(path, check=False).invoke(x))
        assert np.abs(outs[-1] - run_model(path, x)[0]).max() > 0.1
    np.testing.assert_array_equal(outs[0], outs[1])  # the activation is simply not applied
    np.testing.assert_array_equal(outs[0], outs[2])


@needs_tflm
def test_dynamic_time_runs_only_with_the_placeholder_size(tmp_path: Path) -> None:
    from lstmgen.runtimes.micro import open_micro_session

    s = open_micro_session(_build(tmp_path, time_steps=None), check=False)
    assert s.input_shape == (3, 1, 5)
    assert s.invoke(np.zeros((3, 1, 5), np.float32)).shape == (3, 1, 6)
    with pytest.raises(ModelFileError, match="no tensor resizing"):
        s.invoke(np.zeros((3, 7, 5), np.float32))


def _int8_litert(path: Path, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Raw int8 output and h state from ai-edge-litert's builtin kernels (no delegate)."""
    ai = pytest.importorskip("ai_edge_litert.interpreter", reason="ai-edge-litert is the int8 oracle")
    m = read_model(path.read_bytes())
    try:
        lite = ai.Interpreter(
            model_path=str(path), experimental_op_resolver_type=ai.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        )
        lite.allocate_tensors()
    except RuntimeError as exc:
        raise ModelFileError(str(exc)) from None
    lite.reset_all_variables()
    lite.set_tensor(m.inputs[0], x)
    lite.invoke()
    return lite.get_tensor(m.outputs[0]), lite.get_tensor(m.operators[0].inputs[Slot.OUTPUT_STATE])


@needs_tflm
def test_converter_int8_model_matches_litert_within_one_lsb(tmp_path: Path) -> None:
    from lstmgen.runtimes.micro import open_micro_session

    io = np.load(TF_FIXTURES / "tfint8_lstm.io.npz")
    x = io["x_int8"]
    m = read_model(INT8_MODEL.read_bytes())
    assert check_target(m, "micro") == []
    assert len(m.operators[0].intermediates) == 5
    y_lite, h_lite = _int8_litert(INT8_MODEL, x)
    s = open_micro_session(INT8_MODEL)
    y = s.invoke_raw(x)
    ((h, c),) = s.state_raw()
    assert y.dtype == np.int8 and h.dtype == np.int8 and c.dtype == np.int16
    assert np.abs(y.astype(int) - y_lite.astype(int)).max() <= 1
    assert np.abs(h.astype(int) - h_lite.astype(int)).max() <= 1
    assert np.abs(y.astype(int) - io["y_int8_raw"].astype(int)).max() <= 1  # TF's own int8 run
    s.reset()
    real = s.invoke(io["x"])  # real-valued API: quantized in, dequantized out
    assert np.abs(real - io["y_tf_int8"]).max() <= 1.01 * m.tensors[m.outputs[0]].quantization.scale[0]
    # TFLM never reads the 5 intermediates (TFLite requires them): the same result without them.
    stripped = dataclasses.replace(m, operators=(dataclasses.replace(m.operators[0], intermediates=()),))
    path = _save(stripped, tmp_path / "no_intermediates.tflite")
    np.testing.assert_array_equal(open_micro_session(path).invoke_raw(x), y)
    with pytest.raises(ModelFileError, match="num_intermediate_tensors == 5"):
        _int8_litert(path, x)


def _single_op(
    opcode: int, x: TensorRecord, consts: tuple[TensorRecord, ...], y: TensorRecord, options: Options | None = None
) -> ModelRecord:
    tensors = (x, *consts, y)
    op = OperatorRecord(opcode, 1, tuple(range(len(tensors) - 1)), (len(tensors) - 1,), options)
    return ModelRecord(tensors, (op,), (0,), (len(tensors) - 1,))


Q8, Q16 = Quantization((0.05,), (3,)), Quantization((0.001,), (0,))


def _op_cases() -> dict[str, ModelRecord]:
    cases: dict[str, ModelRecord] = {}
    for dt in (F32, I8, I16):
        q = {F32: None, I8: Q8, I16: Q16}[dt]
        x, tag = TensorRecord("x", (2, 4, 3), dt, quantization=q), dt.name
        cases[f"REVERSE_V2 {tag}"] = _single_op(
            BO.REVERSE_V2,
            x,
            (TensorRecord("axis", (1,), I32, data=np.array([1], np.int32)),),
            dataclasses.replace(x, name="y"),
        )
        slc = tuple(
            TensorRecord(n, (3,), I32, data=np.array(v, np.int32))
            for n, v in (("b", [0, -1, 0]), ("e", [2, 4, 3]), ("s", [1, 1, 1]))
        )
        cases[f"STRIDED_SLICE {tag}"] = _single_op(
            BO.STRIDED_SLICE,
            x,
            slc,
            TensorRecord("y", (2, 3), dt, quantization=q),
            Options("StridedSliceOptions", (("BeginMask", 5), ("EndMask", 5), ("ShrinkAxisMask", 2))),
        )
        cases[f"CONCATENATION {tag}"] = _single_op(
            BO.CONCATENATION,
            x,
            (dataclasses.replace(x, name="c", data=np.ones((2, 4, 3), dt)),),
            TensorRecord("y", (2, 4, 6), dt, quantization=q),
            Options("ConcatenationOptions", (("Axis", 2),)),
        )
    x32 = TensorRecord("x", (2, 4, 3), F32)
    cases["QUANTIZE float32->int8"] = _single_op(
        BO.QUANTIZE, x32, (), TensorRecord("y", (2, 4, 3), I8, quantization=Q8)
    )
    cases["QUANTIZE float32->int16"] = _single_op(
        BO.QUANTIZE, x32, (), TensorRecord("y", (2, 4, 3), I16, quantization=Q16)
    )
    cases["DEQUANTIZE int8->float32"] = _single_op(
        BO.DEQUANTIZE, TensorRecord("x", (2, 4, 3), I8, quantization=Q8), (), dataclasses.replace(x32, name="y")
    )
    cases["DEQUANTIZE int16->float32"] = _single_op(
        BO.DEQUANTIZE, TensorRecord("x", (2, 4, 3), I16, quantization=Q16), (), dataclasses.replace(x32, name="y")
    )
    return cases


@needs_tflm
@pytest.mark.parametrize("case", list(_op_cases()))
def test_graph_ops_run_in_tflm_as_in_litert(tmp_path: Path, case: str) -> None:
    """The ops around a fused LSTM (go_backwards, last step, bidirectional, int8 I/O) have TFLM kernels."""
    from tflite_micro import runtime as tr

    ai = pytest.importorskip("ai_edge_litert.interpreter", reason="ai-edge-litert is the oracle")
    m = _op_cases()[case]
    assert check_target(m, "micro") == []
    path = _save(m, tmp_path / "op.tflite")
    x_t = m.tensors[0]
    rng = np.random.default_rng(4)
    x = rng.standard_normal(x_t.shape).astype(F32)
    x = x.astype(x_t.dtype) if x_t.dtype == F32 else np.round(x * 20).astype(x_t.dtype)
    micro = tr.Interpreter.from_file(str(path), arena_size=1 << 16)
    micro.set_input(x, 0)
    micro.invoke()
    lite = ai.Interpreter(model_path=str(path), experimental_op_resolver_type=ai.OpResolverType.BUILTIN_REF)
    lite.allocate_tensors()
    lite.set_tensor(lite.get_input_details()[0]["index"], x)
    lite.invoke()
    np.testing.assert_array_equal(micro.get_output(0), lite.get_tensor(lite.get_output_details()[0]["index"]))


def test_missing_tflite_micro_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    from lstmgen.runtimes import micro as micro_runtime

    real = importlib.import_module

    def fake(name: str, *args: Any) -> Any:
        if name == "tflite_micro":
            raise ImportError("No module named 'tflite_micro'")
        return real(name, *args)

    monkeypatch.setattr(micro_runtime.importlib, "import_module", fake)
    with pytest.raises(RuntimeNotAvailable, match="pip install tflite-micro"):
        micro_runtime.open_micro_session("whatever.tflite")
