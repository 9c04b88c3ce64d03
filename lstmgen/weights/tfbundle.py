"""Read TensorFlow tensor-bundle checkpoints (.index + .data shards) using only NumPy."""

from __future__ import annotations

import io
import math
import os
import re
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from lstmgen import guard
from lstmgen.errors import WeightFileError

__all__ = ["Checkpoint", "list_variables", "read_variables", "resolve_prefix"]

# ---------------------------------------------------------------------------
# Format constants (TensorFlow's LevelDB-derived table + tensor bundle).
# ---------------------------------------------------------------------------

_TABLE_MAGIC = 0xDB4775248B80FB57
_FOOTER_LEN = 48  # two padded block handles (40 bytes) + 8-byte magic
_BLOCK_TRAILER_LEN = 5  # 1 byte compression type + 4 bytes masked crc32c
_NO_COMPRESSION = 0
_SNAPPY_COMPRESSION = 1
_BUNDLE_VERSION = 1  # kTensorBundleVersion: the format version this reader understands
_DATA_SHARD_RE = re.compile(r"^(?P<stem>.+)\.data-(?P<i>\d{5})-of-(?P<n>\d{5})$")
_CRC_VERIFY_LIMIT = 1 << 29  # skip crc on tensors > 512 MiB: the check would dominate load time

_FIX_RESAVE = (
    "Re-save the checkpoint with TensorFlow (tf.train.Checkpoint.write or tf.compat.v1.train.Saver) "
    "or copy all of its files again."
)

# TF DataType enum -> (name, stored NumPy dtype or None when not a plain numeric array).
_DTYPES: dict[int, tuple[str, np.dtype | None]] = {
    1: ("DT_FLOAT", np.dtype("<f4")),
    2: ("DT_DOUBLE", np.dtype("<f8")),
    3: ("DT_INT32", np.dtype("<i4")),
    4: ("DT_UINT8", np.dtype("u1")),
    5: ("DT_INT16", np.dtype("<i2")),
    6: ("DT_INT8", np.dtype("i1")),
    7: ("DT_STRING", None),
    8: ("DT_COMPLEX64", np.dtype("<c8")),
    9: ("DT_INT64", np.dtype("<i8")),
    10: ("DT_BOOL", np.dtype("?")),
    # Quantized types are stored as their plain integer representation.
    11: ("DT_QINT8", np.dtype("i1")),
    12: ("DT_QUINT8", np.dtype("u1")),
    13: ("DT_QINT32", np.dtype("<i4")),
    14: ("DT_BFLOAT16", np.dtype("<u2")),  # raw bits; widened to float32 on read
    15: ("DT_QINT16", np.dtype("<i2")),
    16: ("DT_QUINT16", np.dtype("<u2")),
    17: ("DT_UINT16", np.dtype("<u2")),
    18: ("DT_COMPLEX128", np.dtype("<c16")),
    19: ("DT_HALF", np.dtype("<f2")),
    20: ("DT_RESOURCE", None),
    21: ("DT_VARIANT", None),
    22: ("DT_UINT32", np.dtype("<u4")),
    23: ("DT_UINT64", np.dtype("<u8")),
    24: ("DT_FLOAT8_E5M2", None),
    25: ("DT_FLOAT8_E4M3FN", None),
    26: ("DT_FLOAT8_E4M3FNUZ", None),
    27: ("DT_FLOAT8_E4M3B11FNUZ", None),
    28: ("DT_FLOAT8_E5M2FNUZ", None),
    29: ("DT_INT4", None),
    30: ("DT_UINT4", None),
    31: ("DT_INT2", None),
    32: ("DT_UINT2", None),
}
_DT_BFLOAT16 = 14
_OBJECT = np.dtype(object)


def _dtype_name(enum: int) -> str:
    return _DTYPES.get(enum, (f"DataType enum {enum}", None))[0]


def _stored_dtype(enum: int) -> np.dtype | None:
    return _DTYPES.get(enum, ("", None))[1]


def _public_dtype(enum: int) -> np.dtype:
    """Dtype of the array read_variables returns (object for entries it cannot read)."""
    if enum == _DT_BFLOAT16:
        return np.dtype("<f4")
    stored = _stored_dtype(enum)
    return _OBJECT if stored is None else stored


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


class _Corrupt(Exception):
    """Internal: a structural problem found while decoding bytes; wrapped with the file name."""

    def __init__(self, expected: str, found: str) -> None:
        super().__init__(f"expected {expected}, found {found}")
        self.expected = expected
        self.found = found


def _error(file: Path | str, expected: str, found: str, fix: str) -> WeightFileError:
    return WeightFileError(f"{file}: expected {expected}, but found {found}. {fix}")


# ---------------------------------------------------------------------------
# CRC32C (Castagnoli), as used by TF for table blocks and tensor bytes.
# ---------------------------------------------------------------------------


def _make_crc_table() -> np.ndarray:
    table = np.zeros(256, dtype=np.uint32)
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ (0x82F63B78 if c & 1 else 0)
        table[i] = c
    return table


_CRC_TABLE_NP = _make_crc_table()
_CRC_TABLE: tuple[int, ...] = tuple(int(x) for x in _CRC_TABLE_NP)
_CRC_CHUNK = 4096  # lane length for the vectorised path (a multiple of 4: lanes are read as 32-bit words)
_zero_op_tables: tuple[tuple[int, ...], ...] | None = None
_word_op_tables: tuple[np.ndarray, np.ndarray] | None = None


def _crc_raw(state: int, data: bytes | bytearray | memoryview) -> int:
    """Plain byte-at-a-time register update (no init/final xor)."""
    table = _CRC_TABLE
    for b in bytes(data):
        state = table[(state ^ b) & 0xFF] ^ (state >> 8)
    return state


def _zero_operator() -> tuple[tuple[int, ...], ...]:
    """Byte-indexed tables for the linear map 'feed _CRC_CHUNK zero bytes' on the crc register."""
    global _zero_op_tables
    if _zero_op_tables is None:
        cols = np.left_shift(np.uint32(1), np.arange(32, dtype=np.uint32))
        for _ in range(_CRC_CHUNK):
            cols = _CRC_TABLE_NP[cols & 0xFF] ^ (cols >> 8)
        idx = np.arange(256)
        tables = []
        for k in range(4):
            t = np.zeros(256, dtype=np.uint32)
            for bit in range(8):
                t[(idx >> bit) & 1 == 1] ^= cols[8 * k + bit]
            tables.append(tuple(int(x) for x in t))
        _zero_op_tables = tuple(tables)
    return _zero_op_tables


def _word_tables() -> tuple[np.ndarray, np.ndarray]:
    """The register after four zero bytes, as a function of its low and of its high 16 bits (2 x 256 KiB).

    Feeding one little-endian 32-bit word w is then s' = low[(s ^ w) & 0xFFFF] ^ high[(s ^ w) >> 16]:
    two table reads per four bytes instead of four byte steps.
    """
    global _word_op_tables
    if _word_op_tables is None:
        low = np.arange(1 << 16, dtype=np.uint32)
        high = low << 16
        for _ in range(4):
            low = _CRC_TABLE_NP[low & 0xFF] ^ (low >> 8)
            high = _CRC_TABLE_NP[high & 0xFF] ^ (high >> 8)
        _word_op_tables = (low, high)
    return _word_op_tables


def _crc32c(data: bytes | bytearray | memoryview) -> int:
    """Standard crc32c. Large inputs run as many parallel NumPy lanes that are then combined.

    The crc register update is linear over GF(2), so crc(A||B) = Z_len(B)(state after A) ^ raw(B),
    which lets every 4 KiB lane be processed independently in one vectorised pass, a word at a time.
    """
    n = len(data)
    if n < 4 * _CRC_CHUNK:
        return _crc_raw(0xFFFFFFFF, data) ^ 0xFFFFFFFF
    head = n % _CRC_CHUNK
    state = _crc_raw(0xFFFFFFFF, memoryview(data)[:head])
    lanes = np.frombuffer(data, dtype="<u4", offset=head).reshape(-1, _CRC_CHUNK // 4)
    columns = np.ascontiguousarray(lanes.T)  # row i = word i of every lane; contiguous access
    lane_crc = np.zeros(lanes.shape[0], dtype=np.uint32)
    low, high = _word_tables()
    for row in columns:
        lane_crc ^= row
        lane_crc = low[lane_crc & 0xFFFF] ^ high[lane_crc >> 16]
    t0, t1, t2, t3 = _zero_operator()
    for c in lane_crc.tolist():
        state = t0[state & 0xFF] ^ t1[(state >> 8) & 0xFF] ^ t2[(state >> 16) & 0xFF] ^ t3[state >> 24] ^ c
    return state ^ 0xFFFFFFFF


def _mask_crc(crc: int) -> int:
    # TF/LevelDB store "masked" crcs so that crcs of data containing crcs stay well distributed.
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


# ---------------------------------------------------------------------------
# Varints and protobuf wire format
# ---------------------------------------------------------------------------


def _varint(buf: bytes, pos: int, end: int, what: str) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= end:
            raise _Corrupt(f"a complete varint for {what}", "the data ending in the middle of it")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise _Corrupt(f"a varint of at most 10 bytes for {what}", "a longer byte run (bad varint)")


def _signed64(v: int) -> int:
    v &= (1 << 64) - 1
    return v - (1 << 64) if v >= 1 << 63 else v


def _proto_fields(buf: bytes, what: str) -> Iterator[tuple[int, int, int | bytes]]:
    """Yield (field number, wire type, value) for a serialized protobuf message."""
    pos, end = 0, len(buf)
    while pos < end:
        tag, pos = _varint(buf, pos, end, f"a field tag in {what}")
        field, wire = tag >> 3, tag & 7
        if field == 0:
            raise _Corrupt(f"a valid protobuf field number in {what}", "field number 0")
        value: int | bytes
        if wire == 0:
            value, pos = _varint(buf, pos, end, f"field {field} of {what}")
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            if pos + width > end:
                raise _Corrupt(f"{width} bytes for field {field} of {what}", f"{end - pos} bytes left")
            value = int.from_bytes(buf[pos : pos + width], "little")
            pos += width
        elif wire == 2:
            length, pos = _varint(buf, pos, end, f"the length of field {field} of {what}")
            if pos + length > end:
                raise _Corrupt(f"{length} bytes for field {field} of {what}", f"{end - pos} bytes left")
            value = bytes(buf[pos : pos + length])
            pos += length
        else:
            raise _Corrupt(f"protobuf wire type 0, 1, 2 or 5 in {what}", f"wire type {wire}")
        yield field, wire, value


def _want(field: int, wire: int, value: int | bytes, expected_wire: int, what: str) -> int | bytes:
    if wire != expected_wire:
        raise _Corrupt(f"wire type {expected_wire} for field {field} of {what}", f"wire type {wire}")
    return value


def _want_int(field: int, wire: int, value: int | bytes, what: str) -> int:
    v = _want(field, wire, value, 0, what)
    assert isinstance(v, int)
    return v


def _want_bytes(field: int, wire: int, value: int | bytes, what: str) -> bytes:
    v = _want(field, wire, value, 2, what)
    assert isinstance(v, bytes)
    return v


# ---------------------------------------------------------------------------
# Bundle metadata
# ---------------------------------------------------------------------------

Extent = tuple[int, int]  # (start, length); length -1 means the whole dimension


@dataclass(frozen=True)
class _Header:
    num_shards: int
    big_endian: bool
    producer: int
    min_consumer: int
    bad_consumers: tuple[int, ...]


@dataclass(frozen=True)
class _Entry:
    key: bytes
    dtype: int
    shape: tuple[int, ...]
    shard_id: int
    offset: int
    size: int
    crc32c: int | None  # masked crc as stored; None when the field is absent
    slices: tuple[tuple[Extent, ...], ...]


def _parse_header(buf: bytes) -> _Header:
    what = "BundleHeaderProto"
    num_shards, endianness = 0, 0
    producer, min_consumer, bad = 0, 0, []
    for field, wire, value in _proto_fields(buf, what):
        if field == 1:
            num_shards = _signed64(_want_int(field, wire, value, what))
        elif field == 2:
            endianness = _want_int(field, wire, value, what)
        elif field == 3:
            for f2, w2, v2 in _proto_fields(_want_bytes(field, wire, value, what), "VersionDef"):
                if f2 == 1:
                    producer = _signed64(_want_int(f2, w2, v2, "VersionDef"))
                elif f2 == 2:
                    min_consumer = _signed64(_want_int(f2, w2, v2, "VersionDef"))
                elif f2 == 3 and w2 == 0:
                    bad.append(_signed64(_want_int(f2, w2, v2, "VersionDef")))
                elif f2 == 3:  # packed repeated int32
                    packed = _want_bytes(f2, w2, v2, "VersionDef")
                    pos = 0
                    while pos < len(packed):
                        v, pos = _varint(packed, pos, len(packed), "VersionDef.bad_consumers")
                        bad.append(_signed64(v))
    return _Header(num_shards, endianness == 1, producer, min_consumer, tuple(bad))


def _parse_shape(buf: bytes) -> tuple[int, ...]:
    what = "TensorShapeProto"
    dims: list[int] = []
    for field, wire, value in _proto_fields(buf, what):
        if field == 2:
            size = 0
            for f2, w2, v2 in _proto_fields(_want_bytes(field, wire, value, what), "TensorShapeProto.Dim"):
                if f2 == 1:
                    size = _signed64(_want_int(f2, w2, v2, "TensorShapeProto.Dim"))
            if size < 0:
                raise _Corrupt("non-negative dimension sizes in a saved tensor", f"dimension size {size}")
            dims.append(size)
        elif field == 3 and _want_int(field, wire, value, what):
            raise _Corrupt("a tensor shape of known rank", "unknown_rank set")
    return tuple(dims)


def _parse_slice(buf: bytes) -> tuple[Extent, ...]:
    what = "TensorSliceProto"
    extents: list[Extent] = []
    for field, wire, value in _proto_fields(buf, what):
        if field == 1:
            start, length = 0, -1  # an extent without 'length' covers the whole dimension
            for f2, w2, v2 in _proto_fields(_want_bytes(field, wire, value, what), "TensorSliceProto.Extent"):
                if f2 == 1:
                    start = _signed64(_want_int(f2, w2, v2, "TensorSliceProto.Extent"))
                elif f2 == 2:
                    length = _signed64(_want_int(f2, w2, v2, "TensorSliceProto.Extent"))
            extents.append((start, length))
    return tuple(extents)


def _parse_entry(key: bytes, buf: bytes) -> _Entry:
    what = "BundleEntryProto"
    dtype, shard_id, offset, size = 0, 0, 0, 0
    shape: tuple[int, ...] = ()
    crc: int | None = None
    slices: list[tuple[Extent, ...]] = []
    for field, wire, value in _proto_fields(buf, what):
        if field == 1:
            dtype = _want_int(field, wire, value, what)
        elif field == 2:
            shape = _parse_shape(_want_bytes(field, wire, value, what))
        elif field == 3:
            shard_id = _signed64(_want_int(field, wire, value, what))
        elif field == 4:
            offset = _signed64(_want_int(field, wire, value, what))
        elif field == 5:
            size = _signed64(_want_int(field, wire, value, what))
        elif field == 6:
            crc = int(_want(field, wire, value, 5, what))  # fixed32
        elif field == 7:
            slices.append(_parse_slice(_want_bytes(field, wire, value, what)))
    if dtype > 100:  # *_REF variants describe the same stored bytes as the base type
        dtype -= 100
    if offset < 0 or size < 0:
        raise _Corrupt("non-negative offset and size", f"offset {offset}, size {size}")
    return _Entry(key, dtype, shape, shard_id, offset, size, crc, tuple(slices))


# ---------------------------------------------------------------------------
# SSTable reading
# ---------------------------------------------------------------------------


def _block_handle(buf: bytes, pos: int, end: int, what: str) -> tuple[tuple[int, int], int]:
    offset, pos = _varint(buf, pos, end, f"the offset of {what}")
    size, pos = _varint(buf, pos, end, f"the size of {what}")
    return (offset, size), pos


def _read_block(data: bytes, handle: tuple[int, int], what: str) -> bytes:
    offset, size = handle
    end = offset + size + _BLOCK_TRAILER_LEN
    if end > len(data):
        raise _Corrupt(
            f"{what} at bytes {offset}..{end} (with its 5-byte trailer)",
            f"a file of only {len(data)} bytes (truncated?)",
        )
    contents = data[offset : offset + size]
    kind = data[offset + size]
    stored = int.from_bytes(data[offset + size + 1 : end], "little")
    actual = _mask_crc(_crc_raw(_crc_raw(0xFFFFFFFF, contents), bytes([kind])) ^ 0xFFFFFFFF)
    if stored != actual:
        raise _Corrupt(f"{what} checksum {stored:#010x}", f"{actual:#010x} (the block is corrupt)")
    if kind == _SNAPPY_COMPRESSION:
        # TF's BundleWriter and MergeBundles always write kNoCompression, so a compressed
        # block means this is not a file TF's tensor-bundle code produced.
        raise _Corrupt(
            f"an uncompressed {what} (TensorFlow's checkpoint writer never compresses)",
            "a snappy-compressed block, which this reader does not support",
        )
    if kind != _NO_COMPRESSION:
        raise _Corrupt(f"compression type 0 for {what}", f"unknown compression type {kind}")
    return contents


def _block_entries(block: bytes, what: str) -> Iterator[tuple[bytes, bytes]]:
    """Yield the (key, value) pairs of one table block, undoing prefix compression."""
    if len(block) < 4:
        raise _Corrupt(f"{what} of at least 4 bytes", f"{len(block)} bytes")
    num_restarts = int.from_bytes(block[-4:], "little")
    limit = len(block) - 4 - 4 * num_restarts
    if limit < 0 or num_restarts == 0:
        raise _Corrupt(f"a valid restart-point array in {what}", f"{num_restarts} restart points")
    restarts = struct.unpack_from(f"<{num_restarts}I", block, limit)
    if restarts[0] != 0 or any(r >= max(limit, 1) for r in restarts):
        raise _Corrupt(f"restart points inside the entries of {what}", f"restart offsets {restarts[:4]}...")
    pos, key = 0, b""
    while pos < limit:
        shared, pos = _varint(block, pos, limit, f"an entry header in {what}")
        unshared, pos = _varint(block, pos, limit, f"an entry header in {what}")
        vlen, pos = _varint(block, pos, limit, f"an entry header in {what}")
        if shared > len(key) or pos + unshared + vlen > limit:
            raise _Corrupt(f"entries that fit inside {what}", "an entry running past the block end")
        key = key[:shared] + block[pos : pos + unshared]
        pos += unshared
        yield key, block[pos : pos + vlen]
        pos += vlen


def _table_items(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    if len(data) < _FOOTER_LEN:
        raise _Corrupt(
            f"at least {_FOOTER_LEN} bytes (the table footer)", f"only {len(data)} bytes (truncated or not an index)"
        )
    magic = int.from_bytes(data[-8:], "little")
    if magic != _TABLE_MAGIC:
        raise _Corrupt(
            f"the table magic number {_TABLE_MAGIC:#018x} in the last 8 bytes",
            f"{magic:#018x} (the file is truncated or is not a checkpoint index)",
        )
    footer = data[-_FOOTER_LEN:-8]
    _, pos = _block_handle(footer, 0, len(footer), "the metaindex block handle")
    index_handle, _ = _block_handle(footer, pos, len(footer), "the index block handle")
    index_block = _read_block(data, index_handle, "the index block")
    for _, handle_bytes in _block_entries(index_block, "the index block"):
        handle, _ = _block_handle(handle_bytes, 0, len(handle_bytes), "a data block handle")
        block = _read_block(data, handle, f"the data block at offset {handle[0]}")
        yield from _block_entries(block, f"the data block at offset {handle[0]}")


# ---------------------------------------------------------------------------
# Bundle model
# ---------------------------------------------------------------------------


@dataclass
class _Bundle:
    prefix: Path
    index_path: Path
    header: _Header
    by_key: dict[bytes, _Entry]  # every table entry, including slice entries
    by_name: dict[str, _Entry]  # user-visible variables, sorted by name

    def shard_path(self, shard_id: int) -> Path:
        n = self.header.num_shards
        return self.prefix.with_name(f"{self.prefix.name}.data-{shard_id:05d}-of-{n:05d}")


def _load(path: Path) -> _Bundle:
    prefix = resolve_prefix(path)
    index_path = prefix.with_name(prefix.name + ".index")
    guard.regular_file(index_path, "checkpoint index", error=WeightFileError)  # no FIFO, no device
    try:
        data = index_path.read_bytes()
    except OSError as exc:
        raise _error(
            index_path, "a readable checkpoint index file", f"an OS error ({exc.strerror or exc})", _FIX_RESAVE
        ) from exc
    header: _Header | None = None
    by_key: dict[bytes, _Entry] = {}
    try:
        previous: bytes | None = None
        for key, value in _table_items(data):
            if previous is not None and key <= previous:
                raise _Corrupt("keys in strictly increasing order", f"{key!r} after {previous!r}")
            previous = key
            if key == b"":
                header = _parse_header(value)
            else:
                by_key[key] = _parse_entry(key, value)
    except _Corrupt as exc:
        raise _error(
            index_path, f"a valid TensorFlow checkpoint index ({exc.expected})", exc.found, _FIX_RESAVE
        ) from None
    except (struct.error, IndexError, ValueError, OverflowError) as exc:  # defensive: never leak raw errors
        raise _error(
            index_path, "a valid TensorFlow checkpoint index", f"undecodable bytes ({exc})", _FIX_RESAVE
        ) from None
    if header is None:
        raise _error(
            index_path,
            "a bundle header entry (empty key) first in the index",
            "no header; this may be a TF1 V1 checkpoint table or another LevelDB file",
            "Re-save the checkpoint in the V2 format (the default since TensorFlow 1.x Saver(write_version=V2)).",
        )
    if header.num_shards < 1:
        raise _error(index_path, "num_shards >= 1 in the bundle header", f"num_shards={header.num_shards}", _FIX_RESAVE)
    if header.min_consumer > _BUNDLE_VERSION or _BUNDLE_VERSION in header.bad_consumers:
        raise _error(
            index_path,
            f"a bundle readable by format version {_BUNDLE_VERSION}",
            f"producer {header.producer} requiring consumer >= {header.min_consumer} "
            f"(bad consumers {list(header.bad_consumers)})",
            "Re-save the checkpoint with an older TensorFlow, or update lstmgen.",
        )
    by_name: dict[str, _Entry] = {}
    for key in sorted(by_key):
        if key.startswith(b"\x00"):
            continue  # OrderedCode-encoded keys of partitioned-variable slices; not variables themselves
        entry = by_key[key]
        try:
            name = key.decode("utf-8")
        except UnicodeDecodeError:
            raise _error(index_path, "UTF-8 variable names", f"the undecodable key {key!r}", _FIX_RESAVE) from None
        by_name[name] = entry
    for key, entry in by_key.items():  # slice entries too: a bad id must not name a bogus shard file
        if entry.shard_id < 0 or entry.shard_id >= header.num_shards:
            raise _error(
                index_path,
                f"shard ids below num_shards={header.num_shards}",
                f"entry {key!r} in shard {entry.shard_id}",
                _FIX_RESAVE,
            )
    return _Bundle(prefix, index_path, header, by_key, dict(sorted(by_name.items())))


# ---------------------------------------------------------------------------
# Prefix resolution
# ---------------------------------------------------------------------------


def _c_unescape(text: str) -> str:
    """Undo the C-style escaping protobuf text format applies to string fields."""
    raw = text.encode("utf-8")
    out = bytearray()
    i = 0
    simple = {ord("n"): 10, ord("t"): 9, ord("r"): 13, ord('"'): 34, ord("'"): 39, ord("\\"): 92}
    while i < len(raw):
        c = raw[i]
        if c != 0x5C or i + 1 >= len(raw):
            out.append(c)
            i += 1
            continue
        n = raw[i + 1]
        if n in simple:
            out.append(simple[n])
            i += 2
        elif 0x30 <= n <= 0x37:
            j = i + 1
            while j < len(raw) and j < i + 4 and 0x30 <= raw[j] <= 0x37:
                j += 1
            out.append(int(raw[i + 1 : j], 8) & 0xFF)
            i = j
        elif n == ord("x"):
            j = i + 2
            while j < len(raw) and j < i + 4 and chr(raw[j]) in "0123456789abcdefABCDEF":
                j += 1
            out.append(int(raw[i + 2 : j] or b"0", 16) & 0xFF)
            i = j
        else:
            out.append(n)
            i += 2
    return out.decode("utf-8", errors="surrogateescape")


def _index_of(prefix: Path) -> Path:
    return prefix.with_name(prefix.name + ".index")


def _prefix_from_state_file(directory: Path, state_file: Path) -> Path | None:
    try:
        text = state_file.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    match = re.search(r'^\s*model_checkpoint_path\s*:\s*"((?:[^"\\]|\\.)*)"', text, re.MULTILINE)
    if not match:
        return None
    named = Path(_c_unescape(match.group(1)))
    candidate = named if named.is_absolute() else directory / named
    if _index_of(candidate).is_file():
        return candidate
    # Copied checkpoint directories often carry an absolute path from the original machine.
    local = directory / named.name
    if _index_of(local).is_file():
        return local
    raise _error(
        state_file,
        f"the checkpoint it names ({named}) to have an index file",
        f"no {_index_of(candidate).name} in {candidate.parent}",
        "Copy the missing checkpoint files into the directory, or pass the checkpoint prefix explicitly.",
    )


def _looks_like_table(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            if fh.tell() < _FOOTER_LEN:
                return False
            fh.seek(-8, os.SEEK_END)
            return int.from_bytes(fh.read(8), "little") == _TABLE_MAGIC
    except OSError:
        return False


def resolve_prefix(path: Path) -> Path:
    """Return the checkpoint prefix ('dir/model.ckpt') for a prefix, .index, .data-* shard or directory."""
    path = Path(path)
    if path.is_dir():
        state_file = path / "checkpoint"
        if state_file.is_file():
            prefix = _prefix_from_state_file(path, state_file)
            if prefix is not None:
                return prefix
        indexes = sorted(path.glob("*.index"))
        if len(indexes) == 1:
            return indexes[0].with_name(indexes[0].name[: -len(".index")])
        found = "no *.index file" if not indexes else f"{len(indexes)}: " + ", ".join(p.name for p in indexes)
        raise _error(
            path,
            "a directory holding exactly one TensorFlow checkpoint (one *.index file or a 'checkpoint' state file)",
            found,
            "Pass the checkpoint prefix (e.g. dir/model.ckpt) or its .index file instead of the directory.",
        )
    name = path.name
    if name.endswith(".index"):
        prefix = path.with_name(name[: -len(".index")])
    elif (m := _DATA_SHARD_RE.match(name)) is not None:
        prefix = path.with_name(m.group("stem"))
    else:
        prefix = path
    index = _index_of(prefix)
    if index.is_file():
        return prefix
    if path.is_file() and prefix == path:
        found = "a file without a matching .index file"
        fix = "Pass a checkpoint prefix, its .index or .data-* file, or the directory holding it."
        if _looks_like_table(path):
            found = "a single-file table, i.e. a TF1 V1-format checkpoint, which is not supported"
            fix = "Re-save it in the V2 format: tf.compat.v1.train.Saver(write_version=tf.compat.v1.train.SaverDef.V2)."
        raise _error(path, "a TensorFlow checkpoint (prefix with .index and .data-* files)", found, fix)
    raise _error(
        index,
        "the checkpoint index file for prefix " + str(prefix),
        "no such file",
        "Check the path; a TF checkpoint is written as <prefix>.index plus <prefix>.data-00000-of-0000N.",
    )


# ---------------------------------------------------------------------------
# Tensor data
# ---------------------------------------------------------------------------


class _Shards:
    """Opens data shards lazily and keeps them open for one Checkpoint.read call."""

    def __init__(self, bundle: _Bundle) -> None:
        self._bundle = bundle
        self._files: dict[int, tuple[io.BufferedReader, int]] = {}

    def get(self, shard_id: int) -> tuple[Path, io.BufferedReader, int]:
        path = self._bundle.shard_path(shard_id)
        if shard_id not in self._files:
            try:
                fh = path.open("rb")
            except OSError as exc:
                n = self._bundle.header.num_shards
                raise _error(
                    path,
                    f"data shard {shard_id} of {n} named by {self._bundle.index_path.name}",
                    "no such file" if isinstance(exc, FileNotFoundError) else f"an OS error ({exc.strerror or exc})",
                    "Copy every <prefix>.data-*-of-* file next to the .index file.",
                ) from exc
            self._files[shard_id] = (fh, os.fstat(fh.fileno()).st_size)
        fh, size = self._files[shard_id]
        return path, fh, size

    def close(self) -> None:
        for fh, _ in self._files.values():
            fh.close()
        self._files.clear()


def _read_plain(bundle: _Bundle, entry: _Entry, name: str, shards: _Shards) -> np.ndarray:
    stored = _stored_dtype(entry.dtype)
    if stored is None:
        raise _error(
            bundle.index_path,
            f"a numeric dtype for variable {name!r}",
            f"{_dtype_name(entry.dtype)}, which cannot be read as a NumPy weight array",
            "Request only weight variables (see list_variables); string, resource and variant entries hold "
            "checkpoint bookkeeping, not weights.",
        )
    count = math.prod(entry.shape)  # Python ints: no silent overflow on absurd shapes
    expected = count * stored.itemsize
    if entry.size != expected:
        raise _error(
            bundle.index_path,
            f"{expected} bytes for variable {name!r} ({_dtype_name(entry.dtype)}{list(entry.shape)})",
            f"an entry size of {entry.size} bytes",
            _FIX_RESAVE,
        )
    path, fh, file_size = shards.get(entry.shard_id)
    if entry.offset + entry.size > file_size:
        raise _error(
            path,
            f"bytes {entry.offset}..{entry.offset + entry.size} for variable {name!r}",
            f"a file of only {file_size} bytes (truncated)",
            _FIX_RESAVE,
        )
    buf = bytearray(entry.size)
    try:
        fh.seek(entry.offset)
        got = fh.readinto(buf)
    except OSError as exc:
        raise _error(path, f"readable bytes for variable {name!r}", f"an OS error ({exc})", _FIX_RESAVE) from exc
    if got != entry.size:
        raise _error(path, f"{entry.size} bytes for variable {name!r}", f"only {got} readable bytes", _FIX_RESAVE)
    if entry.crc32c is not None and entry.size <= _CRC_VERIFY_LIMIT:
        actual = _mask_crc(_crc32c(buf))
        if actual != entry.crc32c:
            raise _error(
                path,
                f"masked crc32c {entry.crc32c:#010x} for variable {name!r} "
                f"(bytes {entry.offset}..{entry.offset + entry.size})",
                f"{actual:#010x}; the data file is corrupt or belongs to another checkpoint",
                _FIX_RESAVE,
            )
    order: Literal[">", "<"] = ">" if bundle.header.big_endian else "<"
    arr = np.frombuffer(buf, dtype=stored.newbyteorder(order)).reshape(entry.shape)
    if bundle.header.big_endian and stored.itemsize > 1:
        arr = arr.astype(stored.newbyteorder("<"))
    if entry.dtype == _DT_BFLOAT16:
        arr = (arr.astype("<u4") << 16).view("<f4")  # bfloat16 is the top half of a float32: exact
    return arr


def _write_num_increasing(value: int) -> bytes:
    body = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return bytes([len(body)]) + body


def _write_signed_num_increasing(value: int) -> bytes:
    # OrderedCode signed encoding: n-byte two's complement with its n leading bits flipped.
    x = ~value if value < 0 else value
    n = max(1, -(-(x.bit_length() + 1) // 7))
    raw = value & ((1 << (8 * n)) - 1)
    header = ((1 << n) - 1) << (8 * n - n)
    return (raw ^ header).to_bytes(n, "big")


def _slice_key(name: bytes, extents: tuple[Extent, ...]) -> bytes:
    """The table key TF's EncodeTensorNameSlice gives one saved slice of a partitioned tensor."""
    parts = [_write_num_increasing(0), _escape_name(name), b"\x00\x01", _write_num_increasing(len(extents))]
    for start, length in extents:
        parts += [_write_signed_num_increasing(start), _write_signed_num_increasing(length)]
    return b"".join(parts)


def _escape_name(name: bytes) -> bytes:
    """OrderedCode string escaping: NUL -> 00 ff, 0xff -> ff 00 (keeps keys order-preserving)."""
    out = bytearray()
    for b in name:
        out += b"\x00\xff" if b == 0 else b"\xff\x00" if b == 0xFF else bytes([b])
    return bytes(out)


def _read_sliced(bundle: _Bundle, entry: _Entry, name: str, shards: _Shards) -> np.ndarray:
    public = _public_dtype(entry.dtype)
    if public == _OBJECT:
        _read_plain(bundle, entry, name, shards)  # raises the unsupported-dtype error
    # The full shape is declared, not stored: a few slices could declare terabytes (checked before allocating).
    guard.declared_bytes(entry.shape, public.itemsize + 1, f"{bundle.index_path}: partitioned variable {name!r}")
    full = np.zeros(entry.shape, dtype=public)
    covered = np.zeros(entry.shape, dtype=bool)
    for extents in entry.slices:
        if len(extents) != len(entry.shape):
            raise _error(
                bundle.index_path,
                f"slices of rank {len(entry.shape)} for partitioned variable {name!r}",
                f"a slice of rank {len(extents)}",
                _FIX_RESAVE,
            )
        index: list[slice] = []
        for (start, length), dim in zip(extents, entry.shape, strict=True):
            stop = dim if length < 0 else start + length
            if start < 0 or stop > dim or stop < start:
                raise _error(
                    bundle.index_path,
                    f"slice extents within shape {list(entry.shape)} for {name!r}",
                    f"extent start={start} length={length}",
                    _FIX_RESAVE,
                )
            index.append(slice(start, stop))
        # TF 2.21's Saver writes explicit (start, length) for every dim; TensorSlice::AsProto omits both for a
        # full extent, which decodes as (0, -1). EncodeTensorNameSlice's comment claims (-1, -1): try both.
        candidates = [_slice_key(entry.key, extents)]
        candidates.append(_slice_key(entry.key, tuple((-1, -1) if ln < 0 else (s, ln) for s, ln in extents)))
        part = next((bundle.by_key[k] for k in candidates if k in bundle.by_key), None)
        if part is None:
            raise _error(
                bundle.index_path,
                f"an entry for slice {extents} of partitioned variable {name!r}",
                "no such slice entry",
                _FIX_RESAVE,
            )
        if part.dtype != entry.dtype:
            raise _error(
                bundle.index_path,
                f"slice dtype {_dtype_name(entry.dtype)} for {name!r}",
                _dtype_name(part.dtype),
                _FIX_RESAVE,
            )
        values = _read_plain(bundle, part, f"{name} slice {extents}", shards)
        target = tuple(index)
        if values.shape != full[target].shape:
            raise _error(
                bundle.index_path,
                f"slice shape {full[target].shape} for {name!r}",
                f"{values.shape}",
                _FIX_RESAVE,
            )
        full[target] = values
        covered[target] = True
    if not covered.all():
        raise _error(
            bundle.index_path,
            f"saved slices covering all of partitioned variable {name!r}",
            f"{int((~covered).sum())} of {covered.size} elements missing",
            _FIX_RESAVE,
        )
    return full


# ---------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------


class Checkpoint:
    """One checkpoint: its index parsed once at open, variables read from the data shards only when asked for.

    Each `read` opens the shards it needs and closes them again, so an open Checkpoint holds no file.
    """

    def __init__(self, path: Path) -> None:
        self._bundle = _load(Path(path))

    @property
    def variables(self) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
        """What list_variables gives, from the parsed index."""
        return {name: (_public_dtype(e.dtype), e.shape) for name, e in self._bundle.by_name.items()}

    def read(self, names: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        """What read_variables gives, reading only the requested tensors' bytes."""
        bundle = self._bundle
        if names is None:
            wanted = [n for n, e in bundle.by_name.items() if _public_dtype(e.dtype) != _OBJECT]
        else:
            wanted = list(dict.fromkeys(names))
            missing = [n for n in wanted if n not in bundle.by_name]
            if missing:
                # TF2 object-based keys append "/.ATTRIBUTES/VARIABLE_VALUE": suggest those before fuzzy matches.
                import difflib

                hints = [n for n in bundle.by_name if n.startswith(missing[0].rstrip("/") + "/")][:3]
                hints = hints or difflib.get_close_matches(missing[0], list(bundle.by_name), n=3)
                hint = f" Close matches: {', '.join(hints)}." if hints else ""
                raise _error(
                    bundle.index_path,
                    f"variable(s) {', '.join(repr(m) for m in missing)}",
                    f"no such name among its {len(bundle.by_name)} variables",
                    f"Use list_variables() to see the available names.{hint}",
                )
        shards = _Shards(bundle)
        try:
            out: dict[str, np.ndarray] = {}
            for name in wanted:
                entry = bundle.by_name[name]
                try:
                    if entry.slices:
                        out[name] = _read_sliced(bundle, entry, name, shards)
                    else:
                        out[name] = _read_plain(bundle, entry, name, shards)
                except (ValueError, OverflowError, MemoryError) as exc:
                    if isinstance(exc, WeightFileError):
                        raise
                    raise _error(
                        bundle.index_path,
                        f"a decodable entry for variable {name!r}",
                        f"an inconsistent entry ({exc})",
                        _FIX_RESAVE,
                    ) from None
            return out
        finally:
            shards.close()

    def close(self) -> None:
        """Nothing to close (reads close their shards); drops the parsed index."""
        self._bundle.by_key.clear()
        self._bundle.by_name.clear()

    def __enter__(self) -> Checkpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def list_variables(path: Path) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
    """Map every variable name to (NumPy dtype read_variables returns, shape), sorted by name.

    Reads only the index file. String/resource/variant entries (e.g. TF2's
    _CHECKPOINTABLE_OBJECT_GRAPH) are listed with dtype object; bfloat16 is listed as float32,
    the exact widening read_variables applies. Partitioned variables appear once, under their
    full name and full shape.
    """
    with Checkpoint(path) as checkpoint:
        return checkpoint.variables


def read_variables(path: Path, names: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """Read variables as little-endian NumPy arrays, verifying entry sizes and crc32c checksums.

    With names=None every numeric variable is read (string/resource/variant bookkeeping entries are
    skipped); explicitly requesting such an entry raises WeightFileError. Only the requested tensors'
    bytes are read from the data shards.
    """
    with Checkpoint(path) as checkpoint:
        return checkpoint.read(names)
