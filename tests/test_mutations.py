"""Mutation suite: defects injected into the product code (monkeypatch) must change the model and fail `build`.

Each test builds once unmutated and once mutated without verification (the bytes must differ: the
defect reaches the file), then builds mutated with verification: exit 1 (VerificationError), and
the verdict comes from the check against the source reference.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from support import TF_FIXTURES, random_tflite_weights

import lstmgen.pipeline.layout
import lstmgen.quant.quantize
from lstmgen.build import build
from lstmgen.cli.main import main
from lstmgen.errors import VerificationError
from lstmgen.weights import WeightSource
from lstmgen.weights.base import CellWeights

pytestmark = pytest.mark.runtime
N, I = 6, 5  # noqa: E741  (the op's own symbols)
TF1 = TF_FIXTURES / "tf1_basic.weights.npz"
KERAS = TF_FIXTURES / "keras3_lstm.keras"


# ------------------------------------------------------------------------------------------ helpers


def _build(path: Path, options: dict[str, Any], weights: Any, verify: bool, **kw: Any) -> bytes:
    build(path, options, weights, verify=verify, **kw)
    return path.read_bytes()


def assert_caught(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    mutate: Callable[[pytest.MonkeyPatch], None],
    options: dict[str, Any],
    weights: Any,
    *,
    by_source: bool = True,
    **kw: Any,
) -> VerificationError:
    """The mutation changes the written model, and the verified build refuses it with exit 1."""
    clean = _build(tmp_path / "clean.tflite", options, weights, verify=True, **kw)
    with monkeypatch.context() as m:
        mutate(m)
        mutated = _build(tmp_path / "mutated.tflite", options, weights, verify=False, **kw)
        assert mutated != clean, "the mutation did not reach the model"
        out = tmp_path / "checked.tflite"
        with pytest.raises(VerificationError) as caught:
            build(out, options, weights, **kw)
    assert caught.value.exit_code == 1 and not out.exists()
    if by_source:
        src = caught.value.payload["verification"]["against_source"]
        assert src is not None and src["passed"] is False, src
    return caught.value


def _wrap_options(m: pytest.MonkeyPatch, key: str, change: Callable[[Any], Any]) -> None:
    """Alter one field of the LSTM options table the writer emits."""
    real = lstmgen.pipeline.layout.Options

    def options(table: str, fields: tuple[tuple[str, Any], ...]) -> Any:
        if table == lstmgen.pipeline.layout.OPTIONS_TABLE:
            fields = tuple((k, change(v) if k == key else v) for k, v in fields)
        return real(table, fields)

    m.setattr(lstmgen.pipeline.layout, "Options", options)


def _wrap_lstm(m: pytest.MonkeyPatch, change: Callable[[dict[str, Any], float], tuple[dict[str, Any], float]]) -> None:
    """Alter what the writer puts into each LSTM op (its weights and the folded forget bias)."""
    real = lstmgen.pipeline.layout._Graph.lstm

    def lstm(self: Any, scope: str, shape: Any, weights: Any, x: int, forget_bias: float) -> int:
        w, fb = change(dict(weights), forget_bias)
        return real(self, scope, shape, w, x, fb)

    m.setattr(lstmgen.pipeline.layout._Graph, "lstm", lstm)


def _wrap_reader(m: pytest.MonkeyPatch, fmt: str, change: Callable[[dict[str, np.ndarray]], None]) -> None:
    """Alter the per-gate arrays a reader of `fmt` hands to the build (as a bug inside the reader would).

    Every read goes through one opened WeightSource (whatever the file type), so that is where it is altered.
    """

    def fix(w: CellWeights) -> CellWeights:
        tensors = dict(w.tensors)
        change(tensors)
        return CellWeights(**{**w.__dict__, "tensors": tensors})

    def deep(value: Any) -> Any:
        return fix(value) if isinstance(value, CellWeights) else [deep(v) for v in value]

    def wrap(real: Callable[..., Any]) -> Callable[..., Any]:
        return lambda self, *a, **k: deep(real(self, *a, **k)) if self.format == fmt else real(self, *a, **k)

    for method in ("load", "load_layers"):
        m.setattr(WeightSource, method, wrap(getattr(WeightSource, method)))


def _swap_split(m: pytest.MonkeyPatch, module: Any) -> None:
    """The reader's gate order table read wrong: input and forget blocks exchanged (in its gate_tensors call)."""
    real = module.gate_tensors

    def split(order: str, *packed: np.ndarray) -> dict[str, np.ndarray]:
        tensors = real(order, *packed)
        _swap_gates(tensors)
        return tensors

    m.setattr(module, "gate_tensors", split)


def _transpose_recurrent(tensors: dict[str, np.ndarray]) -> None:
    tensors["recurrent_to_cell_weights"] = tensors["recurrent_to_cell_weights"].T


def _swap_gates(tensors: dict[str, np.ndarray]) -> None:
    for kind in ("input_to_{}_weights", "recurrent_to_{}_weights", "{}_gate_bias"):
        a, b = kind.format("input"), kind.format("forget")
        tensors[a], tensors[b] = tensors[b], tensors[a]


@pytest.fixture
def torch_pt(tmp_path: Path) -> Path:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    path = tmp_path / "w.pt"
    torch.save(torch.nn.LSTM(I, N).state_dict(), path)
    return path


@pytest.fixture
def onnx_npz(tmp_path: Path) -> Path:
    rng = np.random.default_rng(3)
    path = tmp_path / "onnx.npz"
    arrays = {"W": (I, 4 * N), "R": (N, 4 * N), "B": (8 * N,)}
    shapes = {"W": (1, 4 * N, I), "R": (1, 4 * N, N), "B": (1, 8 * N)}
    np.savez(path, **{k: (rng.standard_normal(shapes[k]) * 0.5).astype(np.float32) for k in arrays})
    return path


@pytest.fixture
def tflite_npz(tmp_path: Path) -> Path:
    path = tmp_path / "cell.npz"
    np.savez(path, **random_tflite_weights(N, I))
    return path


def _weights(name: str, request: pytest.FixtureRequest) -> Path:
    return {"tf1": TF1, "keras": KERAS}.get(name) or request.getfixturevalue(
        {"torch": "torch_pt", "onnx": "onnx_npz", "tflite": "tflite_npz"}[name]
    )


READER_MODULES = {
    "tf1": "lstmgen.weights.tf1",
    "keras": "lstmgen.weights.keras_convert",  # where the Keras cell is laid out per gate
    "torch": "lstmgen.weights.torch_sd",
    "onnx": "lstmgen.weights.onnx_lstm",
}


# ------------------------------------------------------------------------------- writer mutations


def test_activation_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """relu written as tanh (the activation table off by one entry)."""
    table = dict(lstmgen.pipeline.layout.ACTIVATIONS)
    bad = {**table, "relu": table["tanh"]}
    opts = {"num_units": N, "input_size": I, "activation": "relu"}
    assert_caught(tmp_path, monkeypatch, lambda m: m.setattr(lstmgen.pipeline.layout, "ACTIVATIONS", bad), opts, None)


def test_cell_clip_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opts = {"num_units": N, "input_size": I, "cell_clip": 0.3}
    assert_caught(tmp_path, monkeypatch, lambda m: _wrap_options(m, "CellClip", lambda v: v * 3), opts, None)


def test_proj_clip_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opts = {"num_units": N, "input_size": I, "num_proj": 3, "proj_clip": 0.1}
    assert_caught(tmp_path, monkeypatch, lambda m: _wrap_options(m, "ProjClip", lambda v: v * 4), opts, None)


def test_time_major_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # batch == time so the flipped flag still runs: only the numbers (and the structure) can tell.
    opts = {"num_units": N, "input_size": I, "time_major": True, "batch_size": 4, "time_steps": 4}
    assert_caught(tmp_path, monkeypatch, lambda m: _wrap_options(m, "TimeMajor", lambda v: not v), opts, None)


def test_forget_bias_not_folded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert_caught(tmp_path, monkeypatch, lambda m: _wrap_lstm(m, lambda w, fb: (w, 0.0)), {}, TF1)


def test_forget_bias_folded_twice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert_caught(tmp_path, monkeypatch, lambda m: _wrap_lstm(m, lambda w, fb: (w, 2 * fb)), {}, TF1)


def test_projection_bias_dropped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "proj.npz"
    np.savez(path, **random_tflite_weights(N, I, 3, projection_bias=True))

    def drop(w: dict[str, Any], fb: float) -> tuple[dict[str, Any], float]:
        w.pop("projection_bias")
        return w, fb

    assert_caught(tmp_path, monkeypatch, lambda m: _wrap_lstm(m, drop), {}, path)


def test_layer_norm_coefficient(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The cell gate's layer-norm coefficients written in the forget gate's place."""
    rng = np.random.default_rng(5)
    w = random_tflite_weights(N, I)
    for g in ("input", "forget", "cell", "output"):
        w[f"{g}_layer_norm_coefficients"] = (1 + rng.standard_normal(N) * 0.5).astype(np.float32)
    path = tmp_path / "ln.npz"
    np.savez(path, **w)

    def wrong(w: dict[str, Any], fb: float) -> tuple[dict[str, Any], float]:
        w["forget_layer_norm_coefficients"] = w["cell_layer_norm_coefficients"]
        return w, fb

    assert_caught(tmp_path, monkeypatch, lambda m: _wrap_lstm(m, wrong), {"layer_norm": True}, path)


def test_swapped_state_slots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """h and c state tensors wired to each other's slot (with a projection they differ in size)."""
    real = lstmgen.pipeline.layout._Graph._state

    def state(self: Any, name: str, width: int) -> int:
        swapped = {"output_state": "cell_state", "cell_state": "output_state"}
        leaf = name.rsplit("/", 1)[-1]
        other = 3 if leaf == "cell_state" else N  # each gets the other's width: h is P=3 wide, c N wide
        return real(self, name.replace(leaf, swapped[leaf]), other)

    opts = {"num_units": N, "input_size": I, "num_proj": 3}
    graph = lstmgen.pipeline.layout._Graph
    err = assert_caught(tmp_path, monkeypatch, lambda m: m.setattr(graph, "_state", state), opts, None)
    assert "output_state" in str(err)


# -------------------------------------------------------------------------------- reader mutations


@pytest.mark.parametrize("fmt", ["tf1", "keras", "torch", "onnx"])
def test_swapped_gates_in_reader(
    fmt: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    import importlib

    module = importlib.import_module(READER_MODULES[fmt])
    assert_caught(tmp_path, monkeypatch, lambda m: _swap_split(m, module), {}, _weights(fmt, request))


def test_swapped_gates_in_tflite_reader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tflite_npz: Path) -> None:
    assert_caught(tmp_path, monkeypatch, lambda m: _wrap_reader(m, "tflite", _swap_gates), {}, tflite_npz)


@pytest.mark.parametrize("fmt", ["tf1", "keras", "torch", "onnx", "tflite"])
def test_transposed_matrix_in_reader(
    fmt: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    """A square recurrent matrix handed over transposed: shapes cannot tell, only the numbers."""
    weights = _weights(fmt, request)
    assert_caught(tmp_path, monkeypatch, lambda m: _wrap_reader(m, fmt, _transpose_recurrent), {}, weights)


def test_reader_activation_lost(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Keras reader that reports relu as tanh (the issue's `encoder` case): only the source knows."""
    import lstmgen.weights.keras_convert as keras

    path = TF_FIXTURES / "keras3_go_backwards.keras"
    real = keras._check_config

    def lose(*a: Any, **k: Any) -> dict[str, object]:
        hyper = real(*a, **k)
        hyper.pop("go_backwards", None)  # and the direction with it
        return hyper

    def mutate(m: pytest.MonkeyPatch) -> None:
        m.setattr(keras, "_check_config", lose)
        m.setattr(keras, "_direction", lambda cell: "forward")

    assert_caught(tmp_path, monkeypatch, mutate, {}, path)


# ---------------------------------------------------------------------------------- quantization


INT8 = {"num_units": 16, "input_size": 8, "time_steps": 10, "quantize": "int8"}


def test_int8_weight_scale_off_8x(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = lstmgen.quant.quantize.quantize_symmetric

    def off(x: np.ndarray, dtype: np.dtype, scale: float | None = None) -> tuple[np.ndarray, float]:
        q, s = real(x, dtype, scale)
        return q, s * 8 if np.dtype(dtype) == np.int8 else s

    weights = TF_FIXTURES / "tfint8_lstm.weights.npz"
    calib = TF_FIXTURES / "tfint8_calibration.npy"
    mutate = lambda m: m.setattr(lstmgen.quant.quantize, "quantize_symmetric", off)  # noqa: E731
    assert_caught(tmp_path, monkeypatch, mutate, INT8, weights, calibration_data=calib)


def test_wrong_zero_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = lstmgen.quant.quantize.affine_params

    def wrong(*a: Any, **k: Any) -> tuple[float, int]:
        s, z = real(*a, **k)
        return s, int(np.clip(z + 64, -128, 127))  # a quarter of the int8 range off

    weights = TF_FIXTURES / "tfint8_lstm.weights.npz"
    calib = TF_FIXTURES / "tfint8_calibration.npy"
    mutate = lambda m: m.setattr(lstmgen.quant.quantize, "affine_params", wrong)  # noqa: E731
    assert_caught(tmp_path, monkeypatch, mutate, INT8, weights, calibration_data=calib)


def test_mutation_exits_1_on_the_command_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _wrap_lstm(monkeypatch, lambda w, fb: (w, 0.0))
    out = tmp_path / "m.tflite"
    result = CliRunner().invoke(main, ["build", "--weights", str(TF1), "-o", str(out)])
    assert result.exit_code == 1 and not out.exists()
    assert "does not compute the source LSTM (tf1-lstmcell)" in result.stderr
