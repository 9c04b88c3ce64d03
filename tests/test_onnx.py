"""ONNX LSTM weights (.onnx models and W/R/B/P .npz) against onnxruntime, and every refusal's message."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from support import assert_close  # noqa: E402

from lstmgen.build import build  # noqa: E402
from lstmgen.cli.main import main  # noqa: E402
from lstmgen.errors import WeightFileError  # noqa: E402
from lstmgen.run import run_model  # noqa: E402
from lstmgen.weights import load_weights  # noqa: E402
from lstmgen.weights.onnx_lstm import list_cells  # noqa: E402

NB, NT, NI, NH = 3, 7, 5, 6  # batch, time, input, hidden: all different, so a swapped axis cannot hide
OPSET, IR = 14, 8  # LSTM-14 has `layout`; onnxruntime refuses IR versions newer than it knows
ATOL = 1e-5
ONNX_OUTPUTS = ("Y", "Y_h", "Y_c")  # the names assert_close reports


# --- building ONNX models ----------------------------------------------------------------------


def lstm_arrays(seed: int = 0, peepholes: bool = True, dirs: int = 1, scale: float = 0.5) -> dict[str, np.ndarray]:
    """Random W, R, B (both halves non-zero) and P for `dirs` directions."""
    rng = np.random.default_rng(seed)

    def rand(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    out = {"W": rand(dirs, 4 * NH, NI), "R": rand(dirs, 4 * NH, NH), "B": rand(dirs, 8 * NH)}
    if peepholes:
        out["P"] = rand(dirs, 3 * NH)
    return out


def lstm_node(name: str = "lstm_1", inputs: Sequence[str] = ("X", "W", "R", "B"), **attrs: Any) -> onnx.NodeProto:
    attrs.setdefault("hidden_size", NH)
    return helper.make_node("LSTM", list(inputs), ["Y", "Y_h", "Y_c"], name=name, **attrs)


def make_model(
    nodes: Sequence[onnx.NodeProto],
    inits: dict[str, np.ndarray],
    inputs: Sequence[str] = ("X",),
    layout: int = 0,
) -> onnx.ModelProto:
    x_shape = [NT, NB, NI] if layout == 0 else [NB, NT, NI]
    graph_inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, x_shape)]
    graph_inputs += [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in inputs if n != "X"]
    outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("Y", "Y_h", "Y_c")]
    initializers = [numpy_helper.from_array(v, k) for k, v in inits.items()]
    graph = helper.make_graph(list(nodes), "g", graph_inputs, outputs, initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR)


def simple_model(arrays: dict[str, np.ndarray], layout: int = 0, **attrs: Any) -> onnx.ModelProto:
    names = ["X", "W", "R", "B", "", "", "", "P"] if "P" in arrays else ["X", "W", "R", "B"]
    return make_model([lstm_node(inputs=names, layout=layout, **attrs)], arrays, layout=layout)


def save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, str(path))
    return path


# --- the oracle --------------------------------------------------------------------------------


def ort_outputs(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def oracle(
    model: onnx.ModelProto, x: np.ndarray, layout: int, direction: int = 0, **state: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """onnxruntime's Y, Y_h, Y_c for one direction, as [T,B,H] / [B,T,H] (per layout), [B,H], [B,H].

    onnxruntime implements only layout 0, so a layout-1 model runs as its layout-0 twin on transposed
    data: layout 1 is defined as exactly that transpose (test_layout_1_twin_matches_onnx_reference).
    """
    if layout == 1:
        model = twin_layout0(model)
        x = x.swapaxes(0, 1)
        state = {k: v.swapaxes(0, 1) for k, v in state.items()}
    y, h, c = ort_outputs(model, {"X": x, **state})
    y = y[:, direction]
    if layout == 1:
        y = y.swapaxes(0, 1)
    return y, h[direction], c[direction]


def twin_layout0(model: onnx.ModelProto) -> onnx.ModelProto:
    twin = onnx.ModelProto()
    twin.CopyFrom(model)
    for node in twin.graph.node:
        for a in node.attribute:
            if a.name == "layout":
                a.i = 0
    twin.graph.input[0].CopyFrom(helper.make_tensor_value_info("X", TensorProto.FLOAT, [NT, NB, NI]))
    return twin


def random_input(layout: int, seed: int = 1) -> np.ndarray:
    shape = (NT, NB, NI) if layout == 0 else (NB, NT, NI)
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def build_and_run(
    tmp_path: Path, weights: Path, x: np.ndarray, options: dict[str, Any] | None = None, **kwargs: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    out = tmp_path / "lstm.tflite"
    result = build(out, {"batch_size": NB, **(options or {})}, weights, **kwargs)
    assert result.verification is not None and result.verification.passed
    assert result.weights_format == "onnx"
    return run_model(out, x)


# --- against onnxruntime -----------------------------------------------------------------------


@pytest.mark.runtime
@pytest.mark.parametrize("peepholes", [False, True], ids=["plain", "peepholes"])
@pytest.mark.parametrize("layout", [0, 1], ids=["layout0-time-major", "layout1-batch-major"])
def test_matches_onnxruntime(tmp_path: Path, layout: int, peepholes: bool) -> None:
    model = simple_model(lstm_arrays(seed=layout * 2 + peepholes, peepholes=peepholes), layout=layout)
    path = save(model, tmp_path / "m.onnx")
    x = random_input(layout)
    got = build_and_run(tmp_path, path, x)
    assert_close(got, oracle(model, x, layout), ATOL, ONNX_OUTPUTS)
    w = load_weights(path)
    assert w.implied()["time_major"] is (layout == 0)
    assert w.implied()["use_peepholes"] is peepholes
    assert w.layer == "lstm_1/forward"


def test_layout_1_twin_matches_onnx_reference() -> None:
    """The oracle's layout-1 trick (layout-0 twin on transposed data) agrees with ONNX's own reference."""
    from onnx.reference import ReferenceEvaluator

    model = simple_model(lstm_arrays(seed=5), layout=1)
    x = random_input(1)
    y, h, c = ReferenceEvaluator(model).run(None, {"X": x})
    want = oracle(model, x, 1)
    assert_close((y[:, :, 0], h[:, 0], c[:, 0]), want, ATOL, ONNX_OUTPUTS)


@pytest.mark.runtime
def test_relu_activations_match_onnxruntime(tmp_path: Path) -> None:
    model = simple_model(lstm_arrays(seed=7, scale=0.3), activations=["Sigmoid", "Relu", "Relu"])
    path = save(model, tmp_path / "relu.onnx")
    x = random_input(0)
    assert load_weights(path).implied()["activation"] == "relu"
    assert_close(build_and_run(tmp_path, path, x), oracle(model, x, 0), ATOL, ONNX_OUTPUTS)


@pytest.mark.runtime
def test_forward_half_of_bidirectional_matches_onnxruntime(tmp_path: Path) -> None:
    model = simple_model(lstm_arrays(seed=8, dirs=2), direction="bidirectional")
    path = save(model, tmp_path / "bi.onnx")
    x = random_input(0)
    got = build_and_run(tmp_path, path, x, layer="lstm_1/forward")
    assert_close(got, oracle(model, x, 0, direction=0), ATOL, ONNX_OUTPUTS)


@pytest.mark.runtime
def test_initial_state_fed_at_run_time_matches_onnxruntime(tmp_path: Path) -> None:
    """initial_h/initial_c as graph inputs: lstmgen's run h0/c0 are the same state (per layout)."""
    layout = 1
    node = lstm_node(inputs=["X", "W", "R", "B", "", "h0", "c0", "P"], layout=layout)
    model = make_model([node], lstm_arrays(seed=9), inputs=("X", "h0", "c0"), layout=layout)
    path = save(model, tmp_path / "state.onnx")
    rng = np.random.default_rng(3)
    h0, c0 = (rng.standard_normal((NB, 1, NH)).astype(np.float32) for _ in range(2))
    x = random_input(layout)
    out = tmp_path / "lstm.tflite"
    result = build(out, {"batch_size": NB}, path)
    assert any("initial_h is a graph input" in n for n in result.notes)
    got = run_model(out, x, h0=h0[:, 0], c0=c0[:, 0])
    assert_close(got, oracle(model, x, layout, h0=h0, c0=c0), ATOL, ONNX_OUTPUTS)


@pytest.mark.runtime
@pytest.mark.parametrize("squeeze", [False, True], ids=["with-dirs-axis", "without-dirs-axis"])
def test_npz_matches_onnxruntime(tmp_path: Path, weights_npz: Callable[..., Path], squeeze: bool) -> None:
    arrays = lstm_arrays(seed=10)
    model = simple_model(arrays)
    path = weights_npz({k: v[0] if squeeze else v for k, v in arrays.items()}, "onnx_lstm.npz")
    x = random_input(0)
    # An .npz does not record the layout: ask for time-major to feed the same [T,B,I] input.
    assert_close(build_and_run(tmp_path, path, x, {"time_major": True}), oracle(model, x, 0), ATOL, ONNX_OUTPUTS)
    assert "format detected from keys: onnx" in load_weights(path).notes


@pytest.mark.runtime
def test_swapped_peephole_blocks_are_caught(tmp_path: Path, weights_npz: Callable[..., Path]) -> None:
    """P is i, o, f (not i, f, o): reading it in gate order gives a large error, so the mapping is tested."""
    arrays = lstm_arrays(seed=11, scale=1.0)
    model = simple_model(arrays)
    p = arrays["P"].reshape(1, 3, NH)
    path = weights_npz(arrays | {"P": p[:, [0, 2, 1]].reshape(1, 3 * NH)}, "swapped.npz")
    x = random_input(0)
    y, _, _ = build_and_run(tmp_path, path, x, {"time_major": True})
    assert float(np.abs(y - oracle(model, x, 0)[0]).max()) > 1e-3


# --- reading, without an interpreter -----------------------------------------------------------


def test_slots_follow_the_onnx_gate_order(tmp_path: Path) -> None:
    arrays = lstm_arrays(seed=12)
    t = load_weights(save(simple_model(arrays), tmp_path / "m.onnx")).tensors
    w, r, b, p = arrays["W"][0], arrays["R"][0], arrays["B"][0], arrays["P"][0]
    for k, gate in enumerate(("input", "output", "forget", "cell")):
        rows = slice(k * NH, (k + 1) * NH)
        np.testing.assert_array_equal(t[f"input_to_{gate}_weights"], w[rows])
        np.testing.assert_array_equal(t[f"recurrent_to_{gate}_weights"], r[rows])
        np.testing.assert_allclose(t[f"{gate}_gate_bias"], b[rows] + b[4 * NH :][rows], rtol=0, atol=0)
    for k, gate in enumerate(("input", "output", "forget")):
        np.testing.assert_array_equal(t[f"cell_to_{gate}_weights"], p[k * NH : (k + 1) * NH])


def test_constant_identity_external_data_and_zero_state_are_read(tmp_path: Path) -> None:
    """W from a Constant node, R through an Identity, B in external data, zero initial_h: same as plain."""
    arrays = lstm_arrays(seed=13)
    plain = load_weights(save(simple_model(arrays), tmp_path / "plain.onnx")).tensors
    nodes = [
        helper.make_node("Constant", [], ["W"], value=numpy_helper.from_array(arrays["W"], "W")),
        helper.make_node("Identity", ["R0"], ["R"]),
        lstm_node(inputs=["X", "W", "R", "B", "", "h0", "", "P"]),
    ]
    inits = {"R0": arrays["R"], "B": arrays["B"], "P": arrays["P"], "h0": np.zeros((1, NB, NH), np.float32)}
    path = tmp_path / "ext" / "m.onnx"
    path.parent.mkdir()
    onnx.save(make_model(nodes, inits), str(path), save_as_external_data=True, location="m.data", size_threshold=0)
    assert (path.parent / "m.data").exists()
    got = load_weights(path).tensors
    assert sorted(got) == sorted(plain)
    for k in plain:
        np.testing.assert_array_equal(got[k], plain[k])


def test_cast_of_an_initializer_builds_and_verifies(tmp_path: Path) -> None:
    """W = Cast(float64 initializer, to=FLOAT), as exporters write for a double-precision source: folded, read
    as the plain model's W, and the build verifies against the source."""
    arrays = lstm_arrays(seed=14)
    plain = load_weights(save(simple_model(arrays), tmp_path / "plain.onnx")).tensors
    nodes = [helper.make_node("Cast", ["W64"], ["W"], to=TensorProto.FLOAT), lstm_node(inputs=["X", "W", "R", "B"])]
    inits = {"W64": arrays["W"].astype(np.float64), "R": arrays["R"], "B": arrays["B"]}
    path = save(make_model(nodes, inits), tmp_path / "cast.onnx")
    weights = load_weights(path)
    assert any("Cast" in note for note in weights.notes), weights.notes
    for k in weights.tensors:
        np.testing.assert_array_equal(weights.tensors[k], plain[k])
    result = build(tmp_path / "cast.tflite", {"batch_size": NB}, path)
    assert result.verification is not None and result.verification.passed


def test_no_bias_means_zero_bias(tmp_path: Path) -> None:
    arrays = lstm_arrays(seed=14, peepholes=False)
    del arrays["B"]
    w = load_weights(save(make_model([lstm_node(inputs=["X", "W", "R"])], arrays), tmp_path / "nob.onnx"))
    assert not np.any(w.tensors["forget_gate_bias"]) and w.tensors["forget_gate_bias"].shape == (NH,)


def test_list_cells(tmp_path: Path, weights_npz: Callable[..., Path]) -> None:
    a1, a2 = lstm_arrays(seed=1), lstm_arrays(seed=2, dirs=2)
    nodes = [
        lstm_node("enc", ["X", "W1", "R1", "B1"]),
        helper.make_node("LSTM", ["Y", "W2", "R2", "B2"], ["Y2"], hidden_size=NH, direction="bidirectional"),
        helper.make_node("LSTM", ["Y", "W1", "R1"], ["Y3"], hidden_size=NH, direction="reverse", name="back"),
    ]
    inits = {f"{k}1": v for k, v in a1.items()} | {f"{k}2": v for k, v in a2.items()}
    path = save(make_model(nodes, inits), tmp_path / "many.onnx")
    assert list_cells(path) == ["enc/forward", "LSTM_1/forward", "LSTM_1/reverse", "back/reverse"]
    assert load_weights(path, layer="LSTM_1/forward").layer == "LSTM_1/forward"
    assert load_weights(path, layer="enc").layer == "enc/forward"
    assert list_cells(weights_npz(a2, "bi.npz")) == ["forward", "reverse"]
    assert list_cells(weights_npz(a1, "one.npz")) == ["forward"]


def test_reverse_cells_load_as_backward(tmp_path: Path, weights_npz: Callable[..., Path]) -> None:
    """Reverse directions were refused before bidirectional models: they load now, marked backward."""
    rev = load_weights(save(simple_model(_A, direction="reverse"), tmp_path / "rev.onnx"))
    assert (rev.layer, rev.direction, rev.hyperparameters.get("onnx_reverse")) == ("lstm_1/reverse", "backward", True)
    bi = save(simple_model(_A2, direction="bidirectional"), tmp_path / "bi.onnx")
    half = load_weights(bi, layer="lstm_1/reverse")
    assert (half.direction, "onnx_reverse" in half.hyperparameters) == ("backward", False)
    np.testing.assert_array_equal(half.tensors["recurrent_to_cell_weights"], _A2["R"][1][3 * NH :])
    with pytest.raises(WeightFileError, match="bidirectional, so it holds two cells"):
        load_weights(bi)
    npz = load_weights(weights_npz(_A2, "bi.npz"), layer="reverse")
    assert (npz.layer, npz.direction) == ("reverse", "backward")
    np.testing.assert_array_equal(npz.tensors["input_to_output_weights"], _A2["W"][1][NH : 2 * NH])


def test_missing_onnx_package_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = save(simple_model(lstm_arrays()), tmp_path / "m.onnx")
    monkeypatch.setitem(sys.modules, "onnx", None)  # makes `import onnx` raise ImportError
    with pytest.raises(WeightFileError, match=r"pip install 'lstmgen\[onnx\]'"):
        load_weights(path)


# --- bad input through the command line ---------------------------------------------------------


def _write(model: onnx.ModelProto) -> Callable[[Path], Path]:
    return lambda d: save(model, d / "m.onnx")


def _truncated(d: Path) -> Path:
    data = simple_model(lstm_arrays()).SerializeToString()
    (d / "m.onnx").write_bytes(data[: len(data) // 2])
    return d / "m.onnx"


def _missing_external(d: Path) -> Path:
    onnx.save(
        simple_model(lstm_arrays()), str(d / "m.onnx"), save_as_external_data=True, location="m.data", size_threshold=0
    )
    (d / "m.data").unlink()
    return d / "m.onnx"


def _npz(arrays: dict[str, np.ndarray]) -> Callable[[Path], Path]:
    def write(d: Path) -> Path:
        np.savez(d / "w.npz", **arrays)
        return d / "w.npz"

    return write


_A = lstm_arrays()
_A2 = lstm_arrays(dirs=2)
_TWO = make_model(
    [lstm_node("enc"), helper.make_node("LSTM", ["Y", "W2", "R2"], ["Y2"], hidden_size=NH, name="dec")],
    _A | {"W2": lstm_arrays(seed=3)["R"], "R2": lstm_arrays(seed=3)["R"]},
)
_RELU_ONLY = make_model([helper.make_node("Relu", ["X"], ["Y"])], {})
_ADD_W = make_model(
    # W depends on data fed at run time (a constant W0 + W0 would be folded, and read).
    [helper.make_node("Add", ["W0", "X"], ["W"]), lstm_node(inputs=["X", "W", "R", "B"])],
    {"W0": _A["W"], "R": _A["R"], "B": _A["B"]},
)
_W_INPUT = make_model([lstm_node(inputs=["X", "W", "R", "B"])], {"R": _A["R"], "B": _A["B"]}, inputs=("X", "W"))
_SEQ_LENS = make_model(
    [lstm_node(inputs=["X", "W", "R", "B", "lens"])],
    {k: _A[k] for k in "WRB"} | {"lens": np.full(NB, NT, np.int32)},
)
_H0 = make_model(
    [lstm_node(inputs=["X", "W", "R", "B", "", "h0"])],
    {k: _A[k] for k in "WRB"} | {"h0": np.full((1, NB, NH), 0.5, np.float32)},
)

BAD_INPUTS = [
    pytest.param(_truncated, (), ("m.onnx", "truncated or corrupt"), id="truncated"),
    pytest.param(_write(_RELU_ONLY), (), ("no LSTM node", "Relu"), id="no-lstm-node"),
    pytest.param(_write(simple_model(_A | {"R": _A["R"][:, :, :-1]})), (), ("R has shape", "[1, 24, 6]"), id="R-shape"),
    pytest.param(
        _write(_TWO), ("--num-layers", "3"), ("only 2 LSTM layer(s)", "enc/forward; dec/forward"), id="two-nodes"
    ),
    pytest.param(_write(_TWO), ("--layer", "mid"), ("'mid'", "enc/forward, dec/forward"), id="unknown-layer"),
    pytest.param(_write(simple_model(_A, clip=5.0)), (), ("clip=5", "pre-activation", "cell state"), id="clip"),
    pytest.param(
        _write(simple_model(_A, input_forget=1)), (), ("input_forget=1", "f = 1 - i", "i = 1 - f"), id="input-forget"
    ),
    pytest.param(
        _write(simple_model(_A, activations=["Sigmoid", "Tanh", "Relu"])),
        (),
        ("Sigmoid, Tanh, Relu",),
        id="mixed-activations",
    ),
    pytest.param(
        _write(simple_model(_A, activations=["HardSigmoid", "Tanh", "Tanh"])), (), ("HardSigmoid",), id="hard-sigmoid"
    ),
    pytest.param(_write(_SEQ_LENS), (), ("sequence_lens", "every time step"), id="sequence-lens"),
    pytest.param(_write(_H0), (), ("non-zero constant initial_h", "--initial-state"), id="initial-h"),
    pytest.param(_write(_ADD_W), (), ("input W", "'X' is a graph input fed at run time"), id="computed-W"),
    pytest.param(_write(_W_INPUT), (), ("input W", "graph input"), id="W-graph-input"),
    pytest.param(
        _write(simple_model(_A2, direction="bidirectional")),
        ("--no-bidirectional",),
        ("bidirectional weights", "bidirectional = false", "--layer"),
        id="bidirectional",
    ),
    pytest.param(_write(simple_model(_A, hidden_size=NH + 1)), (), ("hidden_size=7",), id="hidden-size"),
    pytest.param(_missing_external, (), ("external data", "m.data"), id="missing-external-data"),
    pytest.param(_npz(_A | {"B": _A["B"][:, :-2]}), (), ("B has shape", "[1, 48]"), id="npz-B-shape"),
    pytest.param(
        _npz(_A), ("--weights-format", "onnx", "--layer", "lstm_1"), ("'lstm_1'", "forward"), id="npz-unknown-layer"
    ),
]


@pytest.mark.parametrize(("write", "args", "names"), BAD_INPUTS)
def test_bad_input_is_refused(
    tmp_path: Path, write: Callable[[Path], Path], args: tuple[str, ...], names: tuple[str, ...]
) -> None:
    weights = write(tmp_path)
    out = tmp_path / "out" / "lstm.tflite"
    out.parent.mkdir()
    result = CliRunner().invoke(main, ["build", "--weights", str(weights), *args, "-o", str(out)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "internal error" not in result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("lstmgen: error:")]
    assert len(lines) == 1, result.stderr
    for name in names:
        assert name in lines[0], f"{name!r} not in: {lines[0]}"
    assert sorted(out.parent.iterdir()) == [], "a failed build left a file behind"


@pytest.mark.runtime
def test_cli_builds_forward_half(tmp_path: Path) -> None:
    path = save(simple_model(_A2, direction="bidirectional"), tmp_path / "bi.onnx")
    out = tmp_path / "fw.tflite"
    result = CliRunner().invoke(main, ["build", "--weights", str(path), "--layer", "lstm_1/forward", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "weights: onnx" in result.stdout and "time-major" in result.stdout
    assert out.exists()


def _folded_w(tmp_path: Path, node: onnx.NodeProto, extra: dict[str, np.ndarray]) -> Path:
    """A model whose W is `node`'s output (folded by lstmgen.weights.onnx_fold)."""
    arrays = lstm_arrays(seed=15)
    inits = {"R": arrays["R"], "B": arrays["B"], **extra}
    return save(make_model([node, lstm_node(inputs=["X", "W", "R", "B"])], inits), tmp_path / "fold.onnx")


def test_folding_the_files_bad_values_is_bad_input(tmp_path: Path) -> None:
    """numpy refusing the file's values (an index out of range) and a node without what its op needs (Concat
    without axis, Gather with one input): exit 2, naming the node."""
    w = lstm_arrays(seed=15)["W"]
    gather = helper.make_node("Gather", ["W0", "idx"], ["W"], name="pick")
    with pytest.raises(WeightFileError, match="the Gather node 'pick' cannot be evaluated"):
        load_weights(_folded_w(tmp_path, gather, {"W0": w, "idx": np.array([5], np.int64)}))
    concat = helper.make_node("Concat", ["W0"], ["W"], name="cat")
    with pytest.raises(WeightFileError, match="the Concat node 'cat' has no 'axis' attribute"):
        load_weights(_folded_w(tmp_path, concat, {"W0": w}))
    lone = helper.make_node("Gather", ["W0"], ["W"], name="lone")
    with pytest.raises(WeightFileError, match="the Gather node 'lone' has 1 input"):
        load_weights(_folded_w(tmp_path, lone, {"W0": w}))


@pytest.mark.parametrize("error", [IndexError, KeyError])
def test_folding_bug_in_lstmgen_is_not_bad_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: type[Exception]
) -> None:
    """An IndexError or KeyError of lstmgen's own folding code (not numpy's, not onnx's) is a bug: exit 70."""
    import lstmgen.weights.onnx_fold

    def bug(a: Any, x: list[Any]) -> np.ndarray:
        raise error("injected")

    monkeypatch.setitem(lstmgen.weights.onnx_fold._OPS, "Identity", bug)
    path = _folded_w(tmp_path, helper.make_node("Identity", ["W0"], ["W"]), {"W0": lstm_arrays(seed=15)["W"]})
    result = CliRunner().invoke(main, ["build", "--weights", str(path), "-o", str(tmp_path / "m.tflite")])
    assert result.exit_code == 70, result.output
