"""--form graph: every variant built, verified against its source, and each check shown able to fail."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lstmgen.build import build
from lstmgen.check.verify import verify_model
from lstmgen.errors import ConfigError, VerificationError
from lstmgen.numerics import graph as graph_eval
from lstmgen.pipeline import layout_graph
from lstmgen.runtimes.interpreter import resolve_runtime
from lstmgen.tflite.reader import read_model
from lstmgen.tflite.schema import BuiltinOperator as Op
from tests.support import ROOT, invoke, random_tflite_weights

EXAMPLES = ROOT / "examples"
SMALL = {"num_units": 8, "input_size": 5, "time_steps": 4, "batch_size": 2, "form": "graph"}
VARIANTS: list[dict[str, Any]] = [
    {},
    {"use_peepholes": True, "cell_clip": 0.4},
    {"num_proj": 3, "proj_clip": 0.2},
    {"cifg": True, "layer_norm": True, "use_peepholes": True},
    {"num_layers": 2, "bidirectional": True},
    {"bidirectional": True, "return_sequences": False},
    {"go_backwards": True},
    {"time_major": True},
    {"activation": "relu"},
    {"batch_size": 1, "time_steps": 1},
    {"quantize": "float16"},
    {"quantize": "dynamic-int8"},
    {"quantize": "dynamic-int8", "asymmetric_inputs": False, "num_proj": 3, "layer_norm": True},
]


# FULLY_CONNECTED v12 (per-channel hybrid) is registered from TFLite 2.17; tflite-runtime 2.14 refuses it.
NO_V12 = "tflite-runtime 2.14 has no FULLY_CONNECTED v12 (per-channel hybrid; TFLite >= 2.17)"


def _skip_hybrid_on_old_runtime(extra: dict[str, Any]) -> None:
    if extra.get("quantize") == "dynamic-int8" and resolve_runtime() == "tflite-runtime":
        pytest.skip(NO_V12 + "; test_old_runtime_refuses_the_hybrid_graph_form checks the refusal")


@pytest.mark.runtime
@pytest.mark.parametrize("extra", VARIANTS, ids=lambda e: ",".join(f"{k}={v}" for k, v in e.items()) or "plain")
def test_every_variant_passes_against_its_source(tmp_path: Path, extra: dict[str, Any]) -> None:
    _skip_hybrid_on_old_runtime(extra)
    r = build(tmp_path / "g.tflite", SMALL | extra)
    assert r.verification is not None and r.verification.passed
    src = r.verification.against_source
    assert src is not None and src.passed and src.checks
    assert src.tensors and all(t.passed for t in src.tensors)  # every constant block matched the source's
    # the builtin kernels and LiteRT's default delegate (XNNPACK) are both run (tflite-runtime has no such switch)
    assert resolve_runtime() == "tflite-runtime" or any("XNNPACK" in c.name for c in r.verification.checks)


@pytest.mark.runtime
def test_old_runtime_refuses_the_hybrid_graph_form(tmp_path: Path) -> None:
    """Under tflite-runtime 2.14 the per-channel hybrid graph form is refused (exit 2), never verified as wrong:
    written as FULLY_CONNECTED v3 it ran there, reading one scale of many (max error 0.365 against the source)."""
    if resolve_runtime() != "tflite-runtime":
        pytest.skip("checks the refusal by tflite-runtime 2.14 (LSTMGEN_RUNTIME=tflite-runtime)")
    r = invoke("build", *_cli(SMALL | {"quantize": "dynamic-int8"}), "-o", tmp_path / "g.tflite")
    assert r.exit_code == 2 and "FULLY_CONNECTED' version '12'" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "g.tflite").exists()


def _cli(opts: dict[str, Any]) -> list[str]:
    return [a for k, v in opts.items() for a in (f"--{k.replace('_', '-')}", str(v))]


@pytest.mark.runtime
def test_graph_output_equals_the_fused_form(tmp_path: Path) -> None:
    """Same weights, both forms, one input: the same numbers (float32 rounding apart)."""
    import importlib

    from lstmgen.runtimes import RUNTIMES

    Interpreter = importlib.import_module(RUNTIMES[resolve_runtime()][0]).Interpreter
    opts = SMALL | {"use_peepholes": True, "num_proj": 3, "cell_clip": 0.5}
    ys = []
    x = np.random.default_rng(3).standard_normal((2, 4, 5)).astype(np.float32)
    for form in ("fused", "graph"):
        build(tmp_path / f"{form}.tflite", opts | {"form": form}, verify=False)
        it = Interpreter(str(tmp_path / f"{form}.tflite"))
        it.allocate_tensors()
        it.set_tensor(it.get_input_details()[0]["index"], x)
        it.invoke()
        ys.append(it.get_tensor(it.get_output_details()[0]["index"]))
    assert np.abs(ys[0] - ys[1]).max() < 1e-5


@pytest.mark.runtime
@pytest.mark.parametrize(
    ("name", "opts"),
    [
        ("model.keras", {"time_steps": 12}),
        ("model.onnx", {"time_steps": 7}),
        ("weights_tf1.npz", {"time_steps": 9, "cell_clip": 3.0, "proj_clip": 1.0, "batch_size": 2}),
        ("encoder.npz", {"time_steps": 5, "num_layers": 2, "bidirectional": True}),
    ],
)
def test_framework_sources(tmp_path: Path, name: str, opts: dict[str, Any]) -> None:
    """Keras, ONNX, TF1 (peepholes, projection, clips) and a bidirectional PyTorch stack, against their files."""
    if name.endswith(".onnx"):
        pytest.importorskip("onnx", reason="reading .onnx needs the onnx package (not in the tflite-runtime venv)")
    r = build(tmp_path / "g.tflite", opts | {"form": "graph"}, EXAMPLES / name)
    assert r.verification is not None and r.verification.passed
    assert r.verification.against_source is not None and r.verification.against_source.passed


def test_input_projection_is_one_batched_fully_connected(tmp_path: Path) -> None:
    """T steps: one FULLY_CONNECTED over [T*B, I] plus one recurrent FULLY_CONNECTED per step after the first;
    every step reads the same recurrent weight tensor."""
    build(tmp_path / "g.tflite", SMALL | {"time_steps": 6}, verify=False)
    model = read_model((tmp_path / "g.tflite").read_bytes(), "g")
    fcs = [op for op in model.operators if op.opcode == Op.FULLY_CONNECTED]
    assert len(fcs) == 1 + 5
    assert model.tensors[fcs[0].outputs[0]].shape == (6 * 2, 4 * 8)
    assert len({op.inputs[1] for op in fcs[1:]}) == 1
    meta = json.loads(model.metadata_dict()["lstmgen"])
    assert meta["form"] == "graph"


def test_hybrid_weights_have_one_scale_per_output_row(tmp_path: Path) -> None:
    build(tmp_path / "g.tflite", SMALL | {"quantize": "dynamic-int8"}, verify=False)
    model = read_model((tmp_path / "g.tflite").read_bytes(), "g")
    weights = [model.tensors[op.inputs[1]] for op in model.operators if op.opcode == Op.FULLY_CONNECTED]
    assert weights and all(w.dtype == np.int8 and w.quantization is not None for w in weights)
    assert all(len(w.quantization.scale) == w.shape[0] for w in weights if w.quantization is not None)
    # op_version.cc: float input, int8 per-channel weights -> v12 (runtime_version.cc: 2.17.0), never v3/v9
    assert {op.version for op in model.operators if op.opcode == Op.FULLY_CONNECTED} == {12}
    assert model.metadata_dict()["min_runtime_version"].rstrip(b"\0") == b"2.17.0"


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ({"dynamic_batch": True}, "--dynamic-batch"),
        ({"quantize": "int8"}, "int8"),
        ({"target": "micro"}, "TFLite Micro"),
    ],
)
def test_refusals_name_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: dict[str, Any], needle: str
) -> None:
    from lstmgen.errors import RuntimeNotAvailable
    from lstmgen.runtimes import micro

    def no_tflm() -> None:
        raise RuntimeNotAvailable("tflite-micro is not installed")

    monkeypatch.setattr(micro, "import_tflm", no_tflm)  # the refusal, not "install tflite-micro" first
    with pytest.raises(ConfigError, match=needle):
        build(tmp_path / "g.tflite", SMALL | extra)
    assert not (tmp_path / "g.tflite").exists()


def test_cli_refusal_exit_2(tmp_path: Path) -> None:
    r = invoke(
        "build", "--num-units", 4, "--input-size", 3, "--form", "graph", "--dynamic-batch", "-o", tmp_path / "g.tflite"
    )
    assert r.exit_code == 2 and "--dynamic-batch" in r.output and "Traceback" not in r.output


def test_run_and_export_take_the_graph_form(tmp_path: Path) -> None:
    """run (from the zero state) and export work on the graph form; state options need --state-io
    (tests/test_graph_state.py, tests/test_graph_export.py)."""
    out = tmp_path / "g.tflite"
    build(out, SMALL, verify=False)
    np.save(tmp_path / "x.npy", np.zeros((2, 4, 5), np.float32))
    run = ("run", out, "--input", tmp_path / "x.npy", "--output", tmp_path / "y.npy")
    assert invoke(*run).exit_code == 0
    r = invoke(*run, "--chunk", 4)
    assert r.exit_code == 2 and "--state-io" in r.output
    assert invoke("export", out, "--format", "tflite", "-o", tmp_path / "e.npz").exit_code == 0


def test_inspect_describes_the_graph_form(tmp_path: Path) -> None:
    """inspect: hyperparameters, op counts with versions, the per-channel weights, how state works; valid JSON;
    --check micro says it does not run there (the target rules look at LSTM ops, which this form has none of)."""
    import jsonschema

    out = tmp_path / "g.tflite"
    build(out, SMALL | {"quantize": "dynamic-int8", "num_layers": 2}, verify=False)
    r = invoke("inspect", out)
    assert r.exit_code == 0, r.output
    assert "graph form" in r.output and "FULLY_CONNECTED v12 x" in r.output and "min runtime 2.17.0" in r.output
    assert "zero state" in r.output and "32 scale(s)" in r.output
    doc = json.loads(invoke("inspect", out, "--json").stdout)
    assert doc["num_units"] == 8 and doc["num_layers"] == 2 and doc["time_steps"] == 4 and doc["batch_size"] == 2
    assert [w["uses"] for w in doc["weights"]] == [1, 3, 1, 3]  # input projection once, recurrent in steps 1..3
    schema = json.loads((ROOT / "schemas" / "report.schema.json").read_text())
    jsonschema.validate(doc, schema)
    with pytest.raises(jsonschema.ValidationError):  # not mistaken for a fused-op description
        jsonschema.validate(doc, {**schema, "anyOf": [{"$ref": "#/$defs/inspect"}]})
    for target in ("micro", "ethos-u"):
        r = invoke("inspect", out, "--check", target)
        assert r.exit_code == 1 and "does NOT run there" in r.output and "--form fused" in r.output


# ------------------------------------------------------------------------- each check shown able to fail


def _swap_forget_and_output(monkeypatch: pytest.MonkeyPatch) -> None:
    """A writer bug: the forget and output gates' rows exchanged in every stacked matrix."""
    original = layout_graph._Cell.__init__

    def init(self: Any, b: Any, shape: Any, w: Any, forget_bias: float, name: str) -> None:
        w = dict(w)
        for kind in ("input_to_{}_weights", "recurrent_to_{}_weights", "{}_gate_bias"):
            w[kind.format("forget")], w[kind.format("output")] = w[kind.format("output")], w[kind.format("forget")]
        original(self, b, shape, w, forget_bias, name)

    monkeypatch.setattr(layout_graph._Cell, "__init__", init)


@pytest.mark.runtime
def test_a_swapped_gate_fails_against_the_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _swap_forget_and_output(monkeypatch)
    with pytest.raises(VerificationError, match="does not compute the source LSTM"):
        build(tmp_path / "g.tflite", SMALL)
    assert not (tmp_path / "g.tflite").exists()


@pytest.mark.runtime
def test_a_dropped_cell_clip_fails_on_the_stressed_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the clip ops the unit-variance input may stay inside the clip; the x10 input does not."""
    monkeypatch.setattr(layout_graph._Builder, "clip", lambda self, x, limit, name: x)
    with pytest.raises(VerificationError) as err:
        build(tmp_path / "g.tflite", SMALL | {"cell_clip": 0.3})
    checks = err.value.payload["verification"]["against_source"]["checks"]
    assert any("x10" in c["name"] and not c["passed"] for c in checks)


@pytest.mark.runtime
def test_hybrid_scales_in_the_wrong_rows_fail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Per-channel scales written in reverse row order: the file's own check passes (it reads those scales),
    the source check does not."""
    original = layout_graph.per_channel_int8

    def reversed_scales(w: np.ndarray) -> Any:
        q, quant = original(w)
        return q, type(quant)(quant.scale[::-1], quant.zero_point, quant.quantized_dimension)

    _skip_hybrid_on_old_runtime({"quantize": "dynamic-int8"})
    monkeypatch.setattr(layout_graph, "per_channel_int8", reversed_scales)
    weights = EXAMPLES / "weights_tf1.npz"
    with pytest.raises(VerificationError) as err:
        build(tmp_path / "g.tflite", {"form": "graph", "time_steps": 9, "quantize": "dynamic-int8"}, weights)
    report = err.value.payload["verification"]
    assert all(c["passed"] for c in report["checks"])
    assert not report["against_source"]["passed"]


@pytest.mark.runtime
def test_the_file_check_evaluates_every_op(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A wrong LOGISTIC in the checker's evaluator makes the file check fail: the graph really is evaluated."""
    out = tmp_path / "g.tflite"
    build(out, SMALL, verify=False)
    assert verify_model(out).passed
    monkeypatch.setitem(graph_eval.DATA_OPS, Op.LOGISTIC, lambda op, values: np.tanh(values[op.inputs[0]]))
    assert not verify_model(out).passed


@pytest.mark.runtime
def test_hybrid_file_check_catches_a_missing_input_rounding_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hybrid tolerance comes from modelling the per-row input rounding; without it the check fails."""
    from lstmgen.check import tolerance

    _skip_hybrid_on_old_runtime({"quantize": "dynamic-int8"})
    out = tmp_path / "g.tflite"
    build(out, SMALL | {"num_units": 32, "input_size": 16, "quantize": "dynamic-int8"}, verify=False)
    assert verify_model(out).passed
    monkeypatch.setattr(
        tolerance, "_noisy_hybrid_fc", lambda model, k, values, rng: tolerance.store_data_op(model, k, values)
    )
    assert not verify_model(out).passed


@pytest.mark.runtime
def test_big_float_recurrent_weights_are_shared_through_one_reshape(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past SHARED_RECURRENT_BYTES the steps read one copy (XNNPACK would pack one per step); still verified."""
    monkeypatch.setattr(layout_graph, "SHARED_RECURRENT_BYTES", 0)
    r = build(tmp_path / "g.tflite", SMALL | {"num_layers": 2})
    assert r.verification is not None and r.verification.passed
    model = read_model((tmp_path / "g.tflite").read_bytes(), "g")
    reshaped = {op.outputs[0] for op in model.operators if op.opcode == Op.RESHAPE}
    recurrent = [op for op in model.operators if op.opcode == Op.FULLY_CONNECTED and op.inputs[1] in reshaped]
    assert len(recurrent) == 2 * 3  # two layers, steps 1..3


def test_a_note_says_how_much_xnnpack_packs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Hybrid: the int8 recurrent weights once per step after the first (T - 1 ops) plus the input projection."""
    monkeypatch.setattr(layout_graph, "PACKED_COPIES_NOTE", 0)
    r = build(tmp_path / "g.tflite", SMALL | {"quantize": "dynamic-int8"}, verify=False)
    note = next(n for n in r.notes if "XNNPACK delegate packs" in n)
    expected = (4 * 8 * 5 + 3 * 4 * 8 * 8) / 2**20  # int8 [4N, I] once, [4N, N] for steps 1..3
    assert f"about {expected:.0f} MB" in note
    monkeypatch.setattr(layout_graph, "PACKED_COPIES_NOTE", 64 * 2**20)
    assert not any("XNNPACK delegate packs" in n for n in build(tmp_path / "h.tflite", SMALL, verify=False).notes)


def _mutations(model: Any) -> dict[str, Any]:
    """Graph-form records broken three ways: a weight's shape, a SPLIT's outputs, an op the checker lacks."""
    import dataclasses

    ops = list(model.operators)
    fc = next(o for o in ops if o.opcode == Op.FULLY_CONNECTED)
    t = model.tensors[fc.inputs[1]]
    flipped = dataclasses.replace(t, shape=t.shape[::-1], data=np.asarray(t.data).reshape(t.shape[::-1]))
    tensors = tuple(flipped if i == fc.inputs[1] else x for i, x in enumerate(model.tensors))
    k_split = next(k for k, o in enumerate(ops) if o.opcode == Op.SPLIT and len(o.outputs) == 4)
    k_sig = next(k for k, o in enumerate(ops) if o.opcode == Op.LOGISTIC)
    split_ops, softmax_ops = list(ops), list(ops)
    split_ops[k_split] = dataclasses.replace(ops[k_split], outputs=ops[k_split].outputs[:3])
    softmax_ops[k_sig] = dataclasses.replace(ops[k_sig], opcode=Op.SOFTMAX)
    return {
        "weight shape": dataclasses.replace(model, tensors=tensors),
        "split outputs": dataclasses.replace(model, operators=tuple(split_ops)),
        "unevaluated op": dataclasses.replace(model, operators=tuple(softmax_ops)),
    }


@pytest.mark.parametrize("kind", ["weight shape", "split outputs", "unevaluated op"])
def test_a_broken_graph_form_file_is_refused_not_crashed(tmp_path: Path, kind: str) -> None:
    from lstmgen.errors import ModelFileError
    from lstmgen.tflite.writer import serialize

    build(tmp_path / "g.tflite", SMALL, verify=False)
    bad = _mutations(read_model((tmp_path / "g.tflite").read_bytes(), "g"))[kind]
    (tmp_path / "bad.tflite").write_bytes(bytes(serialize(bad)))
    with pytest.raises(ModelFileError):
        verify_model(tmp_path / "bad.tflite")
    r = invoke("verify", tmp_path / "bad.tflite")
    assert r.exit_code == 2 and "Traceback" not in r.output


# ------------------------------------------------------------------------- a dynamic time axis: WHILE loops

LOOP = SMALL | {"time_steps": None}


@pytest.mark.runtime
@pytest.mark.parametrize("extra", VARIANTS, ids=lambda e: ",".join(f"{k}={v}" for k, v in e.items()) or "plain")
def test_every_loop_variant_passes_against_its_source(tmp_path: Path, extra: dict[str, Any]) -> None:
    _skip_hybrid_on_old_runtime(extra)
    opts = LOOP | {k: v for k, v in extra.items() if k != "time_steps"}
    r = build(tmp_path / "g.tflite", opts)
    assert r.verification is not None and r.verification.passed
    assert r.verification.input_shape[0 if opts.get("time_major") else 1] == 9  # several steps, not the stored 1
    src = r.verification.against_source
    assert src is not None and src.passed and src.checks


def _loop_model(tmp_path: Path, extra: dict[str, Any] | None = None) -> Any:
    build(tmp_path / "g.tflite", LOOP | (extra or {}), verify=False)
    return read_model((tmp_path / "g.tflite").read_bytes(), "g")


def test_a_loop_holds_the_recurrent_weights_once(tmp_path: Path) -> None:
    """Per direction: one batched input projection outside the loop, one WHILE; its body has one recurrent
    FULLY_CONNECTED whatever T is; cond and body are subgraphs 1 and 2 (3 and 4 for the backward direction)."""
    model = _loop_model(tmp_path, {"bidirectional": True, "quantize": "dynamic-int8"})
    loops = [op for op in model.operators if op.opcode == Op.WHILE]
    assert [(op.options.get("CondSubgraphIndex"), op.options.get("BodySubgraphIndex")) for op in loops] == [
        (1, 2),
        (3, 4),
    ]
    assert sum(op.opcode == Op.FULLY_CONNECTED for op in model.operators) == 2
    for body in (model.subgraphs[1], model.subgraphs[3]):
        fcs = [op for op in body.operators if op.opcode == Op.FULLY_CONNECTED]
        assert len(fcs) == 1 and body.tensors[fcs[0].inputs[1]].shape == (32, 8) and fcs[0].version == 12
    assert model.inputs and model.tensors[model.inputs[0]].shape_signature == (2, -1, 5)
    assert model.metadata_dict()["min_runtime_version"].rstrip(b"\0") == b"2.17.0"


@pytest.mark.runtime
@pytest.mark.parametrize("steps", [1, 2, 13])
def test_the_loop_equals_the_fused_form_at_any_length(tmp_path: Path, steps: int) -> None:
    import importlib

    from lstmgen.runtimes import RUNTIMES

    Interpreter = importlib.import_module(RUNTIMES[resolve_runtime()][0]).Interpreter
    opts = LOOP | {"use_peepholes": True, "num_proj": 3, "cell_clip": 0.5, "num_layers": 2}
    x = np.random.default_rng(steps).standard_normal((2, steps, 5)).astype(np.float32)
    ys = []
    for form in ("fused", "graph"):
        build(tmp_path / f"{form}.tflite", opts | {"form": form}, verify=False)
        it = Interpreter(str(tmp_path / f"{form}.tflite"))
        it.resize_tensor_input(it.get_input_details()[0]["index"], list(x.shape))
        it.allocate_tensors()
        it.set_tensor(it.get_input_details()[0]["index"], x)
        it.invoke()
        ys.append(it.get_tensor(it.get_output_details()[0]["index"]))
    assert ys[0].shape == ys[1].shape == (2, steps, 3)
    assert np.abs(ys[0] - ys[1]).max() < 1e-5


@pytest.mark.runtime
def test_the_file_check_runs_the_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A checker that takes the wrong step's projection inside the loop fails the file: the body is evaluated."""
    build(tmp_path / "g.tflite", LOOP, verify=False)
    assert verify_model(tmp_path / "g.tflite").passed
    gather = graph_eval.DATA_OPS[Op.GATHER]

    def off_by_one(op: Any, values: Any) -> Any:
        i = np.asarray(values[op.inputs[1]])
        steps = values[op.inputs[0]].shape[0]
        return gather(op, {**values, op.inputs[1]: np.minimum(i + 1, steps - 1)})

    monkeypatch.setitem(graph_eval.DATA_OPS, Op.GATHER, off_by_one)
    assert not verify_model(tmp_path / "g.tflite").passed


@pytest.mark.runtime
def test_hybrid_loop_tolerance_models_the_body(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The derived hybrid tolerance runs the loop body with the per-row input rounding: without the body's
    noise it is smaller; without any FULLY_CONNECTED's rounding modelled the file check fails."""
    _skip_hybrid_on_old_runtime({"quantize": "dynamic-int8"})
    from lstmgen.check import tolerance

    out = tmp_path / "g.tflite"
    build(out, LOOP | {"num_units": 32, "input_size": 16, "quantize": "dynamic-int8"}, verify=False)
    full = verify_model(out)
    assert full.passed
    with monkeypatch.context() as m:
        m.setattr(tolerance, "while_loop", lambda model, op, values, body: graph_eval.while_loop(model, op, values))
        assert verify_model(out).atol < full.atol  # 0.0121 against 0.0145 (seeded)
    monkeypatch.setattr(
        tolerance, "_noisy_hybrid_fc", lambda model, k, values, rng: tolerance.store_data_op(model, k, values)
    )
    assert not verify_model(out).passed


@pytest.mark.parametrize("kind", ["cond index", "body arity"])
def test_a_broken_loop_is_refused_not_crashed(tmp_path: Path, kind: str) -> None:
    import dataclasses

    from lstmgen.errors import ModelFileError
    from lstmgen.tflite.records import Options
    from lstmgen.tflite.writer import serialize

    model = _loop_model(tmp_path)
    k = next(k for k, o in enumerate(model.operators) if o.opcode == Op.WHILE)
    ops = list(model.operators)
    if kind == "cond index":
        ops[k] = dataclasses.replace(
            ops[k], options=Options("WhileOptions", (("CondSubgraphIndex", 7), ("BodySubgraphIndex", 2)))
        )
        bad = dataclasses.replace(model, operators=tuple(ops))
    else:
        body = model.subgraphs[1]
        bad = dataclasses.replace(
            model, subgraphs=(model.subgraphs[0], dataclasses.replace(body, outputs=body.outputs[:-1]))
        )
    (tmp_path / "bad.tflite").write_bytes(bytes(serialize(bad)))
    with pytest.raises(ModelFileError, match="subgraph|Subgraph"):
        verify_model(tmp_path / "bad.tflite")
    r = invoke("verify", tmp_path / "bad.tflite")
    assert r.exit_code == 2 and "Traceback" not in r.output


def test_inspect_describes_the_loop_form(tmp_path: Path) -> None:
    import jsonschema

    _loop_model(tmp_path, {"bidirectional": True})
    r = invoke("inspect", tmp_path / "g.tflite")
    assert r.exit_code == 0 and "time=dynamic (a WHILE loop" in r.output and "WHILE v1 x2" in r.output
    assert "(loop subgraph 2)" in r.output and "min runtime 1.15.0" in r.output
    doc = json.loads(invoke("inspect", tmp_path / "g.tflite", "--json").stdout)
    assert doc["time_steps"] is None and doc["loops"] == 2
    assert [(w["subgraph"], w["uses"]) for w in doc["weights"]] == [(0, 1), (0, 1), (2, 1), (4, 1)]
    jsonschema.validate(doc, json.loads((ROOT / "schemas" / "report.schema.json").read_text()))


def _graph_mutants() -> dict[str, Any]:
    """One small defect each in a graph-form file's constants (red team: each exited 0 before the graph
    form's constants were compared with the source's)."""

    def const(m: Any, opcode: int, n: int, slot: int) -> int:
        return int([op for op in m.operators if op.opcode == opcode][n].inputs[slot])

    def edit(m: Any, k: int, fn: Any) -> Any:
        from dataclasses import replace

        tensors = list(m.tensors)
        tensors[k] = replace(tensors[k], data=fn(np.array(tensors[k].data)))
        return replace(m, tensors=tuple(tensors))

    def bump(a: np.ndarray) -> np.ndarray:  # one element 3 codes (int8) or 3 float32 ulps up
        flat = a.reshape(-1)
        j = flat.size // 3
        up = a.dtype.type(9)  # in the array's own type: numpy 1 would step a float32 in float64
        flat[j] = flat[j] + 3 if a.dtype.kind == "i" else np.nextafter(np.nextafter(np.nextafter(flat[j], up), up), up)
        return a

    return {
        "input weight +3 steps": lambda m: edit(m, const(m, Op.FULLY_CONNECTED, 0, 1), bump),
        "recurrent weight +3 steps": lambda m: edit(m, const(m, Op.FULLY_CONNECTED, 1, 1), bump),
        "gate bias x1.01": lambda m: edit(m, const(m, Op.FULLY_CONNECTED, 0, 2), lambda a: (a * 1.01).astype(a.dtype)),
        "lower clip -3.3 (one-sided)": lambda m: edit(m, const(m, Op.MAXIMUM, 0, 1), lambda a: a * np.float32(1.1)),
    }


@pytest.mark.parametrize("quantize", ["none", "dynamic-int8"])
@pytest.mark.parametrize("defect", list(_graph_mutants()))
def test_graph_form_constants_are_checked_against_the_source(tmp_path: Path, quantize: str, defect: str) -> None:
    from lstmgen.tflite.writer import serialize

    weights = tmp_path / "w.npz"
    np.savez(weights, **random_tflite_weights(8, 5, seed=4))
    model = tmp_path / "g.tflite"
    build(model, SMALL | {"quantize": quantize, "cell_clip": 3.0}, weights)
    args = ("verify", model, "--weights", weights, "--cell-clip", "3")
    right = invoke(*args)
    assert right.exit_code == 0, right.output
    assert "tensors: all 12" in right.output  # 4 input blocks, 4 recurrent, 4 biases
    clean = model.read_bytes()
    bad = bytes(serialize(_graph_mutants()[defect](read_model(clean))))
    assert bad != clean
    model.write_bytes(bad)
    result = invoke(*args)
    assert result.exit_code == 1, result.output
