"""The NumPy reference against hand-derived scalar cases (peephole timing, clips, projection, CIFG, LN)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lstmgen.numerics.reference import lstm_reference


def sig(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


def scalar_params(**extra: float) -> dict[str, np.ndarray]:
    """N = I = P = 1 with distinct values per gate so a swap shows."""
    base = {
        "input_to_input_weights": 0.3,
        "input_to_forget_weights": -0.2,
        "input_to_cell_weights": 0.9,
        "input_to_output_weights": 0.4,
        "recurrent_to_input_weights": 0.1,
        "recurrent_to_forget_weights": 0.5,
        "recurrent_to_cell_weights": -0.6,
        "recurrent_to_output_weights": 0.7,
        "input_gate_bias": 0.05,
        "forget_gate_bias": 1.0,
        "cell_gate_bias": -0.1,
        "output_gate_bias": 0.2,
    }
    base.update(extra)
    return {
        k: np.array([[v]]) if k.startswith(("input_to", "recurrent_to", "projection_w")) else np.array([v])
        for k, v in base.items()
    }


def by_hand(
    xs: list[float], p: dict[str, float], *, cell_clip: float = 0.0, peephole: bool = False, cifg: bool = False
) -> tuple[list[float], float]:
    h = c = 0.0
    ys = []
    for x in xs:
        pf = p.get("cell_to_forget_weights", 0.0) * c if peephole else 0.0
        f = sig(p["input_to_forget_weights"] * x + p["recurrent_to_forget_weights"] * h + pf + p["forget_gate_bias"])
        if cifg:
            i = 1 - f
        else:
            pi = p.get("cell_to_input_weights", 0.0) * c if peephole else 0.0
            i = sig(p["input_to_input_weights"] * x + p["recurrent_to_input_weights"] * h + pi + p["input_gate_bias"])
        z = math.tanh(p["input_to_cell_weights"] * x + p["recurrent_to_cell_weights"] * h + p["cell_gate_bias"])
        c = f * c + i * z
        if cell_clip:
            c = max(-cell_clip, min(cell_clip, c))
        po = p.get("cell_to_output_weights", 0.0) * c if peephole else 0.0  # the new c
        o = sig(p["input_to_output_weights"] * x + p["recurrent_to_output_weights"] * h + po + p["output_gate_bias"])
        h = o * math.tanh(c)
        ys.append(h)
    return ys, c


def flat(params: dict[str, np.ndarray]) -> dict[str, float]:
    return {k: float(v.ravel()[0]) for k, v in params.items()}


XS = [0.5, -1.5, 2.0]


def run(params: dict[str, np.ndarray], **kw: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return lstm_reference(np.array(XS).reshape(1, 3, 1), params, **kw)


def test_basic_cell_by_hand() -> None:
    p = scalar_params()
    y, h, c = run(p)
    ys, c_end = by_hand(XS, flat(p))
    np.testing.assert_allclose(y.ravel(), ys, rtol=1e-12)
    assert h.ravel()[0] == pytest.approx(ys[-1], rel=1e-12) and c.ravel()[0] == pytest.approx(c_end, rel=1e-12)


def test_peepholes_use_old_c_for_input_forget_and_new_c_for_output() -> None:
    p = scalar_params(cell_to_input_weights=0.8, cell_to_forget_weights=-0.9, cell_to_output_weights=1.7)
    y, _, _ = run(p)
    np.testing.assert_allclose(y.ravel(), by_hand(XS, flat(p), peephole=True)[0], rtol=1e-12)
    # The same cell with the output peephole fed the old c would differ: the test can fail.
    q = flat(p)
    h = c = 0.0
    wrong = []
    for x in XS:
        f = sig(
            q["input_to_forget_weights"] * x
            + q["recurrent_to_forget_weights"] * h
            + q["cell_to_forget_weights"] * c
            + q["forget_gate_bias"]
        )
        i = sig(
            q["input_to_input_weights"] * x
            + q["recurrent_to_input_weights"] * h
            + q["cell_to_input_weights"] * c
            + q["input_gate_bias"]
        )
        z = math.tanh(q["input_to_cell_weights"] * x + q["recurrent_to_cell_weights"] * h + q["cell_gate_bias"])
        o = sig(
            q["input_to_output_weights"] * x
            + q["recurrent_to_output_weights"] * h
            + q["cell_to_output_weights"] * c
            + q["output_gate_bias"]
        )
        c = f * c + i * z
        h = o * math.tanh(c)
        wrong.append(h)
    assert np.abs(y.ravel() - wrong).max() > 1e-3


def test_cell_clip_applies_after_the_update_and_before_the_output_gate() -> None:
    p = scalar_params(
        input_to_cell_weights=3.0,
        forget_gate_bias=5.0,
        input_gate_bias=5.0,
        cell_to_output_weights=2.0,
        cell_to_forget_weights=0.0,
        cell_to_input_weights=0.0,
    )
    y, _, c = run(p, cell_clip=0.3)
    ys, c_end = by_hand(XS, flat(p), cell_clip=0.3, peephole=True)
    np.testing.assert_allclose(y.ravel(), ys, rtol=1e-12)
    assert abs(c.ravel()[0]) <= 0.3 and c.ravel()[0] == pytest.approx(c_end)
    unclipped, _, _ = run(p)
    assert np.abs(unclipped - y).max() > 1e-2  # the clip binds


def test_projection_bias_and_proj_clip() -> None:
    rng = np.random.default_rng(3)
    n, i, pr = 3, 2, 2
    p = {
        f"{a}_to_{g}_weights": rng.standard_normal((n, i if a == "input" else pr))
        for a in ("input", "recurrent")
        for g in ("input", "forget", "cell", "output")
    }
    p |= {f"{g}_gate_bias": rng.standard_normal(n) for g in ("input", "forget", "cell", "output")}
    p["projection_weights"] = rng.standard_normal((pr, n)) * 2
    p["projection_bias"] = np.array([0.3, -0.2])
    x = rng.standard_normal((1, 4, i))
    y, _, _ = lstm_reference(x, p, proj_clip=0.25)
    # by hand, vectorised per step
    h, c = np.zeros(pr), np.zeros(n)
    for t in range(4):
        g = {
            k: p[f"input_to_{k}_weights"] @ x[0, t] + p[f"recurrent_to_{k}_weights"] @ h + p[f"{k}_gate_bias"]
            for k in ("input", "forget", "cell", "output")
        }
        c = 1 / (1 + np.exp(-g["forget"])) * c + 1 / (1 + np.exp(-g["input"])) * np.tanh(g["cell"])
        m = 1 / (1 + np.exp(-g["output"])) * np.tanh(c)
        h = np.clip(p["projection_weights"] @ m + p["projection_bias"], -0.25, 0.25)
        np.testing.assert_allclose(y[0, t], h, rtol=1e-12)
    assert np.any(np.abs(y) == 0.25)  # the clip binds


def test_cifg_uses_one_minus_forget() -> None:
    p = scalar_params()
    for k in ("input_to_input_weights", "recurrent_to_input_weights", "input_gate_bias"):
        del p[k]
    y, _, _ = run(p)
    np.testing.assert_allclose(y.ravel(), by_hand(XS, flat(scalar_params()), cifg=True)[0], rtol=1e-12)


def test_layer_norm_normalises_then_scales_then_adds_bias() -> None:
    # N = 2: LN(v) = (v - mean) / sqrt(var + 1e-8) = +-d / sqrt(d^2 + 1e-8) for v = mean +- d.
    n = 2
    p = {
        f"{a}_to_{g}_weights": np.full((n, 1 if a == "input" else n), 0.0)
        for a in ("input", "recurrent")
        for g in ("input", "forget", "cell", "output")
    }
    p["input_to_cell_weights"] = np.array([[1.0], [3.0]])  # cell pre-activation = [x, 3x]
    p |= {f"{g}_gate_bias": np.full(n, 0.25) for g in ("input", "forget", "cell", "output")}
    p |= {f"{g}_layer_norm_coefficients": np.full(n, 0.5) for g in ("input", "forget", "cell", "output")}
    y, _, c = lstm_reference(np.array([[[2.0]]]), p)
    d = 2.0  # pre = [2, 6]: mean 4, deviation 2
    ln = np.array([-d, d]) / math.sqrt(d * d + 1e-8)
    z = np.tanh(ln * 0.5 + 0.25)
    gate = sig(0 * 0.5 + 0.25)  # all-equal pre-activations normalise to 0
    np.testing.assert_allclose(c.ravel(), gate * z, rtol=1e-12)
    np.testing.assert_allclose(y.ravel(), gate * np.tanh(gate * z), rtol=1e-12)


def test_time_major_is_a_transpose() -> None:
    rng = np.random.default_rng(0)
    p = {
        f"{a}_to_{g}_weights": rng.standard_normal((4, 3 if a == "input" else 4))
        for a in ("input", "recurrent")
        for g in ("input", "forget", "cell", "output")
    }
    p |= {f"{g}_gate_bias": rng.standard_normal(4) for g in ("input", "forget", "cell", "output")}
    x = rng.standard_normal((2, 5, 3))
    y_bm, h_bm, _ = lstm_reference(x, p)
    y_tm, h_tm, _ = lstm_reference(x.transpose(1, 0, 2), p, time_major=True)
    np.testing.assert_allclose(y_bm, y_tm.transpose(1, 0, 2))
    np.testing.assert_allclose(h_bm, h_tm)


def test_step_is_the_whole_equation_set() -> None:
    """lstm_reference adds nothing to `step`: stepping by hand gives its outputs and record bit for bit
    (peepholes, projection, layer norm, clips and saturation included)."""
    from lstmgen.numerics.reference import Cell, Saturation, step

    rng = np.random.default_rng(3)
    n, i, p_, b, t = 4, 3, 2, 2, 5
    params = {
        f"{w}_to_{g}_weights": rng.standard_normal((n, i if w == "input" else p_))
        for w in ("input", "recurrent")
        for g in ("input", "forget", "cell", "output")
    }
    params |= {f"{g}_gate_bias": rng.standard_normal(n) for g in ("input", "forget", "cell", "output")}
    params |= {f"{g}_layer_norm_coefficients": rng.standard_normal(n) for g in ("input", "forget", "cell", "output")}
    params |= {f"cell_to_{g}_weights": rng.standard_normal(n) for g in ("input", "forget", "output")}
    params |= {"projection_weights": rng.standard_normal((p_, n)), "projection_bias": rng.standard_normal(p_)}
    x = rng.standard_normal((b, t, i)) * 3
    sat = Saturation(dict.fromkeys(("input", "forget", "cell", "output"), (-2.0, 2.0)), (-1.5, 1.5), (-0.5, 0.5))
    record: dict[str, np.ndarray] = {}
    y, h_end, c_end = lstm_reference(
        x, params, cell_clip=2.5, proj_clip=0.9, record=record, gate_bounds=sat.gates, c_bounds=sat.c, h_bounds=sat.h
    )
    cell = Cell.of(params, "tanh", 2.5, 0.9)
    h, c = np.zeros((b, p_)), np.zeros((b, n))
    for k in range(t):
        out = step(cell, x[:, k], h, c, sat)
        h, c = out.h, out.c
        assert np.array_equal(y[:, k], h) and np.array_equal(record["cell_state"][k], c)
        assert np.array_equal(record["hidden"][k], out.hidden)
        for g, pre in out.gate_pre.items():
            assert np.array_equal(record[f"{g}_gate_pre"][k], pre)
    assert np.array_equal(h, h_end) and np.array_equal(c, c_end)


@pytest.mark.parametrize("parts", [(), ("peephole", "proj"), ("cifg", "layer_norm")])
def test_input_terms_ahead_equal_step_by_step(parts: tuple[str, ...], monkeypatch: pytest.MonkeyPatch) -> None:
    """Every step's x_t @ W.T computed ahead in blocks (a block smaller than the sequence here) gives the
    step-by-step products' results, recorded internals included."""
    from lstmgen.numerics import reference

    rng = np.random.default_rng(3)
    n, i, p = 6, 4, 3
    gates = ["forget", "cell", "output"] + ([] if "cifg" in parts else ["input"])
    params = {f"input_to_{g}_weights": rng.standard_normal((n, i)) for g in gates}
    params |= {f"recurrent_to_{g}_weights": rng.standard_normal((n, p if "proj" in parts else n)) for g in gates}
    params |= {f"{g}_gate_bias": rng.standard_normal(n) for g in gates}
    if "peephole" in parts:
        params |= {f"cell_to_{g}_weights": rng.standard_normal(n) for g in ("forget", "output")}
    if "proj" in parts:
        params["projection_weights"] = rng.standard_normal((p, n))
    if "layer_norm" in parts:
        params |= {f"{g}_layer_norm_coefficients": rng.standard_normal(n) for g in gates}
    x = rng.standard_normal((2, 9, i))

    def run_with(terms_bytes: int) -> tuple[tuple[np.ndarray, ...], dict[str, np.ndarray]]:
        rec: dict[str, np.ndarray] = {}
        with monkeypatch.context() as m:
            m.setattr(reference, "TERMS_BYTES", terms_bytes)
            return lstm_reference(x, params, record=rec), rec

    (ahead, rec_a), (alone, rec_b) = run_with(8 * 2 * 4 * n * 4), run_with(0)  # blocks of 4 steps; one step
    for a, b in zip(ahead, alone, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    assert rec_a.keys() == rec_b.keys()
    for k in rec_a:
        np.testing.assert_allclose(rec_a[k], rec_b[k], rtol=1e-12, atol=1e-14)
