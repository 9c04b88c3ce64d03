"""A stored (uncompressed) zip member as a read-only file, read in place: no copy of it in memory."""

from __future__ import annotations

import io
import mmap
import os
import struct
import zipfile
import zlib
from pathlib import Path
from typing import BinaryIO

_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature, ..., file name length, extra field length


class MemberFile(io.RawIOBase):
    """Bytes [start, start + size) of an open file, seekable, as if they were a file of their own."""

    def __init__(self, fh: BinaryIO, start: int, size: int) -> None:
        super().__init__()
        self._fh, self._start, self._size, self._pos = fh, start, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise ValueError(f"negative seek position {base + offset}")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        want = max(0, min(len(buffer), self._size - self._pos))
        if want == 0:
            return 0
        self._fh.seek(self._start + self._pos)
        got = self._fh.readinto(memoryview(buffer)[:want])  # type: ignore[attr-defined]
        self._pos += got
        return int(got)

    def close(self) -> None:
        if not self.closed:
            self._fh.close()
        super().close()


def stored_member(path: Path, info: zipfile.ZipInfo) -> MemberFile | None:
    """A stored member of the zip at `path`, its CRC-32 checked over the bytes in place; None when compressed.

    Raises zipfile.BadZipFile when the member's local header, extent or CRC-32 is wrong.
    """
    if info.compress_type != zipfile.ZIP_STORED:
        return None
    if info.compress_size != info.file_size:
        raise zipfile.BadZipFile(f"member {info.filename}: stored, but {info.compress_size} bytes for {info.file_size}")
    fh = path.open("rb")
    try:
        size = os.fstat(fh.fileno()).st_size
        fh.seek(info.header_offset)
        head = fh.read(_LOCAL_HEADER.size)
        if len(head) != _LOCAL_HEADER.size:
            raise zipfile.BadZipFile(f"member {info.filename}: local header past the end of the file")
        sig, name_len, extra_len = _LOCAL_HEADER.unpack(head)
        start = info.header_offset + _LOCAL_HEADER.size + name_len + extra_len
        if sig != b"PK\x03\x04" or start + info.file_size > size:
            raise zipfile.BadZipFile(f"member {info.filename}: bad local header or data past the end of the file")
        if info.file_size:
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mapped:  # zipfile would check it as it reads
                view = memoryview(mapped)[start : start + info.file_size]
                crc = zlib.crc32(view)
                view.release()
            if crc != info.CRC:
                raise zipfile.BadZipFile(f"bad CRC-32 for member {info.filename}")
        return MemberFile(fh, start, info.file_size)
    except BaseException:
        fh.close()
        raise
