"""Quantized files are pinned byte for byte: a refactor of the quantizer must not move a single byte.

The hashes were taken before quant/quantize.py's integer path was split into one-job functions, and
retaken when the metadata's provenance lost the weight file's name and the build notes (issue 21: only
that metadata buffer changed, every weight buffer compared equal). If a
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
    "int8-peephole-projection-clips": "d53ea946c6169c128081edf20884a4da5bca180e7960445f83068f4fc40c3b4c",
    "int8-cifg-layer-norm-float-io": "8a470f72ac6d5f4fcade3741b8f791c75ac83e9cb9f7014322c05061e0bb6b04",
    "int8-bidirectional-stacked-last-step": "00fe02c4b48439e333712dc45b053dacea1e5383fe46aa9909eac18002731df4",
    "int8-projection-go-backwards": "71493edbdfda776b7679000314cd946cf38c936ea0fdae54a2e58621f1a08249",
    "int16x8-stacked-float-io": "8fad37e17ab4579efd8d4562999fd21a97fa21959375bd3a3657555298baf222",
    "int16x8-bidirectional": "b9ebc606903b44a1b120453f587ede5c6d227946355275ab8c1a310634d7ad94",
    "dynamic-int8-projection": "82646689bd83f97cbbf817f43f712b1b752c77666dabb961431082344912f153",
    "dynamic-int8-peephole-symmetric": "ed7bb776e4f3cd23b9a5b18d63a8fbfae6a51188e86c5b7fd0331826d6d71351",
    "float16-bidirectional-layer-norm": "92ddc6e83f044095dd1d06a327ff8f7ce38135c0af3eda07c5324478a72dabe7",
}


def _mode(name: str) -> str:
    return next(m for m in ("int16x8", "int8", "dynamic-int8", "float16") if name.startswith(m + "-"))


def build_case(name: str, folder: Path) -> str:
    """sha256 of the case's file, built in `folder`."""
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
