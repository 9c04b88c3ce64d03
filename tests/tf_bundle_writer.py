"""A test-only writer of TF checkpoint bundles (.index + .data), written independently of lstmgen's reader.

Bitwise CRC-32C, its own protobuf and ordered-code encoders: tests/test_tfbundle.py checks the reader
against it, and other tests use it to make checkpoints without TensorFlow.
"""

from __future__ import annotations

import itertools
import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# ---------------------------------------------------------------------------
# Test-only writer, written independently of the reader (bitwise crc, own encoders).
# ---------------------------------------------------------------------------

MAGIC = 0xDB4775248B80FB57
DT = {"float32": 1, "float64": 2, "int32": 3, "uint8": 4, "int16": 5, "int8": 6, "int64": 9, "bool": 10,
      "float16": 19, "uint16": 17, "complex64": 8}  # fmt: skip


def crc32c_bitwise(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


def masked(crc: int) -> int:
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def varint(v: int) -> bytes:
    v &= (1 << 64) - 1
    out = bytearray()
    while True:
        if v < 0x80:
            out.append(v)
            return bytes(out)
        out.append((v & 0x7F) | 0x80)
        v >>= 7


def pb_int(field_no: int, v: int) -> bytes:
    return varint(field_no << 3) + varint(v)


def pb_bytes(field_no: int, payload: bytes) -> bytes:
    return varint((field_no << 3) | 2) + varint(len(payload)) + payload


def pb_fixed32(field_no: int, v: int) -> bytes:
    return varint((field_no << 3) | 5) + struct.pack("<I", v)


def shape_proto(shape: tuple[int, ...]) -> bytes:
    return b"".join(pb_bytes(2, pb_int(1, d) if d else b"") for d in shape)


def header_proto(num_shards: int, big_endian: bool = False, min_consumer: int = 0) -> bytes:
    version = pb_int(1, 1) + (pb_int(2, min_consumer) if min_consumer else b"")
    return pb_int(1, num_shards) + (pb_int(2, 1) if big_endian else b"") + pb_bytes(3, version)


def entry_proto(dtype: int, shape: tuple[int, ...], shard: int, offset: int, size: int, crc: int | None,
                slices: list[list[tuple[int, int]]] | None = None) -> bytes:  # fmt: skip
    out = pb_int(1, dtype) + pb_bytes(2, shape_proto(shape))
    out += (pb_int(3, shard) if shard else b"") + (pb_int(4, offset) if offset else b"") + pb_int(5, size)
    if crc is not None:
        out += pb_fixed32(6, crc)
    for sl in slices or []:
        extents = b""
        for start, length in sl:
            ext = b"" if length < 0 else (pb_int(1, start) if start else b"") + pb_int(2, length)
            extents += pb_bytes(1, ext)
        out += pb_bytes(7, extents)
    return out


def ordered_signed(v: int) -> bytes:
    """OrderedCode::WriteSignedNumIncreasing, from its documented bit layout."""
    for n in range(1, 11):
        if -(1 << (7 * n - 1)) <= v < (1 << (7 * n - 1)):
            break
    bits = format(v & ((1 << (8 * n)) - 1), f"0{8 * n}b")
    flipped = "".join("1" if c == "0" else "0" for c in bits[:n]) + bits[n:]
    return int(flipped, 2).to_bytes(n, "big")


def slice_key(name: str | bytes, extents: list[tuple[int, int]]) -> bytes:
    raw = name.encode() if isinstance(name, str) else name
    escaped = re.sub(rb"[\x00\xff]", lambda m: b"\x00\xff" if m.group() == b"\x00" else b"\xff\x00", raw)
    key = b"\x00" + escaped + b"\x00\x01" + bytes([1, len(extents)])
    for start, length in extents:
        key += ordered_signed(start) + ordered_signed(length)
    return key


def build_block(items: list[tuple[bytes, bytes]], restart_interval: int) -> bytes:
    out, restarts, prev = bytearray(), [], b""
    for i, (k, v) in enumerate(items):
        shared = 0
        if i % restart_interval == 0:
            restarts.append(len(out))
        else:
            while shared < min(len(k), len(prev)) and k[shared] == prev[shared]:
                shared += 1
        out += varint(shared) + varint(len(k) - shared) + varint(len(v)) + k[shared:] + v
        prev = k
    restarts = restarts or [0]
    return bytes(out) + b"".join(struct.pack("<I", r) for r in restarts) + struct.pack("<I", len(restarts))


def write_table(path: Path, items: list[tuple[bytes, bytes]], block_size: int = 4096, restart_interval: int = 16,
                compression: int = 0) -> None:  # fmt: skip
    items = sorted(items)
    out = bytearray()

    def emit(block: bytes) -> bytes:
        handle = varint(len(out)) + varint(len(block))
        out.extend(
            block + bytes([compression]) + struct.pack("<I", masked(crc32c_bitwise(block + bytes([compression]))))
        )
        return handle

    index_items, pending = [], []
    for k, v in items:
        pending.append((k, v))
        if sum(len(a) + len(b) for a, b in pending) >= block_size:
            index_items.append((pending[-1][0], emit(build_block(pending, restart_interval))))
            pending = []
    if pending:
        index_items.append((pending[-1][0], emit(build_block(pending, restart_interval))))
    meta = emit(build_block([], 1))
    index = emit(build_block(index_items, 1))
    footer = (meta + index).ljust(40, b"\x00") + struct.pack("<Q", MAGIC)
    path.write_bytes(bytes(out) + footer)


@dataclass
class Bundle:
    prefix: Path
    values: dict[str, np.ndarray]
    offsets: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # name -> (shard, offset, size)

    def shard(self, i: int, n: int = 1) -> Path:
        return self.prefix.with_name(f"{self.prefix.name}.data-{i:05d}-of-{n:05d}")

    @property
    def index(self) -> Path:
        return self.prefix.with_name(self.prefix.name + ".index")


def write_bundle(prefix: Path, tensors: Mapping[str, np.ndarray], *, num_shards: int = 1, block_size: int = 4096,
                 restart_interval: int = 16, partitioned: Mapping[str, tuple[np.ndarray, int]] | None = None,
                 strings: Mapping[str, bytes] | None = None, extra: list[tuple[bytes, bytes]] | None = None,
                 big_endian: bool = False, compression: int = 0) -> Bundle:  # fmt: skip
    """Write prefix.index + data shards the way TF's BundleWriter lays them out."""
    prefix.parent.mkdir(parents=True, exist_ok=True)
    shards = [bytearray() for _ in range(num_shards)]
    items: list[tuple[bytes, bytes]] = [(b"", header_proto(num_shards, big_endian))]
    bundle = Bundle(prefix, {})

    def put(key: bytes, arr: np.ndarray, shard: int) -> None:
        raw = arr.astype(arr.dtype.newbyteorder(">" if big_endian else "<")).tobytes()
        off = len(shards[shard])
        shards[shard] += raw
        items.append(
            (key, entry_proto(DT[arr.dtype.name], arr.shape, shard, off, len(raw), masked(crc32c_bitwise(raw))))
        )
        if not key.startswith(b"\x00"):
            bundle.offsets[key.decode()] = (shard, off, len(raw))

    for i, (name, arr) in enumerate(tensors.items()):
        put(name.encode(), np.asarray(arr), i % num_shards)
        bundle.values[name] = np.asarray(arr)
    for name, (arr, parts) in (partitioned or {}).items():
        bounds = np.linspace(0, arr.shape[0], parts + 1).astype(int)
        slices = [[(int(a), int(b - a))] + [(0, -1)] * (arr.ndim - 1) for a, b in itertools.pairwise(bounds)]
        items.append((name.encode(), entry_proto(DT[arr.dtype.name], arr.shape, 0, 0, 0, None, slices)))
        for sl in slices:
            put(slice_key(name, sl), arr[sl[0][0] : sl[0][0] + sl[0][1]], 0)
        bundle.values[name] = arr
    for name, payload in (strings or {}).items():
        raw = varint(len(payload)) + struct.pack("<I", 0) + payload
        off = len(shards[0])
        shards[0] += raw
        items.append((name.encode(), entry_proto(7, (), 0, off, len(raw), masked(crc32c_bitwise(raw)))))
    items += extra or []
    write_table(bundle.index, items, block_size, restart_interval, compression)
    for i, data in enumerate(shards):
        bundle.shard(i, num_shards).write_bytes(bytes(data))
    return bundle
