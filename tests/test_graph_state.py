"""--form graph --state-io: explicit initial/final h and c per cell, streamed by `run`, verified against the source,
each wiring bug shown to fail; without the option the graph form's bytes are pinned."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lstmgen.build import build
from lstmgen.check import unrolled
from lstmgen.errors import ConfigError, VerificationError
from lstmgen.pipeline import graph_form, layout_graph
from lstmgen.run import run_model_states
from lstmgen.runtimes.interpreter import resolve_runtime
from lstmgen.tflite.reader import read_model
from tests.support import assert_user_error, invoke

SMALL = {"num_units": 8, "input_size": 5, "batch_size": 2, "form": "graph", "state_io": True}
UNROLLED = SMALL | {"time_steps": 4}
VARIANTS: list[dict[str, Any]] = [
    UNROLLED,
    UNROLLED | {"num_layers": 2, "bidirectional": True, "num_proj": 3},
    UNROLLED | {"use_peepholes": True, "cell_clip": 0.4, "return_sequences": False},
    UNROLLED | {"go_backwards": True, "return_sequences": False, "num_proj": 3},
    UNROLLED | {"quantize": "dynamic-int8", "num_layers": 2},
    UNROLLED | {"quantize": "float16", "cifg": True, "layer_norm": True},
    SMALL,
    SMALL | {"num_layers": 2, "bidirectional": True, "num_proj": 3},
    SMALL | {"return_sequences": False, "time_major": True},
]


def _id(opts: dict[str, Any]) -> str:
    shown = {k: v for k, v in opts.items() if k not in SMALL or k == "time_steps"}
    return ",".join(f"{k}={v}" for k, v in shown.items()) or "loop"


# ----------------------------------------------------------------------------------- bytes without the option

# sha256 of graph-form builds without --state-io, taken before the option existed (the same bytes then and now).
PINNED = {
    "unrolled-float": "e564c74e6284d11e4fe419f66e2c74af3ea2d8b043a4e04313b228e7d2731541",
    "unrolled-bidi-stacked-proj-hybrid": "d45c50a3551aa1bb4bed25a1bda131eafd255f9a753185bb2be964e14cb56aec",
    "unrolled-last-step-peephole-clip-float16": "17ace11a477763d5b65d96d9ebc7a4e600936a494d155f369081314fe963eacb",
    "loop-float-stacked": "54ff6c6ae4583bb1e45b2ccdb53af9fae4360c85d920383c9d24e52049c9735e",
    "loop-go-backwards-last-step-projection": "a00a98f592ade32fa1ddff1229a90306d1b94142114c51501db041ac26afd16f",
}
PIN_BASE = {"num_units": 8, "input_size": 5, "seed": 3, "form": "graph", "batch_size": 2}
PIN_CASES: dict[str, dict[str, Any]] = {
    "unrolled-float": {"time_steps": 4},
    "unrolled-bidi-stacked-proj-hybrid": {
        "time_steps": 3, "num_layers": 2, "bidirectional": True, "num_proj": 4, "quantize": "dynamic-int8"
    },
    "unrolled-last-step-peephole-clip-float16": {
        "time_steps": 3, "return_sequences": False, "use_peepholes": True, "cell_clip": 0.5, "quantize": "float16"
    },
    "loop-float-stacked": {"num_layers": 2},
    "loop-go-backwards-last-step-projection": {"go_backwards": True, "return_sequences": False, "num_proj": 3},
}  # fmt: skip


@pytest.mark.parametrize("name", list(PIN_CASES))
def test_graph_form_bytes_without_state_io_are_pinned(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("lstmgen.pipeline.graph_form.__version__", "0+pinned")
    monkeypatch.chdir(tmp_path)
    build(Path(f"{name}.tflite"), PIN_BASE | PIN_CASES[name], verify=False)
    assert hashlib.sha256(Path(f"{name}.tflite").read_bytes()).hexdigest() == PINNED[name]
    explicit = PIN_BASE | PIN_CASES[name] | {"state_io": False}  # stated false: the same file
    build(Path("again.tflite"), explicit, verify=False)
    assert Path("again.tflite").read_bytes() == Path(f"{name}.tflite").read_bytes()


def test_the_fused_form_refuses_state_io(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="fused form already carries"):
        build(tmp_path / "f.tflite", {"num_units": 4, "input_size": 3, "state_io": True})
    r = invoke("build", "--num-units", 4, "--input-size", 3, "--state-io", "-o", tmp_path / "f.tflite")
    assert_user_error(r, "--form graph")
    assert not (tmp_path / "f.tflite").exists()


# ------------------------------------------------------------------------------------------ the file and verify


def test_state_tensors_are_named_and_listed(tmp_path: Path) -> None:
    """Inputs: input, then initial h and c per cell in op order; outputs likewise; the metadata lists them."""
    out = tmp_path / "g.tflite"
    build(out, UNROLLED | {"num_layers": 2, "bidirectional": True, "num_proj": 3}, verify=False)
    model = read_model(out.read_bytes())
    names_in = [model.tensors[i].name for i in model.inputs]
    names_out = [model.tensors[i].name for i in model.outputs]
    cells = ["lstm/layer_0/fw", "lstm/layer_0/bw", "lstm/layer_1/fw", "lstm/layer_1/bw"]
    assert names_in == ["lstm/input", *(f"{c}/initial_{v}" for c in cells for v in "hc")]
    assert names_out == ["lstm/output", *(f"{c}/final_{v}" for c in cells for v in "hc")]
    assert [model.tensors[i].shape for i in model.inputs[1:3]] == [(2, 3), (2, 8)]  # h has num_proj
    meta = json.loads(dict(model.metadata_dict())["lstmgen"])
    assert [m["cell"] for m in meta["state_io"]] == cells
    assert meta["state_io"][1] == {"cell": cells[1], "inputs": [3, 4], "outputs": [3, 4]}
    sig = model.signatures[0]
    assert [k for k, _ in sig.inputs][:3] == ["input", "initial_h_0", "initial_c_0"]
    assert [k for k, _ in sig.outputs][-1] == "final_c_3"


@pytest.mark.runtime
@pytest.mark.parametrize("opts", VARIANTS, ids=_id)
def test_every_state_io_variant_passes_with_its_final_states(tmp_path: Path, opts: dict[str, Any]) -> None:
    if opts.get("quantize") == "dynamic-int8" and resolve_runtime() == "tflite-runtime":
        pytest.skip("tflite-runtime 2.14 has no FULLY_CONNECTED v12 (per-channel hybrid)")
    r = build(tmp_path / "g.tflite", opts)
    v, src = r.verification, r.verification.against_source if r.verification else None
    assert v is not None and v.passed and src is not None and src.passed
    names = [c.name for c in src.checks]
    assert any("random initial state" in n for n in names)  # a nonzero start, fed to the file and the source
    assert any(n.startswith("final c") and "random initial state" in n for n in names)
    assert any(n.startswith("final h") for n in (c.name for c in v.checks))


# ------------------------------------------------------------------------------- each wiring bug shown to fail


def _swap_h_and_c_inputs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each cell's model input listed as its initial h feeds the cell's c, and the other way round."""
    original = graph_form._state_io

    def swapped(b: Any, y: int, scopes: Any) -> Any:
        b.states[:] = [(c_in, h_in, h_out, c_out) for h_in, c_in, h_out, c_out in b.states]
        return original(b, y, scopes)

    monkeypatch.setattr(graph_form, "_state_io", swapped)


def _final_c_from_the_step_before(monkeypatch: pytest.MonkeyPatch) -> None:
    """The unrolled writer returns the c of the last step but one as the final c."""
    cs: list[int] = []
    step, direction = layout_graph._step, layout_graph._direction

    def recording(b: Any, cell: Any, xs: int, h: Any, c: Any, name: str) -> tuple[int, int]:
        out = step(b, cell, xs, h, c, name)
        cs.append(out[1])
        return out

    def wrong(b: Any, cell: Any, x2d: int, backward: bool, name: str) -> list[int]:
        cs.clear()
        seq = direction(b, cell, x2d, backward, name)
        h0, c0, h, _ = b.states[-1]
        b.states[-1] = (h0, c0, h, cs[-2])
        return seq

    monkeypatch.setattr(layout_graph, "_step", recording)
    monkeypatch.setattr(layout_graph, "_direction", wrong)


def _layer_1_state_into_layer_0(monkeypatch: pytest.MonkeyPatch) -> None:
    """The inputs listed as layer 0's initial state feed layer 1, and the other way round."""
    original = graph_form._state_io

    def crossed(b: Any, y: int, scopes: Any) -> Any:
        (h0, c0, ho0, co0), (h1, c1, ho1, co1) = b.states[:2]
        b.states[:2] = [(h1, c1, ho0, co0), (h0, c0, ho1, co1)]
        return original(b, y, scopes)

    monkeypatch.setattr(graph_form, "_state_io", crossed)


MUTATIONS = {
    "h and c inputs swapped (unrolled)": (_swap_h_and_c_inputs, UNROLLED),
    "h and c inputs swapped (loop)": (_swap_h_and_c_inputs, SMALL),
    "final c from the wrong step": (_final_c_from_the_step_before, UNROLLED),
    "layer 1's state fed into layer 0": (_layer_1_state_into_layer_0, UNROLLED | {"num_layers": 2}),
    "layer 1's state fed into layer 0 (loop)": (_layer_1_state_into_layer_0, SMALL | {"num_layers": 2}),
}


@pytest.mark.runtime
@pytest.mark.parametrize("name", list(MUTATIONS))
def test_a_wrong_state_wiring_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    mutate, opts = MUTATIONS[name]
    mutate(monkeypatch)
    with pytest.raises(VerificationError, match="does not compute the source LSTM"):
        build(tmp_path / "g.tflite", opts)
    assert not (tmp_path / "g.tflite").exists()


@pytest.mark.runtime
def test_only_the_nonzero_start_catches_swapped_state_inputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checker that ran from the zero state alone would pass swapped h/c inputs (both zero): the random start
    is what catches them."""
    _swap_h_and_c_inputs(monkeypatch)
    with pytest.raises(VerificationError):
        build(tmp_path / "g.tflite", UNROLLED)
    monkeypatch.setattr(unrolled, "_starts", lambda lm, shape, rng: [("zero state", {})])
    r = build(tmp_path / "g.tflite", UNROLLED)
    assert r.verification is not None and r.verification.passed


# ------------------------------------------------------------------------------------------------- streaming


def _x(steps: int, batch: int = 2, size: int = 5) -> np.ndarray:
    return np.random.default_rng(7).standard_normal((batch, steps, size)).astype(np.float32)


@pytest.mark.runtime
@pytest.mark.parametrize("chunk", [1, 4, 5])
def test_chunks_of_a_loop_equal_the_whole_sequence(tmp_path: Path, chunk: int) -> None:
    out = tmp_path / "g.tflite"
    build(out, SMALL | {"num_layers": 2, "num_proj": 3}, verify=False)
    x = _x(13)
    y, finals = run_model_states(out, x)
    y_c, finals_c = run_model_states(out, x, chunk=chunk)
    assert y.shape == (2, 13, 3) and len(finals) == 2
    np.testing.assert_allclose(y_c, y, atol=1e-6)
    for (h, c), (h_c, c_c) in zip(finals, finals_c, strict=True):
        np.testing.assert_allclose(h_c, h, atol=1e-6)
        np.testing.assert_allclose(c_c, c, atol=1e-6)


@pytest.mark.runtime
def test_unrolled_chunks_equal_the_loop_and_the_fused_form(tmp_path: Path) -> None:
    """A T=4 unrolled file run --chunk 4 over 12 steps, the loop over all 12 at once, and the fused form from the
    same initial state agree within float rounding (same seed, same weights)."""
    opts = {k: v for k, v in SMALL.items() if k not in ("form", "state_io")} | {"num_layers": 2}
    build(tmp_path / "u.tflite", opts | {"form": "graph", "state_io": True, "time_steps": 4}, verify=False)
    build(tmp_path / "l.tflite", opts | {"form": "graph", "state_io": True}, verify=False)
    build(tmp_path / "f.tflite", opts, verify=False)
    x = _x(12)
    rng = np.random.default_rng(1)
    initial = [(rng.uniform(-1, 1, (2, 8)), rng.uniform(-1, 1, (2, 8))) for _ in range(2)]
    initial = [(h.astype(np.float32), c.astype(np.float32)) for h, c in initial]
    y_u, f_u = run_model_states(tmp_path / "u.tflite", x, chunk=4, initial=initial)
    y_l, f_l = run_model_states(tmp_path / "l.tflite", x, initial=initial)
    y_f, f_f = run_model_states(tmp_path / "f.tflite", x, initial=initial)
    for y in (y_u, y_l):
        np.testing.assert_allclose(y, y_f, atol=2e-5)
    for finals in (f_u, f_l):
        for (h, c), (h_f, c_f) in zip(finals, f_f, strict=True):
            np.testing.assert_allclose(h, h_f, atol=2e-5)
            np.testing.assert_allclose(c, c_f, atol=2e-5)


@pytest.mark.runtime
def test_cli_run_streams_a_state_io_file(tmp_path: Path) -> None:
    out = tmp_path / "g.tflite"
    build(out, SMALL, verify=False)
    np.save(tmp_path / "x.npy", _x(10))
    np.savez(tmp_path / "s.npz", h=np.full((2, 8), 0.5, np.float32), c=np.full((2, 8), -0.5, np.float32))
    base = ["run", out, "--input", tmp_path / "x.npy", "--initial-state", tmp_path / "s.npz"]
    r = invoke(*base, "--output", tmp_path / "y.npy", "--final-state", tmp_path / "f.npz")
    assert r.exit_code == 0, r.output
    r = invoke(*base, "--output", tmp_path / "y3.npy", "--final-state", tmp_path / "f3.npz", "--chunk", 3)
    assert r.exit_code == 0, r.output
    np.testing.assert_allclose(np.load(tmp_path / "y3.npy"), np.load(tmp_path / "y.npy"), atol=1e-6)
    f, f3 = np.load(tmp_path / "f.npz"), np.load(tmp_path / "f3.npz")
    assert sorted(f) == ["c", "h"] and all(np.allclose(f[k], f3[k], atol=1e-6) for k in f)
    zero = invoke("run", out, "--input", tmp_path / "x.npy", "--output", tmp_path / "y0.npy")
    assert zero.exit_code == 0 and not np.allclose(np.load(tmp_path / "y0.npy"), np.load(tmp_path / "y.npy"))


@pytest.mark.runtime
def test_a_backward_direction_refuses_chunks(tmp_path: Path) -> None:
    out = tmp_path / "g.tflite"
    build(out, SMALL | {"bidirectional": True}, verify=False)
    np.save(tmp_path / "x.npy", _x(6))
    r = invoke("run", out, "--input", tmp_path / "x.npy", "--output", tmp_path / "y.npy", "--chunk", 2)
    assert_user_error(r, "backward direction")


@pytest.mark.runtime
def test_without_state_io_state_options_name_the_rebuild(tmp_path: Path) -> None:
    """A graph-form file without state I/O runs from zero; --chunk, --initial-state, --final-state exit 2 naming
    --state-io."""
    out = tmp_path / "g.tflite"
    build(out, {k: v for k, v in UNROLLED.items() if k != "state_io"}, verify=False)
    np.save(tmp_path / "x.npy", _x(4))
    np.savez(tmp_path / "s.npz", h=np.zeros((2, 8), np.float32))
    run = ["run", out, "--input", tmp_path / "x.npy", "--output", tmp_path / "y.npy"]
    assert invoke(*run).exit_code == 0
    for extra in (["--chunk", 4], ["--initial-state", tmp_path / "s.npz"], ["--final-state", tmp_path / "f.npz"]):
        assert_user_error(invoke(*run, *extra), "--state-io")
        assert not (tmp_path / "f.npz").exists()


@pytest.mark.runtime
def test_a_state_io_file_with_inconsistent_metadata_is_refused(tmp_path: Path) -> None:
    """The metadata's state positions must match the model's inputs and outputs: else exit 2, not a crash."""
    out = tmp_path / "g.tflite"
    build(out, UNROLLED, verify=False)
    data = out.read_bytes()
    bad = data.replace(b'"inputs": [1, 2]', b'"inputs": [2, 1]')
    assert bad != data
    (tmp_path / "bad.tflite").write_bytes(bad)
    np.save(tmp_path / "x.npy", _x(4))
    r = invoke("run", tmp_path / "bad.tflite", "--input", tmp_path / "x.npy", "--output", tmp_path / "y.npy")
    assert_user_error(r, "state")
    assert os.path.exists(out)


def test_inspect_lists_the_state_inputs_and_outputs(tmp_path: Path) -> None:
    import jsonschema

    from tests.support import ROOT

    out = tmp_path / "g.tflite"
    build(out, SMALL | {"num_layers": 2, "num_proj": 3}, verify=False)
    r = invoke("inspect", out)
    assert r.exit_code == 0 and "explicit (--state-io)" in r.output
    assert "lstm/layer_1/initial_h [2, 3]" in r.output and "lstm/layer_1/final_c" in r.output
    doc = json.loads(invoke("inspect", out, "--json").stdout)
    assert [c["cell"] for c in doc["state_io"]] == ["lstm/layer_0", "lstm/layer_1"]
    assert doc["state_io"][1]["initial_c"] == {"name": "lstm/layer_1/initial_c", "shape": [2, 8], "position": 4}
    jsonschema.validate(doc, json.loads((ROOT / "schemas" / "report.schema.json").read_text()))
    build(out, {k: v for k, v in UNROLLED.items() if k != "state_io"}, verify=False)
    doc = json.loads(invoke("inspect", out, "--json").stdout)
    assert doc["state_io"] == [] and "--state-io" in doc["state"]


def test_state_io_is_a_checked_config_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="state_io = 'yes' is not allowed: expected true or false"):
        build(tmp_path / "g.tflite", UNROLLED | {"state_io": "yes"})
    (tmp_path / "c.toml").write_text('num_units = 4\ninput_size = 3\nform = "graph"\nstate_io = true\n')
    r = invoke("build", "--config", tmp_path / "c.toml", "-o", tmp_path / "g.tflite", "--no-verify", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["hyperparameters"]["state_io"] is True


@pytest.mark.runtime
def test_run_refuses_tflm_and_the_emulation_for_the_graph_form(tmp_path: Path) -> None:
    out = tmp_path / "g.tflite"
    build(out, SMALL, verify=False)
    np.save(tmp_path / "x.npy", _x(4))
    for runtime in ("micro", "emulate"):
        r = invoke("run", out, "--input", tmp_path / "x.npy", "--output", tmp_path / "y.npy", "--runtime", runtime)
        assert_user_error(r, "graph form", "--form fused")
