"""--weights-format torch: nn.LSTM state_dicts (.pt, .safetensors, .npz) against torch itself as the oracle."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import Result
from support import invoke

# torch is the oracle: installed by `make test` in .venv, absent from the tflite-runtime venv.
torch = pytest.importorskip("torch")
safetensors_torch = pytest.importorskip("safetensors.torch")

from torch import nn  # noqa: E402

from lstmgen.build import build  # noqa: E402
from lstmgen.errors import WeightFileError  # noqa: E402
from lstmgen.run import run_model  # noqa: E402
from lstmgen.weights import load_weights  # noqa: E402
from lstmgen.weights import open as open_weights  # noqa: E402
from lstmgen.weights.torch_sd import TorchReader, list_cells  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
B, T, IN, H = 3, 7, 5, 6  # all different, so a swapped axis cannot go unnoticed
PH, P = 8, 4  # hidden and proj sizes for the projection cases
ATOL = 1e-5
FORMATS = ("pt", "safetensors", "npz")

# ---------------------------------------------------------------------------------------- helpers


def make_lstm(*, hidden: int = H, proj: int = 0, layers: int = 1, batch_first: bool = True, bias: bool = True,
              bidirectional: bool = False, seed: int = 0) -> nn.LSTM:  # fmt: skip
    """An nn.LSTM whose every parameter (biases too) is re-drawn from N(0, 0.5²), not the default init."""
    torch.manual_seed(seed)
    lstm = nn.LSTM(IN, hidden, num_layers=layers, batch_first=batch_first, bias=bias, proj_size=proj,
                   bidirectional=bidirectional)  # fmt: skip
    with torch.no_grad():
        for p in lstm.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
    return lstm.eval()


def save(state: Mapping[str, torch.Tensor], path: Path) -> Path:
    """Write a state_dict the way a user would, as .pt, .safetensors or .npz (by the suffix)."""
    if path.suffix == ".pt":
        torch.save(dict(state), path)
    elif path.suffix == ".safetensors":
        safetensors_torch.save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        np.savez(path, **{k: v.detach().numpy() for k, v in state.items()})
    return path


def prefixed(module: nn.Module, prefix: str) -> dict[str, torch.Tensor]:
    return {f"{prefix}{k}": v for k, v in module.state_dict().items()}


def inputs(batch_first: bool, size: int = IN, seed: int = 1) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((B, T, size)).astype(np.float32)
    return x if batch_first else np.ascontiguousarray(x.transpose(1, 0, 2))


def oracle(lstm: nn.LSTM, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with torch.no_grad(), warnings.catch_warnings():
        # Projection LSTMs fall back from oneDNN to the default kernel and say so: harmless here.
        warnings.filterwarnings("ignore", "LSTM with projections is not supported with oneDNN")
        y, (h, c) = lstm(torch.from_numpy(x))
    return y.numpy(), h.numpy(), c.numpy()


def build_and_run(tmp_path: Path, weights: Path, x: np.ndarray, *, time_major: bool, layer: str | None = None,
                  weights_format: str = "torch") -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    out = tmp_path / "model.tflite"
    options = {"batch_size": B, "time_steps": T, "time_major": time_major}
    result = build(out, options, weights, weights_format=weights_format, layer=layer)
    assert result.verification is not None and result.verification.passed
    assert result.weights_format == "torch"
    return run_model(out, x)


def assert_close(got: tuple[np.ndarray, ...], want: tuple[np.ndarray, ...]) -> None:
    for name, g, w in zip(("output", "final h", "final c"), got, want, strict=True):
        np.testing.assert_allclose(g.reshape(w.shape), w, atol=ATOL, rtol=0, err_msg=name)


def assert_user_error(result: Result, *names: str) -> str:
    """Exit 2, no traceback, one error paragraph on stderr naming every `names`."""
    assert result.exit_code == 2, f"exit {result.exit_code}; output:\n{result.output}"
    assert "Traceback" not in result.output and "internal error" not in result.stderr, result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("lstmgen: error:")]
    assert len(lines) == 1, result.stderr
    for name in names:
        assert name in lines[0], f"{name!r} not in: {lines[0]}"
    return lines[0]


def assert_no_output(path: Path) -> None:
    assert not path.exists(), f"{path} was left behind by a failed build"
    assert sorted(path.parent.glob(".*.tmp")) == [], "temporary files left behind"


# ------------------------------------------------------------------------------ torch as the oracle

ORACLE_CASES = [
    pytest.param(layout == "batch_first", kind, fmt, id=f"{layout}-{kind}-{fmt}")
    for layout in ("batch_first", "time_major")
    for kind in ("plain", "proj", "no_bias")
    for fmt in FORMATS
    if kind != "no_bias" or layout == "batch_first"
]


@pytest.mark.runtime
@pytest.mark.parametrize(("batch_first", "kind", "fmt"), ORACLE_CASES)
def test_single_layer_matches_torch(tmp_path: Path, batch_first: bool, kind: str, fmt: str) -> None:
    lstm = make_lstm(hidden=PH if kind == "proj" else H, proj=P if kind == "proj" else 0, batch_first=batch_first,
                     bias=kind != "no_bias")  # fmt: skip
    # A module prefix as in a real model's state_dict; one cell, so no --layer is needed.
    weights = save(prefixed(lstm, "encoder.lstm."), tmp_path / f"w.{fmt}")
    x = inputs(batch_first)
    got = build_and_run(tmp_path, weights, x, time_major=not batch_first, weights_format="auto")
    assert_close(got, oracle(lstm, x))


@pytest.mark.runtime
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("index", [0, 1], ids=["layer0", "layer1"])
def test_two_layer_lstm_one_layer_at_a_time(tmp_path: Path, index: int, fmt: str) -> None:
    lstm = make_lstm(layers=2, batch_first=True)
    weights = save(prefixed(lstm, "lstm."), tmp_path / f"w.{fmt}")
    x = inputs(batch_first=True)
    y, h, c = oracle(lstm, x)
    # Torch's own layer-0 output: a 1-layer nn.LSTM holding the l0 parameters.
    first = nn.LSTM(IN, H, batch_first=True).eval()
    first.load_state_dict({k: v for k, v in lstm.state_dict().items() if k.endswith("_l0")})
    y0, _, _ = oracle(first, x)
    feed, want = (x, (y0, h[0], c[0])) if index == 0 else (y0, (y, h[1], c[1]))
    got = build_and_run(tmp_path, weights, feed, time_major=False, layer=f"lstm.l{index}")
    assert_close(got, want)


@pytest.mark.runtime
def test_reverse_direction_matches_torch(tmp_path: Path) -> None:
    """The _reverse cell is a forward LSTM over the time-reversed input (a bidirectional layer's backward op)."""
    lstm = make_lstm(hidden=PH, proj=P, bidirectional=True, batch_first=True)
    path = save(lstm.state_dict(), tmp_path / "w.safetensors")
    x = inputs(batch_first=True)
    y, h, c = oracle(lstm, x)
    weights = load_weights(path, layer="l0_reverse")
    assert weights.direction == "backward" and weights.layer == "l0_reverse"
    out = tmp_path / "model.tflite"
    result = build(out, {"batch_size": B, "time_steps": T}, replace(weights, direction="forward"))
    assert result.verification is not None and result.verification.passed
    got = run_model(out, x[:, ::-1].copy())
    assert_close(got, (y[:, ::-1, P:], h[1], c[1]))


@pytest.mark.runtime
def test_cli_build_from_checkpoint_dict(tmp_path: Path) -> None:
    """A training checkpoint {'epoch', 'model_state_dict', 'optimizer_state_dict'} is read via its state_dict."""
    lstm = make_lstm(layers=2)
    opt = torch.optim.SGD(lstm.parameters(), lr=0.1)
    weights, out = tmp_path / "ckpt.pt", tmp_path / "m.tflite"
    torch.save({"epoch": 3, "model_state_dict": lstm.state_dict(), "optimizer_state_dict": opt.state_dict()}, weights)
    result = invoke("build", "--weights", weights, "--layer", "1", "--batch-size", B, "-o", out)
    assert result.exit_code == 0, result.output
    assert "weights: torch" in result.stdout and "model_state_dict" in result.stdout and "PASS" in result.stdout
    assert load_weights(weights, layer="1").implied()["input_size"] == H


# ----------------------------------------------------------------------------- layout, names, --layer


def test_gate_split_and_bias_sum_without_transpose(tmp_path: Path) -> None:
    """Gate order i, f, g, o along the rows; [out, in] kept as is; b_ih + b_hh summed; projection as is."""
    lstm = make_lstm(hidden=PH, proj=P)
    sd = {k: v.numpy() for k, v in lstm.state_dict().items()}
    w = load_weights(save(lstm.state_dict(), tmp_path / "w.npz"))
    assert w.format == "torch" and w.forget_bias_default == 0.0 and w.layer == "l0"
    assert w.implied() == {"num_units": PH, "input_size": IN, "use_peepholes": False, "num_proj": P,
                           "activation": "tanh"}  # fmt: skip
    for g, gate in enumerate(("input", "forget", "cell", "output")):
        rows = slice(g * PH, (g + 1) * PH)
        np.testing.assert_array_equal(w.tensors[f"input_to_{gate}_weights"], sd["weight_ih_l0"][rows])
        np.testing.assert_array_equal(w.tensors[f"recurrent_to_{gate}_weights"], sd["weight_hh_l0"][rows])
        want = (sd["bias_ih_l0"][rows].astype(np.float64) + sd["bias_hh_l0"][rows]).astype(np.float32)
        np.testing.assert_array_equal(w.tensors[f"{gate}_gate_bias"], want)
    np.testing.assert_array_equal(w.tensors["projection_weights"], sd["weight_hr_l0"])
    assert "projection_bias" not in w.tensors


def test_no_bias_gives_zero_biases(tmp_path: Path) -> None:
    w = load_weights(save(make_lstm(bias=False).state_dict(), tmp_path / "w.pt"), "torch")
    for gate in ("input", "forget", "cell", "output"):
        np.testing.assert_array_equal(w.tensors[f"{gate}_gate_bias"], np.zeros(H, np.float32))
    assert any("bias=False" in n for n in w.notes)


@pytest.mark.parametrize("fmt", FORMATS)
def test_list_cells_same_for_every_container(tmp_path: Path, fmt: str) -> None:
    model = nn.Module()
    model.decoder = make_lstm(layers=1)
    model.encoder = nn.Module()
    model.encoder.lstm = make_lstm(layers=2, bidirectional=True)
    # Keys in an order unlike the sorted one: the names must not depend on the container's order.
    state = dict(reversed(model.state_dict().items()))
    path = save(state, tmp_path / f"w.{fmt}")
    assert list_cells(path) == ["decoder.l0", "encoder.lstm.l0", "encoder.lstm.l0_reverse", "encoder.lstm.l1",
                                "encoder.lstm.l1_reverse"]  # fmt: skip
    assert open_weights(path, "torch").cell_names() == list_cells(path)


def test_list_cells_without_prefix_and_many_layers(tmp_path: Path) -> None:
    path = save(make_lstm(layers=11, seed=3).state_dict(), tmp_path / "w.safetensors")
    assert list_cells(path) == [f"l{k}" for k in range(11)]  # numeric order: l2 before l10


@pytest.mark.parametrize(
    ("layer", "expected"),
    [
        pytest.param("encoder.lstm", "encoder.lstm.l0", id="module-path"),
        pytest.param("encoder.lstm.", "encoder.lstm.l0", id="key-prefix-with-dot"),
        pytest.param("encoder.lstm.l0", "encoder.lstm.l0", id="full-name"),
        pytest.param("decoder.rnn.l1", "decoder.rnn.l1", id="full-name-layer1"),
        pytest.param("decoder.rnn.l0_reverse", "decoder.rnn.l0_reverse", id="full-name-reverse"),
        pytest.param("rnn.l1", "decoder.rnn.l1", id="unique-suffix"),
    ],
)
def test_layer_selects_one_cell(tmp_path: Path, layer: str, expected: str) -> None:
    state = prefixed(make_lstm(), "encoder.lstm.") | prefixed(make_lstm(layers=2, bidirectional=True), "decoder.rnn.")
    w = load_weights(save(state, tmp_path / "w.pt"), layer=layer)
    assert w.layer == expected
    assert w.implied()["input_size"] == (2 * H if expected == "decoder.rnn.l1" else IN)


def test_layer_index_within_the_only_module(tmp_path: Path) -> None:
    path = save(prefixed(make_lstm(layers=3), "m."), tmp_path / "w.npz")
    assert [load_weights(path, layer=str(k)).layer for k in range(3)] == ["m.l0", "m.l1", "m.l2"]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64], ids=["fp16", "bf16", "fp64"])
@pytest.mark.parametrize("fmt", ["pt", "safetensors"])
def test_other_float_types_are_widened_with_a_note(tmp_path: Path, dtype: torch.dtype, fmt: str) -> None:
    state = {k: v.to(dtype) for k, v in make_lstm().state_dict().items()}
    w = load_weights(save(state, tmp_path / f"w.{fmt}"))
    assert w.tensors["input_to_cell_weights"].dtype == np.float32
    np.testing.assert_array_equal(w.tensors["input_to_cell_weights"],
                                  state["weight_ih_l0"][2 * H:3 * H].float().numpy())  # fmt: skip
    assert any("weight_ih_l0: converted from" in n for n in w.notes), w.notes


def test_auto_detects_npz_keys() -> None:
    reader = TorchReader()
    assert reader.matches(frozenset({"weight_ih_l0", "weight_hh_l0"}))
    assert reader.matches(frozenset({"model.encoder.lstm.weight_ih_l3_reverse", "other"}))
    assert not reader.matches(frozenset({"kernel", "bias"}))
    assert not reader.matches(frozenset({"lstm.weight_ih", "my_weight_ih_l0x"}))  # nn.LSTMCell / not a suffix


def test_pytorch_model_bin_is_sniffed(tmp_path: Path) -> None:
    """Files named neither .pt nor .safetensors (pytorch_model.bin, ...) are recognised by their header."""
    lstm = make_lstm()
    pt = save(lstm.state_dict(), tmp_path / "w.pt").rename(tmp_path / "pytorch_model.bin")
    st = save(lstm.state_dict(), tmp_path / "w.safetensors").rename(tmp_path / "model.weights")
    for path in (pt, st):
        assert TorchReader().claims(path)
        assert load_weights(path, "torch").layer == "l0"


# ---------------------------------------------------------------------------------------- bad input


def _truncated_pt(path: Path) -> None:
    save(make_lstm().state_dict(), path)
    path.write_bytes(path.read_bytes()[:300])


def _truncated_safetensors(path: Path) -> None:
    save(make_lstm().state_dict(), path)
    path.write_bytes(path.read_bytes()[:-40])


def _garbage(path: Path) -> None:
    path.write_bytes(b"definitely not a checkpoint\n" * 4)


def _no_lstm(path: Path) -> None:
    save(nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1)).state_dict(), path)


def _hh_mismatch(path: Path) -> None:
    state = make_lstm().state_dict()
    state["weight_hh_l0"] = make_lstm(hidden=H + 1).state_dict()["weight_hh_l0"]
    save(state, path)


def _missing_bias_hh(path: Path) -> None:
    state = make_lstm().state_dict()
    del state["bias_hh_l0"]
    save(state, path)


def _whole_module(path: Path) -> None:
    torch.save(make_lstm(), path)


def _torchscript(path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated, but such files exist
        torch.jit.save(torch.jit.trace(nn.Linear(IN, H), torch.zeros(1, IN)), str(path))


def _two_layers(path: Path) -> None:
    save(prefixed(make_lstm(layers=2), "encoder.lstm."), path)


def _gru(path: Path) -> None:
    save(nn.GRU(IN, H).state_dict(), path)


def _int_tensor(path: Path) -> None:
    save({k: (v * 100).to(torch.int32) for k, v in make_lstm().state_dict().items()}, path)


BAD_FILES = [
    pytest.param("w.pt", _truncated_pt, [], ("truncated or corrupt",), id="truncated-pt"),
    pytest.param("w.safetensors", _truncated_safetensors, [], ("truncated or corrupt", "save_file"),
                 id="truncated-safetensors"),
    pytest.param("w.pt", _garbage, [], ("truncated or corrupt",), id="garbage-pt"),
    pytest.param("w.safetensors", _garbage, [], ("truncated or corrupt",), id="garbage-safetensors"),
    pytest.param("w.pt", _no_lstm, [], ("no PyTorch nn.LSTM parameters", "0.weight", "2.bias", "weight_ih_l0"),
                 id="no-lstm-keys-pt"),
    pytest.param("w.npz", _no_lstm, ["--weights-format", "torch"], ("no PyTorch nn.LSTM parameters", "0.weight"),
                 id="no-lstm-keys-npz"),
    pytest.param("w.safetensors", _hh_mismatch, [], ("weight_hh_l0", f"[{4 * (H + 1)}, {H + 1}]", f"[{4 * H}, {H}]"),
                 id="ih-hh-shape-mismatch"),
    pytest.param("w.npz", _missing_bias_hh, [], ("bias_ih_l0", "no bias_hh_l0"), id="missing-bias-hh"),
    pytest.param("w.pt", _whole_module, [], ("torch.nn.modules.rnn.LSTM", "never unpickles", "state_dict()"),
                 id="whole-module-pt"),
    pytest.param("w.pt", _torchscript, [], ("TorchScript", "state_dict()"), id="torchscript-pt"),
    pytest.param("w.pt", _two_layers, ["--num-layers", "3"],
                 ("only 2 LSTM layer(s)", "encoder.lstm.l0; encoder.lstm.l1", "--num-layers 3"),
                 id="too-many-layers"),
    pytest.param("w.pt", _two_layers, ["--layer", "encoder.lstm", "--num-layers", "3"],
                 ("only 2 LSTM layer(s)", "encoder.lstm.l1", "--num-layers"), id="too-many-in-module"),
    pytest.param("w.pt", _two_layers, ["--layer", "decoder"], ("names no LSTM cell", "encoder.lstm.l0"),
                 id="unknown-layer"),
    pytest.param("w.pt", _gru, [], ("nn.GRU",), id="gru"),
    pytest.param("w.safetensors", _int_tensor, [], ("int32", "float"), id="int-tensor"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "write", "options", "names"), BAD_FILES)
def test_build_rejects_bad_torch_files(tmp_path: Path, name: str, write: Callable[[Path], None],
                                       options: list[str], names: tuple[str, ...]) -> None:  # fmt: skip
    weights, out = tmp_path / name, tmp_path / "model.tflite"
    write(weights)
    msg = assert_user_error(invoke("build", "--weights", weights, *options, "-o", out), name, *names)
    assert "\n" not in msg and len(msg) < 1500
    assert_no_output(out)


class UnpickleMarker:
    """Unpickling this creates the directory `marker`: proof that someone ran code from the file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[..., object], tuple[str]]:
        return (os.mkdir, (str(self.marker),))


def test_pickled_objects_are_never_unpickled(tmp_path: Path) -> None:
    weights, marker, out = tmp_path / "w.pt", tmp_path / "UNPICKLED", tmp_path / "model.tflite"
    torch.save({**make_lstm().state_dict(), "payload": UnpickleMarker(marker)}, weights)
    assert_user_error(invoke("build", "--weights", weights, "-o", out), "w.pt", "posix.mkdir", "never unpickles")
    assert not marker.exists(), "lstmgen unpickled the weight file"
    assert_no_output(out)
    torch.load(weights, weights_only=False)  # control: the payload is live, so the check above means something
    assert marker.exists()


def test_pt_without_torch_points_to_safetensors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    weights, out = save(make_lstm().state_dict(), tmp_path / "w.pt"), tmp_path / "model.tflite"
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    msg = assert_user_error(invoke("build", "--weights", weights, "-o", out), "w.pt", "pip install torch")
    assert "safetensors.torch.save_file(model.state_dict(), 'w.safetensors')" in msg
    if sys.platform.startswith("linux"):  # the CPU build: plain `pip install torch` pulls CUDA there
        assert "pip install torch --index-url https://download.pytorch.org/whl/cpu" in msg
    assert_no_output(out)


def test_safetensors_needs_no_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """lstmgen reads .safetensors itself (header, then each tensor by offset): the package is not needed."""
    weights, out = save(make_lstm().state_dict(), tmp_path / "w.safetensors"), tmp_path / "model.tflite"
    monkeypatch.setitem(sys.modules, "safetensors", None)
    result = invoke("build", "--weights", weights, "-o", out, "--no-verify")
    assert result.exit_code == 0, result.output
    assert out.exists()


def test_reader_errors_are_weight_file_errors(tmp_path: Path) -> None:
    with pytest.raises(WeightFileError, match="holds 2 LSTM cells"):
        load_weights(save(make_lstm(layers=2).state_dict(), tmp_path / "w.npz"))
    with pytest.raises(WeightFileError, match="no PyTorch nn.LSTM parameters"):
        list_cells(save({"w": torch.zeros(2)}, tmp_path / "x.safetensors"))


def test_torch_is_not_imported_for_npz_or_safetensors(tmp_path: Path) -> None:
    """lstmgen works without torch: importing it, or reading .npz/.safetensors, never imports torch."""
    lstm = make_lstm()
    npz, st = save(lstm.state_dict(), tmp_path / "w.npz"), save(lstm.state_dict(), tmp_path / "w.safetensors")
    code = (
        "import sys, lstmgen.cli.main\n"
        "from lstmgen.weights import load_weights\n"
        "from lstmgen.weights.torch_sd import list_cells\n"
        f"assert load_weights({str(npz)!r}).format == 'torch'\n"
        f"assert load_weights({str(st)!r}).format == 'torch'\n"
        f"assert list_cells({str(st)!r}) == ['l0']\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 0, proc.stderr
