"""Graph-form files wrong in one small way, edited after the build: verify must fail them (or refuse them)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from lstmgen.tflite.reader import read_model
from lstmgen.tflite.records import ModelRecord
from lstmgen.tflite.schema import BuiltinOperator as Op
from lstmgen.tflite.writer import serialize
from tests.support import ROOT, assert_user_error, invoke

WEIGHTS = ROOT / "examples" / "kws_tf1.npz"
SOURCE = ("--weights", WEIGHTS, "--cell-clip", "3")
Mutation = Callable[[ModelRecord], ModelRecord]


@pytest.fixture(scope="module")
def ln_loop(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, tuple[object, ...]]:
    """A WHILE loop with peepholes, layer norm, projection and both clips; its source the per-gate .npz export
    (layer-norm coefficients all ones, like the forget bias of 1.0 folded into zero biases)."""
    d = tmp_path_factory.mktemp("ln")
    cell = ("--use-peepholes", "--layer-norm", "--num-proj", "6", "--cell-clip", "2", "--proj-clip", "1.5")
    r = invoke("build", "--num-units", 8, "--input-size", 5, *cell, "--form", "graph", "--state-io",
               "--seed", 1, "--no-verify", "-o", d / "ln.tflite")  # fmt: skip
    assert r.exit_code == 0, r.output
    r = invoke("export", d / "ln.tflite", "--format", "tflite", "-o", d / "ln.npz")
    assert r.exit_code == 0, r.output
    return d / "ln.tflite", ("--weights", d / "ln.npz", "--cell-clip", "2", "--proj-clip", "1.5")


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The README's streaming model: a WHILE loop (its body holds the recurrent weights and the clips), --state-io."""
    out = tmp_path_factory.mktemp("graph") / "loop.tflite"
    r = invoke("build", *SOURCE, "--form", "graph", "--state-io", "-o", out)
    assert r.exit_code == 0, r.output
    return out


def _body_const(opcode: int, slot: int, edit: Callable[[np.ndarray], None], named: str = "") -> Mutation:
    """The first constant at `slot` of an `opcode` op in the WHILE loop's body (whose tensor's name has `named`),
    edited in place on a copy."""

    def mutate(m: ModelRecord) -> ModelRecord:
        body = m.subgraphs[-1]
        index = next(
            o.inputs[slot] for o in body.operators if o.opcode == opcode and named in body.tensors[o.inputs[slot]].name
        )
        data = np.array(body.tensors[index].data)
        edit(data.reshape(-1))
        tensors = list(body.tensors)
        tensors[index] = replace(tensors[index], data=data)
        return replace(m, subgraphs=(*m.subgraphs[:-1], replace(body, tensors=tuple(tensors))))

    return mutate


def _one_ulp(flat: np.ndarray) -> None:
    flat[0] = np.nextafter(flat[0], np.float32(np.inf))


def _set(value: float) -> Callable[[np.ndarray], None]:
    def edit(flat: np.ndarray) -> None:
        flat[:] = value

    return edit


def _signature_swap(side: str, a: str, b: str) -> Mutation:
    """Two keys of the signature swapped: the model's inputs/outputs unchanged, the names callers use crossed."""

    def mutate(m: ModelRecord) -> ModelRecord:
        s = m.signatures[0]
        items = dict(getattr(s, side))
        items[a], items[b] = items[b], items[a]
        return replace(m, signatures=(replace(s, **{side: tuple(items.items())}),))

    return mutate


def _labelled(mutate: Mutation, key: str, value: float) -> Mutation:
    """The mutation with the metadata's hyperparameter `key` changed to match it: a consistent lie, which only
    the comparison with the source can catch (a label that differs from the graph is refused first)."""

    def both(m: ModelRecord) -> ModelRecord:
        m = mutate(m)
        meta = dict(m.metadata)
        doc = json.loads(meta["lstmgen"])
        doc["hyperparameters"][key] = value
        meta["lstmgen"] = json.dumps(doc).encode()
        return replace(m, metadata=tuple(meta.items()))

    return both


# each passed verify against the source before the check that catches it (found by the red team)
FAILS: dict[str, tuple[Mutation, str]] = {
    "recurrent weight in the loop body 1 ulp off": (
        _body_const(Op.FULLY_CONNECTED, 1, _one_ulp), "subgraph 2 op 1 FULLY_CONNECTED weights"
    ),
    "cell clip in the loop body 3 -> 3.001": (
        _labelled(_body_const(Op.MINIMUM, 1, _set(3.001)), "cell_clip", 3.001), "MINIMUM clips c at [3.0009"
    ),
    "negative cell clip in the loop body removed": (_body_const(Op.MAXIMUM, 1, _set(-1e30)), "MAXIMUM clips c at"),
}  # fmt: skip
LN_FAILS: dict[str, tuple[Mutation, str]] = {
    # matched, before, as the closest same-shaped source array: the forget bias (ones), within a bias's allowance
    "forget layer-norm coefficient 1 ulp off": (
        _body_const(Op.MUL, 1, _one_ulp, "forget_layer_norm"), "layer_norm_coefficients: off by 1.19e-07 = 1 steps"
    ),
    # the cell clip set to the stated proj_clip: any stated clip was accepted for any clip op
    "cell clip 2 -> the proj clip 1.5": (
        _labelled(_body_const(Op.MINIMUM, 1, _set(1.5), "const_2"), "cell_clip", 1.5), "clips c at [1.5]"
    ),
    "proj clip 1.5 -> 1.5001": (
        _labelled(_body_const(Op.MINIMUM, 1, _set(1.5001), "const_1.5"), "proj_clip", 1.5001),
        "clips the projection at",
    ),
}  # fmt: skip


def _time_major_label(m: ModelRecord) -> ModelRecord:
    """The metadata says time-major; the graph loops over axis 1: verify ran it over one step (T = 1) and passed."""
    meta = dict(m.metadata)
    meta["lstmgen"] = meta["lstmgen"].replace(b'"time_major": false', b'"time_major": true')
    assert meta["lstmgen"] != dict(m.metadata)["lstmgen"]
    return replace(m, metadata=tuple(meta.items()))


def _cell_clip_label(m: ModelRecord) -> ModelRecord:
    """The metadata says cell_clip 5; the graph clips at 3: inspect printed the label as the model's."""
    return _labelled(lambda r: r, "cell_clip", 5.0)(m)


def _units_label(m: ModelRecord) -> ModelRecord:
    meta = dict(m.metadata)
    doc = json.loads(meta["lstmgen"])
    doc["hyperparameters"]["layers"][0][0]["num_units"] += 1
    meta["lstmgen"] = json.dumps(doc).encode()
    return replace(m, metadata=tuple(meta.items()))


REFUSED: dict[str, Mutation] = {
    "metadata says time-major, the graph is batch-major": _time_major_label,
    "metadata says cell_clip 5, the graph clips at 3": _cell_clip_label,
    "metadata says one unit more than the graph has": _units_label,
    "signature final_h_0 and final_c_0 swapped": _signature_swap("outputs", "final_h_0", "final_c_0"),
    "signature initial_h_0 and initial_c_0 swapped": _signature_swap("inputs", "initial_h_0", "initial_c_0"),
}


def _write(loop: Path, tmp_path: Path, mutate: Mutation) -> Path:
    out = tmp_path / "bad.tflite"
    out.write_bytes(bytes(serialize(mutate(read_model(loop.read_bytes(), str(loop))))))
    return out


def test_the_clean_loop_passes(loop: Path) -> None:
    r = invoke("verify", loop, *SOURCE)
    assert r.exit_code == 0, r.output
    assert "all 12 LSTM constants" in r.output  # input and recurrent weights, biases: the body's counted


@pytest.mark.parametrize("name", list(FAILS))
def test_a_wrong_loop_constant_fails(loop: Path, tmp_path: Path, name: str) -> None:
    mutate, says = FAILS[name]
    r = invoke("verify", _write(loop, tmp_path, mutate), *SOURCE)
    assert r.exit_code == 1, r.output
    assert says in r.output


@pytest.mark.parametrize("name", list(REFUSED))
def test_a_mislabelled_file_is_refused(loop: Path, tmp_path: Path, name: str) -> None:
    """Callers stream through the signature's names (the README's LiteRT loop): they must name the tensors lstmgen
    verifies, or a file whose names cross h and c passes while every caller feeds c as h. The metadata's layout
    must be the graph's, or verify runs the wrong axis."""
    bad = _write(loop, tmp_path, REFUSED[name])
    says = {"signature": "signature", "time-major": "time-major", "cell_clip": "cell_clip: metadata 5, graph 3"}
    says |= {"unit": "num_units: metadata"}
    said = next(v for k, v in says.items() if k in name)
    assert_user_error(invoke("verify", bad, *SOURCE), said)
    if "time-major" not in name:
        assert_user_error(invoke("inspect", bad), said)


@pytest.mark.parametrize("name", list(LN_FAILS))
def test_a_wrong_layer_norm_or_clip_constant_fails(
    ln_loop: tuple[Path, tuple[object, ...]], tmp_path: Path, name: str
) -> None:
    model, source = ln_loop
    assert invoke("verify", model, *source).exit_code == 0
    mutate, says = LN_FAILS[name]
    r = invoke("verify", _write(model, tmp_path, mutate), *source)
    assert r.exit_code == 1, r.output
    assert says in r.output


def _metadata(old: bytes, new: bytes) -> Mutation:
    def mutate(m: ModelRecord) -> ModelRecord:
        meta = dict(m.metadata)
        assert old in meta["lstmgen"]
        meta["lstmgen"] = meta["lstmgen"].replace(old, new)
        return replace(m, metadata=tuple(meta.items()))

    return mutate


@pytest.mark.parametrize("backward", [False, True], ids=["forward-labelled-backward", "backward-labelled-forward"])
def test_a_wrong_direction_label_fails(tmp_path: Path, backward: bool) -> None:
    """The metadata's go_backwards flipped: verify passed (the source ran the way the graph does) while `export`
    recorded the label's direction, so a build of the export computed another LSTM. Now the source runs the model's
    recorded direction (unless the weight file states one, which must then agree)."""
    flag = ("--go-backwards",) if backward else ()
    r = invoke("build", "--num-units", 8, "--input-size", 5, "--time-steps", 6, "--form", "graph", *flag,
               "--seed", 2, "--no-verify", "-o", tmp_path / "g.tflite")  # fmt: skip
    assert r.exit_code == 0, r.output
    r = invoke("export", tmp_path / "g.tflite", "--format", "tflite", "-o", tmp_path / "w.npz")  # states the direction
    assert r.exit_code == 0, r.output
    source = ("--weights", tmp_path / "w.npz")
    assert invoke("verify", tmp_path / "g.tflite", *source).exit_code == 0
    said = b'"go_backwards": %s' % (b"true" if backward else b"false")
    lie = b'"go_backwards": %s' % (b"false" if backward else b"true")
    bad = _write(tmp_path / "g.tflite", tmp_path, _metadata(said, lie))
    r = invoke("verify", bad, *source)
    assert r.exit_code == 1, r.output
    assert ("go_backwards True in the source, False in the model" if backward else "does not compute") in r.output


def _bypass(opcode: int, nth: int) -> Mutation:
    """The nth `opcode` op of the main graph removed, its consumers reading its input (one step's clip dropped)."""

    def mutate(m: ModelRecord) -> ModelRecord:
        k = [k for k, o in enumerate(m.operators) if o.opcode == opcode][nth]
        op = m.operators[k]
        src = next(i for i in op.inputs if m.tensors[i].data is None)
        ops = [replace(o, inputs=tuple(src if i == op.outputs[0] else i for i in o.inputs)) for o in m.operators]
        return replace(m, operators=(*ops[:k], *ops[k + 1 :]))

    return mutate


@pytest.mark.parametrize("opcode", [Op.MINIMUM, Op.MAXIMUM], ids=["upper", "lower"])
def test_one_unrolled_step_without_its_clip_fails(tmp_path: Path, opcode: int) -> None:
    """The stress input (x10) did not reach the clip at step 3, so the outputs passed the file: each stated clip
    must be applied at every cell step the file computes (here 6)."""
    r = invoke("build", *SOURCE, "--form", "graph", "--time-steps", 6, "-o", tmp_path / "g.tflite")
    assert r.exit_code == 0, r.output
    r = invoke("verify", _write(tmp_path / "g.tflite", tmp_path, _bypass(opcode, 3)), *SOURCE)
    assert r.exit_code == 1, r.output
    assert "ops clip c, the source's cell_clip 3 applies at each of the 6 cell steps" in r.output


def test_a_wrong_layer_label_fails(tmp_path: Path) -> None:
    """A bidirectional layer labelled as 2 stacked forward layers: verify passed (the source, a TF1 .npz with fw/bw
    cells, was bidirectional like the graph) while `export` wrote 2 forward layers, a different LSTM."""
    r = invoke("build", "--num-units", 4, "--input-size", 3, "--time-steps", 3, "--bidirectional", "--form", "graph",
               "--no-verify", "-o", tmp_path / "g.tflite")  # fmt: skip
    assert r.exit_code == 0, r.output
    r = invoke("export", tmp_path / "g.tflite", "--format", "tf1", "-o", tmp_path / "w.npz")
    assert r.exit_code == 0, r.output
    source = ("--weights", tmp_path / "w.npz")
    assert invoke("verify", tmp_path / "g.tflite", *source).exit_code == 0
    lie = _metadata(b'"bidirectional": true', b'"bidirectional": false')
    relabel = _metadata(b'"num_layers": 1', b'"num_layers": 2')
    bad = _write(tmp_path / "g.tflite", tmp_path, lambda m: relabel(lie(m)))
    r = invoke("verify", bad, *source)
    assert r.exit_code == 1, r.output
    assert "num_layers 1 in the source, 2 in the model; bidirectional True in the source, False" in r.output
