"""Shared pytest fixtures."""

from __future__ import annotations

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
