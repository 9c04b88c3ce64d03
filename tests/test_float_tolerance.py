"""Float tolerance on steep cells: the float32 sensitivity derived from the reference side (numerics/float_bound.py).

A 32-unit TF1 cell with std-normal weights over 50 steps: the interpreter's float32 rounding, amplified by
the recurrence, ends ~1e-4 from the float64 reference, 7-20x the fixed 1e-5 + 1e-5|ref| (a false FAIL before
the derived bound). The derived bound must let it pass and still catch a real defect on the same cell,
for a model of LSTM ops only and for the op inside a larger graph (checked in isolation).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

import lstmgen.pipeline.layout
from lstmgen.build import build
from lstmgen.check.verify import verify_model
from lstmgen.cli.main import main
from lstmgen.errors import VerificationError
from lstmgen.modelinfo import read_lstm_model
from lstmgen.numerics.tables import FLOAT_ATOL
from lstmgen.runtimes.interpreter import Session
from lstmgen.tflite.reader import read_model
from lstmgen.tflite.records import OperatorRecord, TensorRecord
from lstmgen.tflite.schema import BuiltinOperator
from lstmgen.tflite.writer import serialize

pytestmark = pytest.mark.runtime
N, I, T = 32, 8, 50  # noqa: E741  (the op's own symbols)


@pytest.fixture
def steep(tmp_path: Path) -> Path:
    rng = np.random.default_rng(33)
    path = tmp_path / "steep.npz"
    kernel = rng.standard_normal((I + N, 4 * N)).astype(np.float32)
    np.savez(path, kernel=kernel, bias=rng.standard_normal(4 * N).astype(np.float32))
    return path


def _build(out: Path, weights: Path) -> Any:
    return build(out, {"time_steps": T}, weights, weights_format="tf1")


def test_steep_cell_passes_within_derived_bound(tmp_path: Path, steep: Path) -> None:
    report = _build(tmp_path / "m.tflite", steep).verification
    src = report.against_source
    assert report.passed and src is not None and src.passed
    # the errors really exceed the fixed floor (2e-4 under LiteRT, 7e-5 under tflite-runtime 2.14) ...
    assert max(report.max_abs_error, src.max_abs_error) > 5 * FLOAT_ATOL
    # ... and the derived bound that let them pass is stated in the report
    assert report.float_bound > report.max_abs_error
    assert "float32 sensitivity" in report.to_dict()["tolerance"] and "float32 sensitivity" in src.tolerance


def test_steep_cell_fails_without_derived_bound(tmp_path: Path, steep: Path) -> None:
    """No perturbed runs -> no derived bound -> the fixed tolerance alone: the false FAIL this fixes."""
    _build(tmp_path / "m.tflite", steep)
    assert not verify_model(tmp_path / "m.tflite", time_steps=T, float_runs=0).passed


def _forget_bias_off_by_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """The injected bug: the layout folds forget_bias + 1 into the forget-gate bias."""
    real = lstmgen.pipeline.layout._Graph.lstm

    def lstm(self: Any, scope: str, shape: Any, weights: Any, x: int, forget_bias: float) -> int:
        return real(self, scope, shape, weights, x, forget_bias + 1.0)

    monkeypatch.setattr(lstmgen.pipeline.layout._Graph, "lstm", lstm)


def test_steep_cell_forget_bias_off_by_one_is_caught(
    tmp_path: Path, steep: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _forget_bias_off_by_one(monkeypatch)
    with pytest.raises(VerificationError) as caught:
        _build(tmp_path / "m.tflite", steep)
    src = caught.value.payload["verification"]["against_source"]
    assert caught.value.exit_code == 1 and src["passed"] is False


def test_a_chaotic_cell_is_compared_only_where_the_bound_is_tight() -> None:
    """WEAK is not PASS: steps where float32 rounding alone moves the output by more than WEAK_BOUND are left
    out of the comparison (and said so), so an error there cannot hide under a bound of 24."""
    from lstmgen.check.report import WEAK_BOUND, compare, float_tolerance_text

    assert "chaotic" not in float_tolerance_text(1e-5, 1e-5, 1e-3)
    assert "chaotic" in float_tolerance_text(1e-5, 1e-5, WEAK_BOUND * 2)
    ref = np.zeros((1, 6, 3))
    bound = np.array([1e-5, 1e-5, 1e-3, 0.2, 5.0, 24.0]).reshape(1, 6, 1)
    late = ref.copy()
    late[0, 5] = 4.7  # off by 4.7 where the bound is 24: no longer a pass ...
    assert compare("y", late, ref, 1e-5, 1e-5, bound).scope == "steps 1-3 of 6; later steps are chaotic in float32"
    early = ref.copy()
    early[0, 2] = 0.01  # ... and an error inside the tight steps fails
    assert not compare("y", early, ref, 1e-5, 1e-5, bound).passed
    assert not compare("y", ref, ref, 1e-5, 1e-5, np.full((1, 6, 1), 1.0)).passed  # no tight step at all
    assert compare("c", np.ones(3), np.zeros(3), 1e-5, 1e-5, 24.0).scope.startswith("not compared")


# ---------------------------------------------------------------- the same steep cell inside a larger graph


def _with_head(model: Path, out: Path) -> Path:
    """The built model with a TANH after the LSTM, as a converter's head: verify then checks the op alone."""
    m = read_model(model.read_bytes(), str(model))
    (lstm,) = m.operators
    y = lstm.outputs[0]
    tensors = (*m.tensors, TensorRecord("head/tanh", m.tensors[y].shape, np.dtype(np.float32)))
    head = OperatorRecord(BuiltinOperator.TANH, 1, (y,), (len(tensors) - 1,))
    out.write_bytes(serialize(replace(m, tensors=tensors, operators=(lstm, head), outputs=(len(tensors) - 1,))))
    return out


def _steep_in_graph(tmp_path: Path, steep: Path) -> Path:
    _build(tmp_path / "m.tflite", steep)
    return _with_head(tmp_path / "m.tflite", tmp_path / "head.tflite")


def test_steep_cell_inside_a_graph_passes_within_derived_bound(tmp_path: Path, steep: Path) -> None:
    """The op checked in isolation gets the derived bound too; with the fixed tolerance alone (what the
    in-graph check used before) the same op falsely fails."""
    model = _steep_in_graph(tmp_path, steep)
    fixed = verify_model(model, time_steps=T, float_runs=0)
    assert fixed.scope and not fixed.passed and fixed.max_abs_error > 5 * FLOAT_ATOL
    report = verify_model(model, time_steps=T)
    assert report.scope and report.passed, [c for c in report.checks if not c.passed]
    assert report.float_bound > report.max_abs_error
    assert "float32 sensitivity" in report.tolerance_text()
    result = CliRunner().invoke(main, ["verify", str(model), "--weights", str(steep), "--weights-format", "tf1"])
    assert result.exit_code == 0, result.output
    assert "checked: UNIDIRECTIONAL_SEQUENCE_LSTM op 0 in isolation" in result.output
    assert "against the source (tf1-lstmcell)" in result.output and "float32 sensitivity" in result.output


def test_steep_cell_inside_a_graph_forget_bias_off_by_one_is_caught(
    tmp_path: Path, steep: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _forget_bias_off_by_one(monkeypatch)
    model = tmp_path / "m.tflite"
    build(model, {"time_steps": T}, steep, weights_format="tf1", verify=False)
    head = _with_head(model, tmp_path / "head.tflite")
    result = CliRunner().invoke(main, ["verify", str(head), "--weights", str(steep), "--weights-format", "tf1"])
    assert result.exit_code == 1, result.output
    assert "does not compute the source LSTM" in result.output


def test_steep_cell_inside_a_graph_swapped_gates_are_caught(tmp_path: Path, steep: Path) -> None:
    """The file built from weights with the input and forget gates swapped, against the real weights."""
    with np.load(steep) as w:
        kernel, bias = w["kernel"].copy(), w["bias"].copy()
    i, f = slice(0, N), slice(2 * N, 3 * N)  # TF1 LSTMCell's gate blocks: i, j, f, o
    kernel[:, i], kernel[:, f] = kernel[:, f].copy(), kernel[:, i].copy()
    bias[i], bias[f] = bias[f].copy(), bias[i].copy()
    swapped = tmp_path / "swapped.npz"
    np.savez(swapped, kernel=kernel, bias=bias)
    _build(tmp_path / "m.tflite", swapped)
    head = _with_head(tmp_path / "m.tflite", tmp_path / "head.tflite")
    result = CliRunner().invoke(main, ["verify", str(head), "--weights", str(steep), "--weights-format", "tf1"])
    assert result.exit_code == 1, result.output
    assert "does not compute the source LSTM" in result.output


def test_a_wrong_op_input_on_a_steep_cell_is_caught(
    tmp_path: Path, steep: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a source, the op's own reference: its input read 0.1 % off fails despite the derived bound."""
    model = _steep_in_graph(tmp_path, steep)
    real = Session.tensor

    def off(self: Session, index: int) -> np.ndarray:
        value = real(self, index)
        return value * 1.001 if index == 0 else value

    monkeypatch.setattr(Session, "tensor", off)
    assert read_lstm_model(model, head_ok=True).model.operators[0].inputs[0] == 0
    assert not verify_model(model, time_steps=T).passed
