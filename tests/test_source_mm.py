"""The source references' matmul: float64 matrices used in place, other types and misaligned ones widened once."""

from __future__ import annotations

import numpy as np

from lstmgen.check.source import common


def _misaligned(w: np.ndarray) -> np.ndarray:
    """w's float64 values at an address 4 bytes off 8 (as an .npz member mapped at an odd offset lands)."""
    raw = np.zeros(w.nbytes + 4, np.uint8)
    out = np.ndarray(w.shape, np.float64, buffer=raw.data, offset=4)
    out[...] = w
    return out


def test_a_misaligned_float64_matrix_gets_an_aligned_copy_once() -> None:
    rng = np.random.default_rng(0)
    w, x = rng.standard_normal((16, 12)), rng.standard_normal((3, 16))
    odd = _misaligned(w)
    assert not odd.flags.aligned
    common.forget_widened()
    np.testing.assert_array_equal(common.mm(x, odd), x @ w)
    assert len(common._WIDENED) == 1
    ((_, copy),) = common._WIDENED.values()
    assert copy.flags.aligned and copy.dtype == np.float64
    common.mm(x, odd)
    assert len(common._WIDENED) == 1  # once per matrix, not per call
    common.forget_widened()


def test_an_aligned_float64_matrix_is_used_in_place() -> None:
    w = np.random.default_rng(1).standard_normal((8, 4))
    common.forget_widened()
    common.mm(np.ones((2, 8)), w)
    assert common._WIDENED == {}
