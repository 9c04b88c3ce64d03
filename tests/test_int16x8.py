"""--quantize int16x8 (int16 activations, int8 weights, int64 biases) verified in TensorFlow Lite Micro,
and `run --runtime micro`."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from support import invoke, json_report

import lstmgen.quant.quantize as quantize_module
from lstmgen.build import build
from lstmgen.check.verify import verify_model
from lstmgen.cli.main import main
from lstmgen.errors import ConfigError, ModelFileError, VerificationError
from lstmgen.numerics.graph import evaluate
from lstmgen.run import run_model
from lstmgen.runtimes.micro import open_micro_session
from lstmgen.tflite.reader import read_model
from lstmgen.tflite.slots import Slot

needs_tflm = pytest.mark.skipif(
    importlib.util.find_spec("tflite_micro") is None, reason="tflite-micro is not installed (pip install tflite-micro)"
)
N, I, B, T = 16, 5, 2, 9  # noqa: E741
CELL = {"num_units": N, "input_size": I, "batch_size": B, "time_steps": T}
I8, I16, I64 = np.dtype(np.int8), np.dtype(np.int16), np.dtype(np.int64)


@pytest.fixture(scope="module")
def calib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("calib") / "calib.npy"
    np.save(path, np.random.default_rng(3).standard_normal((12, B, T, I)).astype(np.float32))
    return path


def _build(path: Path, calib: Path, **options: Any) -> Any:
    return build(path, CELL | {"quantize": "int16x8"} | options, calibration_data=calib)


@needs_tflm
def test_int16x8_layout_follows_the_tflm_kernel(tmp_path: Path, calib: Path) -> None:
    result = _build(tmp_path / "m.tflite", calib)
    v = result.verification
    assert v is not None and v.passed and v.runtime == "tflite-micro" and v.mode == "int16x8"
    m = read_model((tmp_path / "m.tflite").read_bytes())
    op = m.operators[0]
    t = {s: m.tensors[op.inputs[s]] for s in Slot if op.inputs[s] >= 0}
    assert op.version == 5  # op_version.cc: int16 input, int8 weights, int16 output
    assert m.metadata_dict()["min_runtime_version"] == b"\0" * 16  # no TFLite release registers v5
    assert t[Slot.INPUT].dtype == I16 and t[Slot.INPUT].quantization.zero_point == (0,)
    assert all(t[Slot(s)].dtype == I8 for s in range(1, 9))
    for g, s in enumerate(range(12, 16)):  # int64 biases at s_x * s_W(input_to_gate)
        bias = t[Slot(s)]
        assert bias.dtype == I64
        want = t[Slot.INPUT].quantization.scale[0] * t[Slot(1 + g)].quantization.scale[0]
        assert bias.quantization.scale[0] == pytest.approx(want, rel=1e-6)
    h, c, out = t[Slot.OUTPUT_STATE], t[Slot.CELL_STATE], m.tensors[op.outputs[0]]
    assert h.dtype == I16 and h.quantization == out.quantization and out.quantization.zero_point == (0,)
    assert c.dtype == I16 and np.log2(c.quantization.scale[0]) == int(np.log2(c.quantization.scale[0]))
    assert len(op.intermediates) == 5
    assert (
        m.tensors[op.intermediates[4]].dtype == I16 and m.tensors[op.intermediates[4]].quantization == out.quantization
    )


@needs_tflm
@pytest.mark.parametrize("options", [{}, {"time_major": True}, {"io_type": "float32"}, {"cell_clip": 2.0}])
def test_int16x8_in_tflm_beats_int8_against_the_float_model(tmp_path: Path, calib: Path, options: dict) -> None:
    """TFLM's 16x8 output is within its derived tolerance of the reference, and closer to the float model than int8."""
    if options.get("time_major"):  # samples are [n, T, B, I]
        np.save(tmp_path / "calib_tm.npy", np.load(calib).transpose(0, 2, 1, 3))
        calib = tmp_path / "calib_tm.npy"
    x = np.load(calib)[0]
    build(tmp_path / "f.tflite", CELL | options, verify=False)
    fm = read_model((tmp_path / "f.tflite").read_bytes())
    y_float = evaluate(fm, {fm.inputs[0]: x}).values[fm.outputs[0]]
    errors = {}
    for mode in ("int8", "int16x8"):
        path = tmp_path / f"{mode}.tflite"
        io = {"io_type": options["io_type"]} if "io_type" in options else {}
        build(path, CELL | options | io | {"quantize": mode}, calibration_data=calib, verify=False)
        report = verify_model(path, x=x, runtime="micro")
        assert report.passed, report.to_dict()
        errors[mode] = float(np.abs(run_model(path, x, runtime="micro")[0] - y_float).max())
    assert errors["int16x8"] < errors["int8"], errors  # the weights (int8 in both) dominate at this size


@needs_tflm
def test_int16x8_tolerance_catches_a_wrong_bias_scale(tmp_path: Path, calib: Path, monkeypatch: Any) -> None:
    """The kernel adds the int64 bias at s_x * s_W whatever the file says: a wrong stated scale must fail."""
    real = quantize_module.quantize_symmetric

    def bad(x: np.ndarray, dtype: np.dtype, scale: float | None = None) -> tuple[np.ndarray, float]:
        q, s = real(x, dtype, scale)
        return q, (2 * s if np.dtype(dtype) == I64 else s)

    monkeypatch.setattr(quantize_module, "quantize_symmetric", bad)
    with pytest.raises(VerificationError):
        _build(tmp_path / "bad.tflite", calib)
    assert not (tmp_path / "bad.tflite").exists()


@pytest.mark.parametrize(
    ("options", "feature"),
    [
        ({"cifg": True}, "CIFG"),
        ({"use_peepholes": True}, "peepholes"),
        ({"num_proj": 4}, "projection"),
        ({"layer_norm": True}, "layer norm"),
    ],
)
def test_int16x8_refuses_variants_no_kernel_runs(tmp_path: Path, calib: Path, options: dict, feature: str) -> None:
    with pytest.raises(ConfigError, match=feature):
        _build(tmp_path / "m.tflite", calib, **options)
    assert not (tmp_path / "m.tflite").exists()


def test_int16x8_io_types(tmp_path: Path, calib: Path) -> None:
    with pytest.raises(ConfigError, match="io_type = 'int16' only applies"):
        build(tmp_path / "m.tflite", CELL | {"quantize": "int8", "io_type": "int16"}, calibration_data=calib)
    with pytest.raises(ConfigError, match="needs activation ranges"):
        build(tmp_path / "m.tflite", CELL | {"quantize": "int16x8"})


@needs_tflm
def test_litert_is_refused_with_the_reason(tmp_path: Path, calib: Path) -> None:
    _build(tmp_path / "m.tflite", calib)
    with pytest.raises(ModelFileError, match="--runtime micro"):
        verify_model(tmp_path / "m.tflite", runtime="litert")


@needs_tflm
def test_cli_build_verify_run_micro(tmp_path: Path, calib: Path) -> None:
    out = tmp_path / "m.tflite"
    args = ["--num-units", str(N), "--input-size", str(I), "--batch-size", str(B), "--time-steps", str(T)]
    doc = json_report(invoke("build", *args, "--quantize", "int16x8", "--calibration-data", calib, "-o", out, "--json"))
    assert doc["verification"]["runtime"] == "tflite-micro" and doc["verification"]["passed"]
    r = CliRunner().invoke(main, ["verify", str(out)])
    assert r.exit_code == 0 and "tflite-micro" in r.stdout
    # run: auto picks TFLM for int16x8; a float model runs in TFLM on request and matches LiteRT
    x = np.load(calib)[0]
    np.save(tmp_path / "x.npy", x)
    r = CliRunner().invoke(
        main, ["run", str(out), "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "y.npy")]
    )
    assert r.exit_code == 0, r.output
    assert np.load(tmp_path / "y.npy").shape == (B, T, N)
    f = tmp_path / "f.tflite"
    assert CliRunner().invoke(main, ["build", *args, "-q", "--no-verify", "-o", str(f)]).exit_code == 0
    for runtime in ("micro", "auto"):
        r = CliRunner().invoke(
            main,
            [
                "run",
                str(f),
                "--input",
                str(tmp_path / "x.npy"),
                "--output",
                str(tmp_path / f"{runtime}.npy"),
                "--runtime",
                runtime,
                "--final-state",
                str(tmp_path / f"{runtime}.npz"),
            ],
        )
        assert r.exit_code == 0, r.output
    np.testing.assert_allclose(np.load(tmp_path / "micro.npy"), np.load(tmp_path / "auto.npy"), atol=1e-5)
    for key in ("h", "c"):
        np.testing.assert_allclose(np.load(tmp_path / "micro.npz")[key], np.load(tmp_path / "auto.npz")[key], atol=1e-5)
    # TFLM cannot resize: another time length is refused with the reason
    np.save(tmp_path / "x2.npy", x[:, :3])
    r = CliRunner().invoke(
        main,
        [
            "run",
            str(f),
            "--input",
            str(tmp_path / "x2.npy"),
            "--output",
            str(tmp_path / "y2.npy"),
            "--runtime",
            "micro",
        ],
    )
    assert r.exit_code == 2 and "no tensor resizing" in r.stderr


@needs_tflm
def test_session_reports_tflm(tmp_path: Path, calib: Path) -> None:
    _build(tmp_path / "m.tflite", calib)
    s = open_micro_session(tmp_path / "m.tflite")
    assert s.runtime == "tflite-micro"


@needs_tflm
@pytest.mark.parametrize(
    "options",
    [{"bidirectional": True}, {"num_layers": 2}, {"go_backwards": True}, {"return_sequences": False}],
    ids=["bidirectional", "stacked", "go_backwards", "last_step"],
)
def test_int16x8_topologies_run_in_tflm(tmp_path: Path, options: dict) -> None:
    """REVERSE_V2, CONCATENATION and STRIDED_SLICE carry int16 in TFLM; the graph verifies end to end."""
    result = build(tmp_path / "m.tflite", CELL | {"quantize": "int16x8"} | options, calibration="random")
    v = result.verification
    assert v is not None and v.passed and v.runtime == "tflite-micro"
    m = read_model((tmp_path / "m.tflite").read_bytes())
    assert all(m.tensors[o].dtype == I16 for op in m.operators for o in op.outputs)


@needs_tflm
def test_json_outputs_validate(tmp_path: Path) -> None:
    """build/verify/inspect --json of an int16x8 model (runtime tflite-micro, empty min runtime) fit the schema."""
    pytest.importorskip("jsonschema")
    out = tmp_path / "m.tflite"
    args = ["--num-units", "4", "--input-size", "3", "--time-steps", "5", "--quantize", "int16x8", "--calibration"]
    json_report(invoke("build", *args, "random", "-o", out, "--json"))  # exit 0, ok, the report schema
    json_report(invoke("verify", out, "--json"))
    json_report(invoke("inspect", out, "--json", "--check", "micro"))
