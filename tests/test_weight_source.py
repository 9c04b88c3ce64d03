"""lstmgen.weights.open: one opened file per build, .npz arrays mapped lazily and checked (CRC, pickle, size)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from lstmgen.errors import WeightFileError
from lstmgen.weights import READER_CLASSES, WeightReader, get_reader
from lstmgen.weights import open as open_weights
from lstmgen.weights.npz import NpzArrays

UNITS, INPUTS = 4, 3


def _tf1(path: Path) -> Path:
    kernel = np.random.default_rng(0).standard_normal((INPUTS + UNITS, 4 * UNITS)).astype(np.float32)
    np.savez(path, kernel=kernel, bias=np.zeros(4 * UNITS, np.float32))
    return path


@pytest.mark.parametrize("name", sorted(READER_CLASSES))
def test_every_reader_implements_the_protocol(name: str) -> None:
    assert isinstance(get_reader(name), WeightReader)


def test_open_lists_and_loads(tmp_path: Path) -> None:
    with open_weights(_tf1(tmp_path / "w.npz")) as src:
        assert src.format == "tf1"
        assert src.cells() == [("",)]
        cell = src.load()
    assert cell.implied()["num_units"] == UNITS
    assert cell.notes[0] == "format detected from keys: tf1"


def test_npz_arrays_are_views_of_one_map(tmp_path: Path) -> None:
    path = _tf1(tmp_path / "w.npz")
    arrays = NpzArrays(path)
    kernel = arrays["kernel"]
    assert arrays["kernel"] is kernel  # mapped once
    assert not kernel.flags.writeable and not kernel.flags.owndata
    with np.load(path) as ref:
        np.testing.assert_array_equal(kernel, ref["kernel"])
    arrays.release()  # pages dropped, the view still reads the file
    with np.load(path) as ref:
        np.testing.assert_array_equal(kernel, ref["kernel"])


def test_compressed_and_fortran_members(tmp_path: Path) -> None:
    a = np.asfortranarray(np.arange(12, dtype=np.float32).reshape(3, 4))
    np.savez_compressed(tmp_path / "c.npz", a=a)
    np.savez(tmp_path / "f.npz", a=a)
    for name in ("c.npz", "f.npz"):
        np.testing.assert_array_equal(NpzArrays(tmp_path / name)["a"], a)


def test_bad_crc_is_corrupt(tmp_path: Path) -> None:
    path = _tf1(tmp_path / "w.npz")
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("bias.npy")
    data[info.header_offset + 30 + len("bias.npy") + 130] ^= 0xFF  # a byte of the bias data
    path.write_bytes(bytes(data))
    with pytest.raises(WeightFileError, match="truncated or corrupt.*CRC"):
        open_weights(path).load()


def test_truncated_member_fails_at_open(tmp_path: Path) -> None:
    path = _tf1(tmp_path / "w.npz")
    data = path.read_bytes()
    with zipfile.ZipFile(path) as zf:
        cut = zf.getinfo("kernel.npy").header_offset + 200
    path.write_bytes(data[:cut])
    with pytest.raises(WeightFileError, match="truncated or corrupt"):
        open_weights(path)


def test_object_member_is_refused_without_unpickling(tmp_path: Path) -> None:
    path = tmp_path / "o.npz"
    np.savez(path, kernel=np.array([object()], dtype=object))
    with pytest.raises(WeightFileError, match="never unpickles"):
        open_weights(path)


@pytest.mark.parametrize(
    ("weights", "target"),
    [
        ("examples/classifier.keras", "lstmgen.weights.keras_convert._check_config"),
        ("examples/model.onnx", "lstmgen.weights.onnx_lstm.OnnxReader.open_file"),
        ("examples/weights_tf1.npz", "lstmgen.weights.tf1.Tf1Reader.read"),
    ],
)
def test_a_bug_in_a_reader_is_an_internal_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, weights: str, target: str
) -> None:
    """lstmgen's own AttributeError inside a reader is exit 70 with the bug named, not "re-save the file" (exit 2)."""
    from support import ROOT, invoke

    def bug(*args: object, **kwargs: object) -> None:
        raise AttributeError("'NoneType' object has no attribute 'injected'")

    monkeypatch.setattr(target, bug)
    out = tmp_path / "m.tflite"
    result = invoke("build", "--weights", ROOT / weights, "-o", out, "--no-verify")
    assert result.exit_code == 70, result.output
    assert "internal error: AttributeError" in result.output and "re-save" not in result.output.lower()
    assert not out.exists()


@pytest.mark.parametrize("error", [NotImplementedError, EOFError, OSError])
def test_a_zipfile_error_class_raised_by_lstmgen_is_an_internal_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: type[Exception]
) -> None:
    """_read_keras_zip turns zipfile's errors on a damaged .keras into exit 2, but the same classes raised by
    lstmgen's own code are bugs (exit 70), not "save it again"."""
    from support import ROOT, invoke

    def bug(*args: object, **kwargs: object) -> None:
        raise error("injected")

    monkeypatch.setattr("lstmgen.guard.zip_member_size", bug)
    keras = ROOT / "examples/classifier.keras"
    result = invoke("build", "--weights", keras, "-o", tmp_path / "m.tflite", "--no-verify")
    assert result.exit_code == 70, result.output
    assert f"internal error: {error.__name__}" in result.output


def test_a_truncated_keras_archive_is_still_bad_input(tmp_path: Path) -> None:
    from support import ROOT, invoke

    cut = tmp_path / "cut.keras"
    data = (ROOT / "examples/classifier.keras").read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    result = invoke("build", "--weights", cut, "-o", tmp_path / "m.tflite", "--no-verify")
    assert result.exit_code == 2 and "not a readable .keras archive" in result.output, result.output
