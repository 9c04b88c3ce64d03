"""lstmgen's own .safetensors reading: the header checked as the safetensors package checks it, tensors mapped."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lstmgen import guard
from lstmgen.errors import WeightFileError
from lstmgen.weights import open as open_weights
from lstmgen.weights.stfile import SafetensorsFile

H, IN = 3, 2


def _lstm_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "weight_ih_l0": rng.standard_normal((4 * H, IN)).astype(np.float32),
        "weight_hh_l0": rng.standard_normal((4 * H, H)).astype(np.float32),
    }


def write(path: Path, arrays: dict[str, np.ndarray], edit: Any = None, dtypes: dict[str, str] | None = None) -> Path:
    """A safetensors file written by hand (8-byte size, JSON header, data), optionally with its header edited."""
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    data = b""
    for name, a in arrays.items():
        raw = a.tobytes()
        header[name] = {
            "dtype": (dtypes or {}).get(name, "F32"),
            "shape": list(a.shape),
            "data_offsets": [len(data), len(data) + len(raw)],
        }
        data += raw
    if edit is not None:
        edit(header)
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)
    return path


def test_tensors_are_read_only_views_of_one_map(tmp_path: Path) -> None:
    arrays = _lstm_arrays()
    st = SafetensorsFile(write(tmp_path / "w.safetensors", arrays))
    for name, a in arrays.items():
        got = st.get(name)
        np.testing.assert_array_equal(got, a)
        assert not got.flags.writeable and not got.flags.owndata
    assert st.release()
    np.testing.assert_array_equal(st.get("weight_ih_l0"), arrays["weight_ih_l0"])  # pages dropped, still readable


def test_bf16_and_f16_are_widened_exactly_with_notes(tmp_path: Path) -> None:
    arrays = _lstm_arrays()
    wide = arrays["weight_ih_l0"]
    bf16 = (wide.view(np.uint32) >> 16).astype(np.uint16)  # truncated to bfloat16
    half = arrays["weight_hh_l0"].astype(np.float16)
    dtypes = {"weight_ih_l0": "BF16", "weight_hh_l0": "F16"}
    path = write(tmp_path / "w.safetensors", {"weight_ih_l0": bf16, "weight_hh_l0": half}, dtypes=dtypes)
    with open_weights(path) as src:
        w = src.load()
    assert w.origin is not None
    np.testing.assert_array_equal(w.origin.arrays["weight_ih"], (bf16.astype(np.uint32) << 16).view(np.float32))
    assert any("bfloat16" in n for n in w.notes) and any("float16" in n for n in w.notes)


CORRUPT = {
    "gap": lambda h: h["weight_hh_l0"]["data_offsets"].__setitem__(0, h["weight_hh_l0"]["data_offsets"][0] + 4),
    "overlap": lambda h: h["weight_hh_l0"]["data_offsets"].__setitem__(0, 0),
    "past-the-end": lambda h: h["weight_hh_l0"].update(data_offsets=[96, 96 + 36 + 4], shape=[4 * H, H + 1]),
    "size-mismatch": lambda h: h["weight_hh_l0"].update(shape=[4 * H, H + 1]),
    "negative-dim": lambda h: h["weight_hh_l0"].update(shape=[-12, -3]),
    "float-dim": lambda h: h["weight_hh_l0"].update(shape=[12.0, 3]),
    "unknown-dtype": lambda h: h["weight_hh_l0"].update(dtype="F128"),
    "extra-field": lambda h: h["weight_hh_l0"].update(extra=1),
    "not-a-table": lambda h: h.update(weight_hh_l0=[1, 2]),
    "bad-offsets": lambda h: h["weight_hh_l0"].update(data_offsets=[96]),
}


@pytest.mark.parametrize("edit", list(CORRUPT), ids=list(CORRUPT))
def test_a_broken_header_is_corrupt(tmp_path: Path, edit: str) -> None:
    path = write(tmp_path / "w.safetensors", _lstm_arrays(), CORRUPT[edit])
    with pytest.raises(WeightFileError, match="truncated or corrupt.*save_file"):
        open_weights(path).cells()


@pytest.mark.parametrize(
    "data",
    [b"", b"\x05\0\0\0", struct.pack("<Q", 2**40) + b"{}", struct.pack("<Q", 2) + b"[]", struct.pack("<Q", 3) + b"{x}"],
    ids=["empty", "short", "huge-header", "not-an-object", "not-json"],
)
def test_a_broken_file_is_corrupt(tmp_path: Path, data: bytes) -> None:
    (tmp_path / "w.safetensors").write_bytes(data)
    with pytest.raises(WeightFileError, match="truncated or corrupt"):
        open_weights(tmp_path / "w.safetensors").cells()


def test_truncated_data_is_corrupt(tmp_path: Path) -> None:
    path = write(tmp_path / "w.safetensors", _lstm_arrays())
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(WeightFileError, match="truncated or corrupt.*cover"):
        open_weights(path).cells()


def test_f8_cannot_be_read_and_ints_are_refused_by_type(tmp_path: Path) -> None:
    arrays = _lstm_arrays()
    f8 = write(tmp_path / "f8.safetensors", {**arrays, "weight_hh_l0": np.zeros((4 * H, H), np.uint8)},
               dtypes={"weight_hh_l0": "F8_E4M3"})  # fmt: skip
    with pytest.raises(WeightFileError, match="F8_E4M3.*cannot be read"):
        open_weights(f8).load()
    ints = write(tmp_path / "i.safetensors", {**arrays, "weight_hh_l0": np.zeros((4 * H, H), np.int32)},
                 dtypes={"weight_hh_l0": "I32"})  # fmt: skip
    with pytest.raises(WeightFileError, match="int32, expected a float tensor"):
        open_weights(ints).load()


def test_the_byte_budget_applies_per_tensor(tmp_path: Path) -> None:
    path = write(tmp_path / "w.safetensors", _lstm_arrays())
    with guard.byte_limit(64), pytest.raises(WeightFileError, match="weight_ih_l0"):
        open_weights(path).load()


def test_a_header_without_tensors_has_no_lstm(tmp_path: Path) -> None:
    path = write(tmp_path / "w.safetensors", {})
    with pytest.raises(WeightFileError, match="no PyTorch nn.LSTM parameters"):
        open_weights(path).cells()
