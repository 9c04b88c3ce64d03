"""`lstmgen vectors`: golden vectors the host interpreters reproduce bit for bit, and C++ that compiles warning-free
and counts differing outputs (built against stub TFLM headers: the TFLM C++ headers are not installed here)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lstmgen.build import build
from lstmgen.runtimes.interpreter import open_session
from lstmgen.runtimes.micro import open_micro_session
from lstmgen.vectors import write_vectors
from tests.support import invoke

needs_tflm = pytest.mark.skipif(importlib.util.find_spec("tflite_micro") is None, reason="tflite-micro not installed")
GXX = shutil.which("g++")
CELL = {"num_units": 12, "input_size": 4, "batch_size": 1, "time_steps": 15}

# Just the TFLM API the generated check function uses (micro_interpreter.h, c/common.h), for a compile test.
STUB = """#include <cstddef>
typedef enum { kTfLiteOk = 0, kTfLiteError = 1 } TfLiteStatus;
typedef union { char* raw; const char* raw_const; void* data; } TfLitePtrUnion;
typedef struct { TfLitePtrUnion data; size_t bytes; } TfLiteTensor;
namespace tflite {
class MicroInterpreter {
 public:
  TfLiteStatus Reset();
  TfLiteStatus Invoke();
  TfLiteTensor* input(size_t index);
  TfLiteTensor* output(size_t index);
};
}  // namespace tflite
"""
# A fake interpreter whose Invoke() writes the expected output of the vector it was given, with one
# element changed in vector `spoil` (-1: none): the check must count exactly the spoiled vectors.
MAIN = """#include <cstdio>
#include <cstdlib>
#include <cstring>
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "{symbol}_vectors.h"
static {in_t} in_buf[{symbol}_input_len];
static {out_t} out_buf[{symbol}_output_len];
static TfLiteTensor in_tensor, out_tensor;
static int spoil = -1;
TfLiteStatus tflite::MicroInterpreter::Reset() {{ return kTfLiteOk; }}
TfLiteTensor* tflite::MicroInterpreter::input(size_t) {{ return &in_tensor; }}
TfLiteTensor* tflite::MicroInterpreter::output(size_t) {{ return &out_tensor; }}
TfLiteStatus tflite::MicroInterpreter::Invoke() {{
  for (int k = 0; k < {symbol}_vector_count; ++k) {{
    if (std::memcmp(in_buf, {symbol}_inputs[k], sizeof(in_buf)) == 0) {{
      std::memcpy(out_buf, {symbol}_expected_tflm[k], sizeof(out_buf));
      if (k == spoil) out_buf[0] = static_cast<{out_t}>(out_buf[0] + 1);
      return kTfLiteOk;
    }}
  }}
  return kTfLiteError;
}}
int main(int argc, char** argv) {{
  spoil = argc > 1 ? std::atoi(argv[1]) : -1;
  in_tensor.data.raw = reinterpret_cast<char*>(in_buf);
  in_tensor.bytes = sizeof(in_buf);
  out_tensor.data.raw = reinterpret_cast<char*>(out_buf);
  out_tensor.bytes = sizeof(out_buf);
  tflite::MicroInterpreter interpreter;
  std::printf("%d\\n", {symbol}_check_vectors(interpreter));
  return 0;
}}
"""


def _model(tmp: Path, **options: Any) -> Path:
    path = tmp / "lstm.tflite"
    build(path, CELL | {"quantize": "int8"} | options, calibration="random", verify=False)
    return path


@needs_tflm
@pytest.mark.parametrize("options", [{}, {"quantize": "int16x8"}, {"io_type": "float32", "num_layers": 2}])
def test_host_interpreters_reproduce_the_vectors_bit_for_bit(tmp_path: Path, options: dict[str, Any]) -> None:
    model = _model(tmp_path, **options)
    result = write_vectors(model, tmp_path, count=5, seed=1)
    inputs = np.load(tmp_path / "inputs.npy")
    assert inputs.shape == (5, 1, 15, 4) and result.count == 5
    micro = open_micro_session(model)
    expected = np.load(tmp_path / "expected_tflm.npy")
    for x, want in zip(inputs, expected, strict=True):
        micro.reset()
        assert np.array_equal(micro.invoke_raw(x), want)
    if options.get("quantize") == "int16x8":
        assert result.flavours == ["tflm"] and "no 16x8 LSTM kernel" in result.skipped["litert"]
        return
    from lstmgen.modelinfo import read_lstm_model

    lm = read_lstm_model(model)
    session = open_session(model, runtime="litert", input_index=lm.input_index, output_index=lm.output_index,
                           states=lm.states(), time_major=False)  # fmt: skip
    expected = np.load(tmp_path / "expected_litert.npy")
    for x, want in zip(inputs, expected, strict=True):
        session.reset()
        session.interpreter.set_tensor(lm.input_index, x)
        session.interpreter.invoke()
        assert np.array_equal(session.interpreter.get_tensor(lm.output_index), want)
    assert not np.array_equal(np.load(tmp_path / "expected_tflm.npy"), expected)  # the flavours differ here


@pytest.mark.skipif(GXX is None, reason="g++ is not installed")
@pytest.mark.parametrize("options", [{}, {"io_type": "float32"}])
def test_the_cpp_compiles_warning_free_and_counts_differing_vectors(tmp_path: Path, options: dict) -> None:
    model = _model(tmp_path, **options)
    write_vectors(model, tmp_path, count=3, name="g_lstm")
    (tmp_path / "tensorflow/lite/micro").mkdir(parents=True)
    (tmp_path / "tensorflow/lite/micro/micro_interpreter.h").write_text(STUB)
    out_t = "float" if options else "int8_t"
    (tmp_path / "main.cc").write_text(MAIN.format(symbol="g_lstm", in_t=out_t, out_t=out_t))
    exe = tmp_path / "check"
    flags = ["-std=c++17", "-Wall", "-Wextra", "-pedantic", "-Werror", f"-I{tmp_path}"]
    proc = subprocess.run([GXX, *flags, str(tmp_path / "main.cc"), str(tmp_path / "g_lstm_vectors.cc"), "-o", str(exe)],
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0 and not proc.stderr, proc.stderr
    for spoil, differing in ((-1, 0), (1, 1)):
        run = subprocess.run([str(exe), str(spoil)], capture_output=True, text=True, check=True)
        assert int(run.stdout) == differing


def test_cli_writes_and_refuses(tmp_path: Path) -> None:
    model = _model(tmp_path)
    (tmp_path / "fw").mkdir()
    r = invoke("vectors", str(model), "-o", str(tmp_path / "fw"), "-n", "2", "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["count"] == 2 and set(doc["flavours"]) >= {"litert"}
    assert (tmp_path / "fw" / "lstm_vectors.cc").is_file()
    r = invoke("vectors", str(model), "-o", str(tmp_path / "missing"))
    assert r.exit_code == 2 and "existing directory" in r.output and "Traceback" not in r.output
    build(tmp_path / "f.tflite", CELL, verify=False)
    r = invoke("vectors", str(tmp_path / "f.tflite"), "-o", str(tmp_path / "fw"), "--name", "g_f")
    assert r.exit_code == 2 and "not an integer model" in r.output and not (tmp_path / "fw" / "g_f_vectors.h").exists()


@pytest.mark.slow
@needs_tflm
def test_embed_and_target_micro_tell_the_cmsis_nn_state_truth(tmp_path: Path) -> None:
    from lstmgen.embed import embed

    model = _model(tmp_path)
    result = embed(model, tmp_path / "m.cc")
    header = " ".join(line.lstrip("/ ") for line in (tmp_path / "m.h").read_text().splitlines())
    assert result.cmsis_nn is not None and "starts every Invoke() from the zero state" in header
    assert "streaming a few time steps per Invoke()" in header and "PR #3564" in header
    r = invoke("embed", model, "-o", tmp_path / "again.cc")
    assert "note: CMSIS-NN:" in r.output
    build(tmp_path / "f.tflite", CELL, verify=False)
    assert embed(tmp_path / "f.tflite", tmp_path / "f.cc").cmsis_nn is None  # float: the reference kernel runs
    r = invoke("build", "--num-units", 8, "--input-size", 4, "--time-steps", 5, "--quantize", "int8",
               "--calibration", "random", "--target", "micro", "--no-verify", "-o", tmp_path / "t.tflite")  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "CMSIS-NN" in r.output and "zero state" in r.output
