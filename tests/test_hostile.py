"""Hostile and broken inputs (issue 12): containment, resource limits, non-regular files.

Each test builds its malicious file with tests/hostile_corpus.py (the committed corpus script) in
the test's tmp dir and checks that lstmgen refuses it with exit 2, a short message, and no output.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import hostile_corpus as corpus
import numpy as np
import pytest
from hostile_corpus import LSTM, STRIDED_SLICE, set_input
from support import assert_user_error, invoke, random_tflite_weights

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    return corpus.write_secret(tmp_path)


# ------------------------------------------------------------------------------ finding 1: leaks

LEAKS = ["h5_external_storage", "h5_external_link", "h5_virtual", "h5_classic_external", "keras_external"]
LEAK_WORDS = {
    "h5_external_storage": "external file",
    "h5_external_link": "external link",
    "h5_virtual": "virtual dataset",
    "h5_classic_external": "external file",
    "keras_external": "external file",
}


@pytest.mark.parametrize("maker", LEAKS)
def test_hdf5_never_reads_outside_the_file(tmp_path: Path, secret: Path, maker: str) -> None:
    pytest.importorskip("h5py")
    weights = corpus.MAKERS[maker](tmp_path, secret)
    out = tmp_path / "leak.tflite"
    assert_user_error(
        invoke("build", "--weights", weights, "-o", out, "--no-verify", "-q"), LEAK_WORDS[maker], "own bytes"
    )
    assert not out.exists()


def _save_onnx_lstm(path: Path, w: Any, n: int, i: int) -> None:
    """A one-node ONNX LSTM model around the initializer `w` under test (zero recurrent weights R)."""
    import onnx
    from onnx import TensorProto, helper

    r = helper.make_tensor("R", TensorProto.FLOAT, [1, 4 * n, n], np.zeros(4 * n * n, np.float32).tolist())
    node = helper.make_node("LSTM", ["X", "W", "R"], ["Y"], hidden_size=n)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [5, 1, i])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)],
        initializer=[w, r],
    )
    onnx.save(helper.make_model(graph), str(path))


def test_onnx_external_data_stays_contained(tmp_path: Path, secret: Path) -> None:
    """An ONNX initializer whose external data points outside the model's folder is refused."""
    pytest.importorskip("onnx")
    from onnx import TensorProto

    n, i = corpus.N, corpus.I
    w = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[1, 4 * n, i])
    w.data_location = TensorProto.EXTERNAL
    for key, value in (("location", str(secret)), ("offset", "0"), ("length", str(corpus.SECRET_FLOATS * 4))):
        entry = w.external_data.add()
        entry.key, entry.value = key, value
    path = tmp_path / "sub" / "ext.onnx"
    path.parent.mkdir()
    _save_onnx_lstm(path, w, n, i)
    out = tmp_path / "o.tflite"
    result = invoke("build", "--weights", path, "-o", out, "--no-verify", "-q")
    assert_user_error(result, "external data")
    assert not out.exists()


# ---------------------------------------------------------------------------- finding 4: resources


@pytest.mark.parametrize(
    ("maker", "words"),
    [
        ("h5_gzip_bomb", ("4294967296 bytes", "limit")),
        ("keras_zip_bomb", ("uncompressed", "limit")),
        ("npz_bomb", ("4294967296 bytes", "limit")),
    ],
)
def test_bombs_are_refused_before_reading(tmp_path: Path, secret: Path, maker: str, words: tuple[str, ...]) -> None:
    if maker.startswith(("h5", "keras")):
        pytest.importorskip("h5py")
    weights = corpus.MAKERS[maker](tmp_path, secret)
    assert_user_error(invoke("build", "--weights", weights, "-o", tmp_path / "o.tflite", "--no-verify", "-q"), *words)


def test_stride0_torch_tensor_is_refused_by_its_shape(tmp_path: Path, secret: Path) -> None:
    pytest.importorskip("torch")
    weights = corpus.pt_stride0(tmp_path, secret)
    assert_user_error(
        invoke("build", "--weights", weights, "-o", tmp_path / "o.tflite", "--no-verify", "-q"), "declares"
    )


def test_max_weights_bytes_lowers_the_limit(tmp_path: Path, weights_npz) -> None:
    weights = weights_npz(random_tflite_weights())
    out = tmp_path / "o.tflite"
    assert_user_error(
        invoke("build", "--weights", weights, "-o", out, "--no-verify", "--max-weights-bytes", 100), "limit of 100"
    )
    assert invoke("build", "--weights", weights, "-o", out, "--no-verify", "-q").exit_code == 0


def test_npy_header_declaring_tib(tmp_path: Path, secret: Path, weights_npz) -> None:
    big = corpus.npy_tib_header(tmp_path, secret)
    model = tmp_path / "m.tflite"
    assert invoke("build", "--weights", weights_npz(random_tflite_weights()), "-o", model, "--no-verify").exit_code == 0
    assert_user_error(invoke("run", model, "--input", big, "--output", tmp_path / "y.npy"), "declares")
    assert_user_error(invoke("verify", model, "--input", big), "declares")


def test_duplicate_keys_linear_and_bounded(tmp_path: Path, secret: Path) -> None:
    dupes = corpus.npz_many_duplicates(tmp_path, secret, count=4000)
    err = assert_user_error(
        invoke("build", "--weights", dupes, "-o", tmp_path / "o.tflite", "--no-verify"), "more than once"
    )
    assert len(err) < 600 and "(and 1995 more)" in err


def _fifo(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    os.mkfifo(path)
    return path


def _start_cli(*args: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "lstmgen", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifos_and_devices_are_refused_up_front(tmp_path: Path, weights_npz) -> None:
    """A FIFO would block forever and /dev/zero never ends: both refused before opening (run as processes)."""
    weights = weights_npz(random_tflite_weights())
    model = tmp_path / "m.tflite"
    assert invoke("build", "--weights", weights, "-o", model, "--no-verify").exit_code == 0
    fifo = _fifo(tmp_path, "pipe.npz")
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((1, 3, 5), np.float32))
    cases = [
        ("build", "--config", fifo, "-o", tmp_path / "o.tflite"),
        ("build", "--weights", fifo, "-o", tmp_path / "o.tflite"),
        ("build", "--weights", _fifo(tmp_path, "pipe.h5"), "-o", tmp_path / "o.tflite"),
        ("build", "--weights", weights, "--calibration-data", fifo, "--quantize", "int8", "-o", tmp_path / "o.tflite"),
        ("run", model, "--input", fifo, "--output", tmp_path / "y.npy"),
        ("run", model, "--input", x, "--initial-state", fifo, "--output", tmp_path / "y.npy"),
        ("inspect", fifo),
        ("verify", fifo),
        ("build", "--config", "/dev/zero", "-o", tmp_path / "o.tflite"),
        ("inspect", "/dev/zero"),
        ("verify", "/dev/zero"),
        ("run", "/dev/zero", "--input", x, "--output", tmp_path / "y.npy"),
    ]
    procs = [_start_cli(*args) for args in cases]  # all at once: each would hang alone if not refused
    for args, proc in zip(cases, procs, strict=True):
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 2, (args, err)
        assert "not a regular file" in err and "Traceback" not in err, (args, err)


# ------------------------------------------------------------------- finding 2: interpreter crashes


@pytest.mark.parametrize(
    ("opcode", "slot", "extra"),
    [
        (LSTM, 12, ()),  # input_gate_bias absent while the input gate's weights are present
        (LSTM, 0, ()),
        (LSTM, 18, ()),
        (LSTM, 2, ()),
        (STRIDED_SLICE, 0, ("--last-step",)),
        (STRIDED_SLICE, 1, ("--last-step",)),
        (STRIDED_SLICE, 2, ("--last-step",)),
        (STRIDED_SLICE, 3, ("--last-step",)),
    ],
)
def test_absent_required_inputs_never_reach_the_interpreter(
    tmp_path: Path, opcode: int, slot: int, extra: tuple[str, ...]
) -> None:
    """These files made verify/run/verify --micro die with SIGSEGV; now every command refuses them (exit 2)."""
    base, bad = tmp_path / "base.tflite", tmp_path / "bad.tflite"
    assert invoke("build", "--num-units", 4, "--input-size", 3, *extra, "-o", base, "--no-verify").exit_code == 0
    set_input(base, bad, opcode, slot)
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((1, 2, 3), np.float32))
    for args in (
        ("verify", bad),
        ("verify", bad, "--micro"),
        ("run", bad, "--input", x, "--output", tmp_path / "y.npy"),
        ("inspect", bad),
    ):
        assert_user_error(invoke(*args), "corrupt or malformed")
    assert not (tmp_path / "y.npy").exists()


def test_checker_flags_bad_quantization_and_shapes(tmp_path: Path) -> None:
    from dataclasses import replace

    from lstmgen.errors import ModelFileError
    from lstmgen.tflite.reader import read_model
    from lstmgen.tflite.records import Quantization
    from lstmgen.tflite.validate import check_model

    base = tmp_path / "base.tflite"
    assert invoke("build", "--num-units", 4, "--input-size", 3, "-o", base, "--no-verify").exit_code == 0
    model = read_model(base.read_bytes())
    check_model(model, "ok")
    w = 2  # input_to_forget_weights [4, 3]
    cases = {
        "zero points": Quantization((0.1, 0.2), (0,), 0),
        "per-axis": Quantization((0.1, 0.2), (0, 0), 0),
        "positive finite": Quantization((float("nan"),), (0,), 0),
    }
    for words, q in cases.items():
        tensors = list(model.tensors)
        tensors[w] = replace(tensors[w], quantization=q)
        with pytest.raises(ModelFileError, match=words):
            check_model(replace(model, tensors=tuple(tensors)), "bad")
    tensors = list(model.tensors)
    tensors[1] = replace(tensors[1], shape=(4, 7), data=np.zeros((4, 7), np.float32))
    with pytest.raises(ModelFileError, match="expected \\[4, 3\\]"):
        check_model(replace(model, tensors=tuple(tensors)), "bad")


# ---------------------------------------------------------------- finding 3: outputs never inputs


@pytest.fixture
def built(tmp_path: Path, weights_npz) -> tuple[Path, Path, Path]:
    """(weights .npz, model, input .npy) of a small model."""
    weights = weights_npz(random_tflite_weights())
    model = tmp_path / "m.tflite"
    assert invoke("build", "--weights", weights, "-o", model, "--no-verify").exit_code == 0
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((1, 3, 5), np.float32))
    return weights, model, x


def _unchanged(*paths: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in paths}


def test_outputs_never_overwrite_inputs(tmp_path: Path, built: tuple[Path, Path, Path]) -> None:
    weights, model, x = built
    config = tmp_path / "cell.toml"
    config.write_text('num_units = 6\ninput_size = 5\nweights = "w.npz"\n')
    link = tmp_path / "link.npz"
    link.symlink_to(weights)
    before = _unchanged(weights, model, x, config)
    cases = [
        ("build", "--weights", weights, "-o", weights),
        ("build", "--weights", weights, "-o", link),  # through a symlink
        ("build", "--weights", link, "-o", weights),
        ("build", "--config", config, "-o", config),
        ("build", "--config", config, "-o", weights),  # the config's weights
        ("build", "--weights", weights, "--quantize", "int8", "--calibration-data", x, "-o", x),
        ("run", model, "--input", x, "--output", model),
        ("run", model, "--input", x, "--output", x),
        ("run", model, "--input", x, "--output", tmp_path / "y.npy", "--final-state", tmp_path / "y.npy"),
        ("verify", model, "--report", model),
    ]
    for args in cases:
        assert_user_error(invoke(*args), "output")
    assert _unchanged(weights, model, x, config) == before
    assert not (tmp_path / "y.npy").exists()


def test_output_through_symlink_keeps_mode_and_link(tmp_path: Path, built: tuple[Path, Path, Path]) -> None:
    weights, _, _ = built
    real = tmp_path / "real.tflite"
    real.write_bytes(b"old")
    real.chmod(0o600)
    link = tmp_path / "link.tflite"
    link.symlink_to(real)
    assert invoke("build", "--weights", weights, "-o", link, "--no-verify").exit_code == 0
    assert link.is_symlink() and real.read_bytes()[4:8] == b"TFL3"
    assert real.stat().st_mode & 0o777 == 0o600


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_output_never_replaces_a_special_file(tmp_path: Path, built: tuple[Path, Path, Path]) -> None:
    weights, _, _ = built
    fifo = _fifo(tmp_path, "out.tflite")
    assert_user_error(invoke("build", "--weights", weights, "-o", fifo, "--no-verify"), "not a regular file")
    assert fifo.is_fifo()


def test_long_output_names_and_stale_temp_files(tmp_path: Path, built: tuple[Path, Path, Path]) -> None:
    weights, _, _ = built
    stale = tmp_path / ".lstmgen-4194999-deadbeef.tmp"  # a PID above any pid_max: its process is gone
    stale.write_bytes(b"partial")
    os.utime(stale, (1, 1))
    out = tmp_path / ("m" * 248 + ".tflite")  # 255 bytes: a temp name derived from it would overflow
    result = invoke("build", "--weights", weights, "-o", out, "--no-verify")
    assert result.exit_code == 0, result.output
    assert out.exists() and not stale.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


# ------------------------------------------------------------ finding 6: signals and leftovers

_KILL_DURING_WRITE = """
import os, signal, sys
import lstmgen.output as out
real_replace = os.replace
def replace(src, dst):  # the temp file is complete: the signal arrives just before the rename
    os.kill(os.getpid(), signal.{sig})
    real_replace(src, dst)
out.os.replace = replace
from lstmgen.cli.main import main
sys.argv = ["lstmgen", "build", "--weights", sys.argv[1], "-o", sys.argv[2], "--no-verify"]
main()
"""


@pytest.mark.parametrize(("sig", "code"), [("SIGTERM", 143), ("SIGINT", 130), ("SIGHUP", 129)])
def test_signals_remove_temp_files(tmp_path: Path, built: tuple[Path, Path, Path], sig: str, code: int) -> None:
    weights, _, _ = built
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc = subprocess.run(
        [sys.executable, "-c", _KILL_DURING_WRITE.format(sig=sig), str(weights), str(out_dir / "m.tflite")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        # As from a terminal: a job started in the background by a non-interactive shell inherits SIGINT
        # ignored, and Python then (rightly) leaves Ctrl-C ignored too.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert proc.returncode == code, proc.stderr
    assert "interrupted" in proc.stderr and "Traceback" not in proc.stderr
    assert list(out_dir.iterdir()) == []


# ------------------------------------------------------------- finding 5: exit 2, never 70


@pytest.mark.parametrize(
    ("toml", "words"),
    [
        ('activation = ["tanh"]', "activation"),
        ("layer = 3", "layer = 3"),
        ("num_units = {a = 1}", "num_units"),
        ("forget_bias = 1e39", "forget_bias"),
    ],
)
def test_config_values_of_the_wrong_type(tmp_path: Path, toml: str, words: str) -> None:
    config = tmp_path / "cell.toml"
    config.write_text(f"input_size = 3\n{toml}\n" + ("" if "num_units" in toml else "num_units = 4\n"))
    assert_user_error(invoke("build", "--config", config, "-o", tmp_path / "o.tflite", "--no-verify"), words)


def test_forget_bias_that_overflows_float32_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "o.tflite"
    assert_user_error(
        invoke("build", "--num-units", 4, "--input-size", 3, "--forget-bias", "1e39", "-o", out), "forget_bias"
    )


@pytest.mark.parametrize("blob", [b"[1, 2]", b'{"hyperparameters": [1], "quantization": 3}', b"[" * 100_000])
def test_foreign_metadata_of_the_wrong_type(tmp_path: Path, built: tuple[Path, Path, Path], blob: bytes) -> None:
    from dataclasses import replace

    from lstmgen.tflite.reader import read_model
    from lstmgen.tflite.records import materialize
    from lstmgen.tflite.writer import serialize

    _, model, x = built
    record = read_model(model.read_bytes())
    meta = tuple((k, blob if k == "lstmgen" else v) for k, v in record.metadata)
    bad = tmp_path / "meta.tflite"
    bad.write_bytes(bytes(serialize(materialize(replace(record, metadata=meta)))))
    for args in (
        ("inspect", bad),
        ("inspect", bad, "--json"),
        ("run", bad, "--input", x, "--output", tmp_path / "y.npy"),
    ):
        result = invoke(*args)
        assert result.exit_code in (0, 2), (args, result.output)


@pytest.mark.parametrize(
    "config",
    [
        b"[]",
        b'{"config": []}',
        b'{"config": {"layers": [{"class_name": "LSTM", "config": []}]}}',
        b'{"config": {"layers": [{"class_name": "LSTM", "config": {"name": "lstm", "activation": [1]}}]}}',
        b"[" * 100_000 + b"]" * 100_000,
    ],
)
def test_keras_config_of_the_wrong_types(tmp_path: Path, config: bytes) -> None:
    h5py = pytest.importorskip("h5py")
    import zipfile

    inner = tmp_path / "model.weights.h5"
    kernel, rec, bias = corpus._kernel_parts()
    with h5py.File(inner, "w") as f:
        g = f.create_group("layers/lstm/cell/vars")
        g.create_dataset("0", data=kernel)
        g.create_dataset("1", data=rec)
        g.create_dataset("2", data=bias)
    path = tmp_path / "bad.keras"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("model.weights.h5", inner.read_bytes())
        zf.writestr("config.json", config)
    result = invoke("build", "--weights", path, "-o", tmp_path / "o.tflite", "--no-verify")
    assert result.exit_code in (0, 2), result.output
    assert "internal error" not in result.output


def test_float16_size_is_checked_before_allocating(tmp_path: Path) -> None:
    """A 4.3 GiB float model used to be materialized (6 GB peak) before any size check."""
    out = tmp_path / "big.tflite"
    args = ("build", "--num-units", 12000, "--input-size", 12000, "--quantize", "float16", "-o", out, "--no-verify")
    assert_user_error(invoke(*args), "4.29 GiB", "2 GiB")


@pytest.mark.parametrize(
    ("dims", "data_type", "words"), [([1, 2**40, 3], 1, "declares"), ([1, 16, 3], 99, "malformed")]
)
def test_onnx_initializers_with_huge_dims_or_unknown_types(
    tmp_path: Path, dims: list[int], data_type: int, words: str
) -> None:
    pytest.importorskip("onnx")
    from onnx import TensorProto

    n, i = 4, 3
    w = TensorProto(name="W", data_type=data_type, dims=dims)
    w.raw_data = b"\0" * (4 * 4 * n * i)
    path = tmp_path / "bad.onnx"
    _save_onnx_lstm(path, w, n, i)
    assert_user_error(invoke("build", "--weights", path, "-o", tmp_path / "o.tflite", "--no-verify"), words)


def test_initial_state_and_calibration_bombs(tmp_path: Path, secret: Path, built: tuple[Path, Path, Path]) -> None:
    weights, model, x = built
    bomb = corpus.npz_bomb(tmp_path, secret)
    assert_user_error(
        invoke("run", model, "--input", x, "--initial-state", bomb, "--output", tmp_path / "y.npy"), "declares"
    )
    big = corpus.npy_tib_header(tmp_path, secret)
    args = ("build", "--weights", weights, "--quantize", "int8", "--calibration-data", big, "-o", tmp_path / "q.tflite")
    assert_user_error(invoke(*args), "declares")


def test_checkpoint_slice_declaring_terabytes(tmp_path: Path) -> None:
    """A partitioned variable's full shape is declared, not stored: checked before assembling it."""
    from tf_bundle_writer import crc32c_bitwise, entry_proto, header_proto, masked, slice_key, write_table

    from lstmgen.errors import WeightFileError
    from lstmgen.weights.tfbundle import read_variables

    part = np.zeros((2, 2), np.float32).tobytes()
    full = entry_proto(1, (2**20, 2**20), 0, 0, 0, None, [[(0, 2), (0, 2)]])
    part_entry = entry_proto(1, (2, 2), 0, 0, len(part), masked(crc32c_bitwise(part)))
    prefix = tmp_path / "m"
    items = [(b"", header_proto(1)), (b"kernel", full), (slice_key("kernel", [(0, 2), (0, 2)]), part_entry)]
    write_table(prefix.with_name("m.index"), items)
    prefix.with_name("m.data-00000-of-00001").write_bytes(part)
    with pytest.raises(WeightFileError, match="declares"):
        read_variables(prefix, ["kernel"])


def test_interpreter_crash_is_contained_in_a_child(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Belt and braces: with the model checker switched off, the crash happens in the probe child (exit 2)."""
    if not sys.platform.startswith("linux"):
        pytest.skip("the probe forks on Linux only")
    import lstmgen.modelinfo

    monkeypatch.setattr(lstmgen.modelinfo, "check_model", lambda model, source: None)
    base, bad = tmp_path / "base.tflite", tmp_path / "bad.tflite"
    assert invoke("build", "--num-units", 4, "--input-size", 3, "--last-step", "-o", base, "--no-verify").exit_code == 0
    set_input(base, bad, STRIDED_SLICE, 2)
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((1, 2, 3), np.float32))
    assert_user_error(invoke("verify", bad), "crashed (SIGSEGV)")
    assert_user_error(invoke("run", bad, "--input", x, "--output", tmp_path / "y.npy"), "crashed")
    assert invoke("verify", base).exit_code == 0  # a sound model passes the probe


def test_embed_checks_the_model_before_tflm(tmp_path: Path) -> None:
    pytest.importorskip("tflite_micro")
    base, bad = tmp_path / "base.tflite", tmp_path / "bad.tflite"
    assert invoke("build", "--num-units", 4, "--input-size", 3, "--last-step", "-o", base, "--no-verify").exit_code == 0
    set_input(base, bad, STRIDED_SLICE, 2)
    assert_user_error(invoke("embed", bad, "-o", tmp_path / "m.cc"), "corrupt or malformed")
    assert not (tmp_path / "m.cc").exists()


def test_fuzz_findings_exit_2(tmp_path: Path, built: tuple[Path, Path, Path]) -> None:
    """From `make fuzz`: a tensor name that is not UTF-8 (the interpreter's wrapper then skips the tensor:
    KeyError, exit 70) and the interpreter's own RuntimeErrors after loading (resize, invoke)."""
    from lstmgen.errors import ModelFileError
    from lstmgen.runtimes.interpreter import refused_by

    _, model, x = built
    data = bytearray(model.read_bytes())
    pos = data.find(b"lstm/input")
    data[pos] = 0xFF
    bad = tmp_path / "name.tflite"
    bad.write_bytes(bytes(data))
    assert_user_error(invoke("verify", bad), "not valid UTF-8")
    assert_user_error(invoke("run", bad, "--input", x, "--output", tmp_path / "y.npy"), "not valid UTF-8")
    with (
        pytest.raises(ModelFileError, match="refused the model: Node number 2 failed to prepare"),
        refused_by("litert"),
    ):
        raise RuntimeError("Node number 2 failed to prepare")


def test_fuzz_findings_in_the_reference_exit_2(tmp_path: Path, built: tuple[Path, Path, Path]) -> None:
    """From `make fuzz` (10,000 models, 4 internal errors): one recurrent weight diagonal [N] among full
    [N, P] ones (a broadcasting error in the reference), and an input with an empty time axis."""
    from dataclasses import replace

    from lstmgen.tflite.reader import read_model
    from lstmgen.tflite.records import materialize
    from lstmgen.tflite.writer import serialize

    _, model, _ = built
    record = materialize(read_model(model.read_bytes()))
    lstm = record.operators[0]
    cases = {
        "mix diagonal": (lstm.inputs[6], (6,)),  # recurrent_to_forget_weights [6, 6] -> [6]
        "no empty dimension": (lstm.inputs[0], (1, 0, 5)),
    }
    for words, (index, shape) in cases.items():
        tensors = list(record.tensors)
        t = tensors[index]
        data = np.zeros(shape, np.float32) if t.data is not None else None
        tensors[index] = replace(t, shape=shape, data=data, shape_signature=None)
        bad = tmp_path / "bad.tflite"
        bad.write_bytes(bytes(serialize(replace(record, tensors=tuple(tensors)))))
        assert_user_error(invoke("verify", bad), words)


def test_npy_header_that_does_not_tokenize(tmp_path: Path) -> None:
    """From tests/fuzz_weights.py: an .npy header with an unclosed bracket makes numpy's tokenize raise
    TokenError (not ValueError); in a weights .npz and in calibration data alike, a refusal."""
    import io
    import zipfile

    buf = io.BytesIO()
    np.save(buf, np.zeros((4, 12), np.float32))
    member = buf.getvalue().replace(b"'shape': (4, 12), }", b"'shape': (4, 12 , }", 1)
    assert member != buf.getvalue()
    bad = tmp_path / "bad.npz"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("kernel.npy", member)
        zf.writestr("bias.npy", member)
    out = tmp_path / "o.tflite"
    assert_user_error(invoke("build", "--weights", bad, "--num-units", 3, "-o", out, "--no-verify"), "corrupt")
    assert_user_error(
        invoke(
            "build", "--num-units", 3, "--input-size", 2, "--quantize", "int8", "--calibration-data", bad, "-o", out
        ),
        "header",
    )
    assert not out.exists()
