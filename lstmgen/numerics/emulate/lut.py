"""TFLM's and CMSIS-NN's int16 sigmoid/tanh: a 256-entry table of sigmoid(i/24) in 0.16, interpolated.

The table is read at run time from the installed tflite-micro package's native library (the bytes the
interpreter itself uses). Without the package, lstmgen derives it: round(65536 * sigmoid(i / 24)),
plus one at the 44 entries listed in _ONE_ABOVE, which the published table (TFLM
tensorflow/lite/kernels/internal/common.h `sigmoid_table_uint16`, CMSIS-NN arm_nntables.c) rounds up
that far; a test keeps the derivation equal to the package's bytes.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

import numpy as np

I64 = np.int64
# Indices where the published table is one above round(65536 * sigmoid(i / 24)) (found by comparing with the
# bytes in tflite-micro 0.dev20261023 _runtime.so; test_emulate keeps it equal to the installed package's).
_ONE_ABOVE: tuple[int, ...] = (
    4, 8, 12, 14, 15, 16, 17, 19, 20, 21, 22, 25, 27, 28, 29, 30, 31, 33, 34, 35, 37, 39, 40, 41, 43, 44,
    45, 46, 49, 50, 54, 62, 63, 64, 66, 82, 86, 93, 100, 103, 112, 116, 135, 255,
)


def derived_table() -> np.ndarray:
    """The table from its definition plus the recorded roundings (used when tflite-micro is not installed)."""
    i = np.arange(256)
    table = np.round(65536.0 / (1.0 + np.exp(-i / 24.0))).astype(I64)
    table[list(_ONE_ABOVE)] += 1
    return table


def _library() -> Path | None:
    spec = importlib.util.find_spec("tflite_micro")
    if spec is None or not spec.submodule_search_locations:
        return None
    for base in spec.submodule_search_locations:
        for path in sorted(Path(base).rglob("_runtime*.so")):
            return path
    return None


def table_in_library(path: Path) -> np.ndarray | None:
    """The table as stored in a native library: 256 little-endian uint16 from 32768 rising to 65535, each
    within 2 of its definition (every copy found must agree); None if not found."""
    data = path.read_bytes()
    expected = 65536.0 / (1.0 + np.exp(-np.arange(256) / 24.0))
    start = np.array([32768], "<u2").tobytes() + np.array([round(expected[1])], "<u2").tobytes()
    found: list[np.ndarray] = []
    at = data.find(start)
    while at >= 0 and len(found) < 16:
        if at % 2 == 0 and at + 512 <= len(data):
            t = np.frombuffer(data, "<u2", 256, at).astype(I64)
            if t[-1] == 65535 and np.all(np.diff(t) >= 0) and np.all(np.abs(t - expected) <= 2):
                found.append(t)
        at = data.find(start, at + 1)
    if not found or any(not np.array_equal(t, found[0]) for t in found):
        return None
    return found[0]


@lru_cache(maxsize=1)
def sigmoid_table() -> tuple[np.ndarray, str]:
    """(table, where it came from)."""
    lib = _library()
    if lib is not None:
        t = table_in_library(lib)
        if t is not None:
            t.flags.writeable = False
            return t, f"read from {lib.name} of the installed tflite-micro package"
    t = derived_table()
    t.flags.writeable = False
    return t, "derived: round(65536*sigmoid(i/24)) with the published table's 44 other roundings"


def lut_sigmoid(x: np.ndarray, table: np.ndarray) -> np.ndarray:
    """reference_integer_ops::Logistic on int16 Q3.12 (input multiplier 3, no shift): Q0.15."""
    d = np.asarray(x, I64) * 3
    u = np.abs(d)
    k = u >> 9
    kk = np.minimum(k, 254)
    r = np.where(k >= 255, 0x7FFF << 10, (table[kk] << 9) + (u & 0x1FF) * (table[kk + 1] - table[kk]))
    r = np.where(d >= 0, r + (1 << 9), (1 << 25) - r + (1 << 9) - 1)
    return (r & 0xFFFFFFFF) >> 10  # uint32 arithmetic, then stored to int16 (always in [0, 32767])


def lut_tanh(x: np.ndarray, cell_scale_power: int, table: np.ndarray) -> np.ndarray:
    """lstm_eval.cc Tanh(cell_state_scale_power) -> reference_integer_ops::Tanh on int16: Q0.15."""
    shift = 15 + cell_scale_power - 3
    multiplier = 0
    if shift < 0:
        shift, multiplier = -shift, 3
    if multiplier == 0:
        multiplier, shift = 3 << shift, 0
    rnd = 1 << (shift - 1) if shift > 0 else 0
    d = (np.asarray(x, I64) * multiplier + rnd) >> shift
    u = np.abs(d)
    k = u >> 8
    kk = np.minimum(k, 254)
    r = np.where(k >= 255, 0xFFFF << 8, (table[kk] << 8) + (u & 0xFF) * (table[kk + 1] - table[kk]))
    r = np.where(d >= 0, r - (1 << 23) + (1 << 7), -r + (1 << 23) + (1 << 7) - 1)
    return r >> 8
