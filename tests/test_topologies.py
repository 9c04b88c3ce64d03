"""Stacked, bidirectional, CIFG, layer-norm, last-step, go_backwards and resizable models (issue 4)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from support import TF_FIXTURES, random_tflite_weights, tf_manifest

from lstmgen.build import build
from lstmgen.check.verify import verify_model
from lstmgen.cli.main import main
from lstmgen.describe import describe
from lstmgen.errors import ConfigError, LstmgenError, WeightFileError
from lstmgen.run import run_model, run_model_states

B, T, I, H = 3, 7, 5, 6  # noqa: E741  (batch != time != input != units)


def _torch():
    """torch is the oracle here, but the other topology tests also run where it is absent (tflite-runtime venv)."""
    return pytest.importorskip("torch")


def _torch_lstm(layers: int, bidirectional: bool, proj: int, batch_first: bool, seed: int = 0):
    torch = _torch()
    torch.manual_seed(seed)
    m = torch.nn.LSTM(I, H, num_layers=layers, bidirectional=bidirectional, proj_size=proj, batch_first=batch_first)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn_like(p) * 0.5)  # random, non-default biases
    return m


TORCH_CASES = [
    pytest.param(2, False, 0, True, id="2-layer"),
    pytest.param(2, False, 4, True, id="2-layer-proj"),
    pytest.param(3, False, 0, False, id="3-layer-time-major"),
    pytest.param(3, False, 3, False, id="3-layer-proj-time-major"),
    pytest.param(1, True, 0, True, id="bidir-1-layer"),
    pytest.param(1, True, 0, False, id="bidir-1-layer-time-major"),
    pytest.param(2, True, 0, True, id="bidir-2-layer"),
    pytest.param(2, True, 4, False, id="bidir-2-layer-proj-time-major"),
]


@pytest.mark.runtime
@pytest.mark.parametrize(("layers", "bidirectional", "proj", "batch_first"), TORCH_CASES)
def test_stacks_match_pytorch(tmp_path: Path, layers: int, bidirectional: bool, proj: int, batch_first: bool) -> None:
    torch = _torch()
    m = _torch_lstm(layers, bidirectional, proj, batch_first)
    path = tmp_path / "lstm.pt"
    torch.save(m.state_dict(), path)
    x = np.random.default_rng(1).standard_normal((B, T, I) if batch_first else (T, B, I)).astype(np.float32)
    with torch.no_grad():
        y_ref, (h_ref, c_ref) = m(torch.from_numpy(x))
    out = tmp_path / "m.tflite"
    opts = {
        "num_layers": layers,
        "bidirectional": bidirectional or None,
        "time_major": not batch_first,
        "batch_size": B,
    }
    result = build(out, opts, path)
    assert result.verification is not None and result.verification.passed
    y, finals = run_model_states(out, x)
    np.testing.assert_allclose(y, y_ref.numpy(), atol=1e-5, rtol=0)
    for k, (h, c) in enumerate(finals):  # op order = layer 0 fw, layer 0 bw, layer 1 fw, ... as torch's h_n
        np.testing.assert_allclose(h.reshape(h_ref[k].shape), h_ref[k].numpy(), atol=1e-5, rtol=0)
        np.testing.assert_allclose(c.reshape(c_ref[k].shape), c_ref[k].numpy(), atol=1e-5, rtol=0)
    info = describe(out)
    assert info["num_layers"] == layers and info["bidirectional"] == bidirectional
    assert len(info["layers"]) == layers * (2 if bidirectional else 1)


KERAS_CASES = {
    # case -> (extra build options)
    "keras3_stacked": {"num_layers": 2},
    "keras3_bidir": {"bidirectional": True},
    "keras3_last_step": {},
    "keras3_go_backwards": {},
}


@pytest.mark.runtime
@pytest.mark.parametrize("case", sorted(KERAS_CASES))
def test_keras_topologies_match_keras(tmp_path: Path, case: str) -> None:
    io = np.load(TF_FIXTURES / f"{case}.io.npz")
    hp = tf_manifest()[case]["hyperparameters"]
    out = tmp_path / "m.tflite"
    build(out, KERAS_CASES[case] | {"batch_size": hp["batch_size"]}, TF_FIXTURES / f"{case}.keras")
    y, _, _ = run_model(out, io["x"])
    np.testing.assert_allclose(y, io["y"], atol=1e-5, rtol=0)


@pytest.mark.runtime
@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"num_layers": 3, "num_proj": 4}, id="stacked-proj"),
        pytest.param({"num_layers": 2, "cifg": True, "use_peepholes": True}, id="stacked-cifg-peephole"),
        pytest.param({"layer_norm": True, "seed": 3}, id="layer-norm"),
        pytest.param({"layer_norm": True, "cifg": True, "num_proj": 4}, id="layer-norm-cifg-proj"),
        pytest.param({"num_layers": 2, "return_sequences": False, "time_major": True}, id="last-step"),
        pytest.param({"bidirectional": True, "return_sequences": False}, id="bidir-last-step"),
        pytest.param({"go_backwards": True}, id="go-backwards"),
        pytest.param({"dynamic_batch": True, "bidirectional": True, "num_layers": 2}, id="dynamic-batch-bidir"),
    ],
)
def test_variants_verify(tmp_path: Path, options: dict) -> None:
    out = tmp_path / "m.tflite"
    result = build(out, {"num_units": H, "input_size": I, "batch_size": B} | options)
    assert result.verification is not None and result.verification.passed, result.verification


@pytest.mark.runtime
def test_layer_norm_with_given_coefficients(tmp_path: Path, weights_npz) -> None:
    """Non-unit coefficients from the weights, CIFG, against the reference (which hand tests cover)."""
    w = random_tflite_weights(H, I, seed=4)
    for k in ("input_to_input_weights", "recurrent_to_input_weights", "input_gate_bias"):
        del w[k]
    rng = np.random.default_rng(5)
    for g in ("forget", "cell", "output"):
        w[f"{g}_layer_norm_coefficients"] = rng.uniform(0.5, 1.5, H).astype(np.float32)
    out = tmp_path / "ln.tflite"
    result = build(out, {"batch_size": B}, weights_npz(w))
    assert result.config.cifg and result.config.layer_norm
    assert result.verification is not None and result.verification.passed


@pytest.mark.runtime
@pytest.mark.parametrize("options", [{"num_layers": 3}, {"num_layers": 2, "num_proj": 4, "time_major": True}])
def test_chunked_runs_equal_one_shot_bitwise(tmp_path: Path, options: dict) -> None:
    out = tmp_path / "m.tflite"
    build(out, {"num_units": H, "input_size": I, "batch_size": B} | options, verify=False)
    x = np.random.default_rng(2).standard_normal((T, B, I) if options.get("time_major") else (B, T, I))
    x = x.astype(np.float32)
    y1, s1 = run_model_states(out, x)
    for chunk in (1, 3):
        y2, s2 = run_model_states(out, x, chunk=chunk)
        assert np.array_equal(y1, y2)
        assert all(np.array_equal(a, b) for p, q in zip(s1, s2, strict=True) for a, b in zip(p, q, strict=True))


@pytest.mark.runtime
def test_last_step_chunked_equals_one_shot(tmp_path: Path) -> None:
    out = tmp_path / "m.tflite"
    build(out, {"num_units": H, "input_size": I, "batch_size": B, "return_sequences": False}, verify=False)
    x = np.random.default_rng(2).standard_normal((B, T, I)).astype(np.float32)
    assert np.array_equal(run_model(out, x)[0], run_model(out, x, chunk=2)[0])


@pytest.mark.runtime
def test_bidirectional_streaming_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "m.tflite"
    build(out, {"num_units": H, "input_size": I, "bidirectional": True}, verify=False)
    x = np.zeros((1, T, I), np.float32)
    with pytest.raises(LstmgenError, match="backward direction .* needs the whole sequence"):
        run_model(out, x, chunk=3)


@pytest.mark.runtime
def test_dynamic_batch_really_resizes(tmp_path: Path) -> None:
    out = tmp_path / "m.tflite"
    build(out, {"num_units": H, "input_size": I, "batch_size": 1, "dynamic_batch": True, "num_layers": 2})
    for batch in (1, 4, 2):
        report = verify_model(out, batch_size=batch, time_steps=5)
        assert report.passed and report.input_shape == [batch, 5, I]
    fixed = tmp_path / "fixed.tflite"
    build(fixed, {"num_units": H, "input_size": I, "batch_size": 2}, verify=False)
    # [4, T, I] reads as a batch of 4 or as time-major data of 4 steps: the error names both ways out.
    with pytest.raises(LstmgenError, match="fixed batch of 2.*--time-major.*a batch of 4.*--dynamic-batch"):
        run_model(fixed, np.zeros((4, T, I), np.float32))


def test_bad_topologies(tmp_path: Path, weights_npz) -> None:
    torch = _torch()
    m = _torch_lstm(1, True, 0, True)
    bidir = tmp_path / "bidir.pt"
    torch.save(m.state_dict(), bidir)
    with pytest.raises(ConfigError, match="bidirectional weights.*bidirectional = false"):
        build(tmp_path / "a.tflite", {"bidirectional": False}, bidir)
    assert build(tmp_path / "b.tflite", {}, bidir).config.bidirectional  # unstated: the file's topology
    uni = tmp_path / "uni.pt"
    torch.save(_torch_lstm(1, False, 0, True).state_dict(), uni)
    with pytest.raises(ConfigError, match="--bidirectional needs a backward cell"):
        build(tmp_path / "a.tflite", {"bidirectional": True}, uni)
    with pytest.raises(ConfigError, match="--cifg True disagrees.*input-gate arrays"):
        build(tmp_path / "a.tflite", {"cifg": True}, weights_npz(random_tflite_weights(H, I)))
    w = random_tflite_weights(H, I)
    w["forget_layer_norm_coefficients"] = np.ones(H, np.float32)
    with pytest.raises(WeightFileError, match="missing 'input_layer_norm_coefficients'"):
        build(tmp_path / "a.tflite", {}, weights_npz(w, "ln.npz"))
    assert [p.name for p in tmp_path.glob("*.tflite")] == ["b.tflite"]


def test_inconsistent_layer_sizes(tmp_path: Path) -> None:
    torch = _torch()
    sd = _torch_lstm(2, False, 0, True).state_dict()
    sd["weight_ih_l1"] = torch.randn(4 * H, H + 1)  # layer 1 must take layer 0's H outputs
    path = tmp_path / "bad.pt"
    torch.save(sd, path)
    with pytest.raises(ConfigError, match="inconsistent per-layer sizes: layer 1 takes inputs of size 7"):
        build(tmp_path / "m.tflite", {"num_layers": 2}, path)


def test_cli_builds_every_layer_and_names_num_layers(tmp_path: Path) -> None:
    torch = _torch()
    path = tmp_path / "stack.pt"
    torch.save(_torch_lstm(2, False, 0, True).state_dict(), path)
    out = tmp_path / "m.tflite"
    r = CliRunner().invoke(main, ["build", "--weights", str(path), "-o", str(out)])
    assert r.exit_code == 0 and "built all 2 LSTM layers" in r.stdout and "--num-layers N" in r.stdout
    r = CliRunner().invoke(main, ["build", "--weights", str(path), "--num-layers", "2", "-o", str(out), "-q"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["inspect", str(out), "--json"])
    assert '"num_layers": 2' in r.stdout


@pytest.mark.runtime
def test_diagonal_recurrent_weights_from_a_file(tmp_path: Path, weights_npz) -> None:
    """Rank-1 recurrent weights (IndyLSTM): inferred from the arrays, op version 4, r * h in the reference."""
    w = random_tflite_weights(H, I, seed=6)
    for g in ("input", "forget", "cell", "output"):
        w[f"recurrent_to_{g}_weights"] = w[f"recurrent_to_{g}_weights"][:, 0].copy()
    out = tmp_path / "indy.tflite"
    result = build(out, {"batch_size": B}, weights_npz(w))
    assert result.config.diagonal_recurrent and result.verification is not None and result.verification.passed
    info = describe(out)
    assert info["op_version"] == 4 and info["min_runtime_version"] == "2.12.0"
    with pytest.raises(ConfigError, match="disagrees"):
        build(tmp_path / "x.tflite", {"diagonal_recurrent": False}, weights_npz(w, "w2.npz"))
