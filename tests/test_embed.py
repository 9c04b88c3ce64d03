"""`lstmgen embed` / `build --embed`: firmware sources that compile warning-free and hold exactly the model bytes."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from lstmgen.build import build
from lstmgen.cli.main import main
from lstmgen.embed import DYNAMIC_RULE, RESOLVER_BY_NAME, arena_with_margin, embed, symbol_for
from lstmgen.errors import ConfigError, ModelFileError
from lstmgen.targets.micro import MICRO_BUILTIN_OPS, MICRO_RULES

needs_tflm = pytest.mark.skipif(importlib.util.find_spec("tflite_micro") is None, reason="tflite-micro not installed")
GXX = shutil.which("g++")
needs_gxx = pytest.mark.skipif(GXX is None, reason="g++ is not installed")
CELL = {"num_units": 8, "input_size": 5, "batch_size": 1, "time_steps": 6}

MAIN = """#include <cstdint>
#include <cstdio>
#include "{header}"
int main(int argc, char** argv) {{
  if (argc != 2) return 2;
  std::FILE* f = std::fopen(argv[1], "wb");
  if (f == nullptr) return 3;
  std::fwrite({symbol}, 1, {symbol}_len, f);
  std::fclose(f);
  static unsigned char arena[{symbol}_arena_size];  // the size is a compile-time constant
  std::printf("%u %u\\n", static_cast<unsigned>(reinterpret_cast<std::uintptr_t>({symbol}) % 16),
              static_cast<unsigned>(sizeof(arena)));
  return 0;
}}
"""


def _compile_and_dump(tmp_path: Path, cc: Path, symbol: str) -> tuple[bytes, int, int]:
    main_cc = tmp_path / "main.cc"
    main_cc.write_text(MAIN.format(header=cc.with_suffix(".h").name, symbol=symbol))
    exe = tmp_path / "dump"
    flags = ["-std=c++17", "-Wall", "-Wextra", "-pedantic", "-Werror", f"-I{cc.parent}"]
    proc = subprocess.run([GXX, *flags, str(main_cc), str(cc), "-o", str(exe)], capture_output=True, text=True)
    assert proc.returncode == 0 and not proc.stderr, proc.stderr  # warning-free
    out = tmp_path / "back.bin"
    run = subprocess.run([str(exe), str(out)], capture_output=True, text=True, check=True)
    align, arena = (int(v) for v in run.stdout.split())
    return out.read_bytes(), align, arena


@needs_tflm
@needs_gxx
@pytest.mark.parametrize(
    "options", [{"quantize": "int8"}, {"quantize": "int16x8"}, {"quantize": "int8", "io_type": "float32"}, {}]
)
def test_embed_compiles_and_holds_the_model(tmp_path: Path, options: dict) -> None:
    model = tmp_path / "m.tflite"
    build(model, CELL | options, calibration="random" if options else "data", verify=False)
    (tmp_path / "fw").mkdir()
    result = embed(model, tmp_path / "fw" / "lstm_model.cc", name="g_lstm")
    data, align, arena = _compile_and_dump(tmp_path, tmp_path / "fw" / "lstm_model.cc", "g_lstm")
    assert data == model.read_bytes() and align == 0
    assert arena == result.arena_size == arena_with_margin(result.arena_measured) and result.arena_measured > 0
    header = (tmp_path / "fw" / "lstm_model.h").read_text()
    assert "op_resolver.AddUnidirectionalSequenceLSTM();" in header
    if options.get("io_type") == "float32":
        assert "op_resolver.AddQuantize();" in header and "op_resolver.AddDequantize();" in header
        assert "MicroMutableOpResolver<3>" in header
    dtype = {"int8": "int8", "int16x8": "int16"}.get(options.get("quantize", ""), "float32")
    if "io_type" not in options:
        assert (
            f"input 0 'lstm/input': {dtype} [1, 6, 5]" in header
            and f"output 0 'lstm/output': {dtype} [1, 6, 8]" in header
        )


@pytest.mark.slow
@needs_tflm
def test_arena_is_what_tflm_measures(tmp_path: Path) -> None:
    """The measured arena holds at least the activations (int8 input and output) once they dominate."""
    sizes = []
    for steps in (6, 600):
        model = tmp_path / f"m{steps}.tflite"
        build(model, CELL | {"time_steps": steps, "quantize": "int8"}, calibration="random", verify=False)
        sizes.append(embed(model, tmp_path / f"m{steps}.cc").arena_measured)
    assert sizes[1] > sizes[0] and sizes[1] >= 600 * (5 + 8)  # int8 input [1, 600, 5] and output [1, 600, 8]


@pytest.mark.slow
@needs_tflm
@needs_gxx
def test_build_embed_and_cli(tmp_path: Path) -> None:
    args = ["build", "--num-units", "8", "--input-size", "5", "--time-steps", "6", "--quantize", "int8"]
    cc = tmp_path / "lstm_model.cc"
    model = tmp_path / "m.tflite"
    r = CliRunner().invoke(
        main, [*args, "--calibration", "random", "--target", "micro", "-o", str(model), "--embed", str(cc), "--json"]
    )
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["embed"]["symbol"] == "lstm_model" and doc["embed"]["model_bytes"] == model.stat().st_size
    data, align, _ = _compile_and_dump(tmp_path, cc, "lstm_model")
    assert data == model.read_bytes() and align == 0
    assert "from m.tflite" in cc.with_suffix(".h").read_text()  # named after the model, not the temp file
    r = CliRunner().invoke(main, ["embed", str(model), "-o", str(tmp_path / "other.cc"), "--name", "g_model"])
    assert r.exit_code == 0 and "g_model[" in r.stdout and "AddUnidirectionalSequenceLSTM" in r.stdout


def test_bad_names_and_paths_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    assert symbol_for(Path("fw/lstm-model.cc"), None) == "lstm_model"
    assert symbol_for(Path("fw/8bit.cc"), None) == "model_8bit"
    for bad in ("int", "9lives", "a-b", ""):
        with pytest.raises(ConfigError, match="not a usable C\\+\\+ identifier"):
            symbol_for(Path("x.cc"), bad)
    with pytest.raises(ConfigError, match="ending in .cc"):
        build(tmp_path / "m.tflite", CELL, embed=tmp_path / "m.c")
    assert not (tmp_path / "m.tflite").exists()
    r = CliRunner().invoke(main, ["embed", str(tmp_path / "missing.tflite"), "-o", str(tmp_path / "x.cc")])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert not (tmp_path / "x.cc").exists() and not (tmp_path / "x.h").exists()


@pytest.mark.slow
@needs_tflm
def test_measured_arena_is_the_minimum_tflm_needs(tmp_path: Path) -> None:
    """TFLM runs the model in exactly the measured bytes and not in 16 fewer (each tried in a child process:
    too small an arena can crash TFLM). For this small model the recording allocator's total is too small."""
    import sys

    model = tmp_path / "m.tflite"
    build(model, CELL | {"quantize": "int16x8"}, calibration="random", verify=False)
    measured = embed(model, tmp_path / "m.cc").arena_measured
    script = (
        "import sys, tflite_micro\n"
        "data = open(sys.argv[1], 'rb').read()\n"
        "tflite_micro.runtime.Interpreter.from_bytes(data, arena_size=int(sys.argv[2])).invoke()\n"
    )
    codes = [
        subprocess.run([sys.executable, "-c", script, str(model), str(size)], capture_output=True).returncode
        for size in (measured, measured - 16)
    ]
    assert codes[0] == 0 and codes[1] != 0, codes


def test_resolver_table_covers_every_tflm_builtin() -> None:
    """Every builtin the micro rules let through has its MicroMutableOpResolver call, and no other."""
    assert set(RESOLVER_BY_NAME) == MICRO_BUILTIN_OPS
    assert RESOLVER_BY_NAME["UNIDIRECTIONAL_SEQUENCE_LSTM"] == "AddUnidirectionalSequenceLSTM"
    assert RESOLVER_BY_NAME["CONV_2D"] == "AddConv2D" and RESOLVER_BY_NAME["BATCH_MATMUL"] == "AddBatchMatMul"
    assert DYNAMIC_RULE in {rule.feature for rule in MICRO_RULES}  # the one rule embed notes instead of refusing


@needs_tflm
def test_embed_refuses_what_tflm_cannot_run(tmp_path: Path) -> None:
    """A hybrid model loads in TFLM and outputs NaN: embed refuses it as `inspect --check micro` does, naming
    the problem, and writes nothing."""
    model = tmp_path / "hybrid.tflite"
    build(model, CELL | {"quantize": "dynamic-int8"}, verify=False)
    inspect = CliRunner().invoke(main, ["inspect", str(model), "--check", "micro"])
    assert inspect.exit_code == 1 and "does NOT run there" in inspect.output
    cc = tmp_path / "fw.cc"
    r = CliRunner().invoke(main, ["embed", str(model), "-o", str(cc)])
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    assert "TensorFlow Lite Micro cannot run this model" in r.output and "hybrid (int8 weights" in r.output
    assert "quantize fully to int8" in r.output  # how to fix
    assert not cc.exists() and not cc.with_suffix(".h").exists()
    doc = json.loads(CliRunner().invoke(main, ["embed", str(model), "-o", str(cc), "--json"]).stdout)
    assert not doc["ok"] and doc["exit_code"] == 2 and "hybrid" in doc["error"]
    with pytest.raises(ModelFileError, match="hybrid"):  # build --embed: refused, and no model written either
        build(tmp_path / "b.tflite", CELL | {"quantize": "dynamic-int8"}, verify=False, embed=cc)
    assert not (tmp_path / "b.tflite").exists() and not cc.exists()


@needs_tflm
def test_the_refusal_is_the_micro_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the rules' verdict embed would write the hybrid model (TFLM loads it): the gate is what refuses."""
    import lstmgen.embed as embed_module

    model = tmp_path / "hybrid.tflite"
    build(model, CELL | {"quantize": "dynamic-int8"}, verify=False)
    monkeypatch.setattr(embed_module, "find_problems", lambda model, target: [])
    assert embed(model, tmp_path / "fw.cc").arena_measured > 0


@pytest.mark.slow
@needs_tflm
def test_a_dynamic_time_axis_is_embedded_with_a_note(tmp_path: Path) -> None:
    """Built without --time-steps: embedded for the stored [1, 1, I] (one step per invoke), said in the summary,
    --json and the header, with how to get fixed windows."""
    model = tmp_path / "stream.tflite"
    build(model, {"num_units": 8, "input_size": 5}, verify=False)
    cc = tmp_path / "stream.cc"
    r = CliRunner().invoke(main, ["embed", str(model), "-o", str(cc), "--json"])
    assert r.exit_code == 0, r.output
    (note,) = json.loads(r.stdout)["notes"]
    assert "stored shape [1, 1, 5]" in note and "one time step per Invoke()" in note and "--time-steps T" in note
    header = cc.with_suffix(".h").read_text()
    assert "// Note: the input has a dynamic axis (shape_signature [1, -1, 5])" in header
    assert "--time-steps T" in header.replace("\n//   ", " ")
    r = CliRunner().invoke(main, ["embed", str(model), "-o", str(tmp_path / "again.cc")])
    assert r.exit_code == 0 and "note: the input has a dynamic axis" in r.output
    fixed = tmp_path / "fixed.tflite"
    build(fixed, CELL, verify=False)
    assert embed(fixed, tmp_path / "fixed.cc").notes == []
    assert "Note:" not in (tmp_path / "fixed.h").read_text()


HEADS = Path(__file__).parent / "fixtures" / "heads"
# A third-party TF-converter model (not committed): int8 LSTM(20) -> RESHAPE -> Dense -> softmax on [1, 28, 28];
# the test runs when LSTMGEN_THIRD_PARTY_MODELS names a directory holding it.
EXT = Path(os.environ.get("LSTMGEN_THIRD_PARTY_MODELS", "/nonexistent")) / "tfm_trained_lstm_int8.tflite"
HEAD_MODELS = {
    "tf_classifier": ["AddFullyConnected", "AddSoftmax", "AddUnidirectionalSequenceLSTM", "AddStridedSlice"],
    "tf_classifier_int8": ["AddFullyConnected", "AddSoftmax", "AddUnidirectionalSequenceLSTM", "AddStridedSlice"],
    "tf_stacked": ["AddFullyConnected", "AddSoftmax", "AddUnidirectionalSequenceLSTM", "AddStridedSlice"],
    "float_head": ["AddFullyConnected", "AddSoftmax", "AddTanh", "AddUnidirectionalSequenceLSTM"],
    "int8_head": ["AddLogistic", "AddUnidirectionalSequenceLSTM"],
}


@needs_tflm
@pytest.mark.parametrize("name", HEAD_MODELS)
def test_a_converter_model_with_a_head_is_embedded_whole(tmp_path: Path, name: str) -> None:
    """TF's converter output (LSTM -> Dense -> softmax, ...) whose every op TFLM runs: embedded whole, its arena
    measured by running the whole model in TFLM, every op listed for the resolver."""
    model = HEADS / f"{name}.tflite"
    result = embed(model, tmp_path / "m.cc")
    assert result.ops == HEAD_MODELS[name] and result.arena_measured > 0 and result.notes == []
    header = (tmp_path / "m.h").read_text()
    assert f"MicroMutableOpResolver<{len(result.ops)}>" in header
    assert all(f"op_resolver.{call}();" in header for call in result.ops)
    if GXX is not None and name == "tf_classifier_int8":
        data, align, arena = _compile_and_dump(tmp_path, tmp_path / "m.cc", "m")
        assert data == model.read_bytes() and align == 0 and arena == result.arena_size


@needs_tflm
@pytest.mark.skipif(not EXT.is_file(), reason="third-party model not present")
def test_a_third_party_int8_classifier_is_embedded(tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["embed", str(EXT), "-o", str(tmp_path / "m.cc"), "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["ops"] == ["AddFullyConnected", "AddReshape", "AddSoftmax", "AddUnidirectionalSequenceLSTM"]
    assert doc["arena_measured"] > 0


@needs_tflm
def test_a_head_tflm_cannot_run_is_refused_naming_the_op(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Were SOFTMAX without a TFLM kernel, the classifier would be refused, naming the op (the same rule table)."""
    import lstmgen.targets.micro as micro

    monkeypatch.setattr(micro, "MICRO_BUILTIN_OPS", micro.MICRO_BUILTIN_OPS - {"SOFTMAX"})
    r = CliRunner().invoke(main, ["embed", str(HEADS / "tf_classifier.tflite"), "-o", str(tmp_path / "m.cc")])
    assert r.exit_code == 2 and "operator without a TFLM kernel (operator 3 SOFTMAX)" in r.output, r.output
    assert not (tmp_path / "m.cc").exists() and not (tmp_path / "m.h").exists()
