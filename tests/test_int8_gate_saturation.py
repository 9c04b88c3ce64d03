"""int8 without layer norm: the kernel saturates each gate's int16 sum after every term, bias in the first."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lstmgen.check import reference
from lstmgen.check.reference import lstm_reference, sigmoid
from lstmgen.check.tolerance import check, to_codes, to_real
from lstmgen.config import CellConfig
from lstmgen.layout import layout
from lstmgen.quant.calibrate import calibrate
from lstmgen.quant.quantize import quantize
from lstmgen.tflite.flatbuf import ModelRecord, serialize
from tests.support import random_tflite_weights

B, T, I, N = 2, 40, 5, 8  # noqa: E741  a long sequence: the misplaced clip's error accumulates over time
Q3_12_MAX = 32767 / 4096  # the int16 gate pre-activation's bound without layer norm


def one_unit(w_x: float, w_h: float, bias: float) -> dict[str, np.ndarray]:
    """One cell, one input: every gate gets the same input weight, recurrent weight and bias."""
    p: dict[str, np.ndarray] = {}
    for g in ("input", "forget", "cell", "output"):
        p[f"input_to_{g}_weights"] = np.array([[w_x]])
        p[f"recurrent_to_{g}_weights"] = np.array([[w_h]])
        p[f"{g}_gate_bias"] = np.array([bias])
    return p


@pytest.mark.parametrize(
    ("w_h", "bias", "gate_pre"),
    [
        (0.0, -4.0, 6.0),  # the bias is in the first (input) sum: clip(10 - 4), not clip(10) - 4
        (-5.0, 0.0, Q3_12_MAX - 5),  # the input sum saturates before the recurrent term: clip(10) - 5, not 5
    ],
)
def test_gate_saturates_after_each_term(w_h: float, bias: float, gate_pre: float) -> None:
    x = np.full((1, 1, 1), 10.0)
    h0 = np.ones((1, 1))
    rec: dict[str, np.ndarray] = {}
    bounds = dict.fromkeys(("input", "forget", "cell", "output"), Q3_12_MAX)
    y, _, c = lstm_reference(x, one_unit(1.0, w_h, bias), h0=h0, gate_bounds=bounds, record=rec)
    gate = sigmoid(np.array(gate_pre))
    assert np.isclose(c[0, 0], gate * np.tanh(gate_pre))  # c0 = 0: c = i * z
    assert np.isclose(y[0, 0, 0], gate * np.tanh(c[0, 0]))
    assert np.isclose(rec["forget_gate_pre"][0, 0, 0], 10.0 + w_h)  # calibration still sees the raw sum


def saturating_model() -> ModelRecord:
    """int8 model whose input FC + bias often passes ±8 and whose recurrent terms are large (like TF's
    micro_speech LSTM, where the bias placement made verify fail by 2.2 output steps)."""
    w = random_tflite_weights(n=N, i=I, seed=3)
    for g in ("input", "forget", "cell", "output"):
        w[f"input_to_{g}_weights"] *= np.float32(6.0)
        w[f"recurrent_to_{g}_weights"] *= np.float32(4.0)
        w[f"{g}_gate_bias"] *= np.float32(6.0)
    cfg = CellConfig(num_units=N, input_size=I, batch_size=B, time_steps=T, forget_bias=0.0)
    calib = np.random.default_rng(1).standard_normal((16, B, T, I))
    rec = layout(cfg, w)
    return quantize(rec, "int8", calibration=calibrate(rec, calib))


def run_litert(model: ModelRecord, x: np.ndarray, tmp_path: Path) -> dict[int, np.ndarray]:
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    path = tmp_path / "m.tflite"
    path.write_bytes(serialize(model))
    it = litert.Interpreter(
        model_path=str(path), experimental_op_resolver_type=litert.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    )
    it.allocate_tensors()
    t_in = model.tensors[model.inputs[0]]
    it.set_tensor(model.inputs[0], to_codes(t_in, x))
    it.invoke()
    return {i: to_real(model.tensors[i], it.get_tensor(i)) for i in model.outputs}


@pytest.mark.runtime
@pytest.mark.parametrize("seed", [0, 1])
def test_saturating_int8_model_verifies_and_saturating_once_fails(
    tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    q = saturating_model()
    x = np.random.default_rng(10 + seed).standard_normal((B, T, I))
    t_in = q.tensors[q.inputs[0]]
    feed = {q.inputs[0]: to_real(t_in, to_codes(t_in, x))}
    actual = run_litert(q, x, tmp_path)
    report = check(q, feed, actual)
    assert report["ok"], report["outputs"][0]["max_error_lsb"]
    # Saturating only the whole sum (not after each term) is caught on this model.
    monkeypatch.setattr(reference, "saturating_sum", lambda terms, bound: np.clip(sum(terms), -bound, bound))
    assert not check(q, feed, actual)["ok"]
