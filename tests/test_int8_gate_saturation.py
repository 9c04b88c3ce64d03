"""int8 without layer norm: the kernel saturates each gate's int16 sum after every term, bias in the first,
at the int16 limits -32768 and 32767 (not ±32767): LiteRT's PortableMatrixBatchVectorMultiplyAccumulate,
PortableVectorBatchVectorCwiseProductAccumulate and PortableCwiseAdd (the cell state) clamp to
numeric_limits<int16_t>, as TFLM's integer LSTM does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lstmgen.check.tolerance import check, to_codes, to_real
from lstmgen.config import CellConfig
from lstmgen.numerics import reference
from lstmgen.numerics.graph import lstm_spec
from lstmgen.numerics.reference import lstm_reference, sigmoid
from lstmgen.pipeline.layout import layout
from lstmgen.quant.calibrate import calibrate
from lstmgen.quant.quantize import quantize
from lstmgen.tflite.records import ModelRecord
from lstmgen.tflite.slots import Slot
from lstmgen.tflite.writer import serialize
from tests.support import random_tflite_weights

B, T, I, N = 2, 40, 5, 8  # noqa: E741  a long sequence: the misplaced clip's error accumulates over time
Q3_12_MAX = 32767 / 4096  # the int16 gate pre-activation's bounds without layer norm: codes 32767 ...
Q3_12_MIN = -32768 / 4096  # ... and -32768, exactly -8
Q3_12 = (Q3_12_MIN, Q3_12_MAX)
GATES = ("input", "forget", "cell", "output")


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
    bounds = dict.fromkeys(GATES, Q3_12)
    y, _, c = lstm_reference(x, one_unit(1.0, w_h, bias), h0=h0, gate_bounds=bounds, record=rec)
    gate = sigmoid(np.array(gate_pre))
    assert np.isclose(c[0, 0], gate * np.tanh(gate_pre))  # c0 = 0: c = i * z
    assert np.isclose(y[0, 0, 0], gate * np.tanh(c[0, 0]))
    assert np.isclose(rec["forget_gate_pre"][0, 0, 0], 10.0 + w_h)  # calibration still sees the raw sum


def test_gate_saturates_at_minus_32768(monkeypatch: pytest.MonkeyPatch) -> None:
    """Input FC -10 saturates at code -32768 = -8.0 exactly, then + 0.5 (recurrent): every gate is at -7.5.
    A symmetric ±32767 clamp would give -7.4998 (c then differs by 2.4e-4 relative), and is caught."""
    x = np.full((1, 1, 1), -10.0)
    h0 = np.ones((1, 1))
    bounds = dict.fromkeys(GATES, Q3_12)
    y, _, c = lstm_reference(x, one_unit(1.0, 0.5, 0.0), h0=h0, gate_bounds=bounds)
    gate, z = 1.0 / (1.0 + np.exp(7.5)), np.tanh(-7.5)  # by hand: sigmoid(-7.5), tanh(-7.5)
    assert c[0, 0] == pytest.approx(gate * z, rel=1e-12)  # c0 = 0: c = i * z
    assert y[0, 0, 0] == pytest.approx(gate * np.tanh(gate * z), rel=1e-12)
    monkeypatch.setattr(reference, "saturating_sum", lambda terms, b: np.clip(sum(terms), -b[1], b[1]))
    _, _, c_symmetric = lstm_reference(x, one_unit(1.0, 0.5, 0.0), h0=h0, gate_bounds=bounds)
    assert c_symmetric[0, 0] != pytest.approx(gate * z, rel=1e-6)


def test_cell_state_saturates_at_minus_32768() -> None:
    """c = f*c0 + i*z = sigmoid(7)*(-9) + sigmoid(7)*tanh(-7) = -9.99 saturates at code -32768 of a 2^-12
    cell scale: -8.0 exactly (a ±32767 clamp gives -7.99976); the output gate (pre-activation 0) is 0.5."""
    p = {f"{k}_{g}_weights": np.zeros((1, 1)) for k in ("input_to", "recurrent_to") for g in GATES}
    p |= {f"{g}_gate_bias": np.array([b]) for g, b in zip(GATES, (7.0, 7.0, -7.0, 0.0), strict=True)}
    c0 = np.full((1, 1), -9.0)
    y, _, c = lstm_reference(np.zeros((1, 1, 1)), p, c0=c0, gate_bounds=dict.fromkeys(GATES, Q3_12), c_bounds=Q3_12)
    assert c[0, 0] == -8.0
    assert y[0, 0, 0] == pytest.approx(0.5 * np.tanh(-8.0), rel=1e-12)
    symmetric = (-Q3_12_MAX, Q3_12_MAX)
    _, _, c = lstm_reference(np.zeros((1, 1, 1)), p, c0=c0, gate_bounds=dict.fromkeys(GATES, Q3_12), c_bounds=symmetric)
    assert c[0, 0] == -Q3_12_MAX != -8.0


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


def test_an_int8_model_gives_the_reference_the_int16_limits() -> None:
    """lstm_spec reads the bounds off the file: gates in Q3.12, c at its own 2^-k scale, codes -32768..32767."""
    q = saturating_model()
    spec = lstm_spec(q, 0)
    assert spec.gate_bounds == dict.fromkeys(GATES, Q3_12)
    c_quant = q.tensors[q.operators[0].inputs[Slot.CELL_STATE]].quantization
    assert c_quant is not None
    s_c = c_quant.scale[0]
    assert spec.c_bounds == (-32768 * s_c, 32767 * s_c)


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
    monkeypatch.setattr(reference, "saturating_sum", lambda terms, bounds: np.clip(sum(terms), *bounds))
    assert not check(q, feed, actual)["ok"]
