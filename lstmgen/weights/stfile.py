"""safetensors files without the safetensors package: the JSON header parsed once, each tensor mapped on use."""

from __future__ import annotations

import json
import math
import mmap
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lstmgen import guard
from lstmgen.errors import WeightFileError

# The header-size limit of the safetensors package (its MAX_HEADER_SIZE): a larger one is refused unread.
MAX_HEADER = 100_000_000
# safetensors dtype -> (NumPy dtype as stored, or None when NumPy has none, item size in bytes).
# BF16 is read as its raw 16-bit words (the caller widens them); F8 types have no NumPy dtype.
DTYPES: dict[str, tuple[str | None, int]] = {
    "F64": ("<f8", 8),
    "F32": ("<f4", 4),
    "F16": ("<f2", 2),
    "BF16": ("<u2", 2),
    "I64": ("<i8", 8),
    "I32": ("<i4", 4),
    "I16": ("<i2", 2),
    "I8": ("i1", 1),
    "U64": ("<u8", 8),
    "U32": ("<u4", 4),
    "U16": ("<u2", 2),
    "U8": ("u1", 1),
    "BOOL": ("?", 1),
    "F8_E4M3": (None, 1),
    "F8_E5M2": (None, 1),
}


class Corrupt(ValueError):
    """The file breaks the safetensors format (the caller words the message)."""


@dataclass(frozen=True)
class Entry:
    dtype: str
    shape: tuple[int, ...]
    begin: int  # in the data section
    end: int


def _entry(key: str, info: object) -> Entry:
    if not isinstance(info, dict) or set(info) - {"dtype", "shape", "data_offsets"}:
        raise Corrupt(f"tensor '{key}': expected {{dtype, shape, data_offsets}}, found {str(info)[:80]}")
    dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
    if dtype not in DTYPES:
        raise Corrupt(f"tensor '{key}': unknown dtype {str(dtype)[:20]!r}")
    ints = (shape, offsets)
    if not all(isinstance(v, list) and all(type(d) is int and d >= 0 for d in v) for v in ints):
        raise Corrupt(f"tensor '{key}': shape and data_offsets must be lists of non-negative integers")
    assert isinstance(shape, list) and isinstance(offsets, list)
    if len(offsets) != 2 or offsets[0] > offsets[1]:
        raise Corrupt(f"tensor '{key}': data_offsets {offsets[:3]} is not [begin, end]")
    if math.prod(shape) * DTYPES[dtype][1] != offsets[1] - offsets[0]:
        raise Corrupt(f"tensor '{key}': {offsets[1] - offsets[0]} bytes for {dtype}{shape}")
    return Entry(dtype, tuple(shape), offsets[0], offsets[1])


class SafetensorsFile:
    """One .safetensors file: its header read and checked at open (as the safetensors package checks it),
    the file memory-mapped, each tensor a read-only view of its bytes made when asked for."""

    def __init__(self, path: Path) -> None:
        self.path = path
        size = guard.regular_file(path, "weights file", error=WeightFileError)
        with path.open("rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise Corrupt(f"a file of {len(head)} bytes has no header")
            (n,) = struct.unpack("<Q", head)
            if n > MAX_HEADER or 8 + n > size:
                raise Corrupt(f"header of {n} bytes in a file of {size}")
            header = fh.read(n)
            try:
                parsed = json.loads(header)
            except ValueError as exc:
                raise Corrupt(f"header is not JSON ({exc})") from None
            if not isinstance(parsed, dict):
                raise Corrupt("header is not a JSON object")
            self.map = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if size > 8 + n else None
        self.start = 8 + n
        self.entries = {k: _entry(k, v) for k, v in parsed.items() if k != "__metadata__"}
        end = 0
        for key, e in sorted(self.entries.items(), key=lambda kv: (kv[1].begin, kv[1].end)):
            if e.begin != end:
                raise Corrupt(f"tensor '{key}' starts at byte {e.begin} of the data, expected {end}")
            end = e.end
        if end != size - self.start:
            raise Corrupt(f"the tensors cover {end} bytes of data, the file holds {size - self.start}")

    def keys(self) -> list[str]:
        return list(self.entries)

    def dtype(self, key: str) -> str:
        return self.entries[key].dtype

    def get(self, key: str) -> np.ndarray:
        """A read-only view of one tensor (BF16 as raw uint16 words); its size is checked against the budget."""
        e = self.entries[key]
        stored, itemsize = DTYPES[e.dtype]
        guard.declared_bytes(e.shape, max(itemsize, 4), f"{self.path}: tensor '{key}'")
        if stored is None:
            raise Corrupt(f"NumPy has no {e.dtype} type")
        if self.map is None:  # every tensor is empty
            return np.zeros(e.shape, dtype=stored)
        count = math.prod(e.shape)
        return np.frombuffer(self.map, dtype=stored, count=count, offset=self.start + e.begin).reshape(e.shape)

    def release(self) -> bool:
        """Drop the file pages read so far (the views stay valid, read again on use); True: still open."""
        if self.map is not None:
            self.map.madvise(mmap.MADV_DONTNEED)
        return True
