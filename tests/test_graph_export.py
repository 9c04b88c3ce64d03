"""`lstmgen export` of the graph form: each gate's weights found by the graph's structure, equal to the fused form's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lstmgen.build import build
from lstmgen.export import export_weights
from lstmgen.pipeline import layout_graph
from lstmgen.weights.npz import SETTINGS_KEY
from tests.support import assert_user_error, invoke

BASE = {"num_units": 8, "input_size": 5, "batch_size": 2, "seed": 4}
# (cell options, export format): every cell variant the graph form writes, in a format that holds it
VARIANTS: list[tuple[dict[str, Any], str]] = [
    ({}, "tflite"),
    ({"num_layers": 2, "bidirectional": True, "num_proj": 3}, "torch"),
    ({"use_peepholes": True, "cell_clip": 0.5, "num_proj": 3, "proj_clip": 0.3}, "tf1"),
    ({"cifg": True, "layer_norm": True, "use_peepholes": True}, "tflite"),
    ({"go_backwards": True, "return_sequences": False}, "keras"),
    ({"activation": "relu", "time_major": True}, "keras"),
    ({"num_layers": 2, "state_io": True}, "onnx"),
]
FORMS = {"unrolled": {"form": "graph", "time_steps": 3}, "loop": {"form": "graph"}}


def _arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as f:
        return {k: f[k] for k in f if k != SETTINGS_KEY}


def _assert_same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert sorted(a) == sorted(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), k  # bit for bit


def _ids(case: tuple[dict[str, Any], str]) -> str:
    return ",".join(f"{k}={v}" for k, v in case[0].items()) + f"->{case[1]}"


@pytest.mark.parametrize("form", list(FORMS))
@pytest.mark.parametrize("case", VARIANTS, ids=_ids)
def test_graph_export_rebuilds_the_fused_weights_bit_for_bit(
    tmp_path: Path, case: tuple[dict[str, Any], str], form: str
) -> None:
    """export(graph) == export(fused) of the same source; a fused build of the graph's export exports the same."""
    opts, fmt = case
    layer = "0" if fmt == "onnx" else None  # one ONNX node per file
    build(tmp_path / "f.tflite", BASE | {k: v for k, v in opts.items() if k != "state_io"}, verify=False)
    build(tmp_path / "g.tflite", BASE | opts | FORMS[form], verify=False)
    export_weights(tmp_path / "f.tflite", tmp_path / "f.npz", fmt, layer)
    result = export_weights(tmp_path / "g.tflite", tmp_path / "g.npz", fmt, layer)
    assert any("structure" in n for n in result.notes)
    _assert_same(_arrays(tmp_path / "g.npz"), _arrays(tmp_path / "f.npz"))
    if fmt == "onnx":
        return  # one layer of two: not a whole model to rebuild
    build(tmp_path / "again.tflite", {}, tmp_path / "g.npz", verify=False)  # a default build of the export
    export_weights(tmp_path / "again.tflite", tmp_path / "again.npz", fmt)
    _assert_same(_arrays(tmp_path / "again.npz"), _arrays(tmp_path / "f.npz"))


def _per_row_int8(w: np.ndarray) -> np.ndarray:
    """Symmetric int8 with one scale per row, dequantized (what a per-channel hybrid computes with)."""
    w = w.astype(np.float64)
    peak = np.abs(w).max(axis=1)
    scale = np.where(peak > 0, peak / 127.0, 1.0)
    return (np.clip(np.rint(w / scale[:, None]), -127, 127) * scale[:, None]).astype(np.float32)


@pytest.mark.parametrize("form", list(FORMS))
def test_hybrid_graph_export_is_the_dequantized_per_row_weights(tmp_path: Path, form: str) -> None:
    opts = BASE | {"num_proj": 3}
    build(tmp_path / "f.tflite", opts, verify=False)
    build(tmp_path / "g.tflite", opts | FORMS[form] | {"quantize": "dynamic-int8"}, verify=False)
    export_weights(tmp_path / "f.tflite", tmp_path / "f.npz", "tflite")
    result = export_weights(tmp_path / "g.tflite", tmp_path / "g.npz", "tflite")
    assert any("dequantized from int8" in n for n in result.notes)
    f, g = _arrays(tmp_path / "f.npz"), _arrays(tmp_path / "g.npz")
    assert sorted(f) == sorted(g)
    for k, w in f.items():
        want = _per_row_int8(w) if w.ndim == 2 else w  # the matrices are int8 per row; biases stay float32
        np.testing.assert_allclose(g[k], want, rtol=1e-6, atol=0, err_msg=k)


def test_gates_are_found_by_structure_not_by_block_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A writer that stacks the gates in another order (wired consistently: the same model) exports the same
    weights: which block is which gate comes from what each SPLIT output feeds, not from its position."""
    build(tmp_path / "f.tflite", BASE | {"use_peepholes": True}, verify=False)
    export_weights(tmp_path / "f.tflite", tmp_path / "f.npz", "tflite")
    for form, extra in FORMS.items():
        monkeypatch.setattr(layout_graph, "GATE_ORDER", ("output", "cell", "forget", "input"))
        build(tmp_path / f"{form}.tflite", BASE | {"use_peepholes": True} | extra)  # verified: the same model
        export_weights(tmp_path / f"{form}.tflite", tmp_path / f"{form}.npz", "tflite")
        _assert_same(_arrays(tmp_path / f"{form}.npz"), _arrays(tmp_path / "f.npz"))


def test_what_cannot_be_exported_is_refused_with_the_reason(tmp_path: Path) -> None:
    out = tmp_path / "g.tflite"
    build(out, BASE | {"form": "graph", "time_steps": 1}, verify=False)  # one step from zero: no recurrent term
    r = invoke("export", out, "--format", "tflite", "-o", tmp_path / "e.npz")
    assert_user_error(r, "recurrent")
    assert not (tmp_path / "e.npz").exists()
    build(out, BASE | {"form": "graph", "time_steps": 3, "use_peepholes": True}, verify=False)
    r = invoke("export", out, "--format", "torch", "-o", tmp_path / "e.npz")
    assert_user_error(r, "peepholes")  # the layout's own refusal, as for the fused form
    r = invoke("export", out, "--format", "tf1", "-o", tmp_path / "e.npz")
    assert r.exit_code == 0 and "structure" in r.output


def test_positional_gates_would_export_the_wrong_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The exporter's structural check shown to matter: reading the blocks in the writer's usual order fails on
    a file that stacks them otherwise."""
    import lstmgen.export_graph as export_graph

    build(tmp_path / "f.tflite", BASE, verify=False)
    export_weights(tmp_path / "f.tflite", tmp_path / "f.npz", "tflite")
    monkeypatch.setattr(layout_graph, "GATE_ORDER", ("output", "cell", "forget", "input"))
    build(tmp_path / "g.tflite", BASE | FORMS["unrolled"], verify=False)
    monkeypatch.setattr(export_graph, "_roles", lambda v, split, acts: ["input", "forget", "cell", "output"])
    with pytest.raises((AssertionError, KeyError)):
        export_weights(tmp_path / "g.tflite", tmp_path / "g.npz", "tflite")
        _assert_same(_arrays(tmp_path / "g.npz"), _arrays(tmp_path / "f.npz"))
