"""Shared pytest fixtures."""

from __future__ import annotations

import gc
from pathlib import Path

import numpy as np
import pytest
from support import random_tflite_weights  # noqa: F401  (re-exported for older tests)


@pytest.fixture
def weights_npz(tmp_path: Path):
    """Factory: save arrays to an .npz in tmp_path and return the path."""

    def make(arrays: dict[str, np.ndarray], name: str = "w.npz") -> Path:
        path = tmp_path / name
        np.savez(path, **arrays)
        return path

    return make


@pytest.fixture(autouse=True)
def _collect_after_each_test():
    """A collection after every test: a file handle a reader left open (an unclosed zip, HDF5 or .npz) is
    reported as a ResourceWarning in the test that leaked it (an error, by filterwarnings), on every Python,
    not whenever the collector happens to run (3.12 ran it where 3.11 did not)."""
    yield
    gc.collect()
