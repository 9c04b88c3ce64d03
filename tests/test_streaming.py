"""The streamed write: weights copied from the mapped file in slabs, pages dropped between, bytes unchanged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import lstmgen.pipeline.steps as build_module  # the build steps: verify_written is patched there
from lstmgen.build import build as build_model  # the pipeline's own signature
from lstmgen.tflite import reader, writer
from lstmgen.weights.npz import NpzArrays


def _tf1(path: Path, units: int = 16, inputs: int = 8, proj: int = 0) -> Path:
    rng = np.random.default_rng(3)
    out = proj or units
    arrays = {
        "kernel": rng.standard_normal((inputs + out, 4 * units)).astype(np.float32),
        "bias": rng.standard_normal(4 * units).astype(np.float32),
    }
    if proj:
        arrays["projection/kernel"] = rng.standard_normal((units, proj)).astype(np.float32)
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("proj", [0, 6])
def test_streamed_file_is_byte_identical(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, proj: int) -> None:
    weights = _tf1(tmp_path / "w.npz", proj=proj)
    with monkeypatch.context() as m:  # one slab per tensor
        m.setattr(writer, "_CHUNK_BYTES", 2**40)
        build_model(tmp_path / "a.tflite", {}, weights, verify=False)
    monkeypatch.setattr(writer, "_CHUNK_BYTES", 256)  # many slabs per tensor, some smaller than a row
    build_model(tmp_path / "b.tflite", {}, weights, verify=False)
    assert (tmp_path / "a.tflite").read_bytes() == (tmp_path / "b.tflite").read_bytes()


def test_weight_pages_dropped_after_the_write_before_verification(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The mapped .npz stays resident through the write, then is released once, before verification runs."""
    events: list[str] = []
    real_release, real_verify = NpzArrays.release, build_module.verify_written
    monkeypatch.setattr(NpzArrays, "release", lambda self: events.append("release") or real_release(self))
    monkeypatch.setattr(
        build_module, "verify_written", lambda *a, **k: events.append("verify") or real_verify(*a, **k)
    )
    build_model(tmp_path / "m.tflite", {}, _tf1(tmp_path / "w.npz"))
    assert events == ["release", "verify"]


def test_tiled_copy_of_views(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer, "_TILE_ROWS", 4)  # several tiles, ragged edges, on a small array
    monkeypatch.setattr(writer, "_TILE_COLS", 3)
    src = np.arange(10 * 40, dtype=np.float32).reshape(10, 40)
    for view in (src.T, src[:, 8:17].T, src[2:5, ::3], src.T[::-1], src, src[0]):
        dest = np.empty(view.shape, np.float32)
        writer._copy_tiled(dest, view)
        np.testing.assert_array_equal(dest, view)


def test_written_file_equals_the_in_memory_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """PlannedFile.write_to (slabs into a reused buffer) and serialize (in place) give the same bytes."""
    weights = _tf1(tmp_path / "w.npz", proj=6)
    build_model(tmp_path / "a.tflite", {}, weights, verify=False)
    model = reader.read_model((tmp_path / "a.tflite").read_bytes())
    monkeypatch.setattr(writer, "_CHUNK_BYTES", 100)  # slabs smaller than one row of some tensors
    with open(tmp_path / "b.tflite", "wb") as fh:
        writer.plan_file(model).write_to(fh)
    assert (tmp_path / "b.tflite").read_bytes() == bytes(writer.serialize(model))
