"""Red-team holes in `lstmgen verify`, each an injected defect that must be caught (or a right model kept passing).

Self-verify (no --weights) must refuse a file whose declared types lie about what its kernels write, and a
graph-form file whose metadata lies about its time layout; the int8 cell state's range is judged against what the
source's cell state reaches.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support import ROOT, invoke, random_tflite_weights

from lstmgen.build import build
from lstmgen.tflite.reader import read_model
from lstmgen.tflite.records import ModelRecord
from lstmgen.tflite.schema import BuiltinOperator as Op
from lstmgen.tflite.slots import Slot
from lstmgen.tflite.writer import serialize

pytestmark = pytest.mark.runtime
N, I, T = 8, 4, 6  # noqa: E741  (the op's own symbols)
Mutation = Callable[[ModelRecord], ModelRecord]


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("w")
    w = d / "w.npz"
    np.savez(w, **random_tflite_weights(N, I, seed=5))
    calib = d / "calib.npy"
    np.save(calib, np.random.default_rng(1).standard_normal((8, 1, T, I)).astype(np.float32))
    return w, calib


def _model(tmp: Path, weights: tuple[Path, Path], **options: Any) -> Path:
    w, calib = weights
    out = tmp / "right.tflite"
    kw: dict[str, Any] = {"calibration_data": calib} if options.get("quantize") in ("int8", "int16x8") else {}
    build(out, {"time_steps": T, **options}, w, **kw)
    return out


def _mutated(tmp: Path, model: Path, mutate: Mutation) -> Path:
    clean = model.read_bytes()
    bytes_ = bytes(serialize(mutate(read_model(clean, str(model)))))
    assert bytes_ != clean, "the defect did not reach the file"
    bad = tmp / "bad.tflite"
    bad.write_bytes(bytes_)
    return bad


def retype_output(opcode: int, dtype: Any) -> Mutation:
    """The first `opcode` op's output declared as `dtype` (data and quantization untouched)."""

    def mutate(m: ModelRecord) -> ModelRecord:
        k = next(op.outputs[0] for op in m.operators if op.opcode == opcode)
        tensors = list(m.tensors)
        tensors[k] = replace(tensors[k], dtype=np.dtype(dtype))
        return replace(m, tensors=tuple(tensors))

    return mutate


# ---------------------------------------------------------------------------- 1. declared output types


RETYPED = {
    "float16 weights: DEQUANTIZE writes uint8": ({"quantize": "float16"}, retype_output(Op.DEQUANTIZE, np.uint8)),
    "float16 weights: DEQUANTIZE writes float16": ({"quantize": "float16"}, retype_output(Op.DEQUANTIZE, np.float16)),
    "int8, float I/O: output DEQUANTIZE writes uint8": (
        {"quantize": "int8", "io_type": "float32"},
        retype_output(Op.DEQUANTIZE, np.uint8),
    ),
    "int8, float I/O: input QUANTIZE writes float32": (
        {"quantize": "int8", "io_type": "float32"},
        retype_output(Op.QUANTIZE, np.float32),
    ),
    "float LSTM writes int8": ({}, retype_output(Op.UNIDIRECTIONAL_SEQUENCE_LSTM, np.int8)),
    "graph form: ADD writes int32": ({"form": "graph"}, retype_output(Op.ADD, np.int32)),
    "graph form: MINIMUM (cell clip) writes uint8": (
        {"form": "graph", "cell_clip": 3.0},
        retype_output(Op.MINIMUM, np.uint8),
    ),
}


@pytest.mark.parametrize("defect", RETYPED)
def test_self_verify_refuses_a_lying_output_type(tmp_path: Path, weights: tuple[Path, Path], defect: str) -> None:
    options, mutate = RETYPED[defect]
    model = _model(tmp_path, weights, **options)
    assert invoke("verify", model).exit_code == 0
    result = invoke("verify", _mutated(tmp_path, model, mutate))
    assert result.exit_code == 2 and "the kernel writes" in result.output, result.output


# ------------------------------------------------------------- 3, 4. the integer states' ranges vs the source's


def _with_scales(factor: float, *which: str) -> Mutation:
    """The LSTM's integer state grids `which` ('cell' or 'hidden': the output, the output state and the hidden
    intermediate together, as the kernels need them equal) on a scale x factor: the same function wherever it
    stays within the narrower range, saturating beyond it."""

    def mutate(m: ModelRecord) -> ModelRecord:
        op = next(o for o in m.operators if o.opcode == Op.UNIDIRECTIONAL_SEQUENCE_LSTM)
        picked = {
            "cell": [op.inputs[Slot.CELL_STATE]],
            "hidden": [op.outputs[0], op.inputs[Slot.OUTPUT_STATE], op.intermediates[4]],
        }
        tensors = list(m.tensors)
        for k in (k for w in which for k in picked[w]):
            q = tensors[k].quantization
            assert q is not None
            tensors[k] = replace(tensors[k], quantization=replace(q, scale=(q.scale[0] * factor,)))
        return replace(m, tensors=tuple(tensors))

    return mutate


@pytest.fixture(scope="module")
def int8_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An int8 model with peepholes calibrated on 16 normal sequences (its cell state reaches a few units)."""
    d = tmp_path_factory.mktemp("int8")
    rng = np.random.default_rng(7)
    calib = d / "calib.npy"
    np.save(calib, rng.standard_normal((16, 1, 10, 8)).astype(np.float32))
    weights = d / "w.npz"
    np.savez(weights, **random_tflite_weights(16, 8, peepholes=True, seed=3))
    model = d / "int8.tflite"
    build(model, {"time_steps": 10, "quantize": "int8"}, weights, calibration_data=calib)
    return model, weights


def _warnings(result: Any) -> list[str]:
    doc = json.loads(result.stdout)
    return [n for n in doc["against_source"]["notes"] if n.startswith("warning:")]


def test_right_int8_model_has_no_saturation_warning(int8_model: tuple[Path, Path]) -> None:
    model, weights = int8_model
    for seed in range(3):
        result = invoke("verify", model, "--weights", weights, "--json", "--seed", seed)
        assert result.exit_code == 0 and not _warnings(result), result.stdout


def test_a_halved_cell_state_scale_is_named(tmp_path: Path, int8_model: tuple[Path, Path]) -> None:
    """The file computes the source wherever |c| stays within half its range, and the test input stays there:
    the outputs pass, but inputs drawn like the calibration data leave the range on most rows: a warning."""
    model, weights = int8_model
    bad = _mutated(tmp_path, model, _with_scales(0.5, "cell"))
    result = invoke("verify", bad, "--weights", weights, "--json")
    found = _warnings(result)
    assert result.exit_code in (0, 1) and found, result.stdout
    assert "the LSTM's cell state saturates: the file's int16 grid (scale 2^-" in found[0]
    assert "holds c in [-2, 2]" in found[0] and "--calibration-data" in found[0]


def test_a_saturating_output_grid_is_named_as_the_cause(tmp_path: Path, int8_model: tuple[Path, Path]) -> None:
    model, weights = int8_model
    bad = _mutated(tmp_path, model, _with_scales(0.5, "hidden"))
    result = invoke("verify", bad, "--weights", weights, "--json")
    doc = json.loads(result.stdout)
    assert result.exit_code == 1, result.stdout
    assert "the LSTM's output (hidden state) saturates: the file's int8 grid" in doc["error"], doc["error"]
    assert "not its wiring" in doc["error"] and "--max-error" in doc["error"]
    assert doc["against_source"]["saturated"]


def test_tf_classifier_fails_naming_its_saturated_output() -> None:
    """TF's converter calibrated the output grid to [-0.738, 0.677]; on the test input the source's h reaches
    0.78 (the 0.103 error, 18.5 output steps, is that clip): a FAIL that says so, not a wiring bug."""
    heads = ROOT / "tests" / "fixtures" / "heads"
    result = invoke("verify", heads / "tf_classifier_int8.tflite", "--weights", heads / "tf_classifier.h5")
    assert result.exit_code == 1
    error = result.stderr
    assert "LSTM op 0's output (hidden state) saturates" in error, error
    assert "holds h in [-0.738, 0.677], the source's reaches 0.78" in error and "first at time step 9" in error
    assert "not its wiring" in error and "--max-error" in error
    accepted = invoke("verify", heads / "tf_classifier_int8.tflite", "--weights", heads / "tf_classifier.h5",
                      "--max-error", "0.15")  # fmt: skip
    assert accepted.exit_code == 0, accepted.output


# ---------------------------------------------------------------- 2. the graph form's layout from its graph


def flip_layout(m: ModelRecord) -> ModelRecord:
    """The lstmgen metadata's time_major negated (the graph untouched)."""
    meta = dict(m.metadata)
    doc = json.loads(meta["lstmgen"])
    doc["hyperparameters"]["time_major"] = not doc["hyperparameters"].get("time_major", False)
    meta["lstmgen"] = json.dumps(doc).encode()
    return replace(m, metadata=tuple(meta.items()))


LAYOUTS = {
    "unrolled batch-major": {"batch_size": 2, "time_steps": T},
    "unrolled time-major": {"batch_size": 2, "time_steps": T, "time_major": True},
    "unrolled batch-major, batch 1": {"batch_size": 1, "time_steps": T},
    "unrolled time-major, batch 1": {"batch_size": 1, "time_steps": T, "time_major": True},
    "unrolled time-major, batch = steps": {"batch_size": T, "time_steps": T, "time_major": True},
    "loop batch-major": {"batch_size": 3},
    "loop time-major": {"batch_size": 3, "time_major": True},
    "loop batch-major, batch 1": {"batch_size": 1},
    "unrolled batch-major, --state-io": {"batch_size": 2, "time_steps": T, "state_io": True},
    "loop time-major, --state-io": {"batch_size": 2, "time_major": True, "state_io": True},
    "stacked bidirectional (examples/encoder.npz)": {"batch_size": 2, "time_steps": T, "weights": "encoder"},
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_graph_form_metadata_lying_about_its_layout_is_refused(
    tmp_path: Path, weights: tuple[Path, Path], layout: str
) -> None:
    """Self-verify passed such a file (interpreter and reference both read the graph), and with --weights the
    source ran in the lied layout (a right graph failing, or, on one step of batch 1, nothing shown)."""
    options = dict(LAYOUTS[layout])
    if options.pop("weights", None):
        weights = (ROOT / "examples" / "encoder.npz", weights[1])
    model = _model(tmp_path, weights, form="graph", **options)
    assert invoke("verify", model, "--weights", weights[0]).exit_code == 0
    bad = _mutated(tmp_path, model, flip_layout)
    for extra in ((), ("--weights", weights[0])):
        result = invoke("verify", bad, *extra)
        assert result.exit_code == 2 and "its lstmgen metadata says the input is" in result.output, result.output
    assert invoke("run", bad, "--input", tmp_path / "none.npy", "--output", tmp_path / "y.npy").exit_code == 2


# ---------------------------------------------- 5. int8 layer norm: the gate intermediates' scale is a free choice


@pytest.fixture(scope="module")
def layer_norm_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("ln")
    rng = np.random.default_rng(5)
    w = random_tflite_weights(16, 8, seed=3)
    for g in ("input", "forget", "cell", "output"):
        w[f"{g}_layer_norm_coefficients"] = (1 + rng.standard_normal(16) * 0.5).astype(np.float32)
    weights = d / "ln.npz"
    np.savez(weights, **w)
    calib = d / "calib.npy"
    np.save(calib, np.random.default_rng(7).standard_normal((16, 1, 10, 8)).astype(np.float32))
    model = d / "ln.tflite"
    build(model, {"time_steps": 10, "quantize": "int8", "layer_norm": True}, weights, calibration_data=calib)
    return model, weights


def _intermediate(k: int, scale: float = 1.0, shift: int = 0) -> Mutation:
    def mutate(m: ModelRecord) -> ModelRecord:
        j = next(o for o in m.operators if o.opcode == Op.UNIDIRECTIONAL_SEQUENCE_LSTM).intermediates[k]
        tensors = list(m.tensors)
        q = tensors[j].quantization
        assert q is not None
        q = replace(q, scale=(float(np.float32(q.scale[0] * scale)),), zero_point=(q.zero_point[0] + shift,))
        tensors[j] = replace(tensors[j], quantization=q)
        return replace(m, tensors=tuple(tensors))

    return mutate


def _outputs(model: Path) -> np.ndarray:
    x, y = model.with_suffix(".x.npy"), model.with_suffix(".y.npy")
    np.save(x, np.random.default_rng(1).standard_normal((1, 10, 8)).astype(np.float32))
    assert invoke("run", model, "--input", x, "--output", y).exit_code == 0
    return np.load(y)


@pytest.mark.parametrize("k", range(4))
def test_layer_norm_gate_intermediates(tmp_path: Path, layer_norm_model: tuple[Path, Path], k: int) -> None:
    """Gate intermediates #0-3 (int16, layer norm only) set the scale of the pre-activation the kernel normalizes:
    layer norm divides that scale out, so it is a free choice of int16 headroom, not part of the function. Their
    zero point LiteRT reads and never uses (unidirectional_sequence_lstm.cc: only intermediate 4's, hidden_zp;
    TFLite Micro runs no layer-norm LSTM): +1 gives bit-identical outputs, harmless. A scale 16x too fine
    saturates the int16 pre-activation: the outputs move by tens of steps, and the source check fails it."""
    model, weights = layer_norm_model
    y = _outputs(model)
    same = _mutated(tmp_path, model, _intermediate(k, shift=1))
    assert np.array_equal(_outputs(same), y)
    bad = _mutated(tmp_path, model, _intermediate(k, scale=1 / 16))
    assert not np.array_equal(_outputs(bad), y)
    assert invoke("verify", model, "--weights", weights).exit_code == 0
    assert invoke("verify", bad, "--weights", weights).exit_code == 1


@pytest.mark.parametrize("seed", range(4))
def test_a_right_layer_norm_model_passes_on_every_seed(layer_norm_model: tuple[Path, Path], seed: int) -> None:
    """On seed 0 the bound's random draw of the input's rounding hit layer norm's sensitive direction at the
    first step (4 output steps, x4: 16 steps, 0.1005, beyond the 0.1 cut: nothing compared, FAIL). The runs
    now take that rounding exactly (check/tolerance.py _within_grid): every seed passes."""
    model, weights = layer_norm_model
    assert invoke("verify", model, "--weights", weights, "--seed", seed).exit_code == 0


def test_a_declared_input_too_long_to_test_is_refused_before_allocating(tmp_path: Path) -> None:
    """The model fuzzer's find (seed 11): an input shape edited to 14,221,315 steps made verify hold 4 GB and run
    on for minutes. The size check that guarded --batch-size/--time-steps now guards the file's own shape."""
    model = tmp_path / "m.tflite"
    build(model, {"num_units": 4, "input_size": 3, "time_steps": 5, "return_sequences": False}, verify=False)

    def longer(m: ModelRecord) -> ModelRecord:
        i = m.inputs[0]
        tensors = list(m.tensors)
        tensors[i] = replace(tensors[i], shape=(1, 14_221_315, 3), shape_signature=None)
        return replace(m, tensors=tuple(tensors))

    result = invoke("verify", _mutated(tmp_path, model, longer))
    assert result.exit_code == 2, result.output
    assert "[1, 14221315, 3]" in result.stderr and "GiB" in result.stderr
