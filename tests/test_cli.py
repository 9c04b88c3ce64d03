"""Tests of the `lstmgen` command line (build / verify / inspect / run).

The product rules checked here, for every user error: one short message on stderr that names the
file or option, what was expected and what was found; exit status 2 (1 for a failed verification);
never a Python traceback; never a partial or leftover output file (no `.*.tmp` either), and an
existing output file is left untouched by a failed build but replaced by a successful one.

Most tests go through click's CliRunner (in-process, fast); a few run `python -m lstmgen` as a
real subprocess. Tests that need a TFLite interpreter carry @pytest.mark.runtime.
"""

from __future__ import annotations

import functools
import importlib
import io
import json
import os
import pickle
import subprocess
import sys
import warnings
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pytest
from click.testing import Result
from support import assert_user_error, invoke, json_report

import lstmgen.check.verify
import lstmgen.cli.cmd_verify
import lstmgen.cli.main

REPO = Path(__file__).resolve().parents[1]
NUM_UNITS, INPUT_SIZE, NUM_PROJ = 6, 5, 4  # all different, so a swapped dimension cannot go unnoticed
GATES = ("input", "forget", "cell", "output")
COMMANDS = ("build", "verify", "inspect", "run")
F32 = np.float32

# ---------------------------------------------------------------------------------------- helpers


def cell_weights(
    *, proj: bool = False, peepholes: bool = False, dtype: type = F32, seed: int = 0
) -> dict[str, np.ndarray]:
    """A complete weight set keyed by the op's input names (the 'tflite' layout), written independently of lstmgen."""
    rng = np.random.default_rng(seed)
    out = NUM_PROJ if proj else NUM_UNITS

    def u(*shape: int) -> np.ndarray:
        return rng.uniform(-0.5, 0.5, shape).astype(dtype)

    w: dict[str, np.ndarray] = {}
    for g in GATES:
        w[f"input_to_{g}_weights"] = u(NUM_UNITS, INPUT_SIZE)
        w[f"recurrent_to_{g}_weights"] = u(NUM_UNITS, out)
        w[f"{g}_gate_bias"] = u(NUM_UNITS)
    if peepholes:
        for g in ("input", "forget", "output"):
            w[f"cell_to_{g}_weights"] = u(NUM_UNITS)
    if proj:
        w["projection_weights"] = u(NUM_PROJ, NUM_UNITS)
    return w


def changed(base: Mapping[str, np.ndarray] | None = None, **changes: np.ndarray | None) -> dict[str, np.ndarray]:
    """cell_weights() (or `base`) with arrays replaced, added, or removed (value None)."""
    w = dict(cell_weights() if base is None else base)
    for key, value in changes.items():
        if value is None:
            del w[key]
        else:
            w[key] = value
    return w


def with_value(key: str, index: int, value: float) -> dict[str, np.ndarray]:
    w = cell_weights()
    arr = w[key].copy()
    arr.flat[index] = value
    w[key] = arr
    return w


def save_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> Path:
    np.savez(path, **arrays)
    return path


def npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


class UnpickleMarker:
    """Unpickling this object creates the directory `marker`: proof that someone unpickled the file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[..., object], tuple[str]]:
        return (os.mkdir, (str(self.marker),))


def assert_no_output(path: Path) -> None:
    assert not path.exists(), f"{path} was left behind by a failed command"
    if path.parent.is_dir():
        assert sorted(path.parent.glob(".*.tmp")) == [], "temporary files left behind"


def subprocess_cli(*args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.pop("LSTMGEN_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "lstmgen", *(str(a) for a in args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# --------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Models shared by the inspect/verify/run tests (built with --no-verify: no interpreter needed here)."""
    root = tmp_path_factory.mktemp("models")
    weights = save_npz(root / "cell.npz", cell_weights())
    specs = {
        "dynamic": ["--weights", weights],
        "fixed5": ["--weights", weights, "--time-steps", 5],
        "full": [
            "--num-units",
            NUM_UNITS,
            "--input-size",
            INPUT_SIZE,
            "--num-proj",
            NUM_PROJ,
            "--use-peepholes",
            "--cell-clip",
            3,
            "--proj-clip",
            1.5,
            "--activation",
            "relu6",
            "--time-major",
            "--batch-size",
            2,
            "--seed",
            3,
        ],
    }
    out = {}
    for name, args in specs.items():
        path = root / f"{name}.tflite"
        result = invoke("build", *args, "--no-verify", "-q", "-o", path)
        assert result.exit_code == 0, result.output
        out[name] = path
    return out


@pytest.fixture
def weights_file(tmp_path: Path) -> Path:
    return save_npz(tmp_path / "cell.npz", cell_weights())


@pytest.fixture
def x_file(tmp_path: Path) -> Path:
    """A valid batch-major input [1, 7, INPUT_SIZE] for the 'dynamic' model."""
    path = tmp_path / "x.npy"
    np.save(path, np.random.default_rng(1).standard_normal((1, 7, INPUT_SIZE)).astype(F32))
    return path


# ------------------------------------------------------------------------------ build: bad inputs


BAD_CELLS = [
    # (weight arrays, extra build options, names the message must contain)
    pytest.param(
        lambda: changed(recurrent_to_output_weights=None),
        [],
        ("cell.npz", "recurrent_to_output_weights"),
        id="missing-required-key",
    ),
    pytest.param(
        lambda: changed(input_to_input_weights=None),
        [],
        ("cell.npz", "input_to_input_weights"),
        id="missing-input-gate-key",
    ),
    pytest.param(lambda: changed(bogus=np.zeros(3, F32)), [], ("cell.npz", "bogus"), id="unknown-key"),
    pytest.param(
        lambda: changed(input_to_cell_weights=np.zeros((NUM_UNITS, 7), F32)),
        [],
        ("cell.npz", "input_to_cell_weights", "[6, 7]", "[6, 5]"),
        id="wrong-shape-input-weights",
    ),
    pytest.param(
        lambda: changed(recurrent_to_cell_weights=np.zeros(NUM_UNITS, F32)),
        [],
        ("cell.npz", "recurrent_to_cell_weights", "[6]", "[6, 6]"),
        id="wrong-shape-1d-recurrent",
    ),
    pytest.param(
        lambda: changed(forget_gate_bias=np.float32(1.0)),
        [],
        ("cell.npz", "forget_gate_bias", "[]", "[6]"),
        id="wrong-shape-scalar-bias",
    ),
    pytest.param(
        lambda: changed(input_to_forget_weights=np.zeros((NUM_UNITS, 7), F32)),
        [],
        ("cell.npz", "input_to_forget_weights", "[6, 7]"),
        id="wrong-shape-input-to-forget",
    ),
    pytest.param(
        lambda: changed(input_to_forget_weights=np.zeros(NUM_UNITS, F32)),
        [],
        ("cell.npz", "input_to_forget_weights", "[6]"),
        id="wrong-shape-1d-input-to-forget",
    ),
    pytest.param(
        lambda: changed(input_to_forget_weights=np.zeros((0, INPUT_SIZE), F32)),
        [],
        ("cell.npz", "input_to_forget_weights", "[0, 5]"),
        id="empty-input-to-forget",
    ),
    pytest.param(
        lambda: with_value("forget_gate_bias", 2, np.nan), [], ("cell.npz", "forget_gate_bias", "NaN"), id="nan"
    ),
    pytest.param(
        lambda: with_value("recurrent_to_cell_weights", 7, np.inf),
        [],
        ("cell.npz", "recurrent_to_cell_weights", "Inf"),
        id="inf",
    ),
    pytest.param(
        lambda: with_value("input_gate_bias", 0, -np.inf), [], ("cell.npz", "input_gate_bias", "Inf"), id="minus-inf"
    ),
    pytest.param(
        lambda: {k: (v * 10).astype(np.int32) for k, v in cell_weights().items()},
        [],
        ("cell.npz", "int32"),
        id="int32-arrays",
    ),
    pytest.param(
        lambda: changed(output_gate_bias=np.zeros(NUM_UNITS, np.int8)),
        [],
        ("cell.npz", "output_gate_bias", "int8"),
        id="one-int8-array",
    ),
    pytest.param(  # float16 converts (exactly, with a note), as in .pt and .safetensors
        lambda: changed(output_gate_bias=np.zeros(NUM_UNITS, np.uint16)),
        [],
        ("cell.npz", "output_gate_bias", "uint16"),
        id="uint16-array",
    ),
    pytest.param(
        lambda: cell_weights(),
        ["--num-proj", NUM_PROJ],
        ("cell.npz", "num_proj", "4"),
        id="num-proj-without-projection-weights",
    ),
    pytest.param(
        lambda: cell_weights(proj=True),
        ["--num-proj", 3],
        ("cell.npz", "num_proj", "3", "4"),
        id="projection-weights-with-other-num-proj",
    ),
    pytest.param(
        lambda: cell_weights(),
        ["--use-peepholes"],
        ("cell.npz", "use_peepholes"),
        id="peepholes-flag-without-peephole-weights",
    ),
    pytest.param(
        lambda: cell_weights(),
        ["--num-units", 8],
        ("cell.npz", "num_units", "8", "6"),
        id="num-units-disagrees-with-weights",
    ),
    pytest.param(lambda: cell_weights(), ["--proj-clip", 1.0], ("proj_clip", "num_proj"), id="proj-clip-without-proj"),
    pytest.param(lambda: cell_weights(), ["--cell-clip", -1.0], ("cell_clip", "-1"), id="negative-cell-clip"),
    pytest.param(
        lambda: cell_weights(proj=True), ["--proj-clip", -0.5], ("proj_clip", "-0.5"), id="negative-proj-clip"
    ),
    pytest.param(lambda: cell_weights(), ["--cell-clip", "nan"], ("cell_clip", "nan"), id="nan-cell-clip"),
    pytest.param(
        lambda: cell_weights(), ["--activation", "none"], ("activation", "'none'", "NONE", "tanh"), id="activation-none"
    ),
    pytest.param(
        lambda: cell_weights(),
        ["--activation", "linear"],
        ("activation", "'linear'", "NONE", "tanh"),
        id="activation-linear",
    ),
    pytest.param(
        lambda: cell_weights(),
        ["--activation", "sigmoid"],
        ("activation", "'sigmoid'", "SIGMOID", "tanh"),
        id="activation-sigmoid",
    ),
    pytest.param(
        lambda: cell_weights(),
        ["--activation", "swish"],
        ("activation", "swish", "tanh", "relu6"),
        id="activation-unknown",
    ),
    pytest.param(lambda: cell_weights(), ["--time-steps", 0], ("time_steps", "0"), id="time-steps-0"),
    pytest.param(lambda: cell_weights(), ["--batch-size", -2], ("batch_size", "-2"), id="negative-batch-size"),
    pytest.param(lambda: cell_weights(), ["--name", "bad name"], ("name", "bad name"), id="bad-tensor-name"),
]


@pytest.mark.parametrize(("arrays", "options", "names"), BAD_CELLS)
def test_build_rejects_bad_weights_and_options(
    tmp_path: Path, arrays: Callable[[], dict[str, np.ndarray]], options: list[object], names: tuple[str, ...]
) -> None:
    weights = save_npz(tmp_path / "cell.npz", arrays())
    out = tmp_path / "model.tflite"
    result = invoke("build", "--weights", weights, *options, "-o", out)
    assert_user_error(result, *names)
    assert_no_output(out)


def _write_duplicate_key_zip(path: Path, marker: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile warns "Duplicate name"; that is the point
        with zipfile.ZipFile(path, "w") as zf:
            for key, arr in cell_weights().items():
                zf.writestr(f"{key}.npy", npy_bytes(arr))
            zf.writestr("forget_gate_bias.npy", npy_bytes(np.ones(NUM_UNITS, F32)))


def _write_object_npz(path: Path, marker: Path) -> None:
    np.savez(path, **changed(input_gate_bias=np.array([UnpickleMarker(marker)], dtype=object)))


def _write_pickle(path: Path, marker: Path) -> None:
    path.write_bytes(pickle.dumps({"input_to_forget_weights": UnpickleMarker(marker)}))


def _write_foreign_npz(path: Path, marker: Path) -> None:
    np.savez(path, foo=np.zeros(3, F32), bar=np.zeros((2, 2), F32))


def _write_tflite_layout(path: Path, marker: Path) -> None:
    np.savez(path, **cell_weights())


def _write_tf1_with_extra_key(path: Path, marker: Path) -> None:
    n4 = 4 * NUM_UNITS
    np.savez(path, kernel=np.zeros((INPUT_SIZE + NUM_UNITS, n4), F32), bias=np.zeros(n4, F32), extra=np.zeros(2, F32))


def _write_tf1_bad_kernel(path: Path, marker: Path) -> None:
    np.savez(path, kernel=np.zeros(INPUT_SIZE + NUM_UNITS, F32), bias=np.zeros(4 * NUM_UNITS, F32))


def _write_empty_npz(path: Path, marker: Path) -> None:
    np.savez(path)


def _write_truncated_npz(path: Path, marker: Path) -> None:
    np.savez(path, **cell_weights())
    path.write_bytes(path.read_bytes()[:1000])


def _write_nothing(path: Path, marker: Path) -> None:
    pass


def _make_directory(path: Path, marker: Path) -> None:
    path.mkdir()


BAD_WEIGHT_FILES = [
    # (how to create cell.npz, extra options, names the message must contain besides the file name)
    pytest.param(_write_nothing, [], (), id="missing-weights-path"),
    pytest.param(_make_directory, [], (), id="weights-path-is-a-directory"),
    pytest.param(_write_duplicate_key_zip, [], ("forget_gate_bias",), id="duplicate-key"),
    pytest.param(_write_object_npz, [], ("pickle",), id="object-array-needs-pickle"),
    pytest.param(_write_pickle, [], ("npz",), id="pickle-renamed-npz"),
    pytest.param(_write_truncated_npz, [], ("corrupt",), id="truncated-npz"),
    pytest.param(
        _write_foreign_npz, [], ("foo", "bar", "tflite", "tf1", "--weights-format"), id="auto-detection-fails"
    ),
    pytest.param(
        _write_tflite_layout,
        ["--weights-format", "tf1"],
        ("tf1", "input_to_forget_weights"),
        id="tf1-format-on-tflite-layout",
    ),
    pytest.param(_write_tf1_with_extra_key, [], ("extra", "tf1"), id="tf1-unknown-key"),
    pytest.param(_write_tf1_bad_kernel, [], ("kernel", "[11]"), id="tf1-kernel-wrong-rank"),
    pytest.param(_write_empty_npz, [], ("no arrays",), id="empty-npz"),
]


@pytest.mark.parametrize(("write", "options", "names"), BAD_WEIGHT_FILES)
def test_build_rejects_bad_weight_files(
    tmp_path: Path, write: Callable[[Path, Path], None], options: list[object], names: tuple[str, ...]
) -> None:
    weights, marker, out = tmp_path / "cell.npz", tmp_path / "UNPICKLED", tmp_path / "model.tflite"
    write(weights, marker)
    result = invoke("build", "--weights", weights, *options, "-o", out)
    assert_user_error(result, "cell.npz", *names)
    assert_no_output(out)
    assert not marker.exists(), "lstmgen unpickled the weight file"


@pytest.mark.parametrize("write", [_write_object_npz, _write_pickle], ids=["object-array-npz", "pickle-renamed-npz"])
def test_build_never_unpickles(tmp_path: Path, write: Callable[[Path, Path], None]) -> None:
    weights, marker, out = tmp_path / "cell.npz", tmp_path / "UNPICKLED", tmp_path / "model.tflite"
    write(weights, marker)
    assert_user_error(invoke("build", "--weights", weights, "-o", out), "cell.npz")
    assert not marker.exists(), "lstmgen unpickled the weight file"
    assert_no_output(out)
    # Control: the payload is live, so the check above means something.
    with open(weights, "rb") as fh:
        if weights.read_bytes().startswith(b"PK"):
            with np.load(fh, allow_pickle=True) as npz:
                _ = npz["input_gate_bias"]
        else:
            pickle.load(fh)  # our own test payload
    assert marker.exists()


def test_weights_format_without_weights(tmp_path: Path) -> None:
    out = tmp_path / "model.tflite"
    result = invoke("build", "--weights-format", "tf1", "--num-units", NUM_UNITS, "--input-size", INPUT_SIZE, "-o", out)
    assert_user_error(result, "--weights-format", "--weights")
    assert_no_output(out)


def test_build_without_sizes_or_weights(tmp_path: Path) -> None:
    out = tmp_path / "model.tflite"
    assert_user_error(invoke("build", "--num-units", NUM_UNITS, "-o", out), "input_size")
    assert_no_output(out)


# -------------------------------------------------------------------------------- build: config


BAD_CONFIGS = [
    # (config file name, content or None for no file, names the message must contain)
    pytest.param(
        "cell.toml",
        "num-units = 6\ninput_size = 5\n",
        ("cell.toml", "'num-units'", "'num_units'"),
        id="toml-unknown-key-suggests",
    ),
    pytest.param(
        "cell.json",
        '{"num_units": 6, "input_size": 5, "cell-clip": 1.0}',
        ("cell.json", "'cell-clip'", "'cell_clip'"),
        id="json-unknown-key-suggests",
    ),
    pytest.param(
        "cell.toml", 'num_units = "64"\ninput_size = 5\n', ("num_units", "'64'", "integer"), id="toml-wrong-type"
    ),
    pytest.param(
        "cell.json",
        '{"num_units": 6, "input_size": 5, "time_major": "yes"}',
        ("time_major", "'yes'"),
        id="json-wrong-type-bool",
    ),
    pytest.param("cell.toml", "num_units = [", ("cell.toml", "TOML"), id="toml-syntax-error"),
    pytest.param("cell.json", "{num_units: 6}", ("cell.json", "JSON"), id="json-syntax-error"),
    pytest.param("cell.json", "[6, 5]", ("cell.json", "list"), id="json-not-a-table"),
    pytest.param("cell.toml", None, ("cell.toml",), id="missing-config-path"),
    pytest.param("cell.toml", 'weights = "absent.npz"\n', ("absent.npz",), id="config-weights-missing"),
]


@pytest.mark.parametrize(("name", "content", "names"), BAD_CONFIGS)
def test_build_rejects_bad_config(tmp_path: Path, name: str, content: str | None, names: tuple[str, ...]) -> None:
    config, out = tmp_path / name, tmp_path / "model.tflite"
    if content is not None:
        config.write_text(content)
    assert_user_error(invoke("build", "--config", config, "-o", out), *names)
    assert_no_output(out)


@pytest.mark.parametrize("suffix", ["toml", "json"])
def test_config_file_and_cli_overrides(tmp_path: Path, weights_file: Path, suffix: str) -> None:
    values = {"weights": weights_file.name, "cell_clip": 3.0, "activation": "relu", "batch_size": 2, "seed": 7}
    config = tmp_path / f"cell.{suffix}"
    if suffix == "json":
        config.write_text(json.dumps(values))
    else:
        config.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items()))
    out = tmp_path / "model.tflite"
    # relative 'weights' resolves against the config's folder, not the working directory (the repo here)
    result = invoke("build", "--config", config, "--cell-clip", 2.5, "--activation", "relu6", "--no-verify", "-o", out)
    assert result.exit_code == 0, result.output
    info = json.loads(invoke("inspect", out, "--json").stdout)
    assert (info["cell_clip"], info["activation"]) == (2.5, "relu6")  # the command line wins
    assert (info["batch_size"], info["num_units"], info["input_size"]) == (2, NUM_UNITS, INPUT_SIZE)  # from the file


@pytest.mark.runtime
def test_example_config_builds(tmp_path: Path) -> None:
    out = tmp_path / "demo.tflite"
    result = invoke("build", "--config", REPO / "examples" / "cell.toml", "-o", out, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert report["verification"]["passed"] is True
    assert report["hyperparameters"]["use_peepholes"] is True


# --------------------------------------------------------------------------------- build: output


def test_output_directory_missing(tmp_path: Path, weights_file: Path) -> None:
    out = tmp_path / "absent" / "model.tflite"
    assert_user_error(invoke("build", "--weights", weights_file, "-o", out), "absent")
    assert not out.parent.exists()


def test_output_is_a_directory(tmp_path: Path, weights_file: Path) -> None:
    out = tmp_path / "somedir"
    out.mkdir()
    assert_user_error(invoke("build", "--weights", weights_file, "-o", out), "somedir")
    assert list(out.iterdir()) == []
    assert sorted(tmp_path.glob(".*.tmp")) == []


def test_output_directory_not_writable(tmp_path: Path, weights_file: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("this user can write to a 0o500 directory (running as root)")
        out = locked / "model.tflite"
        assert_user_error(invoke("build", "--weights", weights_file, "--no-verify", "-o", out), "model.tflite")
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o700)


def _fail_verification(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make build's verification demand exact equality with the float64 reference: it must fail."""
    monkeypatch.setattr(  # build imports verify_model from there when it verifies
        importlib.import_module("lstmgen.check.verify"),
        "verify_model",
        functools.partial(lstmgen.check.verify.verify_model, atol=0.0, rtol=0.0, float_runs=0),
    )


def _nan_weights(tmp: Path, mp: pytest.MonkeyPatch) -> list[object]:
    return ["--weights", save_npz(tmp / "w.npz", with_value("cell_gate_bias", 1, np.nan))]


def _bad_option(tmp: Path, mp: pytest.MonkeyPatch) -> list[object]:
    return ["--num-units", NUM_UNITS, "--input-size", INPUT_SIZE, "--cell-clip", -3]


def _missing_config(tmp: Path, mp: pytest.MonkeyPatch) -> list[object]:
    return ["--config", tmp / "absent.toml"]


def _failing_verification(tmp: Path, mp: pytest.MonkeyPatch) -> list[object]:
    _fail_verification(mp)
    return ["--num-units", NUM_UNITS, "--input-size", INPUT_SIZE]


FAILED_BUILDS = [
    pytest.param(_nan_weights, 2, id="nan-weights"),
    pytest.param(_bad_option, 2, id="bad-option"),
    pytest.param(_missing_config, 2, id="missing-config"),
    pytest.param(_failing_verification, 1, id="failed-verification", marks=pytest.mark.runtime),
]


@pytest.mark.parametrize(("options", "code"), FAILED_BUILDS)
def test_failed_build_leaves_existing_output_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, options: Callable[..., list[object]], code: int
) -> None:
    out = tmp_path / "model.tflite"
    out.write_bytes(b"previous model")
    result = invoke("build", *options(tmp_path, monkeypatch), "-o", out)
    assert_user_error(result, code=code)
    assert out.read_bytes() == b"previous model"
    assert sorted(tmp_path.glob(".*.tmp")) == []


@pytest.mark.runtime
def test_failed_verification_json_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fail_verification(monkeypatch)
    out = tmp_path / "model.tflite"
    result = invoke("build", "--num-units", NUM_UNITS, "--input-size", INPUT_SIZE, "-o", out, "--json")
    assert_user_error(result, "verification", code=1)
    report = json.loads(result.stdout)
    assert (report["ok"], report["exit_code"]) == (False, 1)
    assert_no_output(out)


@pytest.mark.runtime
def test_successful_build_replaces_existing_output(tmp_path: Path, weights_file: Path) -> None:
    out = tmp_path / "model.tflite"
    out.write_bytes(b"stale")
    result = invoke("build", "--weights", weights_file, "-o", out)
    assert result.exit_code == 0, result.output
    data = out.read_bytes()
    assert data[4:8] == b"TFL3"
    assert sorted(tmp_path.glob(".*.tmp")) == []
    assert "PASS" in result.stdout


def test_build_json_error_is_json(tmp_path: Path) -> None:
    out = tmp_path / "model.tflite"
    result = invoke(
        "build", "--num-units", NUM_UNITS, "--input-size", INPUT_SIZE, "--activation", "none", "-o", out, "--json"
    )
    assert_user_error(result, "activation")
    report = json.loads(result.stdout)
    assert report["ok"] is False and report["exit_code"] == 2 and "none" in report["error"]
    assert_no_output(out)


# --------------------------------------------------------------------------------- build: success


@pytest.mark.runtime
def test_build_inspect_verify_roundtrip(tmp_path: Path) -> None:
    out = tmp_path / "full.tflite"
    result = invoke(
        "build",
        "--num-units",
        NUM_UNITS,
        "--input-size",
        INPUT_SIZE,
        "--num-proj",
        NUM_PROJ,
        "--use-peepholes",
        "--cell-clip",
        3,
        "--proj-clip",
        1.5,
        "--activation",
        "relu",
        "--time-major",
        "--batch-size",
        2,
        "--time-steps",
        7,
        "-o",
        out,
    )
    assert result.exit_code == 0, result.output

    result = invoke("inspect", out, "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    expected = {
        "num_units": NUM_UNITS,
        "input_size": INPUT_SIZE,
        "num_proj": NUM_PROJ,
        "use_peepholes": True,
        "cell_clip": 3.0,
        "proj_clip": 1.5,
        "activation": "relu",
        "time_major": True,
        "batch_size": 2,
        "time_steps": 7,
        "op_version": 1,
        "min_runtime_version": "1.13.1",
    }
    assert {k: info.get(k, "<missing>") for k in expected} == expected
    assert info["ok"] is True

    result = invoke("verify", out, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert report["max_abs_error"] < 1e-5

    result = invoke("inspect", out)  # the text form agrees
    assert result.exit_code == 0
    assert "num_units=6" in result.stdout and "num_proj=4" in result.stdout


@pytest.mark.runtime
def test_build_json(tmp_path: Path) -> None:
    weights = save_npz(tmp_path / "cell.npz", cell_weights(proj=True, peepholes=True))
    result = invoke("build", "--weights", weights, "--cell-clip", 2, "-o", tmp_path / "m.tflite", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)  # stdout holds the JSON and nothing else
    assert report["ok"] is True
    hp = report["hyperparameters"]
    assert (hp["num_units"], hp["input_size"], hp["num_proj"], hp["use_peepholes"], hp["cell_clip"]) == (
        NUM_UNITS,
        INPUT_SIZE,
        NUM_PROJ,
        True,
        2.0,
    )
    assert report["verification"]["passed"] is True
    assert report["weights_format"] == "tflite"


@pytest.mark.runtime
def test_build_accepts_float64_with_a_note(tmp_path: Path) -> None:
    weights = save_npz(tmp_path / "cell64.npz", cell_weights(dtype=np.float64))
    result = invoke("build", "--weights", weights, "-o", tmp_path / "m.tflite")
    assert result.exit_code == 0, result.output
    assert "float64" in result.stdout


@pytest.mark.runtime
def test_verify_failure_exits_1(models: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    strict = functools.partial(lstmgen.check.verify.verify_model, atol=0.0, rtol=0.0, float_runs=0)
    monkeypatch.setattr(lstmgen.cli.cmd_verify, "verify_model", strict)
    result = invoke("verify", models["dynamic"])
    assert_user_error(result, "dynamic.tflite", code=1)
    assert "FAIL" in result.stdout


@pytest.mark.runtime
def test_verify_failure_json_is_one_document(models: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    strict = functools.partial(lstmgen.check.verify.verify_model, atol=0.0, rtol=0.0, float_runs=0)
    monkeypatch.setattr(lstmgen.cli.cmd_verify, "verify_model", strict)
    result = invoke("verify", models["dynamic"], "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert report["exit_code"] == 1 and "disagrees with the reference" in report["error"]  # as every failure


BAD_VERIFY_OPTIONS = [
    pytest.param("dynamic", ["--batch-size", 0], ("batch",), id="batch-size-0"),
    pytest.param("fixed5", ["--time-steps", 3], ("time", "3", "5"), id="time-steps-on-fixed-model"),
    pytest.param("dynamic", ["--time-steps", 0], ("time",), id="time-steps-0"),
    pytest.param("dynamic", ["--time-steps", -3], ("time",), id="time-steps-negative"),
    pytest.param("dynamic", ["--seed", -1], ("seed",), id="seed-negative"),
]


@pytest.mark.runtime
@pytest.mark.parametrize(("model", "options", "names"), BAD_VERIFY_OPTIONS)
def test_verify_rejects_bad_options(
    models: dict[str, Path], model: str, options: list[object], names: tuple[str, ...]
) -> None:
    assert_user_error(invoke("verify", models[model], *options), *names)


# --------------------------------------------------------------------------- determinism


@pytest.mark.parametrize(
    "options",
    [
        pytest.param(["--cell-clip", 2], id="weights-file"),
        pytest.param(
            ["--num-units", NUM_UNITS, "--input-size", INPUT_SIZE, "--num-proj", NUM_PROJ, "--seed", 11],
            id="seeded-init",
        ),
    ],
)
def test_build_is_byte_deterministic(tmp_path: Path, weights_file: Path, options: list[object]) -> None:
    if "--num-units" not in options:
        options = ["--weights", weights_file, *options]
    a, b = tmp_path / "a.tflite", tmp_path / "b.tflite"
    assert invoke("build", *options, "--no-verify", "-o", a).exit_code == 0
    assert invoke("build", *options, "--no-verify", "-o", b).exit_code == 0
    assert a.read_bytes() == b.read_bytes()


@pytest.mark.runtime
def test_subprocess_build_success_and_determinism(tmp_path: Path, weights_file: Path) -> None:
    first, second = tmp_path / "first.tflite", tmp_path / "second.tflite"
    proc = subprocess_cli("build", "--weights", weights_file.name, "-o", first.name, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "PASS" in proc.stdout
    proc = subprocess_cli("build", "--weights", weights_file.name, "-o", second.name, "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["ok"] is True
    assert first.read_bytes() == second.read_bytes()
    # the same inputs in-process give the same bytes
    third = tmp_path / "third.tflite"
    assert invoke("build", "--weights", weights_file, "--no-verify", "-o", third).exit_code == 0
    assert third.read_bytes() == first.read_bytes()
    assert sorted(tmp_path.glob(".*.tmp")) == []


def test_subprocess_bad_weights(tmp_path: Path) -> None:
    save_npz(tmp_path / "cell.npz", with_value("forget_gate_bias", 3, np.nan))
    proc = subprocess_cli("build", "--weights", "cell.npz", "-o", "model.tflite", cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "cell.npz" in proc.stderr and "forget_gate_bias" in proc.stderr and "NaN" in proc.stderr
    assert_no_output(tmp_path / "model.tflite")


def test_subprocess_inspect_truncated(tmp_path: Path, models: dict[str, Path]) -> None:
    data = models["dynamic"].read_bytes()
    (tmp_path / "half.tflite").write_bytes(data[: len(data) // 2])
    proc = subprocess_cli("inspect", "half.tflite", cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "half.tflite" in proc.stderr


def test_subprocess_help(tmp_path: Path) -> None:
    proc = subprocess_cli("--help", cwd=tmp_path)
    assert proc.returncode == 0
    assert "lstmgen build" in proc.stdout


# ------------------------------------------------------------------------------------- help


@pytest.mark.parametrize("command", COMMANDS)
def test_help_shows_example_and_exit_status(command: str) -> None:
    result = invoke(command, "--help")
    assert result.exit_code == 0
    text = " ".join(result.output.split())  # undo click's line wrapping
    assert "Examples:" in text
    assert f"lstmgen {command} " in text
    assert "Exit status: 0 success, " in text and "2 bad input or usage, 70 internal error" in text


@pytest.mark.parametrize("command", COMMANDS)
def test_top_level_help_shows_examples(command: str) -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    assert f"lstmgen {command} " in result.output


def test_top_level_help_shows_exit_status() -> None:
    assert "Exit status:" in invoke("--help").output


# ------------------------------------------------------------------ inspect / verify / run: bad model files


def _model_missing(path: Path, models: dict[str, Path]) -> None:
    pass


def _model_directory(path: Path, models: dict[str, Path]) -> None:
    path.mkdir()


def _model_truncated(path: Path, models: dict[str, Path]) -> None:
    data = models["dynamic"].read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _model_random(path: Path, models: dict[str, Path]) -> None:
    path.write_bytes(np.random.default_rng(5).integers(0, 256, 4096, dtype=np.uint8).tobytes())


def _model_png(path: Path, models: dict[str, Path]) -> None:
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64))


def _model_empty(path: Path, models: dict[str, Path]) -> None:
    path.write_bytes(b"")


BAD_MODELS = [
    pytest.param(_model_missing, id="missing"),
    pytest.param(_model_directory, id="directory"),
    pytest.param(_model_truncated, id="truncated"),
    pytest.param(_model_random, id="random-bytes"),
    pytest.param(_model_png, id="png"),
    pytest.param(_model_empty, id="empty"),
]


@pytest.mark.parametrize("command", ["inspect", "verify", "run"])
@pytest.mark.parametrize("make", BAD_MODELS)
def test_bad_model_file(
    tmp_path: Path, models: dict[str, Path], x_file: Path, command: str, make: Callable[[Path, dict[str, Path]], None]
) -> None:
    model = tmp_path / "bad.tflite"
    make(model, models)
    y = tmp_path / "y.npy"
    extra = ["--input", x_file, "--output", y] if command == "run" else []
    assert_user_error(invoke(command, model, *extra), "bad.tflite")
    assert_no_output(y)


def _corrupt_tensor_index(src: Path, dst: Path) -> None:
    """A model whose LSTM op points at tensor 999 (a corrupt file): written with lstmgen's own records."""
    import dataclasses

    from lstmgen.tflite.reader import read_model
    from lstmgen.tflite.writer import serialize

    model = read_model(src.read_bytes())
    op = model.operators[0]
    inputs = list(op.inputs)
    inputs[2] = 999
    bad_op = dataclasses.replace(op, inputs=tuple(inputs))
    dst.write_bytes(bytes(serialize(dataclasses.replace(model, operators=(bad_op,)))))


def test_inspect_model_with_out_of_range_tensor_index(tmp_path: Path, models: dict[str, Path]) -> None:
    bad = tmp_path / "corrupt.tflite"
    _corrupt_tensor_index(models["dynamic"], bad)
    assert_user_error(invoke("inspect", bad), "corrupt.tflite")


def test_inspect_text_and_json(models: dict[str, Path]) -> None:
    info = json_report(invoke("inspect", models["fixed5"], "--json"))
    assert (info["time_steps"], info["batch_size"], info["num_proj"], info["activation"]) == (5, 1, None, "tanh")
    info = json_report(invoke("inspect", models["full"], "--json"))
    assert (info["time_steps"], info["batch_size"], info["num_proj"], info["time_major"]) == (None, 2, NUM_PROJ, True)
    result = invoke("inspect", models["dynamic"])
    assert result.exit_code == 0 and "time=dynamic" in result.stdout


# ------------------------------------------------------------------------------------------ run


def _run(model: Path, x: np.ndarray, tmp_path: Path, *options: object) -> tuple[Result, Path]:
    xp, y = tmp_path / "x.npy", tmp_path / "y.npy"
    np.save(xp, x)
    return invoke("run", model, "--input", xp, "--output", y, *options), y


def _x(*shape: int, seed: int = 2) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(F32)


@pytest.mark.runtime
def test_run_wrong_feature_size(tmp_path: Path, models: dict[str, Path]) -> None:
    result, y = _run(models["dynamic"], _x(1, 7, 4), tmp_path)
    assert_user_error(result, "[1, 7, 4]", "5")
    assert_no_output(y)


@pytest.mark.runtime
def test_run_time_size_mismatch_on_fixed_model(tmp_path: Path, models: dict[str, Path]) -> None:
    result, y = _run(models["fixed5"], _x(1, 7, INPUT_SIZE), tmp_path)
    assert_user_error(result, "time", "7", "5")
    assert_no_output(y)


@pytest.mark.runtime
def test_run_fixed_model_with_its_time_size(tmp_path: Path, models: dict[str, Path]) -> None:
    result, y = _run(models["fixed5"], _x(1, 5, INPUT_SIZE), tmp_path)
    assert result.exit_code == 0, result.output
    assert np.load(y).shape == (1, 5, NUM_UNITS)


@pytest.mark.runtime
@pytest.mark.parametrize("steps", [1, 3, 7, 12])
def test_run_dynamic_model_accepts_any_time_size(tmp_path: Path, models: dict[str, Path], steps: int) -> None:
    result, y = _run(models["dynamic"], _x(1, steps, INPUT_SIZE), tmp_path)
    assert result.exit_code == 0, result.output
    assert np.load(y).shape == (1, steps, NUM_UNITS)


BAD_RUN_OPTIONS = [
    pytest.param(["--chunk", 0], ("--chunk", "0"), id="chunk-0"),
    pytest.param(["--chunk", -2], ("--chunk", "-2"), id="chunk-negative"),
]


@pytest.mark.runtime
@pytest.mark.parametrize(("options", "names"), BAD_RUN_OPTIONS)
def test_run_rejects_bad_options(
    tmp_path: Path, models: dict[str, Path], options: list[object], names: tuple[str, ...]
) -> None:
    result, y = _run(models["dynamic"], _x(1, 7, INPUT_SIZE), tmp_path, *options)
    assert_user_error(result, *names)
    assert_no_output(y)


@pytest.mark.runtime
@pytest.mark.parametrize(
    ("model", "shape", "state"),
    [
        pytest.param("dynamic", (1, 7, INPUT_SIZE), {"c": (1, NUM_UNITS), "h": (1, NUM_UNITS)}, id="batch-major"),
        pytest.param(
            "full", (8, 2, INPUT_SIZE), {"c": (2, NUM_UNITS), "h": (2, NUM_PROJ)}, id="time-major-proj-batch2"
        ),
    ],
)
def test_run_chunked_equals_one_shot(
    tmp_path: Path, models: dict[str, Path], model: str, shape: tuple[int, ...], state: dict[str, tuple[int, ...]]
) -> None:
    x = tmp_path / "x.npy"
    np.save(x, _x(*shape))
    y1, s1, y3, s3 = (tmp_path / n for n in ("y1.npy", "s1.npz", "y3.npy", "s3.npz"))
    r1 = invoke("run", models[model], "--input", x, "--output", y1, "--final-state", s1)
    r3 = invoke("run", models[model], "--input", x, "--output", y3, "--final-state", s3, "--chunk", 3)
    assert (r1.exit_code, r3.exit_code) == (0, 0), r1.output + r3.output
    assert np.array_equal(np.load(y1), np.load(y3))
    with np.load(s1) as a, np.load(s3) as b:
        assert sorted(a.files) == sorted(b.files) == ["c", "h"]
        assert {k: a[k].shape for k in a.files} == state
        assert all(np.array_equal(a[k], b[k]) for k in ("c", "h"))


@pytest.mark.runtime
def test_run_initial_state_unknown_key(tmp_path: Path, models: dict[str, Path]) -> None:
    state = save_npz(tmp_path / "state.npz", {"h": np.zeros((1, NUM_UNITS), F32), "q": np.zeros(3, F32)})
    result, y = _run(models["dynamic"], _x(1, 7, INPUT_SIZE), tmp_path, "--initial-state", state)
    assert_user_error(result, "state.npz", "q")
    assert_no_output(y)


@pytest.mark.runtime
def test_run_initial_state_is_used(tmp_path: Path, models: dict[str, Path]) -> None:
    state = save_npz(tmp_path / "state.npz", {"c": np.full((1, NUM_UNITS), 0.5, F32)})
    x, y0, yc = tmp_path / "x.npy", tmp_path / "y0.npy", tmp_path / "yc.npy"
    np.save(x, _x(1, 4, INPUT_SIZE))
    zero = invoke("run", models["dynamic"], "--input", x, "--output", y0)
    given = invoke("run", models["dynamic"], "--input", x, "--output", yc, "--initial-state", state)
    assert (zero.exit_code, given.exit_code) == (0, 0), zero.output + given.output
    assert not np.array_equal(np.load(y0), np.load(yc))


@pytest.mark.runtime
def test_run_never_unpickles_input(tmp_path: Path, models: dict[str, Path]) -> None:
    marker, x, y = tmp_path / "UNPICKLED", tmp_path / "evil.npy", tmp_path / "y.npy"
    np.save(x, np.array([UnpickleMarker(marker)], dtype=object))
    assert_user_error(invoke("run", models["dynamic"], "--input", x, "--output", y), "evil.npy", "pickle")
    assert not marker.exists()
    assert_no_output(y)
    np.load(x, allow_pickle=True)  # control: the payload is live
    assert marker.exists()


def test_run_missing_input(tmp_path: Path, models: dict[str, Path]) -> None:
    y = tmp_path / "y.npy"
    assert_user_error(invoke("run", models["dynamic"], "--input", tmp_path / "nope.npy", "--output", y), "nope.npy")
    assert_no_output(y)


def _state_npy(tmp: Path) -> list[object]:
    np.save(tmp / "state.npy", np.zeros((1, NUM_UNITS), F32))
    return ["--initial-state", tmp / "state.npy"]


def _state_wrong_shape(tmp: Path) -> list[object]:
    return ["--initial-state", save_npz(tmp / "state.npz", {"h": np.zeros((1, 7), F32)})]


def _empty_time_axis(tmp: Path) -> list[object]:
    np.save(tmp / "x.npy", np.zeros((1, 0, INPUT_SIZE), F32))
    return []


def _final_state_dir_missing(tmp: Path) -> list[object]:
    return ["--final-state", tmp / "absent" / "s.npz"]


RUN_BUGS = [
    pytest.param(_state_npy, ("state.npy",), id="initial-state-is-npy"),
    pytest.param(_state_wrong_shape, ("state.npz", "h", "[1, 7]"), id="initial-state-wrong-shape"),
    pytest.param(_empty_time_axis, ("x.npy", "time"), id="empty-time-axis"),
    pytest.param(_final_state_dir_missing, ("absent",), id="final-state-dir-missing"),
]


@pytest.mark.runtime
@pytest.mark.parametrize(("options", "names"), RUN_BUGS)
def test_run_bad_state_and_input(
    tmp_path: Path, models: dict[str, Path], options: Callable[[Path], list[object]], names: tuple[str, ...]
) -> None:
    x, y = tmp_path / "x.npy", tmp_path / "y.npy"
    np.save(x, _x(1, 7, INPUT_SIZE))
    extra = options(tmp_path)
    assert_user_error(invoke("run", models["dynamic"], "--input", x, "--output", y, *extra), *names)
    assert_no_output(y)


@pytest.mark.runtime
@pytest.mark.parametrize(
    ("model", "shape"),
    [
        pytest.param("dynamic", (1, 7, 4), id="feature-size"),
        pytest.param("fixed5", (1, 7, INPUT_SIZE), id="time-size"),
    ],
)
def test_run_shape_errors_name_the_input_file(
    tmp_path: Path, models: dict[str, Path], model: str, shape: tuple[int, ...]
) -> None:
    result, _ = _run(models[model], _x(*shape), tmp_path)
    assert_user_error(result, "x.npy")


@pytest.mark.parametrize(
    ("values", "needle"),
    [(np.nan, "NaN/Inf"), (np.inf, "NaN/Inf"), (1j, "complex128")],
    ids=["nan", "inf", "complex"],
)
def test_non_real_inputs_are_bad_input(tmp_path: Path, values: complex, needle: str) -> None:
    """Red team: a NaN input made verify fail a right model (exit 1, 'max abs error nan'); a complex one
    was cast to float with its imaginary part dropped and passed; run and emulate ran both."""
    model = tmp_path / "m.tflite"
    built = invoke("build", "--num-units", 4, "--input-size", 3, "--time-steps", 5, "--no-verify", "-o", model)
    assert built.exit_code == 0
    x = np.zeros((1, 5, 3), np.complex128 if isinstance(values, complex) else np.float32)
    x[0, 2, 1] = values
    np.save(tmp_path / "x.npy", x)
    for args in (["verify", str(model)], ["run", str(model), "--output", str(tmp_path / "y.npy")]):
        result = invoke(*args, "--input", tmp_path / "x.npy")
        assert result.exit_code == 2 and needle in result.output and "Traceback" not in result.output, result.output
    assert not (tmp_path / "y.npy").exists()
