"""Issue 23, the second hour: no lost file, no internal error, no trap after the first success."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from support import invoke, random_tflite_weights


def refused(result, *words: str) -> str:  # type: ignore[no-untyped-def]
    """Exit 2 with one 'lstmgen: error:' paragraph naming `words`, never a traceback."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert "Traceback" not in result.output and "internal error" not in result.output, result.output
    for w in words:
        assert w in result.output, (w, result.output)
    return str(result.output)


@pytest.fixture
def small(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(weights .npz, model, input .npy) of a small model."""
    weights = tmp_path / "w.npz"
    np.savez(weights, **random_tflite_weights())
    model = tmp_path / "m.tflite"
    assert invoke("build", "--weights", weights, "-o", model, "--no-verify").exit_code == 0
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((1, 3, 5), np.float32))
    return weights, model, x


# ------------------------------------------------------------------ 1. outputs are never inputs


def test_export_never_overwrites_its_model(tmp_path: Path, small: tuple[Path, Path, Path]) -> None:
    _, model, _ = small
    link = tmp_path / "link.npz"
    link.symlink_to(model)
    hard = tmp_path / "hard.npz"
    os.link(model, hard)
    before = model.read_bytes()
    for out in (model, link, hard):
        refused(invoke("export", model, "--format", "tflite", "-o", out), "output", "input MODEL")
    assert model.read_bytes() == before and link.is_symlink()


def test_api_build_and_export_refuse_their_inputs(small: tuple[Path, Path, Path]) -> None:
    from lstmgen.errors import OutputError
    from lstmgen.export import export_weights
    from lstmgen.pipeline.steps import build

    weights, model, _ = small
    w_before, m_before = weights.read_bytes(), model.read_bytes()
    with pytest.raises(OutputError):
        build(weights, {}, weights, verify=False)
    with pytest.raises(OutputError):
        export_weights(model, model, "tflite")
    assert weights.read_bytes() == w_before and model.read_bytes() == m_before


def test_fresh_temp_file_of_a_dead_process_is_removed(tmp_path: Path, small: tuple[Path, Path, Path]) -> None:
    weights, _, _ = small
    stale = tmp_path / ".lstmgen-4194999-cafef00d.tmp"  # a PID above any pid_max; written just now (SIGKILL)
    stale.write_bytes(b"partial")
    live = tmp_path / f".lstmgen-{os.getppid()}-cafef00d.tmp"  # a live process's file stays
    live.write_bytes(b"partial")
    assert invoke("build", "--weights", weights, "-o", tmp_path / "o.tflite", "--no-verify").exit_code == 0
    assert not stale.exists() and live.exists()


# ------------------------------------------------------------------ 2. no exit 70 from values or nesting


@pytest.mark.parametrize(
    "args, words",
    [
        (("--cell-clip", "1e39"), ("cell_clip = 1e+39", "3.4028235e+38")),
        (("--num-proj", "3", "--proj-clip", "1e39"), ("proj_clip = 1e+39", "3.4028235e+38")),
    ],
)
def test_clip_values_beyond_float32_are_refused(tmp_path: Path, args: tuple[str, ...], words: tuple[str, ...]) -> None:
    refused(invoke("build", "--num-units", 4, "--input-size", 3, *args, "-o", tmp_path / "m.tflite"), *words)
    assert not (tmp_path / "m.tflite").exists()


def test_config_nesting_is_limited(tmp_path: Path) -> None:
    for name, text in [
        ("deep.json", "[" * 100_000 + "]" * 100_000),
        ("deep2.json", '{"a":' * 100_000 + "1" + "}" * 100_000),
        ("deep.toml", "a = " + "[" * 100_000 + "]" * 100_000),
    ]:
        config = tmp_path / name
        config.write_text(text)
        refused(invoke("build", "--config", config, "-o", tmp_path / "m.tflite"), "nested more than 32")
    ok = tmp_path / "ok.toml"  # brackets inside strings and comments do not count
    ok.write_text("num_units = 4  # " + "[" * 40 + '\ninput_size = 3\nname = "' + "x" * 10 + '"\n')
    assert invoke("build", "--config", ok, "-o", tmp_path / "m.tflite", "--no-verify").exit_code == 0


def test_export_forget_bias_is_range_checked(tmp_path: Path, small: tuple[Path, Path, Path]) -> None:
    _, model, _ = small
    for value in ("1e39", "nan"):
        refused(invoke("export", model, "--format", "tf1", "--forget-bias", value, "-o", tmp_path / "e.npz"),
                "forget_bias")  # fmt: skip


def test_nan_or_inf_input_is_bad_input(tmp_path: Path, small: tuple[Path, Path, Path]) -> None:
    _, model, _ = small
    for bad in (np.nan, np.inf):
        x = np.zeros((1, 3, 5), np.float32)
        x[0, 1, 2] = bad
        np.save(tmp_path / "bad.npy", x)
        for args in (("verify", model), ("run", model, "--output", tmp_path / "y.npy")):
            refused(invoke(*args, "--input", tmp_path / "bad.npy"), "bad.npy", "NaN/Inf", "[0, 1, 2]")
    np.savez(tmp_path / "state.npz", h=np.full((1, 6), np.nan, np.float32))
    x = tmp_path / "x.npy"
    refused(invoke("run", model, "--input", x, "--output", tmp_path / "y.npy", "--initial-state",
                   tmp_path / "state.npz"), "array 'h'", "[0, 0]")  # fmt: skip


def test_weights_overflowing_float32_math_are_bad_input(tmp_path: Path) -> None:
    weights = tmp_path / "big.npz"
    np.savez(weights, **{k: np.full_like(v, 3e38) for k, v in random_tflite_weights().items()})
    err = refused(invoke("build", "--weights", weights, "-o", tmp_path / "m.tflite"), "big.npz", "float32")
    assert "bug" not in err
    assert not (tmp_path / "m.tflite").exists()


def test_float16_npz_converts_with_a_note(tmp_path: Path) -> None:
    weights = tmp_path / "w16.npz"
    np.savez(weights, **{k: v.astype(np.float16) for k, v in random_tflite_weights().items()})
    result = invoke("build", "--weights", weights, "-o", tmp_path / "m.tflite")
    assert result.exit_code == 0, result.output
    assert "converted from float16 to float32 (exact)" in result.output


# ------------------------------------------------------------------ 6. export -> default build is exact

_MODELS = {  # build options of the exported model; the formats whose layout holds it
    "plain": ({"num_units": 6, "input_size": 5, "seed": 3}, ("tflite", "tf1", "keras", "torch", "onnx")),
    "relu-clipped": ({"num_units": 6, "input_size": 5, "activation": "relu", "cell_clip": 0.5},
                     ("tflite", "tf1", "keras")),
    "time-major": ({"num_units": 6, "input_size": 5, "time_major": True, "batch_size": 2},
                   ("tflite", "tf1", "keras", "torch", "onnx")),
    "go-backwards-last-step": ({"num_units": 6, "input_size": 5, "go_backwards": True, "return_sequences": False},
                               ("tflite", "tf1", "keras", "torch", "onnx")),
    "bidirectional": ({"num_units": 6, "input_size": 5, "bidirectional": True, "time_steps": 7},
                      ("tf1", "keras", "torch", "onnx")),
    "stacked-bidirectional": ({"num_units": 6, "input_size": 5, "num_layers": 2, "bidirectional": True,
                               "dynamic_batch": True}, ("tf1", "keras", "torch")),
}  # fmt: skip


@pytest.mark.parametrize("name", list(_MODELS))
def test_export_then_default_build_is_exact(tmp_path: Path, name: str) -> None:
    from lstmgen.export import export_weights
    from lstmgen.pipeline.steps import build
    from lstmgen.run import run_model

    options, formats = _MODELS[name]
    model = tmp_path / "m.tflite"
    build(model, options, verify=False)
    batch = options.get("batch_size", 1)
    shape = (7, batch, 5) if options.get("time_major") else (batch, 7, 5)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32) * 2
    want = run_model(model, x)[0]
    for fmt in formats:
        exported = tmp_path / f"{fmt}.npz"
        export_weights(model, exported, fmt)
        again = tmp_path / f"{fmt}.tflite"
        build(again, {}, exported)  # a default build: nothing restated (verified against the exported file)
        got = run_model(again, x)[0]
        assert got.shape == want.shape and got.tobytes() == want.tobytes(), (fmt, np.abs(got - want).max())


def test_export_refuses_an_activation_the_framework_lacks(tmp_path: Path) -> None:
    model = tmp_path / "m.tflite"
    result = invoke("build", "--num-units", 4, "--input-size", 3, "--activation", "relu", "-o", model, "-q")
    assert result.exit_code == 0
    for fmt in ("torch", "onnx"):
        refused(invoke("export", model, "--format", fmt, "-o", tmp_path / "e.npz"), "activation relu", "tf1")


# ------------------------------------------------------------------ 5. verify takes what the model records

ROOT = Path(__file__).resolve().parent.parent


def test_verify_weights_needs_no_topology_restated(tmp_path: Path) -> None:
    from lstmgen.export import export_weights

    stack = tmp_path / "stack.tflite"
    assert invoke("build", "--num-units", 6, "--input-size", 5, "--num-layers", 2, "--bidirectional", "--last-step",
                  "--time-major", "-o", stack, "-q").exit_code == 0  # fmt: skip
    weights = tmp_path / "enc.npz"  # a state_dict's keys: no layout, no last step recorded
    export_weights(stack, weights, "torch")
    np.savez(weights, **{k: v for k, v in np.load(weights).items() if k != "lstmgen_settings"})
    result = invoke("verify", stack, "--weights", weights)
    assert result.exit_code == 0, result.output
    one = tmp_path / "one.tflite"  # the file's first layer only: verify stacks what the model stacks
    assert invoke("build", "--weights", weights, "--num-layers", 1, "-o", one, "-q").exit_code == 0
    assert invoke("verify", one, "--weights", weights).exit_code == 0
    # Stated flags are cross-checks: agreeing ones pass, each disagreeing one is named in a FAIL (exit 1).
    same = ("--num-units", 6, "--input-size", 5, "--num-layers", 2, "--bidirectional", "--last-step", "--time-major")
    assert invoke("verify", stack, "--weights", weights, *same).exit_code == 0
    bad = invoke("verify", stack, "--weights", weights, "--num-layers", 1, "--batch-major", "--input-size", 4)
    assert bad.exit_code == 1 and "Traceback" not in bad.output
    for words in ("--num-layers 1 was stated, the model has 2", "--batch-major was stated, the model is --time-major",
                  "--input-size 4 was stated, the model has 5"):  # fmt: skip
        assert words in bad.output, bad.output


def test_verify_takes_the_build_config(tmp_path: Path) -> None:
    model = tmp_path / "demo.tflite"
    config = ROOT / "examples" / "cell.toml"
    assert invoke("build", "--config", config, "-o", model, "-q").exit_code == 0
    result = invoke("verify", model, "--config", config)
    assert result.exit_code == 0 and "against the source (tf1-lstmcell)" in result.output, result.output
    wrong = invoke("verify", model, "--config", config, "--cell-clip", "1")  # the source clipped at 3
    assert wrong.exit_code == 1, wrong.output
    refused(invoke("verify", model, "--config", config, "--cell-clip", "1e39"), "cell_clip")


# ------------------------------------------------------------------ 4. the PyTorch layout said aloud


def _state_dict(path: Path, hidden: int = 8, inputs: int = 16) -> Path:
    """An nn.LSTM inside a module with a head, as module.state_dict() names it (saved as .npz)."""
    rng = np.random.default_rng(0)
    arrays = {
        "lstm.weight_ih_l0": rng.standard_normal((4 * hidden, inputs)),
        "lstm.weight_hh_l0": rng.standard_normal((4 * hidden, hidden)),
        "lstm.bias_ih_l0": rng.standard_normal(4 * hidden),
        "lstm.bias_hh_l0": rng.standard_normal(4 * hidden),
        "head.weight": rng.standard_normal((3, hidden)),
        "head.bias": rng.standard_normal(3),
    }
    np.savez(path, **{k: (v * 0.3).astype(np.float32) for k, v in arrays.items()})
    return path


def test_state_dict_build_says_its_layout_and_ignored_keys(tmp_path: Path) -> None:
    weights = _state_dict(tmp_path / "sd.npz")
    result = invoke("build", "--weights", weights, "-o", tmp_path / "m.tflite")
    assert result.exit_code == 0, result.output
    assert "a PyTorch state_dict does not record batch_first: built batch-major [B,T,I]" in result.output
    assert "pass --time-major" in result.output
    assert "ignored 2 key(s) that are not nn.LSTM parameters: head.weight, head.bias" in result.output
    stated = invoke("build", "--weights", weights, "--time-major", "-o", tmp_path / "t.tflite")
    assert stated.exit_code == 0 and "does not record batch_first" not in stated.output


def test_time_major_data_for_a_batch_major_model_points_to_time_major(tmp_path: Path) -> None:
    model = tmp_path / "m.tflite"
    assert invoke("build", "--weights", _state_dict(tmp_path / "sd.npz"), "-o", model, "-q").exit_code == 0
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((25, 1, 16), np.float32))  # [T, B, I], as nn.LSTM takes it by default
    for args in (("run", model, "--input", x, "--output", tmp_path / "y.npy"), ("verify", model, "--input", x)):
        err = refused(invoke(*args), "--time-major", "[1, T, 16] (T free)")
        assert "Rebuild the model with --dynamic-batch" not in err
    np.save(x, np.zeros((3, 5, 16), np.float32))  # a batch of 3 for a batch-1 model: the free axis by name
    refused(invoke("run", model, "--input", x, "--output", tmp_path / "y.npy"), "[1, T, 16] (T free)")
    # Time-major data for a time-major model is one sample, not 25 one-step sequences.
    tm = tmp_path / "tm.tflite"
    assert invoke("build", "--weights", tmp_path / "sd.npz", "--time-major", "-o", tm, "-q").exit_code == 0
    np.save(x, np.zeros((25, 1, 16), np.float32))
    result = invoke("verify", tm, "--input", x)
    assert result.exit_code == 0 and "on input [25, 1, 16]" in result.output, result.output


# ------------------------------------------------------------------ 7. the remaining items


def test_bidirectional_onnx_with_an_activation_per_direction_builds(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    from lstmgen.run import run_model

    hidden, inputs, steps = 5, 4, 6
    rng = np.random.default_rng(3)
    arrays = {
        "W": rng.uniform(-0.5, 0.5, (2, 4 * hidden, inputs)).astype(np.float32),
        "R": rng.uniform(-0.5, 0.5, (2, 4 * hidden, hidden)).astype(np.float32),
        "B": rng.uniform(-0.5, 0.5, (2, 8 * hidden)).astype(np.float32),
    }
    node = helper.make_node(
        "LSTM", ["X", "W", "R", "B"], ["Y"], hidden_size=hidden, direction="bidirectional", name="lstm",
        activations=["Sigmoid", "Tanh", "Tanh", "Sigmoid", "Relu", "Relu"],
    )  # fmt: skip
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [steps, 1, inputs])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [steps, 2, 1, hidden])],
        [numpy_helper.from_array(v, k) for k, v in arrays.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    path = tmp_path / "bi.onnx"
    onnx.save(model, str(path))
    out = tmp_path / "bi.tflite"
    result = invoke("build", "--weights", path, "-o", out)  # verified against the node, per direction
    assert result.exit_code == 0, result.output
    x = rng.standard_normal((steps, 1, inputs)).astype(np.float32)
    (want,) = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"X": x})
    got = run_model(out, x)[0]  # [T, B, 2H]: forward || backward
    want = np.concatenate([want[:, 0], want[:, 1]], axis=-1)
    assert np.abs(got - want).max() < 1e-5


def test_micro_int8_advises_only_what_micro_runs(tmp_path: Path) -> None:
    out = tmp_path / "q.tflite"
    args = ("--quantize", "int8", "--calibration", "random", "--target", "micro", "-o", out)
    err = refused(invoke("build", "--config", ROOT / "examples" / "cell.toml", *args), "--target micro", "projection")
    assert "dynamic-int8" not in err and "float16" not in err


def test_readme_marks_blocks_needing_an_extra_visibly() -> None:
    """The `needs` marker is an HTML comment GitHub hides: a visible line says what to install."""
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    for k, line in enumerate(lines):
        if line.startswith("<!-- readme-test: needs "):
            before = [p for p in lines[max(0, k - 3) : k] if p.strip()]
            assert before and before[-1].startswith("> **Needs an extra:**") and "pip install" in before[-1], k + 1


def test_verify_test_shape_is_bounded(tmp_path: Path, small: tuple[Path, Path, Path]) -> None:
    _, model, _ = small
    refused(invoke("verify", model, "--time-steps", 100_000_000_000), "--time-steps")  # was OverflowError (exit 70)
    refused(invoke("verify", model, "--time-steps", 1 << 20, "--batch-size", 1 << 20), "GiB")


def test_batch_error_for_data_of_either_layout_names_both(tmp_path: Path) -> None:
    model = tmp_path / "m.tflite"
    assert invoke("build", "--weights", _state_dict(tmp_path / "sd.npz"), "-o", model, "-q").exit_code == 0
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((25, 4, 16), np.float32))  # 25 steps of 4 rows, or 25 sequences of 4 steps
    refused(invoke("run", model, "--input", x, "--output", tmp_path / "y.npy"), "--time-major", "--dynamic-batch")
