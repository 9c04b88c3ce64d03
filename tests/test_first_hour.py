"""A new user's first hour: messages that point at the real cause, one JSON document per --json run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from support import ROOT, invoke, json_report

from lstmgen.build import build
from lstmgen.cli.main import main
from lstmgen.errors import ConfigError, LstmgenError
from lstmgen.run import run_model, run_model_states


@pytest.mark.runtime
def test_chunk_on_fixed_time_axis_names_the_model_not_the_input(tmp_path: Path) -> None:
    model = tmp_path / "fixed.tflite"
    build(model, {"num_units": 4, "input_size": 3, "time_steps": 6}, verify=False)
    x = np.zeros((1, 6, 3), np.float32)
    with pytest.raises(LstmgenError, match=r"--chunk 2: .* fixes its time axis to 6 steps .*without --time-steps"):
        run_model(model, x, chunk=2)
    y, _, _ = run_model(model, x, chunk=6)  # a chunk as long as the sequence is one invoke
    assert y.shape == (1, 6, 4)


def _one_json_document(stdout: str) -> dict:
    doc = json.loads(stdout)  # exactly one document: json.loads refuses trailing data
    assert (isinstance(doc, dict) and {"ok", "exit_code", "error"} <= set(doc)) or doc.get("ok") is True
    return doc


@pytest.mark.parametrize(
    ("args", "code", "error"),
    [
        (["build", "--json", "--num-units", "abc", "-o", "x.tflite"], 2, "'abc' is not a valid integer"),
        (["build", "--json", "--no-such-option"], 2, "No such option"),
        (["build", "--json"], 2, "Missing option '-o'"),
        (["bogus", "--json"], 2, "No such command 'bogus'"),
        (["verify", "--json"], 2, "Missing argument 'MODEL'"),
        (["inspect", "--json", "--check", "nowhere", "m.tflite"], 2, "Invalid value for '--check'"),
        (["run", "--json", "m.tflite"], 2, "Missing option '--input'"),
        (["build", "--json", "-o", "x.tflite"], 2, "num_units is required"),
    ],
)
def test_json_usage_errors_print_one_document(args: list[str], code: int, error: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == code
    doc = _one_json_document(result.stdout)
    assert doc["ok"] is False and doc["exit_code"] == code and error in doc["error"]
    assert error in result.stderr  # the usual message still goes to stderr
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(doc, json.loads((ROOT / "schemas" / "report.schema.json").read_text()))


def test_json_internal_error_prints_one_document(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import lstmgen.cli.cmd_build as cmd_build

    def broken(*_args: object, **_kwargs: object) -> None:
        raise ZeroDivisionError("injected")

    monkeypatch.setattr(cmd_build, "build", broken)
    result = CliRunner().invoke(main, ["build", "--json", "--num-units", "4", "-o", str(tmp_path / "m.tflite")])
    assert result.exit_code == 70
    doc = _one_json_document(result.stdout)
    assert doc == {"ok": False, "exit_code": 70, "error": doc["error"]}
    assert "ZeroDivisionError: injected" in doc["error"]
    assert "bug in lstmgen" in result.stderr


def test_json_internal_error_outside_a_command(monkeypatch: pytest.MonkeyPatch) -> None:
    import lstmgen.cli.main as cli_main

    monkeypatch.setitem(cli_main.COMMANDS, "build", ("lstmgen.no_such_module", "broken"))
    result = CliRunner().invoke(main, ["build", "--json"])
    assert result.exit_code == 70
    assert _one_json_document(result.stdout)["exit_code"] == 70


def test_without_json_usage_errors_stay_click_s() -> None:
    result = CliRunner().invoke(main, ["build", "--num-units", "abc"])
    assert result.exit_code == 2 and result.stdout == "" and "Usage: " in result.stderr


@pytest.mark.runtime
def test_run_json_and_notes_for_silent_conversions(tmp_path: Path) -> None:
    model = tmp_path / "m.tflite"
    build(model, {"num_units": 4, "input_size": 3}, verify=False)
    np.save(tmp_path / "x64.npy", np.zeros((1, 5, 3), np.float64))
    args = ["run", str(model), "--input", str(tmp_path / "x64.npy"), "--output", str(tmp_path / "y.npy")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0 and "note: input" in result.stderr and "float64; converted to float32" in result.stderr
    assert "note:" not in CliRunner().invoke(main, [*args, "-q"]).stderr
    doc = json.loads(CliRunner().invoke(main, [*args, "--json"]).stdout)
    assert doc["ok"] is True and doc["output_shape"] == [1, 5, 4] and "float64" in doc["notes"][0]


@pytest.mark.runtime
def test_run_notes_that_an_int8_model_quantizes_float_input(tmp_path: Path) -> None:
    model = tmp_path / "q.tflite"
    result = build(model, {"num_units": 4, "input_size": 3, "time_steps": 5, "quantize": "int8"}, calibration="random")
    assert " ".join(result.notes).count("SMOKE TEST") == 1
    notes: list[str] = []
    run_model_states(model, np.zeros((1, 5, 3), np.float32), notes=notes)
    assert len(notes) == 1 and "takes int8 input (scale" in notes[0] and "quantized" in notes[0]


def test_help_epilogs_name_only_what_the_command_can_exit_with() -> None:
    assert "verification failed" not in CliRunner().invoke(main, ["run", "--help"]).stdout
    inspect_help = CliRunner().invoke(main, ["inspect", "--help"]).stdout
    assert "verification failed" not in inspect_help and "would not run" in inspect_help
    assert "1 verification failed" in CliRunner().invoke(main, ["verify", "--help"]).stdout


def test_verify_plot_without_matplotlib_fails_before_verifying(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import importlib.util

    import lstmgen.cli.cmd_verify as cmd_verify

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a))
    monkeypatch.setattr(cmd_verify, "verify_model", lambda *a, **k: pytest.fail("verified before checking matplotlib"))
    (tmp_path / "m.tflite").write_bytes(b"")
    result = CliRunner().invoke(main, ["verify", str(tmp_path / "m.tflite"), "--plot", str(tmp_path / "e.png")])
    assert result.exit_code == 2 and "--plot needs matplotlib" in result.stderr and "lstmgen[plot]" in result.stderr


@pytest.mark.runtime
def test_runtime_accepts_the_package_name(tmp_path: Path) -> None:
    pytest.importorskip("ai_edge_litert")
    args = ["build", "--num-units", "4", "--input-size", "3", "-o", str(tmp_path / "m.tflite"), "--json"]
    result = CliRunner().invoke(main, [*args, "--runtime", "ai-edge-litert"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["verification"]["runtime"] == "litert"


def test_a_runtime_that_is_installed_but_broken_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    from lstmgen.errors import RuntimeNotAvailable
    from lstmgen.runtimes import interpreter

    def fake_import(name: str) -> None:
        raise ImportError("numpy.core.multiarray failed to import")  # tflite-runtime 2.14 under numpy 2

    monkeypatch.setattr(interpreter, "_import", fake_import)
    with pytest.raises(RuntimeNotAvailable, match=r"tflite-runtime is installed but does not import.*numpy < 2"):
        interpreter.resolve_runtime("tflite-runtime")


HYBRID = ROOT / "tests" / "fixtures" / "hybrid"  # made by TF: tests/fixtures/hybrid/make_hybrid.py


@pytest.mark.slow
@pytest.mark.runtime
def test_default_hybrid_is_as_accurate_as_tf_s_own_conversion(tmp_path: Path) -> None:
    """TF's converter quantizes hybrid LSTM inputs asymmetrically (op v3); lstmgen's default does too, and on the
    same 64-unit Keras weights its error against the float Keras outputs is no larger than TF's model's."""
    from lstmgen.describe import describe

    io = np.load(HYBRID / "lstm64.io.npz")

    def max_error(model: Path) -> float:
        return max(float(np.abs(run_model(model, x)[0] - y).max()) for x, y in zip(io["x"], io["y"], strict=True))

    tf_model = HYBRID / "tf_hybrid64.tflite"
    assert describe(tf_model)["operators"] == ["UNIDIRECTIONAL_SEQUENCE_LSTM v3"]
    ours = tmp_path / "hybrid.tflite"
    result = build(ours, {"time_steps": 50, "quantize": "dynamic-int8"}, HYBRID / "lstm64.weights.npz")
    assert describe(ours)["operators"] == ["UNIDIRECTIONAL_SEQUENCE_LSTM v3"]
    assert result.config.asymmetric_inputs is True
    tf_error, our_error = max_error(tf_model), max_error(ours)
    assert 1e-3 < tf_error < 0.02  # really quantized
    assert our_error <= tf_error * 1.001
    sym = tmp_path / "sym.tflite"
    sym_options = {"time_steps": 50, "quantize": "dynamic-int8", "asymmetric_inputs": False}
    build(sym, sym_options, HYBRID / "lstm64.weights.npz")
    assert describe(sym)["operators"] == ["UNIDIRECTIONAL_SEQUENCE_LSTM v2"]
    sym_error = max_error(sym)
    assert sym_error > our_error  # why asymmetric is the default
    table = (ROOT / "docs" / "measurements.md").read_text().split("<!-- checked:hybrid -->")[1]
    documented = [float(row.rsplit("|", 2)[1]) for row in table.splitlines()[3:6]]
    assert documented == [float(f"{e:.3g}") for e in (tf_error, our_error, sym_error)], "docs/measurements.md is stale"


@pytest.mark.runtime
def test_build_summary_describes_every_layer_and_the_output_width(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    lstm = torch.nn.LSTM(5, 6, num_layers=2, batch_first=True, bidirectional=True)
    np.savez(tmp_path / "sd.npz", **{f"lstm.{k}": v.detach().numpy() for k, v in lstm.state_dict().items()})
    args = ["build", "--weights", str(tmp_path / "sd.npz"), "--num-layers", "2", "--bidirectional", "-q"]
    text = CliRunner().invoke(main, [*args, "-o", str(tmp_path / "m.tflite")]).stdout
    assert "layer 1 backward  num_units=6 input_size=12 output_size=6" in text and "[lstm.l1_reverse]" in text
    assert "output: 12 features per step (forward 6 || backward 6)" in text
    assert text.count("gate bias = bias_ih + bias_hh") == 1 and "(every cell)" in text
    doc = json_report(invoke(*args, "-o", tmp_path / "j.tflite", "--json"))
    assert doc["output_width"] == 12 and len(doc["layers"]) == 4
    assert doc["layers"][3] == {
        "layer": 1,
        "direction": "backward",
        "num_units": 6,
        "input_size": 12,
        "output_size": 6,
        "source": "lstm.l1_reverse",
    }


def test_terminal_progress_shows_long_tasks_only_and_ends_the_line(capsys: pytest.CaptureFixture[str]) -> None:
    from lstmgen.cli.common import TerminalProgress

    now = [0.0]
    show = TerminalProgress(after=2.0, every=0.25, clock=lambda: now[0])
    show("quick", 0, 10)
    now[0] = 0.5
    show("quick", 10, 10)  # finished within 2 s: nothing at all
    assert capsys.readouterr().err == ""
    show("calibrating", 0, 2_000_000)
    now[0] = 2.5
    show("calibrating", 900_000, 2_000_000)
    now[0] = 2.6
    show("calibrating", 900_001, 2_000_000)  # throttled
    now[0] = 3.0
    show("calibrating", 2_000_000, 2_000_000)
    err = capsys.readouterr().err
    assert err.count("\r") == 2 and err.endswith("lstmgen: calibrating: 100% (2,000,000/2,000,000 steps)\n")
    assert "calibrating: 45% (900,000/2,000,000 steps)" in err


def test_calibration_and_verification_report_their_steps(tmp_path: Path) -> None:
    from lstmgen import progress
    from lstmgen.check.verify import verify_model
    from lstmgen.numerics.float_bound import FLOAT_RUNS
    from lstmgen.quant.calibrate import calibrate
    from lstmgen.tflite.reader import read_model

    assert progress.step_hook() is None  # nobody watching: no per-step cost
    model = tmp_path / "m.tflite"
    build(model, {"num_units": 4, "input_size": 3, "num_layers": 2}, verify=False)
    seen: list[tuple[str, int, int]] = []
    with progress.showing(lambda *a: seen.append(a)):
        calibrate(read_model(model.read_bytes()), np.zeros((3, 1, 7, 3), np.float32))
    # the 3 samples run together (one batched evaluation): 2 ops x 7 steps, then done
    assert seen[-1] == ("calibrating", 14, 14) and len(seen) == 15
    assert [d for _, d, _ in seen[:-1]] == [*range(1, 14), 13]  # never 100% before the end
    seen.clear()
    with progress.showing(lambda *a: seen.append(a)), progress.task("verifying"):  # verify_model states the total
        assert verify_model(model, time_steps=5).passed
    # 2 evaluations (+ FLOAT_RUNS perturbed ones each, the float32 sensitivity) x 2 ops x 5 steps
    total = 2 * (1 + FLOAT_RUNS) * 2 * 5
    assert seen[-1] == ("verifying", total, total) and len(seen) == total + 1


@pytest.mark.runtime
def test_no_progress_when_stderr_is_not_a_terminal(tmp_path: Path) -> None:
    args = ["build", "--num-units", "4", "--input-size", "3", "-o", str(tmp_path / "m.tflite")]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0 and result.stderr == ""


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"runtime": "bogus"}, "runtime 'bogus'"),
        ({"accelerator": "u99"}, "accelerator 'u99'"),
        ({"max_error": -1.0}, "max_error -1.0"),
    ],
)
def test_api_run_options_checked_before_reading(tmp_path: Path, kwargs: dict[str, Any], field: str) -> None:
    """build()'s verification options are refused before the weight file is even opened (it does not exist)."""
    with pytest.raises(ConfigError, match=field):
        build(tmp_path / "m.tflite", {}, tmp_path / "missing.npz", **kwargs)
    assert not (tmp_path / "m.tflite").exists()


def test_oversized_init_build_is_refused_before_anything_is_generated(tmp_path: Path) -> None:
    """A verified --init build of a 149 GiB model: exit 2 at once (it was exit 70, a MemoryError while the
    reference generated the weights, found by a fresh-user test)."""
    out = tmp_path / "m.tflite"
    result = CliRunner().invoke(main, ["build", "--num-units", "100000", "--input-size", "8", "-o", str(out)])
    assert result.exit_code == 2 and "over the 2 GiB flatbuffer limit" in result.output
    assert not out.exists()


def test_calibration_data_may_be_a_directory(tmp_path: Path) -> None:
    """The README documents a directory of .npy files for calibration data; click refused directories."""
    data = tmp_path / "calib"
    data.mkdir()
    for k in range(4):
        np.save(data / f"s{k}.npy", np.random.default_rng(k).standard_normal((1, 5, 4)).astype(np.float32))
    args = ["build", "--num-units", "8", "--input-size", "4", "--time-steps", "5", "--quantize", "int8"]
    result = CliRunner().invoke(main, [*args, "--calibration-data", str(data), "-o", str(tmp_path / "m.tflite")])
    assert result.exit_code == 0, result.output
    assert "4 sample(s)" in result.output


def test_runtime_messages_name_what_the_user_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """LSTMGEN_RUNTIME is named as such (the user never typed --runtime); a missing runtime gets its own
    install line, not the default's."""
    from lstmgen.errors import RuntimeNotAvailable
    from lstmgen.runtimes import interpreter

    monkeypatch.setenv("LSTMGEN_RUNTIME", "bogus")
    with pytest.raises(RuntimeNotAvailable, match=r"LSTMGEN_RUNTIME='bogus' is unknown"):
        interpreter.resolve_runtime()
    monkeypatch.delenv("LSTMGEN_RUNTIME")

    def missing(name: str) -> None:
        raise ModuleNotFoundError(name)

    monkeypatch.setattr(interpreter, "_import", missing)
    with pytest.raises(RuntimeNotAvailable, match=r"Install it \(pip install tensorflow-cpu\)"):
        interpreter.resolve_runtime("tensorflow")


def test_json_documents_are_strict_json() -> None:
    """Every command prints --json through json_document: no Infinity/NaN, which strict parsers reject."""
    from lstmgen.cli import common

    text = common.json_document({"a": float("inf"), "b": [1.0, float("nan")], "c": (2, {"d": -float("inf")})})
    assert json.loads(text) == {"a": None, "b": [1.0, None], "c": [2, {"d": None}]}
    cli = ROOT / "lstmgen" / "cli"
    stray = [p.name for p in cli.glob("cmd_*.py") if "json.dumps(" in p.read_text()]
    assert not stray, f"print --json through common.json_document: {stray}"


def test_a_closed_pipe_is_not_an_internal_error(tmp_path: Path) -> None:
    """`lstmgen cells X | head` whose reader has gone: exit 141 (as from SIGPIPE), no 'internal error'."""
    import subprocess
    import sys

    weights = tmp_path / "w.npz"
    np.savez(weights, kernel=np.zeros((12, 16), np.float32), bias=np.zeros(16, np.float32))
    proc = subprocess.Popen(
        [sys.executable, "-m", "lstmgen", "cells", str(weights)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before lstmgen writes a byte
    with proc.stderr:
        err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141, err
    assert "internal error" not in err and "Traceback" not in err


def test_layer_chosen_by_another_name_is_named_in_a_note(tmp_path: Path) -> None:
    """Keras storage names look like Keras names ('lstm' is the file's first LSTM group, Keras layer 'lstm_1'):
    when --layer picks a cell under another name, the build says which one it took."""
    weights = ROOT / "tests" / "fixtures" / "real" / "k3_stacked_head.keras"
    args = ["build", "--weights", str(weights), "--no-verify", "-o", str(tmp_path / "m.tflite"), "--layer"]
    by_storage = CliRunner().invoke(main, [*args, "lstm"])
    assert by_storage.exit_code == 0 and "--layer lstm selected the cell 'lstm_1'" in by_storage.output
    by_name = CliRunner().invoke(main, [*args, "lstm_1"])
    assert by_name.exit_code == 0 and "selected the cell" not in by_name.output


def test_a_tflite_given_as_weights_points_to_verify_and_export(tmp_path: Path) -> None:
    model = tmp_path / "m.tflite"
    assert CliRunner().invoke(main, ["build", "--num-units", "4", "--input-size", "3", "-o", str(model)]).exit_code == 0
    result = CliRunner().invoke(main, ["build", "--weights", str(model), "-o", str(tmp_path / "n.tflite")])
    assert result.exit_code == 2
    assert "is a TFLite model, not a weight file" in result.output and "lstmgen export" in result.output


def test_lstmcell_keys_get_the_rename_that_makes_them_an_lstm(tmp_path: Path) -> None:
    """An nn.LSTMCell state_dict (no _l0 suffix) is refused with the rename that loads it as an nn.LSTM."""
    rng = np.random.default_rng(0)
    cell = {"weight_ih": (16, 3), "weight_hh": (16, 4), "bias_ih": (16,), "bias_hh": (16,)}
    arrays = {k: rng.standard_normal(s).astype(np.float32) for k, s in cell.items()}
    np.savez(tmp_path / "cell.npz", **arrays)
    args = ["build", "--weights-format", "torch", "-o", str(tmp_path / "m.tflite"), "--weights"]
    refused = CliRunner().invoke(main, [*args, str(tmp_path / "cell.npz")])
    assert refused.exit_code == 2 and "nn.LSTMCell" in refused.output and "weight_ih_l0" in refused.output
    np.savez(tmp_path / "lstm.npz", **{f"{k}_l0": v for k, v in arrays.items()})  # the rename it suggests
    built = CliRunner().invoke(main, [*args, str(tmp_path / "lstm.npz")])
    assert built.exit_code == 0, built.output
    assert "against the source (pytorch)" in built.output and "PASS" in built.output
