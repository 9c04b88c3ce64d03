"""Lazy .npz arrays: the zip directory and .npy headers are read at open, each array is memory-mapped on use."""

from __future__ import annotations

import mmap
import struct
import tokenize  # numpy parses an .npy header with it: its TokenError is a damaged header
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lstmgen import guard
from lstmgen.errors import WeightFileError
from lstmgen.weights.library_errors import raised_in

_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature, ..., file name length, extra field length
# What zipfile raises for a member it cannot open: an unknown compression method (NotImplementedError), an
# encrypted member (RuntimeError); caught only where zipfile raised them (raised_in), so lstmgen's own stay bugs.
_ZIP_REFUSALS = (NotImplementedError, RuntimeError)
# `lstmgen export` records the op settings a weight layout cannot hold (activation, clips, layout) under this
# key, a JSON string, so that a default build of the exported file computes what the model did.
SETTINGS_KEY = "lstmgen_settings"
SETTINGS_TYPES: dict[str, type | tuple[type, ...]] = {
    "batch_size": int,
    "dynamic_batch": bool,
    "time_steps": int,
    "activation": str,
    "cell_clip": (int, float),
    "proj_clip": (int, float),
    "time_major": bool,
    "return_sequences": bool,
    "go_backwards": bool,
}
_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


@dataclass(frozen=True)
class _Member:
    info: zipfile.ZipInfo
    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool
    data_offset: int | None  # in the file, for stored (uncompressed) members; None: decompress on use


def _corrupt(path: Path, why: object) -> WeightFileError:
    return WeightFileError(f"weights file {path} is truncated or corrupt ({why}). Re-save it with numpy.savez.")


def _pickled(path: Path) -> WeightFileError:
    return WeightFileError(
        f"weights file {path} holds object arrays that need pickle to load; lstmgen never unpickles "
        "files (unpickling runs arbitrary code). Save plain numeric arrays with numpy.savez."
    )


class NpzArrays(Mapping[str, np.ndarray]):
    """The arrays of one .npz, like np.load(path) but lazy and without copies.

    Opening reads the zip directory and every member's .npy header (so a bad key, type or size fails
    before any data is touched). A stored member is a read-only view into one memory map of the file:
    reading it costs page faults, not a copy, and `release()` drops the pages touched so far (the view
    stays valid). Compressed members (np.savez_compressed) are decompressed on first use.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        guard.regular_file(path, "weights file", error=WeightFileError)  # a FIFO would block, a device never end
        self._check_head()
        self._members: dict[str, _Member] = {}
        self._views: dict[str, np.ndarray] = {}
        self.settings: dict[str, object] = {}  # what lstmgen export recorded (SETTINGS_KEY), else empty
        opened: zipfile.ZipFile | None = None
        try:
            with path.open("rb") as fh:
                self._map = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
            self._zip = opened = zipfile.ZipFile(path)
            self._scan()
            if SETTINGS_KEY in self._members:
                self.settings = self._settings(self._members.pop(SETTINGS_KEY))
        except BaseException as exc:
            if opened is not None:  # no handle outlives a refused file
                opened.close()
            broken = (zipfile.BadZipFile, EOFError, OSError, ValueError, struct.error, tokenize.TokenError)
            refused = isinstance(exc, _ZIP_REFUSALS) and raised_in(exc, "zipfile")
            # numpy reads a damaged header's dtype through ast.literal_eval, which raises SyntaxError
            refused = refused or (isinstance(exc, SyntaxError) and raised_in(exc, "ast"))
            if (isinstance(exc, broken) or refused) and not isinstance(exc, WeightFileError):
                raise _corrupt(path, exc) from None
            raise

    def _check_head(self) -> None:
        path = self.path
        try:
            with path.open("rb") as fh:
                head = fh.read(4)
        except FileNotFoundError:
            raise WeightFileError(f"weights file {path} does not exist. Check the --weights path.") from None
        except OSError as exc:
            raise WeightFileError(f"weights file {path} cannot be read ({exc.strerror}).") from None
        if head == b"PK\x05\x06":  # a zip with no members: np.savez(path) with no arrays
            raise WeightFileError(
                f"weights file {path} is an empty .npz (it holds no arrays). Save the weights into it."
            )
        if head != b"PK\x03\x04":
            raise WeightFileError(
                f"weights file {path} is not an .npz archive (expected a zip file, found {head!r} at the start). "
                "Save the weights with numpy.savez(path, name=array, ...)."
            )

    def _scan(self) -> None:
        infos = self._zip.infolist()
        names = (i.filename[:-4] if i.filename.endswith(".npy") else i.filename for i in infos)
        guard.unique(names, f"weights file {self.path}")  # linear, and a bounded message
        total = 0
        seen: dict[str, int] = {}
        for info in infos:
            name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            seen[name] = seen.get(name, 0) + 1
            if seen[name] == 1:
                self._members[name] = self._member(info)
                total += info.file_size  # declared sizes, before any member is decompressed
                guard.check_budget(total, f"weights file {self.path} (all members)")
        dupes = sorted(n for n, count in seen.items() if count > 1)
        if dupes:
            raise WeightFileError(
                f"weights file {self.path} holds the key(s) {', '.join(dupes)} more than once, so it is ambiguous "
                "which array to use. Re-save it with each key once."
            )

    def _settings(self, m: _Member) -> dict[str, object]:
        """The op settings lstmgen export recorded: a JSON object of SETTINGS_TYPES' keys and types."""
        import json

        value = self._load(m) if m.dtype.kind == "U" and m.shape == () and m.info.file_size < 4096 else None
        try:
            doc = json.loads(str(value)) if value is not None else None
        except (ValueError, RecursionError):
            doc = None
        bad = not isinstance(doc, dict) or any(
            k not in SETTINGS_TYPES or not isinstance(v, SETTINGS_TYPES[k]) for k, v in doc.items()
        )
        if bad or not isinstance(doc, dict):
            raise WeightFileError(
                f"weights file {self.path}: '{SETTINGS_KEY}' is not the op settings lstmgen export writes (a JSON "
                f"object of {', '.join(SETTINGS_TYPES)}). Remove the key, or export the model again."
            )
        return doc

    def _member(self, info: zipfile.ZipInfo) -> _Member:
        with self._zip.open(info) as fh:
            version = np.lib.format.read_magic(fh)
            reader = _HEADER_READERS.get(version)
            if reader is None:
                raise ValueError(f"member {info.filename}: .npy format version {version} is not read by lstmgen")
            shape, fortran_order, dtype = reader(fh)
            header_size = fh.tell()
        if dtype.hasobject:
            raise _pickled(self.path)
        nbytes = guard.declared_bytes(shape, dtype.itemsize, f"weights file {self.path}, member {info.filename!r},")
        if header_size + nbytes != info.file_size:
            found = info.file_size - header_size
            raise ValueError(f"member {info.filename} holds {found} data bytes, expected {nbytes}")
        offset = None
        if info.compress_type == zipfile.ZIP_STORED:
            sig, name_len, extra_len = _LOCAL_HEADER.unpack_from(self._map, info.header_offset)
            if sig != b"PK\x03\x04":
                raise ValueError(f"member {info.filename}: bad local header")
            offset = info.header_offset + _LOCAL_HEADER.size + name_len + extra_len + header_size
            if offset + nbytes > len(self._map):
                raise ValueError(f"member {info.filename} ends past the end of the file")
        return _Member(info, tuple(shape), dtype, fortran_order, offset)

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._views:
            self._views[name] = self._load(self._members[name])
        return self._views[name]

    def _load(self, m: _Member) -> np.ndarray:
        count = int(np.prod(m.shape, dtype=np.int64))
        if m.data_offset is None:
            try:
                with self._zip.open(m.info) as fh:  # zipfile checks the CRC as it decompresses
                    return np.lib.format.read_array(fh, allow_pickle=False)
            except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
                raise _corrupt(self.path, exc) from None
            except _ZIP_REFUSALS as exc:
                if not raised_in(exc, "zipfile"):
                    raise
                raise _corrupt(self.path, exc) from None
        start = m.data_offset - (m.info.file_size - count * m.dtype.itemsize)
        if zlib.crc32(memoryview(self._map)[start : m.data_offset + count * m.dtype.itemsize]) != m.info.CRC:
            raise _corrupt(self.path, f"bad CRC-32 for member {m.info.filename}")
        flat = np.frombuffer(self._map, dtype=m.dtype, count=count, offset=m.data_offset)
        return flat.reshape(m.shape, order="F" if m.fortran_order else "C")

    def release(self) -> None:
        """Drop the file pages read so far from this process's memory; they are read again if used again."""
        self._map.madvise(mmap.MADV_DONTNEED)

    def close(self) -> None:
        """Close the zip; the memory map goes when the last array viewing it does."""
        self._zip.close()

    def shape(self, name: str) -> tuple[int, ...]:
        """An array's shape without touching its data."""
        return self._members[name].shape

    def __iter__(self) -> Iterator[str]:
        return iter(self._members)

    def __len__(self) -> int:
        return len(self._members)

    def __contains__(self, name: object) -> bool:
        return name in self._members
