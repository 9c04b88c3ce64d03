"""Mutation suite for `verify --weights`: wrong models in every mode, each one known defect, must not PASS.

Right models are built by lstmgen in float32, float16, dynamic-int8, int8 and int16x8 (the integer modes
calibrated on representative data, so nothing is a smoke test). Each defect is then made either in the
FILE (read the flatbuffer, change one thing, write it back: the bytes must change) or in the SOURCE (the
weight file the model is checked against), and `lstmgen verify MODEL --weights W` must exit 1 or 2.
The right models, against their own weights, must exit 0 with the same command.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support import invoke, random_tflite_weights

from lstmgen.build import build
from lstmgen.tflite.reader import read_model
from lstmgen.tflite.records import ModelRecord, Options, TensorRecord
from lstmgen.tflite.schema import BuiltinOperator as Op
from lstmgen.tflite.slots import Slot
from lstmgen.tflite.writer import serialize

pytestmark = pytest.mark.runtime
N, I, T = 16, 8, 10  # noqa: E741  (the op's own symbols); N = P: the recurrent matrices are square
MODES = ("none", "float16", "dynamic-int8", "int8", "int16x8")
PEEPHOLE_MODES = ("none", "float16", "dynamic-int8", "int8")  # TFLM's 16x8 kernel has no peepholes
FileMutation = Callable[[ModelRecord], ModelRecord]
# int16x8 LSTMs run in TFLite Micro only; the tflite-runtime pass of `make test` has no tflite-micro.
HAS_MICRO = importlib.util.find_spec("tflite_micro") is not None


class _Built(dict[str, tuple[Path, Path]]):
    """The right models by mode; a mode this environment cannot verify skips the test that asks for it."""

    def __missing__(self, mode: str) -> tuple[Path, Path]:
        pytest.skip(f"{mode} models verify in TFLite Micro, which is not installed here (pip install tflite-micro)")


# ------------------------------------------------------------------------------------------ the right models


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """mode -> (model, its source weights), every one verified by the build itself."""
    d = tmp_path_factory.mktemp("right")
    rng = np.random.default_rng(7)
    calib = d / "calib.npy"
    np.save(calib, rng.standard_normal((16, 1, T, I)).astype(np.float32))
    out = _Built()
    for mode in MODES if HAS_MICRO else [m for m in MODES if m != "int16x8"]:
        weights = d / f"{mode}.npz"
        np.savez(weights, **random_tflite_weights(N, I, peepholes=mode in PEEPHOLE_MODES, seed=3))
        model = d / f"{mode}.tflite"
        kw: dict[str, Any] = {"calibration_data": calib} if mode in ("int8", "int16x8") else {}
        build(model, {"time_steps": T, "quantize": mode}, weights, **kw)
        out[mode] = (model, weights)
    return out


def _verify(model: Path, weights: Path, *extra: object) -> Any:
    return invoke("verify", model, "--weights", weights, "--json", *extra)


@pytest.mark.parametrize("mode", MODES)
def test_right_models_pass_in_every_mode(built: dict[str, tuple[Path, Path]], mode: str) -> None:
    model, weights = built[mode]
    result = _verify(model, weights)
    doc = json.loads(result.stdout)
    assert result.exit_code == 0 and doc["ok"], doc.get("error")
    src = doc["against_source"]
    assert src["tensors"] and all(t["passed"] for t in src["tensors"])
    assert doc["mode"] == mode


# ------------------------------------------------------------------------------------- file-side defects


def _lstm(m: ModelRecord) -> Any:
    return next(op for op in m.operators if op.opcode == Op.UNIDIRECTIONAL_SEQUENCE_LSTM)


def _holder(m: ModelRecord, slot: Slot) -> int:
    """The tensor holding the slot's data (through a float16 DEQUANTIZE)."""
    index = _lstm(m).inputs[slot]
    if m.tensors[index].data is not None:
        return int(index)
    return int(next(op.inputs[0] for op in m.operators if op.opcode == Op.DEQUANTIZE and op.outputs[0] == index))


def _set(m: ModelRecord, index: int, **changes: Any) -> ModelRecord:
    tensors = list(m.tensors)
    tensors[index] = replace(tensors[index], **changes)
    return replace(m, tensors=tuple(tensors))


def _data(m: ModelRecord, slot: Slot) -> tuple[int, TensorRecord, np.ndarray]:
    k = _holder(m, slot)
    t = m.tensors[k]
    return k, t, np.array(t.data)


def add_real(slot: Slot, amount: float) -> FileMutation:
    """Add `amount` (a real value) to every element: codes move by amount / scale for integer tensors."""

    def mutate(m: ModelRecord) -> ModelRecord:
        k, t, data = _data(m, slot)
        if data.dtype.kind == "f":
            return _set(m, k, data=(data + amount).astype(data.dtype))
        step = round(amount / float(t.quantization.scale[0]))  # type: ignore[union-attr]
        info = np.iinfo(data.dtype)
        return _set(m, k, data=np.clip(data.astype(np.int64) + step, info.min, info.max).astype(data.dtype))

    return mutate


def scale_by(slot: Slot, factor: float) -> FileMutation:
    """Integer tensors: the stored scale x factor (the codes unchanged); float tensors: the values x factor."""

    def mutate(m: ModelRecord) -> ModelRecord:
        k, t, data = _data(m, slot)
        if data.dtype.kind == "f":
            return _set(m, k, data=(data * factor).astype(data.dtype))
        q = t.quantization
        assert q is not None
        return _set(m, k, quantization=replace(q, scale=tuple(float(s) * factor for s in q.scale)))

    return mutate


def swap(a: Slot, b: Slot) -> FileMutation:
    """Exchange two slots' tensors (data and quantization together), as a writer's wrong table would."""

    def mutate(m: ModelRecord) -> ModelRecord:
        op = _lstm(m)
        inputs = list(op.inputs)
        inputs[a], inputs[b] = inputs[b], inputs[a]
        ops = tuple(replace(o, inputs=tuple(inputs)) if o is op else o for o in m.operators)
        return replace(m, operators=ops)

    return mutate


def transpose(slot: Slot) -> FileMutation:
    def mutate(m: ModelRecord) -> ModelRecord:
        k, _, data = _data(m, slot)
        return _set(m, k, data=np.ascontiguousarray(data.T))

    return mutate


def zero_point(slot: Slot, shift: int) -> FileMutation:
    def mutate(m: ModelRecord) -> ModelRecord:
        k, t, _ = _data(m, slot)
        q = t.quantization
        assert q is not None
        return _set(m, k, quantization=replace(q, zero_point=tuple(int(z) + shift for z in q.zero_point)))

    return mutate


def one_element(slot: Slot, factor: float) -> FileMutation:
    """The largest element alone x factor (codes for integer tensors): a defect too small for the outputs."""

    def mutate(m: ModelRecord) -> ModelRecord:
        k, _, data = _data(m, slot)
        flat = data.reshape(-1)
        j = int(np.argmax(np.abs(flat.astype(np.float64))))
        if data.dtype.kind == "f":
            flat[j] = flat[j] * factor
        else:
            info = np.iinfo(data.dtype)
            flat[j] = np.clip(round(int(flat[j]) * factor), info.min, info.max)
        return _set(m, k, data=data)

    return mutate


def element_steps(slot: Slot, steps: int) -> FileMutation:
    """One element `steps` codes (integer) or ulps of its own type (float) up: a bias stored as no writer would."""

    def mutate(m: ModelRecord) -> ModelRecord:
        k, _, data = _data(m, slot)
        flat = data.reshape(-1)
        j = flat.size // 2
        for _ in range(steps):
            flat[j] = np.nextafter(flat[j], data.dtype.type(np.inf)) if data.dtype.kind == "f" else flat[j] + 1
        return _set(m, k, data=data)

    return mutate


def drop(*slots: Slot) -> FileMutation:
    """Leave slots empty (-1), as a writer that forgot a feature would."""

    def mutate(m: ModelRecord) -> ModelRecord:
        op = _lstm(m)
        inputs = [-1 if k in slots else i for k, i in enumerate(op.inputs)]
        ops = tuple(replace(o, inputs=tuple(inputs)) if o is op else o for o in m.operators)
        return replace(m, operators=ops)

    return mutate


def output_scale(factor: float) -> FileMutation:
    """The LSTM output's quantization scale x factor (not a constant: only the outputs can show it)."""

    def mutate(m: ModelRecord) -> ModelRecord:
        k = _lstm(m).outputs[0]
        q = m.tensors[k].quantization
        assert q is not None
        return _set(m, k, quantization=replace(q, scale=tuple(float(s) * factor for s in q.scale)))

    return mutate


def grid_of(which: str, scale: float = 1.0, shift: int = 0) -> FileMutation:
    """The LSTM's output (or its output state) on another grid; the integer kernels copy the state's codes
    into the output, so the two must agree (a zero point one off shifts every output by one step)."""

    def mutate(m: ModelRecord) -> ModelRecord:
        op = _lstm(m)
        k = op.outputs[0] if which == "output" else op.inputs[Slot.OUTPUT_STATE]
        q = m.tensors[k].quantization
        assert q is not None
        return _set(m, k, quantization=replace(q, scale=(q.scale[0] * scale,), zero_point=(q.zero_point[0] + shift,)))

    return mutate


def option(name: str, value: Any) -> FileMutation:
    def mutate(m: ModelRecord) -> ModelRecord:
        op = _lstm(m)
        assert op.options is not None
        fields = tuple((k, value if k == name else v) for k, v in op.options.fields)
        fields += ((name, value),) if name not in dict(op.options.fields) else ()
        new = replace(op, options=Options(op.options.table, fields))
        return replace(m, operators=tuple(new if o is op else o for o in m.operators))

    return mutate


def spoof(label: str, then: FileMutation) -> FileMutation:
    """`then`'s defect, plus lstmgen metadata that claims another quantization mode (for a looser check)."""

    def mutate(m: ModelRecord) -> ModelRecord:
        m = then(m)
        meta = dict(m.metadata)
        doc = json.loads(meta.get("lstmgen", b"{}"))
        doc["quantization"] = {"mode": label}
        meta["lstmgen"] = json.dumps(doc).encode()
        return replace(m, metadata=tuple(meta.items()))

    return mutate


FB = Slot.FORGET_GATE_BIAS
FILE_DEFECTS: dict[str, tuple[tuple[str, ...], FileMutation]] = {
    "forget bias +0.2": (MODES, add_real(FB, 0.2)),
    "cell bias -0.2": (MODES, add_real(Slot.CELL_GATE_BIAS, -0.2)),
    "recurrent cell weights scale x1.15": (MODES, scale_by(Slot.RECURRENT_TO_CELL_WEIGHTS, 1.15)),
    "input forget weights scale x1.15": (MODES, scale_by(Slot.INPUT_TO_FORGET_WEIGHTS, 1.15)),
    "recurrent forget weights transposed": (MODES, transpose(Slot.RECURRENT_TO_FORGET_WEIGHTS)),
    "input and forget input weights swapped": (
        MODES,
        swap(Slot.INPUT_TO_INPUT_WEIGHTS, Slot.INPUT_TO_FORGET_WEIGHTS),
    ),
    "i/f peepholes swapped": (PEEPHOLE_MODES, swap(Slot.CELL_TO_INPUT_WEIGHTS, Slot.CELL_TO_FORGET_WEIGHTS)),
    "peepholes dropped": (
        PEEPHOLE_MODES,
        drop(Slot.CELL_TO_INPUT_WEIGHTS, Slot.CELL_TO_FORGET_WEIGHTS, Slot.CELL_TO_OUTPUT_WEIGHTS),
    ),
    "forget bias +0.02": (MODES, add_real(FB, 0.02)),
    "one cell bias element 3 steps off (an unfolded bias)": (MODES, element_steps(Slot.CELL_GATE_BIAS, 3)),
    "one recurrent weight x1.3": (MODES, one_element(Slot.RECURRENT_TO_INPUT_WEIGHTS, 1.3)),
    "cell clip 0.3 the source does not have": (MODES, option("CellClip", 0.3)),
    "activation relu for tanh": (("none", "float16", "dynamic-int8"), option("FusedActivationFunction", 1)),
    "output grid x20 (a coarse output scale)": (("int8", "int16x8"), output_scale(20.0)),
    "output zero point +1 (off the output state's grid)": (("int8", "int16x8"), grid_of("output", shift=1)),
    "output state scale x1.02 (off the output's grid)": (("int8", "int16x8"), grid_of("state", scale=1.02)),
    "cell activation sigmoid (code 6) in an integer cell": (("int8", "int16x8"), option("FusedActivationFunction", 6)),
    "weight zero point +3": (("dynamic-int8", "int8", "int16x8"), zero_point(Slot.INPUT_TO_CELL_WEIGHTS, 3)),
    "spoofed float16 label on a wrong forget bias": (("none",), spoof("float16", add_real(FB, 0.2))),
    "spoofed int8 label on a wrong float16 weight": (
        ("float16",),
        spoof("int8", scale_by(Slot.RECURRENT_TO_OUTPUT_WEIGHTS, 1.15)),
    ),
    "spoofed none label on an int8 scale x1.15": (
        ("int8",),
        spoof("none", scale_by(Slot.RECURRENT_TO_CELL_WEIGHTS, 1.15)),
    ),
}
FILE_CASES = [
    pytest.param(mode, name, marks=[pytest.mark.slow] if mode == "int16x8" else [], id=f"{mode}: {name}")
    for name, (modes, _) in FILE_DEFECTS.items()
    for mode in modes
]


@pytest.mark.parametrize(("mode", "defect"), FILE_CASES)
def test_file_defect_is_caught(built: dict[str, tuple[Path, Path]], tmp_path: Path, mode: str, defect: str) -> None:
    model, weights = built[mode]
    clean = model.read_bytes()
    mutated = bytes(serialize(FILE_DEFECTS[defect][1](read_model(clean, str(model)))))
    assert mutated != clean, "the defect did not reach the file"
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(mutated)
    result = _verify(bad, weights)
    assert result.exit_code in (1, 2), result.output


# ----------------------------------------------------------------------------------- source-side defects


def _source_defect(arrays: dict[str, np.ndarray], defect: str) -> None:
    if defect == "forget bias +0.2 in the source":
        arrays["forget_gate_bias"] = arrays["forget_gate_bias"] + np.float32(0.2)
    elif defect == "recurrent cell weights x1.15 in the source":
        arrays["recurrent_to_cell_weights"] = arrays["recurrent_to_cell_weights"] * np.float32(1.15)
    elif defect == "recurrent output weights transposed in the source":
        arrays["recurrent_to_output_weights"] = np.ascontiguousarray(arrays["recurrent_to_output_weights"].T)
    elif defect == "input and output gates swapped in the source":
        for kind in ("input_to_{}_weights", "recurrent_to_{}_weights", "{}_gate_bias"):
            a, b = kind.format("input"), kind.format("output")
            arrays[a], arrays[b] = arrays[b], arrays[a]


SOURCE_DEFECTS = (
    "forget bias +0.2 in the source",
    "recurrent cell weights x1.15 in the source",
    "recurrent output weights transposed in the source",
    "input and output gates swapped in the source",
)
SOURCE_CASES = [
    pytest.param(mode, name, marks=[pytest.mark.slow] if mode == "int16x8" else [], id=f"{mode}: {name}")
    for name in SOURCE_DEFECTS
    for mode in MODES
]


@pytest.mark.parametrize(("mode", "defect"), SOURCE_CASES)
def test_source_defect_is_caught(built: dict[str, tuple[Path, Path]], tmp_path: Path, mode: str, defect: str) -> None:
    """The model is right for the weights it was built from; the weights it is checked against differ."""
    model, weights = built[mode]
    arrays = dict(np.load(weights))
    _source_defect(arrays, defect)
    other = tmp_path / "other.npz"
    np.savez(other, **arrays)
    assert any(not np.array_equal(v, np.load(weights)[k]) for k, v in arrays.items())
    result = _verify(model, other)
    assert result.exit_code in (1, 2), result.output


@pytest.mark.parametrize("mode", PEEPHOLE_MODES)
def test_source_without_the_files_peepholes_is_caught(
    built: dict[str, tuple[Path, Path]], tmp_path: Path, mode: str
) -> None:
    """The source has no peepholes; the file (built from weights that had them) does."""
    model, weights = built[mode]
    arrays = {k: v for k, v in np.load(weights).items() if not k.startswith("cell_to_")}
    other = tmp_path / "nopeep.npz"
    np.savez(other, **arrays)
    result = _verify(model, other)
    doc = json.loads(result.stdout)
    assert result.exit_code == 1, result.output
    assert any(
        t["shape_error"].startswith("in the file, absent from the source") for t in doc["against_source"]["tensors"]
    )


def test_the_suite_has_at_least_40_defects_over_every_mode() -> None:
    modes = {m for m, _ in ((p.values[0], p.values[1]) for p in FILE_CASES + SOURCE_CASES)}
    assert len(FILE_CASES) + len(SOURCE_CASES) >= 40 and modes == set(MODES)


def test_worst_tensor_is_named(built: dict[str, tuple[Path, Path]], tmp_path: Path) -> None:
    """The failure names the tensor and its error in steps of its own type."""
    model, weights = built["int8"]
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(bytes(serialize(add_real(FB, 0.2)(read_model(model.read_bytes(), str(model))))))
    result = _verify(bad, weights)
    doc = json.loads(result.stdout)
    assert result.exit_code == 1
    assert "forget_gate_bias: off by 0.2" in doc["error"] and "steps of" in doc["error"], doc["error"]


def test_spoofed_label_is_a_note(built: dict[str, tuple[Path, Path]], tmp_path: Path) -> None:
    model, weights = built["none"]
    bad = tmp_path / "label.tflite"
    bad.write_bytes(bytes(serialize(spoof("float16", lambda m: m)(read_model(model.read_bytes(), str(model))))))
    doc = json.loads(_verify(bad, weights).stdout)
    assert doc["ok"] and doc["mode"] == "none"
    assert any("metadata says quantization mode 'float16'" in n for n in doc["notes"])


def test_all_zero_input_is_said(built: dict[str, tuple[Path, Path]], tmp_path: Path) -> None:
    model, weights = built["none"]
    zeros = tmp_path / "zeros.npy"
    np.save(zeros, np.zeros((1, T, I), np.float32))
    doc = json.loads(_verify(model, weights, "--input", zeros).stdout)
    assert any("all zeros" in n for n in doc["notes"])


@pytest.mark.parametrize(("mode", "offset"), [("float16", 0.2), ("dynamic-int8", 0.2), ("int8", 0.5)])
def test_output_bound_alone_catches_a_bias_offset(
    built: dict[str, tuple[Path, Path]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str, offset: float
) -> None:
    """The derived quantized bound is a check of its own: with the tensor check switched off, the output
    against the float source still fails a forget bias offset. In int8 it takes +0.5 (26 output steps
    against a bound of 12): +0.2 (11.6 steps) sits inside the int8 noise, which is why the tensor check
    comes first."""
    import lstmgen.check.verify

    monkeypatch.setattr(lstmgen.check.verify, "check_tensors", lambda *a: [])
    model, weights = built[mode]
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(bytes(serialize(add_real(FB, offset)(read_model(model.read_bytes(), str(model))))))
    doc = json.loads(_verify(bad, weights).stdout)
    src = doc["against_source"]
    assert not doc["ok"] and not src["tensors"] and not src["passed"]
    assert any("vs float source" in c["name"] and not c["passed"] for c in src["checks"])
