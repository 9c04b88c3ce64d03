"""Quantized files are pinned byte for byte: a refactor of the quantizer must not move a single byte.

The hashes were taken before quant/quantize.py's integer path was split into one-job functions. If a
change to the written bytes is intended (layout, metadata, serialization or quantization), check
the new files with `lstmgen verify`, then print the new hashes with
`python tests/test_quantize_bytes.py` and paste them below.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lstmgen.build import build

BASE = {"num_units": 8, "input_size": 5, "time_steps": 6, "seed": 3}
# name (its mode first) -> cell options
CASES: dict[str, dict[str, Any]] = {
    "int8-peephole-projection-clips": {"use_peepholes": True, "num_proj": 8, "proj_clip": 0.5, "cell_clip": 3.0},
    "int8-cifg-layer-norm-float-io": {"cifg": True, "layer_norm": True, "io_type": "float32"},
    "int8-bidirectional-stacked-last-step": {"bidirectional": True, "num_layers": 2, "return_sequences": False},
    "int8-projection-go-backwards": {"num_proj": 4, "go_backwards": True},
    "int16x8-stacked-float-io": {"num_layers": 2, "io_type": "float32"},
    "int16x8-bidirectional": {"bidirectional": True},
    "dynamic-int8-projection": {"num_proj": 4},
    "dynamic-int8-peephole-symmetric": {"use_peepholes": True, "asymmetric_inputs": False},
    "float16-bidirectional-layer-norm": {"bidirectional": True, "layer_norm": True},
}
PINNED = {
    "int8-peephole-projection-clips": "e202db8081ef7d6d9c10dfbf0af56f16cbde5f2d84d14df9aaa6260dd45dc85f",
    "int8-cifg-layer-norm-float-io": "8aa54a551c678ffa3927b4ae63d31e4bb049730e35d2e69273156dd703b4a5aa",
    "int8-bidirectional-stacked-last-step": "61d693820a60f41e97c9fc26d2014926f3135f6fa58a564470b855800e463827",
    "int8-projection-go-backwards": "97637b97db918b3b692e62e2528e073d5dc9f79c9e2afeaa16110b949d824f6d",
    "int16x8-stacked-float-io": "6eb36bdbbd91bd70588eeec13699c643e79fe0f686e426cc02123bff7925482c",
    "int16x8-bidirectional": "f2da896937d86b09d1ce4d316f0a2ade51baa7b490c4eab0076c1840cf1abfa1",
    "dynamic-int8-projection": "6eb77dbbe0e2889c52e2de5e619cf3bf9219fef210ed8c4918e7f582b3a5363c",
    "dynamic-int8-peephole-symmetric": "f5b17741e04b0991f753fe9a243e5350b7bb6e0fd14e2ed5f0f23ea77093fe53",
    "float16-bidirectional-layer-norm": "6459b835239800228e74bee9d6c2960d7ed79384a889e41af004e4c74596f320",
}


def _mode(name: str) -> str:
    return next(m for m in ("int16x8", "int8", "dynamic-int8", "float16") if name.startswith(m + "-"))


def build_case(name: str, folder: Path) -> str:
    """sha256 of the case's file, built in `folder` (the calibration file's name is part of the metadata)."""
    mode = _mode(name)
    calib = None
    if mode in ("int8", "int16x8"):
        # A fixed function, not a random generator: the same values on every numpy.
        n = np.arange(8 * 6 * 5, dtype=np.float64).reshape(8, 1, 6, 5)
        np.save(folder / "calib.npy", (1.5 * np.sin(0.37 * n) + 0.2 * np.cos(1.3 * n)).astype(np.float32))
        calib = "calib.npy"
    build(folder / f"{name}.tflite", {**BASE, **CASES[name], "quantize": mode}, calibration_data=calib, verify=False)
    return hashlib.sha256((folder / f"{name}.tflite").read_bytes()).hexdigest()


@pytest.fixture
def fixed_version(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The generator's version is written into the file: pin it; build in tmp_path, by relative names."""
    monkeypatch.setattr("lstmgen.pipeline.layout.__version__", "0+pinned")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("name", list(CASES))
def test_quantized_bytes_are_pinned(name: str, fixed_version: Path) -> None:
    assert build_case(name, Path(".")) == PINNED[name], f"{name}: the written bytes changed (see the module doc)"


if __name__ == "__main__":  # print the current hashes (run from the repository root)
    import lstmgen.pipeline.layout

    lstmgen.pipeline.layout.__version__ = "0+pinned"
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        for case in CASES:
            sys.stdout.write(f'    "{case}": "{build_case(case, Path("."))}",\n')
