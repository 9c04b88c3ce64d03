"""The checker's op evaluation refuses inputs an op cannot take (exit 2), as a damaged graph-form file gives them.

The model fuzzer's first run over graph-form files (2,000 models, seed 0) found 18 internal errors (exit 70),
9 of them here: numpy's own reshape, split, slice and matmul errors. Each case below was one of them or its kin."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from lstmgen.errors import ModelFileError
from lstmgen.numerics.graph import DATA_OPS
from lstmgen.tflite.records import OperatorRecord, Options
from lstmgen.tflite.schema import BuiltinOperator as Op


def _run(opcode: int, inputs: list[Any], outputs: int = 1, **options: Any) -> Any:
    values = {k: np.asarray(v, np.float64) for k, v in enumerate(inputs)}
    opts = Options("Options", tuple(options.items())) if options else None
    op = OperatorRecord(opcode, 1, tuple(range(len(inputs))), tuple(range(100, 100 + outputs)), opts)
    return DATA_OPS[opcode](op, values)


BAD: dict[str, tuple[int, list[Any], int, dict[str, Any]]] = {
    "reshape to a size the values do not have": (Op.RESHAPE, [np.zeros(18), [1, 9, 3]], 1, {}),
    "reshape with a free axis that does not divide": (Op.RESHAPE, [np.zeros(18), [1, -1, 5634]], 1, {}),
    "reshape by a 2-D shape tensor": (Op.RESHAPE, [np.zeros(4), [[2, 2], [1, 4]]], 1, {}),
    "reshape by a shape holding NaN (seed 21, model 1414)": (Op.RESHAPE, [np.zeros(4), [1, np.nan, 4]], 1, {}),
    "slice bounds that are not whole numbers": (Op.STRIDED_SLICE, [np.zeros((2, 2)), [0.5, 0], [1, 1], [1, 1]], 1, {}),
    "split an axis of 1 into 4": (Op.SPLIT, [[1], np.zeros((1, 1))], 4, {}),
    "split along an axis the input lacks": (Op.SPLIT, [[5], np.zeros((4, 4))], 2, {}),
    "strided slice index past the axis": (Op.STRIDED_SLICE, [np.zeros((1, 1)), [0, 1], [1, 2], [1, 1]], 1,
                                          {"ShrinkAxisMask": 2}),
    "strided slice parameters shorter than the rank": (Op.STRIDED_SLICE, [np.zeros((2, 2)), [0], [1], [1]], 1, {}),
    "fully connected input not a multiple of the weights' width": (
        Op.FULLY_CONNECTED, [np.zeros((9, 1, 3)), np.zeros((12, 5)), np.zeros(12)], 1, {}),
    "fully connected bias of another length": (
        Op.FULLY_CONNECTED, [np.zeros((9, 3)), np.zeros((12, 3)), np.zeros(3)], 1, {}),
    "add of shapes that do not broadcast": (Op.ADD, [np.zeros((9, 12)), np.zeros(3)], 1, {}),
    "transpose by a non-permutation": (Op.TRANSPOSE, [np.zeros((2, 3)), [0, 0]], 1, {}),
    "concatenation of mismatched shapes": (Op.CONCATENATION, [np.zeros((2, 3)), np.zeros((2, 4))], 1, {"Axis": 0}),
    "reverse along an axis the input lacks": (Op.REVERSE_V2, [np.zeros((2, 3)), [3]], 1, {}),
    "mean over an axis the input lacks": (Op.MEAN, [np.zeros((2, 3)), [2]], 1, {}),
}  # fmt: skip


@pytest.mark.parametrize("name", list(BAD))
def test_an_op_that_cannot_take_its_inputs_is_refused(name: str) -> None:
    opcode, inputs, outputs, options = BAD[name]
    with pytest.raises(ModelFileError, match="cannot be computed"):
        _run(opcode, inputs, outputs, **options)


def test_the_same_ops_on_consistent_inputs() -> None:
    assert _run(Op.RESHAPE, [np.arange(18.0), [1, -1, 3]]).shape == (1, 6, 3)
    assert [p.shape for p in _run(Op.SPLIT, [[1], np.zeros((2, 8))], 4)] == [(2, 2)] * 4
    assert _run(Op.STRIDED_SLICE, [np.zeros((1, 5, 3)), [0, 4, 0], [1, 5, 3], [1, 1, 1]], ShrinkAxisMask=2).shape == (
        1,
        3,
    )
    assert _run(Op.FULLY_CONNECTED, [np.zeros((9, 3)), np.zeros((12, 3)), np.zeros(12)]).shape == (9, 12)
    assert _run(Op.CONCATENATION, [np.zeros((2, 3)), np.zeros((2, 4))], Axis=-1).shape == (2, 7)


@pytest.mark.parametrize(
    ("arrays", "says"),
    [
        ({"input_to_forget_weights": np.zeros(4)}, "input_to_forget_weights of shape [4]"),  # seed 0's first run
        ({"input_to_forget_weights": np.zeros((4, 3)), "projection_weights": np.float64(1)}, "shape []"),  # 10k run
    ],
)
def test_the_metadata_check_reads_a_damaged_cell_as_a_difference(arrays: dict[str, Any], says: str) -> None:
    """The graph-form metadata check met cells whose weights a damaged graph made 1-D or 0-D (exit 70 twice)."""
    from lstmgen.export_graph import GraphCell, _facts

    facts = _facts(GraphCell(arrays, "tanh", 0))
    assert says in str(facts["weights"])
