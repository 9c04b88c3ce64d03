"""Source references against the frameworks themselves: TF/Keras fixtures, torch, onnx.reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support import TF_FIXTURES, tf_manifest

from lstmgen.check.source import source_model
from lstmgen.check.source.common import Stated
from lstmgen.weights import load_layers

TOL = 1e-5  # float32 framework output against the float64 reference


def _stated(hp: dict) -> Stated:
    return Stated(
        activation=hp.get("activation", "tanh"),
        cell_clip=float(hp.get("cell_clip") or 0.0),
        proj_clip=float(hp.get("proj_clip") or 0.0),
        forget_bias=hp.get("forget_bias"),
        time_major=bool(hp.get("time_major", False)),
    )


CASES = {
    "tf1_basic": ("tf1_basic.weights.npz", "tf1"),
    "tf1_peephole_cellclip_timemajor": ("tf1_peephole_cellclip_timemajor.weights.npz", "tf1"),
    "tf1_peephole_proj_clip": ("tf1_peephole_proj_clip.weights.npz", "tf1"),
    "tf1_proj_noclip": ("tf1_proj_noclip.weights.npz", "tf1"),
    "tf1_relu_forget_bias": ("tf1_relu_forget_bias.weights.npz", "tf1"),
    "keras3_lstm": ("keras3_lstm.keras", "auto"),
    "keras3_go_backwards": ("keras3_go_backwards.keras", "auto"),
    "keras3_last_step": ("keras3_last_step.keras", "auto"),
    "keras3_no_bias": ("keras3_no_bias.keras", "auto"),
    "keras3_stacked": ("keras3_stacked.keras", "auto"),
    "keras3_bidir": ("keras3_bidir.keras", "auto"),
    "tfkeras2_lstm": ("tfkeras2_lstm.h5", "auto"),
    "ckpt_tf1_peephole_proj": ("ckpt_tf1_peephole_proj", "tf-checkpoint"),
    "ckpt_tf1_sharded": ("ckpt_tf1_sharded", "tf-checkpoint"),
    "ckpt_tf2_keras": ("ckpt_tf2_keras", "tf-checkpoint"),
    "ckpt_tflite_cell": ("ckpt_tflite_cell", "tf-checkpoint"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_source_reference_matches_tensorflow(case: str) -> None:
    name, fmt = CASES[case]
    hp = tf_manifest()[case]["hyperparameters"]
    io = np.load(TF_FIXTURES / f"{case}.io.npz")
    layers = load_layers(TF_FIXTURES / name, fmt)
    stated = _stated(hp)
    if case == "ckpt_tflite_cell":
        stated = Stated(cell_clip=0.7, proj_clip=0.25, time_major=True)  # forget bias is in the variables
    ref = source_model(layers, stated)
    y, finals = ref.run(io["x"])
    np.testing.assert_allclose(y, io["y"], atol=TOL, rtol=TOL)
    if "h" in io.files and len(finals) == 1:
        np.testing.assert_allclose(finals[0][0], io["h"].reshape(finals[0][0].shape), atol=TOL, rtol=TOL)
        np.testing.assert_allclose(finals[0][1], io["c"].reshape(finals[0][1].shape), atol=TOL, rtol=TOL)


@pytest.mark.parametrize(
    ("proj", "bidir", "layers", "batch_first"),
    [(0, False, 1, True), (3, False, 1, False), (0, True, 2, True), (2, True, 1, False)],
)
def test_source_reference_matches_pytorch(
    tmp_path: Path, proj: int, bidir: bool, layers: int, batch_first: bool
) -> None:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.LSTM(5, 6, num_layers=layers, bidirectional=bidir, proj_size=proj, batch_first=batch_first)
    path = tmp_path / "w.pt"
    torch.save(net.state_dict(), path)
    x = torch.randn(3, 7, 5) if batch_first else torch.randn(7, 3, 5)
    with torch.no_grad():
        y, (h, c) = net(x)
    cells = load_layers(path, "torch")
    ref = source_model(cells, Stated(time_major=not batch_first))
    got, finals = ref.run(x.numpy())
    np.testing.assert_allclose(got, y.numpy(), atol=TOL, rtol=TOL)
    for k, (h_k, c_k) in enumerate(finals):  # h_n/c_n: [layers * directions, B, H] in the same order
        np.testing.assert_allclose(h_k, h[k].numpy(), atol=TOL, rtol=TOL)
        np.testing.assert_allclose(c_k, c[k].numpy(), atol=TOL, rtol=TOL)


def _onnx_model(path: Path, direction: str, layout: int, peepholes: bool, seed: int = 0) -> None:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    d, h, i = (2 if direction == "bidirectional" else 1), 6, 5
    arrays = {
        "W": rng.standard_normal((d, 4 * h, i)) * 0.5,
        "R": rng.standard_normal((d, 4 * h, h)) * 0.5,
        "B": rng.standard_normal((d, 8 * h)) * 0.5,
    }
    inputs = ["X", "W", "R", "B"]
    if peepholes:
        arrays["P"] = rng.standard_normal((d, 3 * h)) * 0.5
        inputs += ["", "", "", "P"]
    inits = [numpy_helper.from_array(v.astype(np.float32), k) for k, v in arrays.items()]
    node = helper.make_node("LSTM", inputs, ["Y"], hidden_size=h, direction=direction, layout=layout)
    xshape = [7, 3, i] if layout == 0 else [3, 7, i]
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, xshape)],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)],
        inits,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]), path)


@pytest.mark.parametrize(
    ("direction", "layout", "peepholes"),
    [("forward", 0, False), ("forward", 1, True), ("bidirectional", 0, True), ("bidirectional", 1, False)],
)
def test_source_reference_matches_onnx(tmp_path: Path, direction: str, layout: int, peepholes: bool) -> None:
    pytest.importorskip("onnx")
    from onnx.reference import ReferenceEvaluator

    path = tmp_path / "m.onnx"
    _onnx_model(path, direction, layout, peepholes)
    x = np.random.default_rng(1).standard_normal([7, 3, 5] if layout == 0 else [3, 7, 5]).astype(np.float32)
    (y,) = ReferenceEvaluator(str(path)).run(None, {"X": x})
    # Y: [T, D, B, H] (layout 0) or [B, T, D, H] (layout 1); the model concatenates the directions.
    want = y.transpose(0, 2, 1, 3) if layout == 0 else y
    want = want.reshape(*want.shape[:2], -1)
    layers = load_layers(path, "onnx")
    assert layers[0][0].hyperparameters["time_major"] == (layout == 0)  # the node's layout, no Transposes
    ref = source_model(layers, Stated(time_major=layout == 0))
    got, _ = ref.run(x)
    np.testing.assert_allclose(got, want, atol=TOL, rtol=TOL)


def test_canonical_reference_is_the_op() -> None:
    from support import random_tflite_weights

    from lstmgen.numerics.reference import lstm_reference
    from lstmgen.weights import get_reader

    w = random_tflite_weights(6, 5, 3, peepholes=True, projection_bias=True)
    cell = get_reader("tflite").read(w, "w.npz")
    x = np.random.default_rng(2).standard_normal((3, 7, 5))
    got, _ = source_model([[cell]], Stated(cell_clip=0.8, proj_clip=0.4, forget_bias=0.5)).run(x)
    w2 = dict(w, forget_gate_bias=w["forget_gate_bias"].astype(np.float64) + 0.5)
    want, _, _ = lstm_reference(x, w2, cell_clip=0.8, proj_clip=0.4)
    np.testing.assert_allclose(got, want, atol=1e-12)


REAL = TF_FIXTURES.parent / "real"
REAL_CASES = {
    "k3_encoder": "k3_encoder.keras",  # relu, go_backwards, no bias: the case
    "k3_stacked_head": "k3_stacked_head.keras",
    "tk2_time_major": "tk2_time_major.h5",
    "tk2_stacked_head": "tk2_stacked_head.h5",
    "tf1_dump_single": "tf1_dump_single.npz",
    "tf1_dump_stacked": "tf1_dump_stacked.npz",
    "tf1_dump_bidir": "tf1_dump_bidir.npz",
    **{
        f"onnx_{e}_{t}": f"onnx_{e}_{t}.onnx"
        for e in ("ts", "dynamo")
        for t in ("l1_uni_bf", "l1_bi_bf", "l2_bi_bf", "l2_uni_tm")
    },
}


@pytest.mark.parametrize("case", sorted(REAL_CASES))
def test_source_reference_matches_real_files(case: str) -> None:
    """Files made by the frameworks the way users make them (tests/fixtures/real/, not by lstmgen's authors)."""
    if case.startswith("onnx"):
        pytest.importorskip("onnx")
    if case.startswith(("k3", "tk2")):
        pytest.importorskip("h5py")
    io = np.load(REAL / f"{case}.io.npz")
    layers = load_layers(REAL / REAL_CASES[case])
    time_major = bool(layers[0][0].hyperparameters.get("time_major", False))  # the graph's, for ONNX
    y, _ = source_model(layers, Stated(time_major=time_major)).run(io["x"])
    np.testing.assert_allclose(y, io["y"], atol=TOL, rtol=TOL)


@pytest.mark.parametrize("variant", ["cifg", "layer_norm", "diagonal", "cifg_layer_norm_peephole"])
def test_canonical_variants_are_the_op(variant: str) -> None:
    from support import random_tflite_weights

    from lstmgen.numerics.reference import lstm_reference
    from lstmgen.weights import get_reader

    rng = np.random.default_rng(4)
    w = random_tflite_weights(6, 5, peepholes="peephole" in variant)
    if "cifg" in variant:
        for k in ("input_to_input_weights", "recurrent_to_input_weights", "input_gate_bias", "cell_to_input_weights"):
            w.pop(k, None)
    if "layer_norm" in variant:
        for g in ("input", "forget", "cell", "output"):
            if not ("cifg" in variant and g == "input"):
                w[f"{g}_layer_norm_coefficients"] = (1 + rng.standard_normal(6) * 0.3).astype(np.float32)
    if variant == "diagonal":
        for g in ("input", "forget", "cell", "output"):
            w[f"recurrent_to_{g}_weights"] = rng.standard_normal(6).astype(np.float32) * 0.5
    cell = get_reader("tflite").read(w, "w.npz")
    x = rng.standard_normal((2, 7, 5))
    got, _ = source_model([[cell]], Stated(cell_clip=0.9)).run(x)
    want, _, _ = lstm_reference(x, w, cell_clip=0.9)
    np.testing.assert_allclose(got, want, atol=1e-12)
