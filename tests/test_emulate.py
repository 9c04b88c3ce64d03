"""numerics.emulate: the integer kernels reproduced bit for bit (0 LSB) against LiteRT and TFLM, and the
0-LSB check failing on an emulator that is only a little wrong (one rounding mode, the other runtime's sigmoid)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lstmgen.build import build
from lstmgen.errors import ModelFileError
from lstmgen.numerics.emulate import emulate, emulation_report, litert, make_kernel, run_op, tflm
from lstmgen.numerics.emulate.lut import derived_table, sigmoid_table, table_in_library
from lstmgen.numerics.emulate.report import allowed_lsb, platform_flavour
from lstmgen.runtimes.micro import open_micro_session
from lstmgen.tflite.reader import read_model
from lstmgen.tflite.records import ModelRecord
from lstmgen.tflite.schema import BuiltinOperator as Op

needs_tflm = pytest.mark.skipif(importlib.util.find_spec("tflite_micro") is None, reason="tflite-micro not installed")
FIXTURES = Path(__file__).parent / "fixtures"
B, T, I, N = 2, 10, 5, 16  # noqa: E741
# int8 variants LiteRT's integer kernel takes (lstmgen refuses peepholes together with a projection)
LITERT_VARIANTS: dict[str, dict[str, Any]] = {
    "plain": {},
    "peephole_ln_cifg": {"use_peepholes": True, "layer_norm": True, "cifg": True},
    "projection_clips": {"num_proj": 6, "proj_clip": 0.3, "cell_clip": 1.0},
    "time_major_bidirectional": {"time_major": True, "bidirectional": True},
    "stacked": {"num_layers": 2},
}
TFLM_VARIANTS: dict[str, dict[str, Any]] = {
    "plain": {},
    "int16x8": {"quantize": "int16x8"},
    "int16x8_time_major_clip": {"quantize": "int16x8", "time_major": True, "cell_clip": 1.0},
    "float_io_stacked": {"io_type": "float32", "num_layers": 2},
}


def _build(tmp: Path, name: str, options: dict[str, Any]) -> Path:
    cell = {"num_units": N, "input_size": I, "batch_size": B, "time_steps": T, "quantize": "int8"} | options
    shape = (T, B, I) if cell.get("time_major") else (B, T, I)
    calib = tmp / f"{name}.npy"
    np.save(calib, 2 * np.random.default_rng(5).standard_normal((6, *shape)).astype(np.float32))
    path = tmp / f"{name}.tflite"
    build(path, cell, calibration_data=calib, verify=False)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("emulate")
    every = {f"litert_{k}": v for k, v in LITERT_VARIANTS.items()} | {f"tflm_{k}": v for k, v in TFLM_VARIANTS.items()}
    return {name: _build(tmp, name, options) for name, options in every.items()}


def _inputs(model: ModelRecord, seed: int) -> list[np.ndarray]:
    """A random and a saturating input, in the model input's type."""
    t = model.tensors[model.inputs[0]]
    rng = np.random.default_rng(seed)
    if t.dtype.kind == "f":
        x = 3 * rng.standard_normal(t.shape)
        return [x.astype(np.float32), np.where(x < 0, -1e3, 1e3).astype(np.float32)]
    info = np.iinfo(t.dtype)
    return [
        rng.integers(info.min, info.max + 1, t.shape).astype(t.dtype),
        np.where(rng.random(t.shape) < 0.5, info.min, info.max).astype(t.dtype),
    ]


def _litert(path: Path, x: np.ndarray) -> Any:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(
        str(path),
        experimental_preserve_all_tensors=True,
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    return it.get_tensor


def _tflm(path: Path, x: np.ndarray) -> Any:
    session = open_micro_session(path)
    session.invoke_raw(x)
    model = session.model
    get = session.interpreter.GetTensor
    return lambda i: np.array(get(i, 0)["tensor_data"]).reshape(model.tensors[i].shape)


def max_lsb(path: Path, x: np.ndarray, flavour: str, knobs: Any = None) -> int:
    """Largest difference, in codes, between the interpreter and the emulator over the model's output and
    every LSTM op's output, h and c."""
    model = read_model(path.read_bytes())
    get = _litert(path, x) if flavour == "litert" else _tflm(path, x)
    em = emulate(model, {model.inputs[0]: x}, flavour, knobs=knobs)
    worst = 0
    for k, op in enumerate(model.operators):
        if op.opcode == Op.UNIDIRECTIONAL_SEQUENCE_LSTM:
            pairs = [(op.outputs[0], em.values[op.outputs[0]]), (op.inputs[18], em.final_states[k][0])]
            for index, want in [*pairs, (op.inputs[19], em.final_states[k][1])]:
                got = get(index).astype(np.int64).reshape(want.shape)
                worst = max(worst, int(np.abs(got - want).max()))
    out = model.outputs[0]
    return max(worst, int(np.abs(get(out).astype(np.float64) - em.values[out]).max() > 0))


@pytest.mark.parametrize("name", LITERT_VARIANTS)
def test_litert_int8_kernel_is_reproduced_bit_for_bit(models: dict[str, Path], name: str) -> None:
    path = models[f"litert_{name}"]
    for x in _inputs(read_model(path.read_bytes()), 1):
        assert max_lsb(path, x, "litert") == 0


@needs_tflm
@pytest.mark.parametrize("name", TFLM_VARIANTS)
def test_tflm_kernel_is_reproduced_bit_for_bit(models: dict[str, Path], name: str) -> None:
    path = models[f"tflm_{name}"]
    for x in _inputs(read_model(path.read_bytes()), 2):
        assert max_lsb(path, x, "tflm") == 0


@pytest.mark.parametrize(
    ("flavour", "knobs"),
    [
        ("litert", litert.Knobs(rounding="half-up")),  # one rounding mode flipped: ties of negatives end up
        ("litert", litert.Knobs(activations="lut")),  # TFLM's sigmoid/tanh in LiteRT's kernel
        pytest.param("tflm", tflm.Knobs(rounding="half-up"), marks=needs_tflm),
        pytest.param("tflm", tflm.Knobs(activations="gemmlowp"), marks=needs_tflm),
    ],
)
def test_a_slightly_wrong_emulator_fails_the_0_lsb_check(models: dict[str, Path], flavour: str, knobs: Any) -> None:
    path = models[f"{flavour}_plain"]
    x = _inputs(read_model(path.read_bytes()), 3)[0]
    assert max_lsb(path, x, flavour) == 0
    assert max_lsb(path, x, flavour, knobs) > 0


# tflite-micro's examples/mnist_lstm/trained_lstm_int8.tflite (not committed), where LSTMGEN_THIRD_PARTY_MODELS
# names a directory holding it as tfm_trained_lstm_int8.tflite (as in test_embed)
EXT = Path(os.environ.get("LSTMGEN_THIRD_PARTY_MODELS", "/nonexistent")) / "tfm_trained_lstm_int8.tflite"
CONVERTER_FILES = [FIXTURES / f"{n}.tflite" for n in ("tf/tfint8_lstm", "heads/int8_head", "heads/tf_classifier_int8")]


@pytest.mark.parametrize(
    "path",
    [*CONVERTER_FILES, pytest.param(EXT, marks=pytest.mark.skipif(not EXT.is_file(), reason="not present"))],
    ids=lambda p: p.stem,
)
@pytest.mark.parametrize("flavour", ["litert", pytest.param("tflm", marks=needs_tflm)])
def test_tf_converter_int8_files_are_reproduced_op_by_op(path: Path, flavour: str) -> None:
    """TF's converter output (gate intermediates without scales, heads around the LSTM): each LSTM op fed the
    tensor the interpreter fed it."""
    model = read_model(path.read_bytes())
    for x in _inputs(model, 4):
        get = _litert(path, x) if flavour == "litert" else _tflm(path, x)
        for k, op in enumerate(model.operators):
            if op.opcode == Op.UNIDIRECTIONAL_SEQUENCE_LSTM:
                y, h, c = run_op(make_kernel(model, k, flavour), get(op.inputs[0]))
                assert np.array_equal(y, get(op.outputs[0]))
                assert np.array_equal(h.reshape(-1), get(op.inputs[18]).reshape(-1))
                assert np.array_equal(c.reshape(-1), get(op.inputs[19]).reshape(-1))


@needs_tflm
def test_the_table_read_from_tflite_micro_is_the_derived_one() -> None:
    from lstmgen.numerics.emulate.lut import _library

    lib = _library()
    assert lib is not None
    table = table_in_library(lib)
    assert table is not None and np.array_equal(table, derived_table())
    assert "tflite-micro" in sigmoid_table()[1]


def test_runtimes_refuse_what_their_kernels_refuse(models: dict[str, Path]) -> None:
    model = read_model(models["litert_peephole_ln_cifg"].read_bytes())
    with pytest.raises(ModelFileError, match="TFLM's integer LSTM kernel takes the plain cell"):
        make_kernel(model, 0, "tflm")
    model16 = read_model(models["tflm_int16x8"].read_bytes())
    with pytest.raises(ModelFileError, match="LiteRT has no 16x8 LSTM kernel"):
        make_kernel(model16, 0, "litert")


def test_the_report_names_runtime_flavour_and_lsb(models: dict[str, Path]) -> None:
    path = models["litert_plain"]
    model = read_model(path.read_bytes())
    x = _inputs(model, 6)[0]
    get = _litert(path, x)
    q = model.tensors[model.outputs[0]].quantization
    y = (get(model.outputs[0]).astype(np.float64) - q.zero_point[0]) * q.scale[0]
    qx = model.tensors[model.inputs[0]].quantization
    x_real = (x.astype(np.float64) - qx.zero_point[0]) * qx.scale[0]
    rep = emulation_report(model, "litert", x_real, y)
    assert rep["runtime"] == "litert" and rep["max_lsb"] == 0 and rep["ok"] and rep["flavour"] == "x86-64-sse4.1"
    wrong = emulation_report(model, "litert", x_real, y, knobs=litert.Knobs(activations="lut"))
    assert wrong["max_lsb"] > 0 and not wrong["ok"]
    assert allowed_lsb(read_model(models["litert_peephole_ln_cifg"].read_bytes()), "arm-neon") == 1
    assert platform_flavour("litert", "tflite-runtime", "x86_64") == "x86-64-portable"  # measured: 2.14.0
    assert platform_flavour("litert", "litert", "aarch64") == "arm-neon"


def test_litert_peephole_rounds_as_its_neon_code(models: dict[str, Path], tmp_path: Path) -> None:
    """The x86 wheel runs the peephole's NEON code (through NEON_2_SSE): 16-cell blocks whose last shift rounds
    half up. Peephole scales that leave a one-bit shift make ties frequent: the portable rounding is then off."""
    import math
    from dataclasses import replace

    from lstmgen.tflite.records import Quantization
    from lstmgen.tflite.writer import serialize

    model = read_model(models["litert_peephole_ln_cifg"].read_bytes())
    op = model.operators[0]
    power = round(math.log2(model.tensors[op.inputs[19]].quantization.scale[0]))
    layer_norm = model.tensors[op.intermediates[1]].quantization.scale[0]  # the gate domain with layer norm
    tensors = list(model.tensors)
    rng = np.random.default_rng(5)
    for slot in (10, 11):  # CIFG: no cell-to-input weights
        t = tensors[op.inputs[slot]]
        scale = float(np.float32(2.0 ** (-2 - power) * layer_norm))  # effective multiplier 2^-2
        tensors[op.inputs[slot]] = replace(
            t, data=rng.integers(-3, 4, t.shape).astype(np.int16), quantization=Quantization((scale,), (0,))
        )
    path = tmp_path / "ties.tflite"
    path.write_bytes(bytes(serialize(replace(model, tensors=tuple(tensors)))))
    x = _inputs(read_model(path.read_bytes()), 7)[0]
    assert max_lsb(path, x, "litert") == 0
    assert max_lsb(path, x, "litert", litert.Knobs(neon_peephole=False)) > 0


@needs_tflm
def test_verify_demands_0_lsb_per_runtime_and_says_which_is_off(
    models: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import json
    from functools import partial

    import lstmgen.check.verify as verify_module
    from tests.support import invoke

    path = models["litert_plain"]
    r = invoke("verify", str(path), "--micro", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert [(e["runtime"], e["max_lsb"]) for e in doc["emulation"]] == [("litert", 0), ("tflite-micro", 0)]
    r = invoke("verify", str(path))
    assert "bit-exact [litert]" in r.output and "0 LSB from its kernel's exact emulation" in r.output
    # An emulator a little wrong (TFLM's sigmoid/tanh in LiteRT's kernel) stands for a runtime a little off
    wrong = partial(emulation_report, knobs=litert.Knobs(activations="lut"))
    monkeypatch.setattr(verify_module, "emulation_report", wrong)
    r = invoke("verify", str(path))
    assert r.exit_code == 1 and "litert differs by" in r.output and "LSB from the exact emulation" in r.output


def test_run_runtime_emulate_reproduces_the_interpreter_and_says_which(tmp_path: Path) -> None:
    """run --runtime emulate, streamed in chunks carrying the state, gives LiteRT's numbers exactly and says so;
    a float model is refused with the reason."""
    from tests.support import invoke

    model = tmp_path / "m.tflite"
    np.save(tmp_path / "calib.npy", np.random.default_rng(0).standard_normal((4, B, 7, I)).astype(np.float32))
    build(model, {"num_units": N, "input_size": I, "batch_size": B, "quantize": "int8"},
          calibration_data=tmp_path / "calib.npy", verify=False)  # fmt: skip
    np.save(tmp_path / "x.npy", 2 * np.random.default_rng(1).standard_normal((B, 23, I)).astype(np.float32))
    outs = {}
    for runtime in ("litert", "emulate"):
        y, s = tmp_path / f"y_{runtime}.npy", tmp_path / f"s_{runtime}.npz"
        r = invoke("run", model, "--input", tmp_path / "x.npy", "--output", y, "--final-state", s,
                   "--chunk", "5", "--runtime", runtime)  # fmt: skip
        assert r.exit_code == 0, r.output
        outs[runtime] = (np.load(y), dict(np.load(s)))
        if runtime == "emulate":
            assert "no interpreter ran: lstmgen's bit-exact emulation of LiteRT's integer LSTM kernel" in r.output
    assert np.array_equal(outs["litert"][0], outs["emulate"][0])
    assert all(np.array_equal(outs["litert"][1][k], outs["emulate"][1][k]) for k in "hc")
    build(tmp_path / "f.tflite", {"num_units": N, "input_size": I, "batch_size": B}, verify=False)
    r = invoke("run", tmp_path / "f.tflite", "--input", tmp_path / "x.npy", "--output", tmp_path / "y.npy",
               "--runtime", "emulate")  # fmt: skip
    assert r.exit_code == 2 and "not a full-integer LSTM" in r.output and not (tmp_path / "y.npy").exists()


def test_run_names_the_runtime_whose_integer_output_is_off(models: dict[str, Path], tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """run cross-checks an interpreter's integer output against its kernel's emulation: silent when exact; a
    runtime off by any step is named (stood in for by a slightly wrong emulator)."""
    from functools import partial

    import lstmgen.numerics.emulate as emulate_package
    from tests.support import invoke

    path = models["litert_plain"]
    np.save(tmp_path / "x.npy", np.random.default_rng(2).standard_normal((B, T, I)).astype(np.float32))
    args = ("run", path, "--input", tmp_path / "x.npy", "--output", tmp_path / "y.npy", "--runtime", "litert")
    r = invoke(*args)
    assert r.exit_code == 0 and "LSB" not in r.output, r.output
    wrong = partial(emulate_package.emulation_report, knobs=litert.Knobs(activations="lut"))
    monkeypatch.setattr(emulate_package, "emulation_report", wrong)
    r = invoke(*args)
    assert r.exit_code == 0 and "litert differs by" in r.output and "its own integer kernel" in r.output


@needs_tflm
def test_a_file_litert_reads_wrong_is_named_with_the_reason(models: dict[str, Path], tmp_path: Path) -> None:
    """A third-party-style int8 file whose intermediate 4 (the hidden grid LiteRT's kernel writes) differs from
    the output state's scale (which TFLM's uses): LiteRT's output saturates, TFLM's is right. verify and run say
    which runtime is wrong and why; both runtimes are still bit-exact to their own kernels."""
    import json
    from dataclasses import replace

    from lstmgen.tflite.records import Quantization
    from lstmgen.tflite.writer import serialize
    from tests.support import invoke

    model = read_model(models["litert_plain"].read_bytes())
    op = model.operators[0]
    tensors = list(model.tensors)
    hidden = tensors[op.intermediates[4]]
    q = hidden.quantization
    tensors[op.intermediates[4]] = replace(hidden, quantization=Quantization((q.scale[0] / 8,), q.zero_point))
    path = tmp_path / "third_party_style.tflite"
    path.write_bytes(bytes(serialize(replace(model, tensors=tuple(tensors)))))
    r = invoke("verify", path, "--runtime", "litert", "--json")
    doc = json.loads(r.stdout)
    assert r.exit_code == 1 and doc["emulation"][0]["max_lsb"] == 0
    assert "LiteRT's output is wrong" in doc["error"] and "TFLM's right" in doc["error"]
    r = invoke("verify", path, "--runtime", "micro")
    assert r.exit_code == 0 and "runtimes disagree: LSTM op 0: LiteRT's integer kernel" in r.output
    np.save(tmp_path / "x.npy", np.random.default_rng(3).standard_normal((B, T, I)).astype(np.float32))
    run = ("run", path, "--input", tmp_path / "x.npy", "--output", tmp_path / "y.npy", "--runtime")
    assert "LiteRT's output is wrong" in invoke(*run, "litert").output
    assert "LiteRT's output is wrong" not in invoke(*run, "micro").output
