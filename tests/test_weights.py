"""Weight readers: layouts, auto-detection, dtype and key checks, and gate order against the table."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
from support import random_tflite_weights

from lstmgen.errors import WeightFileError
from lstmgen.weights import GATE_ORDERS, load_weights, split_gates


def test_gate_orders_are_permutations() -> None:
    for order in GATE_ORDERS.values():
        assert sorted(order) == ["cell", "forget", "input", "output"]


def test_split_then_restack_is_identity() -> None:
    packed = np.arange(4 * 3 * 2).reshape(12, 2)
    for name, order in GATE_ORDERS.items():
        parts = split_gates(packed, name)
        np.testing.assert_array_equal(np.concatenate([parts[g] for g in order]), packed)


def test_tf1_layout_by_construction(weights_npz) -> None:
    """Build a TF1 kernel from known per-gate blocks and check each lands in its slot."""
    n, i, p = 3, 2, 4
    rng = np.random.default_rng(0)
    blocks = {
        g: (rng.standard_normal((n, i)), rng.standard_normal((n, p))) for g in ("input", "cell", "forget", "output")
    }
    # TF1: kernel [I+P, 4N] acting on concat([x, h]); gates i, j(cell), f, o along the columns.
    kernel = np.concatenate(
        [np.concatenate([blocks[g][0].T, blocks[g][1].T]) for g in ("input", "cell", "forget", "output")], axis=1
    ).astype(np.float32)
    bias = np.arange(4 * n, dtype=np.float32)
    proj = rng.standard_normal((n, p)).astype(np.float32)
    w = load_weights(weights_npz({"kernel": kernel, "bias": bias, "projection/kernel": proj}), "tf1")
    for g, (wx, wh) in blocks.items():
        np.testing.assert_allclose(w.tensors[f"input_to_{g}_weights"], wx, rtol=1e-6)
        np.testing.assert_allclose(w.tensors[f"recurrent_to_{g}_weights"], wh, rtol=1e-6)
    np.testing.assert_array_equal(w.tensors["forget_gate_bias"], bias[2 * n : 3 * n])
    np.testing.assert_array_equal(w.tensors["cell_gate_bias"], bias[n : 2 * n])
    np.testing.assert_array_equal(w.tensors["projection_weights"], proj.T)
    assert w.forget_bias_default == 1.0
    assert w.implied() == {"num_units": n, "input_size": i, "use_peepholes": False, "num_proj": p}


def test_auto_detection(weights_npz) -> None:
    w = load_weights(weights_npz(random_tflite_weights()))
    assert w.format == "tflite" and "format detected from keys: tflite" in w.notes
    assert w.forget_bias_default == 0.0
    with pytest.raises(WeightFileError, match="matches no known layout .*keys found: a, b.*Layouts tried"):
        load_weights(weights_npz({"a": np.zeros(3), "b": np.zeros(2)}))


def test_float64_is_converted_with_a_note(weights_npz) -> None:
    w64 = {k: v.astype(np.float64) for k, v in random_tflite_weights().items()}
    w = load_weights(weights_npz(w64), "tflite")
    assert w.tensors["input_to_forget_weights"].dtype == np.float32
    assert any("converted from float64" in n for n in w.notes)


@pytest.mark.parametrize(
    ("mutate", "expect"),
    [
        (lambda w: w.pop("forget_gate_bias"), "missing required key.*forget_gate_bias"),
        (lambda w: w.update(bogus=np.zeros(3, np.float32)), "unknown key.*bogus"),
        (lambda w: w.update(input_to_cell_weights=np.ones((6, 5), np.int32)), "dtype int32, expected float32"),
        (lambda w: w.update(input_to_cell_weights=np.ones((6, 5), np.complex64)), "dtype complex64"),
        (lambda w: w["output_gate_bias"].__setitem__(2, np.nan), "output_gate_bias' contains 1 NaN/Inf.*index \\[2\\]"),
        (lambda w: w["input_to_input_weights"].__setitem__((1, 1), np.inf), "NaN/Inf"),
    ],
    ids=["missing", "unknown", "int", "complex", "nan", "inf"],
)
def test_bad_tflite_weights(weights_npz, mutate, expect: str) -> None:
    w = random_tflite_weights()
    mutate(w)
    with pytest.raises(WeightFileError, match=expect):
        load_weights(weights_npz(w), "tflite")


def test_huge_finite_weights_are_not_taken_for_nan(weights_npz) -> None:
    """The fast finite check sums in float32, which overflows to Inf on weights near the float32 limit:
    that alone must not refuse the file (the exact element check decides)."""
    w = random_tflite_weights()
    w["input_to_cell_weights"][:] = 3e38
    with np.errstate(over="ignore"):
        assert not np.isfinite(np.sum(w["input_to_cell_weights"]))  # the sum overflows...
    loaded = load_weights(weights_npz(w), "tflite")  # ...and the file is still accepted
    assert np.all(loaded.tensors["input_to_cell_weights"] == np.float32(3e38))


def test_bad_files(tmp_path: Path, weights_npz) -> None:
    with pytest.raises(WeightFileError, match="does not exist"):
        load_weights(tmp_path / "nope.npz")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(WeightFileError, match="not an .npz archive"):
        load_weights(tmp_path / "text.npz")
    good = weights_npz(random_tflite_weights())
    (tmp_path / "cut.npz").write_bytes(good.read_bytes()[:300])
    with pytest.raises(WeightFileError, match="truncated or corrupt"):
        load_weights(tmp_path / "cut.npz")
    obj = tmp_path / "obj.npz"
    np.savez(obj, kernel=np.array([{"a": 1}], dtype=object))
    with pytest.raises(WeightFileError, match="never unpickles"):
        load_weights(obj)
    dup = tmp_path / "dup.npz"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(dup, "w") as dst, pytest.warns(UserWarning):
        for name in src.namelist():
            dst.writestr(name, src.read(name))
        dst.writestr("forget_gate_bias.npy", src.read("forget_gate_bias.npy"))
    with pytest.raises(WeightFileError, match="forget_gate_bias more than once"):
        load_weights(dup)


@pytest.mark.parametrize(
    ("arrays", "expect"),
    [
        ({"kernel": np.zeros((11, 23), np.float32), "bias": np.zeros(23, np.float32)}, "expected \\[input_size"),
        ({"kernel": np.zeros((11, 24), np.float32), "bias": np.zeros(20, np.float32)}, "'bias' has shape \\[20\\]"),
        ({"kernel": np.zeros((11, 24), np.float32)}, "missing key 'bias'"),
        (
            {
                "kernel": np.zeros((11, 24), np.float32),
                "bias": np.zeros(24, np.float32),
                "w_f_diag": np.zeros(6, np.float32),
            },
            "need all of w_i_diag",
        ),
        (
            {
                "kernel": np.zeros((11, 24), np.float32),
                "bias": np.zeros(24, np.float32),
                "projection/kernel": np.zeros((5, 4), np.float32),
            },
            "'projection/kernel' has shape \\[5, 4\\]",
        ),
        (
            {
                "kernel": np.zeros((4, 24), np.float32),
                "bias": np.zeros(24, np.float32),
                "projection/kernel": np.zeros((6, 4), np.float32),
            },
            "leaving no input rows",
        ),
    ],
    ids=["kernel-not-4n", "bias-shape", "no-bias", "partial-peepholes", "proj-shape", "no-input-rows"],
)
def test_bad_tf1_weights(weights_npz, arrays: dict, expect: str) -> None:
    with pytest.raises(WeightFileError, match=expect):
        load_weights(weights_npz(arrays), "tf1")
