"""Quantized files are pinned byte for byte: a refactor of the quantizer must not move a single byte.

The hashes were taken before quant/quantize.py's integer path was split into one-job functions, and
retaken when the metadata's provenance lost the weight file's name and the build notes (issue 21: only
that metadata buffer changed, every weight buffer compared equal), and again when the calibration
metadata lost the calibration file's path (the same data under another name now builds the same bytes). If a
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
    "int8-peephole-projection-clips": "f68e3fc9cbb610cd527fb2c01ffefa683f4d1e86d2face9747c2884067ced1b9",
    "int8-cifg-layer-norm-float-io": "07a4c77f3fff1c4085ac78d2c3e7a57a6cb0ffad2dcfde64e66c72350fe46855",
    "int8-bidirectional-stacked-last-step": "e25273cc13b6a17663137e4877730be095ea7ee541ece9b3e2031c8daa2264b2",
    "int8-projection-go-backwards": "858b95804e65d705002547f19402407147b7c9a26bf68a40ef356542fe421266",
    "int16x8-stacked-float-io": "5614cb44cff845f1fb51ff8e7602b8666814ab88c3a9315130a3f519ddf311a3",
    "int16x8-bidirectional": "e32c6f8d0bf3235f778d74c0163d330e7b566a3f2c0bf650276df102f7166796",
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


def test_the_calibration_file_s_name_is_not_written(fixed_version: Path) -> None:
    """The same data under another name and folder builds the same bytes (a CI job and a laptop agree)."""
    first = build_case("int8-projection-go-backwards", Path("."))
    (fixed_version / "elsewhere").mkdir()
    os.chdir(fixed_version / "elsewhere")
    assert build_case("int8-projection-go-backwards", Path(".")) == first
    name = "int8-projection-go-backwards.tflite"
    assert b"calib.npy" not in (fixed_version / name).read_bytes()


if __name__ == "__main__":  # print the current hashes (run from the repository root)
    import lstmgen.pipeline.layout

    lstmgen.pipeline.layout.__version__ = "0+pinned"
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        for case in CASES:
            sys.stdout.write(f'    "{case}": "{build_case(case, Path("."))}",\n')
