"""--target ethos-u: vela's rules (targets/ethos_u.py), each refusal, and vela's own verdicts where it is installed."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

import lstmgen.targets.ethos_u as ethos_u
from lstmgen.build import build
from lstmgen.cli.main import main
from lstmgen.errors import ConfigError, VerificationError
from lstmgen.targets.ethos_u import ETHOS_U_RULES, run_vela
from lstmgen.targets.rules import find_problems
from lstmgen.tflite.reader import read_model
from lstmgen.tflite.records import ModelRecord, Quantization
from lstmgen.tflite.slots import Slot
from lstmgen.tflite.writer import serialize

HAVE_VELA = importlib.util.find_spec("ethosu") is not None
HAVE_TFLM = importlib.util.find_spec("tflite_micro") is not None
needs_vela = pytest.mark.skipif(not HAVE_VELA, reason="ethos-u-vela is not installed (pip install 'lstmgen[ethos-u]')")
needs_tflm = pytest.mark.skipif(not HAVE_TFLM, reason="tflite-micro is not installed")
CELL = {"num_units": 8, "input_size": 5, "batch_size": 1, "time_steps": 6}
INT8 = {"quantize": "int8"}


def _build(path: Path, verify: bool = False, **options: Any) -> Path:
    calibration = "random" if options.get("quantize") in ("int8", "int16x8") else "data"
    build(path, CELL | options, calibration=calibration, verify=verify)
    return path


def _record(path: Path) -> ModelRecord:
    m = read_model(path.read_bytes())
    return dataclasses.replace(
        m, tensors=tuple(dataclasses.replace(t, data=None if t.data is None else np.array(t.data)) for t in m.tensors)
    )


def _features(m: ModelRecord) -> set[str]:
    return {p.feature for p in find_problems(m, "ethos-u")}


def test_rule_table_is_well_formed() -> None:
    features = [r.feature for r in ETHOS_U_RULES]
    assert len(features) == len(set(features))
    assert all(callable(r.check) and r.message.endswith(".") for r in ETHOS_U_RULES)


# options built for --target tflite -> the ethos-u rule it must trip
BUILT = {
    "peepholes": (INT8 | {"use_peepholes": True}, "peepholes"),
    "cifg": (INT8 | {"cifg": True}, "CIFG (no input gate)"),
    "projection": (INT8 | {"num_proj": 4}, "projection"),
    "layer_norm": (INT8 | {"layer_norm": True}, "layer normalization"),
    "float": ({}, "float32 LSTM"),
    "float16": ({"quantize": "float16"}, "float32 LSTM"),
    "hybrid": ({"quantize": "dynamic-int8"}, "hybrid (int8 weights, float activations)"),
    "float_io": (INT8 | {"io_type": "float32"}, "operator vela runs on the CPU"),
    "go_backwards": (INT8 | {"go_backwards": True}, "operator vela runs on the CPU"),
    "dynamic_time": (INT8 | {"time_steps": None}, "dynamic shape"),
}


@pytest.mark.parametrize("variant", list(BUILT))
def test_refusals_name_the_rule(tmp_path: Path, variant: str) -> None:
    options, feature = BUILT[variant]
    m = read_model(_build(tmp_path / "m.tflite", **options).read_bytes())
    assert feature in _features(m)
    refusal = "--target ethos-u: Arm Ethos-U \\(vela\\) cannot run.*" + re.escape(feature)
    with pytest.raises(ConfigError, match=refusal):
        _build(tmp_path / "e.tflite", **options, target="ethos-u")
    assert not (tmp_path / "e.tflite").exists()


def _per_channel(m: ModelRecord) -> ModelRecord:
    i = m.operators[0].inputs[Slot.INPUT_TO_FORGET_WEIGHTS]
    t = m.tensors[i]
    q = Quantization(tuple([t.quantization.scale[0]] * t.shape[0]), tuple([0] * t.shape[0]), 0)
    return _edit(m, i, quantization=q)


def _edit(m: ModelRecord, index: int, **changes: Any) -> ModelRecord:
    tensors = list(m.tensors)
    tensors[index] = dataclasses.replace(tensors[index], **changes)
    return dataclasses.replace(m, tensors=tuple(tensors))


def _op(m: ModelRecord, **changes: Any) -> ModelRecord:
    return dataclasses.replace(m, operators=(dataclasses.replace(m.operators[0], **changes), *m.operators[1:]))


EDITED = {
    "per-channel weights": _per_channel,
    "20-input LSTM form": lambda m: _op(m, inputs=m.operators[0].inputs[:20]),
    "intermediates": lambda m: _op(m, intermediates=m.operators[0].intermediates[:4]),
    "non-variable state": lambda m: _edit(m, m.operators[0].inputs[Slot.CELL_STATE], is_variable=False),
    "hidden intermediate differs from the output state": lambda m: _edit(
        m, m.operators[0].intermediates[4], quantization=Quantization((0.5,), (0,))
    ),
    "input and output types differ": lambda m: _edit(m, m.operators[0].outputs[0], dtype=np.dtype(np.int16)),
    "diagonal recurrent weights": lambda m: _edit(
        m, m.operators[0].inputs[Slot.RECURRENT_TO_FORGET_WEIGHTS], shape=(8,), data=np.zeros(8, np.int8)
    ),
    "tensor dimension out of range": lambda m: _edit(m, m.operators[0].outputs[0], shape=(1, 6, 0)),
}


@pytest.mark.parametrize("feature", list(EDITED))
def test_edited_models_are_flagged(tmp_path: Path, feature: str) -> None:
    m = _record(_build(tmp_path / "m.tflite", **INT8))
    assert _features(m) == set()
    assert feature in _features(EDITED[feature](m))


def test_plain_int8_and_int16x8_pass_the_rules(tmp_path: Path) -> None:
    for mode in ("int8", "int16x8"):
        m = read_model(_build(tmp_path / f"{mode}.tflite", quantize=mode).read_bytes())
        assert find_problems(m, "ethos-u") == [], mode


def test_cli_refuses_a_peephole_cell_with_exit_2(tmp_path: Path) -> None:
    args = ["build", "--num-units", "8", "--input-size", "5", "--time-steps", "6", "--use-peepholes"]
    r = CliRunner().invoke(
        main, [*args, "--quantize", "int8", "--calibration", "random", "--target", "ethos-u", "-o", str(tmp_path / "m")]
    )
    assert r.exit_code == 2 and "peepholes" in r.stderr and "Must not use Peephole" in r.stderr
    assert not (tmp_path / "m").exists()


# ------------------------------------------------------------------------------ vela's verdicts


@needs_vela
@needs_tflm
@pytest.mark.parametrize("mode", ["int8", "int16x8"])
def test_vela_puts_lstmgen_models_on_the_npu(tmp_path: Path, mode: str) -> None:
    result = build(tmp_path / "m.tflite", CELL | {"quantize": mode, "target": "ethos-u"}, calibration="random")
    assert result.vela is not None and result.vela["ok"]
    assert result.vela["cpu_operators"] == 0 and result.vela["npu_operators"] > 0
    assert result.vela["sram_kib"] > 0 and result.vela["cycles_total"] > 0
    assert result.verification is not None and result.verification.passed
    assert any("tflite-micro" in r for r in [result.verification.runtime, *result.verification.runtimes])


@needs_vela
@pytest.mark.parametrize("variant", ["peepholes", "cifg", "projection", "layer_norm", "float", "go_backwards"])
def test_vela_agrees_with_each_refusal(tmp_path: Path, variant: str) -> None:
    """What lstmgen refuses, vela really leaves on the CPU."""
    options, _ = BUILT[variant]
    model = _build(tmp_path / "m.tflite", **options)
    if variant == "float":  # vela does not even compile a float LSTM
        with pytest.raises(VerificationError, match="IFM must be INT8 or INT16"):
            run_vela(model)
        return
    report = run_vela(model)
    assert report.cpu_operators >= 1, report


@needs_vela
def test_cpu_fallback_exits_1_and_writes_nothing(tmp_path: Path, monkeypatch: Any) -> None:
    """If vela disagrees with lstmgen's rules (here: the rules are switched off), the build fails with exit 1."""
    monkeypatch.setattr(ethos_u, "ETHOS_U_RULES", ())
    with pytest.raises(VerificationError, match="on the CPU") as info:
        build(
            tmp_path / "m.tflite",
            CELL | INT8 | {"use_peepholes": True, "target": "ethos-u"},
            calibration="random",
            verify=False,
        )
    assert info.value.exit_code == 1 and not (tmp_path / "m.tflite").exists()


@needs_vela
def test_inspect_check_ethos_u(tmp_path: Path) -> None:
    good = _build(tmp_path / "good.tflite", **INT8)
    r = CliRunner().invoke(main, ["inspect", str(good), "--check", "ethos-u", "--json"])
    assert r.exit_code == 0, r.output
    check = json.loads(r.stdout)["target_check"]
    assert check["ok"] and check["vela"]["cpu_operators"] == 0
    bad = _build(tmp_path / "bad.tflite", **INT8, use_peepholes=True)
    r = CliRunner().invoke(main, ["inspect", str(bad), "--check", "ethos-u"])
    assert r.exit_code == 1 and "peepholes: ethos-u-vela" in r.stdout


def test_serialized_edits_stay_readable(tmp_path: Path) -> None:
    m = _per_channel(_record(_build(tmp_path / "m.tflite", **INT8)))
    assert "per-channel weights" in _features(read_model(bytes(serialize(m))))
