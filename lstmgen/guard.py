"""Hostile-input guards: regular files only, capped reads, declared sizes checked before reading, contained HDF5,
and parsers that may crash or loop first run in a forked child."""

from __future__ import annotations

import contextlib
import faulthandler
import math
import os
import signal
import stat
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from lstmgen.errors import LstmgenError, WeightFileError

if TYPE_CHECKING:
    import zipfile

    import numpy as np

# The model-size limit (a flatbuffer cannot exceed 2 GiB): no input may make lstmgen hold more
# than this in arrays it reads. `--max-weights-bytes` lowers it for one command.
MODEL_SIZE_LIMIT = 2**31 - 1
_limit: ContextVar[int] = ContextVar("lstmgen_max_bytes", default=MODEL_SIZE_LIMIT)
TEXT_LIMIT = 16 * 2**20  # config files, JSON documents inside containers

# st_mode kind -> what to call it in the message.
_KINDS: tuple[tuple[Any, str], ...] = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a directory"),
)


_own: set[str] = set()  # files this process is writing (temp files of lstmgen.output), by real path


def mark_own(path: Path | str, own: bool = True) -> None:
    """Record (or forget) a file this process is writing: its checks ran on records lstmgen built itself."""
    key = os.path.realpath(path)
    if own:
        _own.add(key)
    else:
        _own.discard(key)


def is_own(path: Path | str) -> bool:
    return os.path.realpath(path) in _own


def max_bytes() -> int:
    """The byte budget of the current command (MODEL_SIZE_LIMIT unless --max-weights-bytes lowers it)."""
    return _limit.get()


@contextlib.contextmanager
def byte_limit(limit: int | None) -> Iterator[None]:
    """Run a block with `limit` as the byte budget (None: the model-size limit)."""
    token = _limit.set(min(limit, MODEL_SIZE_LIMIT) if limit is not None else MODEL_SIZE_LIMIT)
    try:
        yield
    finally:
        _limit.reset(token)


def _gib(n: int) -> str:
    return f"{n} bytes ({n / 2**30:.3g} GiB)"


def kind_of(mode: int) -> str | None:
    """What a non-regular file is ('a FIFO (named pipe)', ...), None for a regular file."""
    return next((name for test, name in _KINDS if test(mode)), None)


def regular_file(path: Path | str, what: str, dir_ok: bool = False, error: type[LstmgenError] = LstmgenError) -> int:
    """Refuse a missing path or a FIFO/device/socket (and a directory unless `dir_ok`) up front; returns its size.

    Reading a FIFO blocks forever and a device such as /dev/zero never ends, so neither is opened.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise error(f"{what} {path} does not exist (cannot be read). Check the path.") from None
    except OSError as exc:
        raise error(f"{what} {path} cannot be read ({exc.strerror}).") from None
    kind = kind_of(st.st_mode)
    if kind is not None and not (dir_ok and stat.S_ISDIR(st.st_mode)):
        raise error(f"{what} {path} is {kind}, not a regular file. Pass a file saved on disk.")
    return int(st.st_size)


def read_capped(
    path: Path | str, what: str, limit: int = TEXT_LIMIT, error: type[LstmgenError] = LstmgenError
) -> bytes:
    """The bytes of a regular file of at most `limit` bytes (checked before and while reading)."""
    size = regular_file(path, what, error=error)
    if size > limit:
        raise error(f"{what} {path} is {size} bytes; the limit is {limit}. Pass the right file.")
    try:
        with open(path, "rb") as fh:
            data = fh.read(size + 1)  # the stat'ed size (not the limit): no buffer larger than the file
    except OSError as exc:
        raise error(f"{what} {path} cannot be read ({exc.strerror}).") from None
    if len(data) > size:  # the file grew while we read it
        raise error(f"{what} {path} grew while it was read; pass a file that is not being written.")
    return data


def declared_bytes(shape: Iterable[int], itemsize: int, what: str, error: type[LstmgenError] = WeightFileError) -> int:
    """Bytes an array of `shape` needs, refused before any allocation when negative or over the budget."""
    dims = [int(d) for d in shape]
    if any(d < 0 for d in dims):
        raise error(f"{what} declares the shape {dims}, with a negative dimension (corrupt file).")
    n = math.prod(dims) * int(itemsize)  # Python ints: no overflow
    check_budget(n, what, error)
    return n


def check_budget(n: int, what: str, error: type[LstmgenError] = WeightFileError) -> None:
    limit = max_bytes()
    if n > limit:
        raise error(
            f"{what} declares {_gib(n)} of array data, over the limit of {_gib(limit)} "
            "(the 2 GiB model-size limit, or --max-weights-bytes). Refused before reading; "
            "the file is corrupt or crafted, or pass a higher --max-weights-bytes."
        )


def unique(names: Iterable[str], what: str, error: type[LstmgenError] = WeightFileError) -> None:
    """Refuse repeated names in linear time, naming at most five of them."""
    seen: set[str] = set()
    dupes: dict[str, None] = {}
    for name in names:
        if name in seen:
            dupes[name] = None
        seen.add(name)
    if dupes:
        more = f" (and {len(dupes) - 5} more)" if len(dupes) > 5 else ""
        shown = ", ".join(d[:80] for d in list(dupes)[:5]) + more
        raise error(
            f"{what} holds the key(s) {shown} more than once, so it is ambiguous which array to use. "
            "Re-save it with each key once."
        )


# ---------------------------------------------------------------------------------- npy / npz


def npy_header(
    fh: IO[bytes], what: str, error: type[LstmgenError] = WeightFileError
) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from an .npy header (the stream is left after it); object dtypes are refused."""
    import tokenize  # numpy parses the header with it: a TokenError is a damaged header

    import numpy as np  # here, not at import: `lstmgen --help` loads this module without numpy

    fmt = np.lib.format
    try:
        version = fmt.read_magic(fh)
        reader = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}.get(version)
        if reader is None:  # 3.0: utf-8 field names, same layout as 2.0
            reader = fmt._read_array_header  # type: ignore[attr-defined]
            shape, _fortran, dtype = reader(fh, version)
        else:
            shape, _fortran, dtype = reader(fh)
    except (ValueError, OSError, EOFError, SyntaxError, TypeError, KeyError, tokenize.TokenError) as exc:
        raise error(f"{what} has no valid .npy header ({' '.join(str(exc).split())[:200]}).") from None
    if dtype.hasobject:
        raise error(
            f"{what} holds an object array, which needs pickle to load; lstmgen never unpickles "
            "(unpickling runs arbitrary code). Save plain numeric arrays."
        )
    return tuple(shape), dtype


def check_npy(path: Path | str, what: str, error: type[LstmgenError] = WeightFileError) -> None:
    """A plain .npy: declared size within the budget and within the file (no TiB headers)."""
    size = regular_file(path, what, error=error)
    with open(path, "rb") as fh:
        if fh.read(6) != b"\x93NUMPY":
            return  # not .npy (e.g. an .npz): numpy reports it
        fh.seek(0)
        shape, dtype = npy_header(fh, f"{what} {path}", error)
        need = declared_bytes(shape, dtype.itemsize, f"{what} {path}", error)
        if need > size - fh.tell():
            raise error(
                f"{what} {path} declares shape {list(shape)} {dtype} ({need} bytes) but holds only "
                f"{size - fh.tell()} bytes of data: it is truncated or corrupt. Save it again with numpy.save."
            )


def check_npz(path: Path | str, what: str, error: type[LstmgenError] = WeightFileError) -> None:
    """An .npz: unique keys (linear), and the declared sizes of all members within the budget before any is read."""
    import zipfile  # here: the CLI's error handling imports this module, and most runs open no zip

    total = 0
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        unique((i.filename[:-4] if i.filename.endswith(".npy") else i.filename for i in infos), f"{what} {path}", error)
        for info in infos:
            label = f"{what} {path}, member {info.filename[:80]!r},"
            total += info.file_size
            check_budget(total, f"{what} {path} (uncompressed members)", error)
            with zf.open(info) as fh:
                if fh.read(6) != b"\x93NUMPY":
                    continue  # numpy refuses it with its own message
            with zf.open(info) as fh:
                shape, dtype = npy_header(fh, label, error)
            total += declared_bytes(shape, dtype.itemsize, label, error) - info.file_size
            check_budget(max(total, 0), f"{what} {path} (all members)", error)


def zip_member_size(zf: zipfile.ZipFile, name: str, what: str, limit: int | None = None) -> zipfile.ZipInfo:
    """A zip member's entry, refused when its declared uncompressed size is over the limit (the budget)."""
    info = zf.getinfo(name)
    cap = max_bytes() if limit is None else limit
    if info.file_size > cap:
        raise WeightFileError(
            f"{what}: member {name} declares {_gib(info.file_size)} uncompressed, over the limit of {_gib(cap)} "
            "(a decompression bomb or a corrupt archive). Refused before reading."
        )
    return info


def zip_member(zf: zipfile.ZipFile, name: str, what: str, limit: int | None = None) -> bytes:
    """One zip member, its declared uncompressed size checked first and the read capped at it."""
    info = zip_member_size(zf, name, what, limit)
    with zf.open(info) as fh:  # ZipExtFile stops at file_size and checks the CRC
        return fh.read()


# ------------------------------------------------------------------------------------------ HDF5

# Filters HDF5 applies in-library (deflate, shuffle, fletcher32, szip, nbit, scaleoffset) and LZF
# (h5py's own); anything else would load a plugin.
_H5_FILTERS = frozenset({1, 2, 3, 4, 5, 6, 32000})


def h5_contained(h5: Any, where: str) -> None:
    """Refuse any HDF5 link or dataset whose bytes are not inside this file, before anything is read.

    External links, external raw storage and virtual datasets would make lstmgen copy other files
    (/etc/passwd, /proc/self/environ) into the model. Also refuses unknown filters (plugins) and a
    total declared dataset size over the budget (gzip bombs).
    """
    import h5py

    total = 0
    seen: set[Any] = set()
    stack = [("", h5)]
    while stack:
        prefix, group = stack.pop()
        for name in group:
            path = f"{prefix}/{name}"
            link = group.get(name, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                raise WeightFileError(
                    f"{where}: {path} is an external link to {link.filename}:{link.path}. lstmgen reads only a weight "
                    "file's own bytes and never follows links out of it; save the weights into the file itself."
                )
            if not isinstance(link, h5py.HardLink):
                continue  # soft links point inside the file, at objects the walk reaches by their hard link
            obj = group.get(name)
            if obj is None or obj.id in seen:  # hard links can form cycles
                continue
            seen.add(obj.id)
            if isinstance(obj, h5py.Group):
                stack.append((path, obj))
            elif isinstance(obj, h5py.Dataset):
                total += _h5_dataset(obj, path, where, h5py)
                check_budget(total, f"{where} (all datasets)")


def _h5_dataset(ds: Any, path: str, where: str, h5py: Any) -> int:
    plist = ds.id.get_create_plist()
    if plist.get_layout() == h5py.h5d.VIRTUAL:
        raise WeightFileError(
            f"{where}: dataset {path} is a virtual dataset (its data come from other files). lstmgen reads only "
            "a weight file's own bytes; save the weights as ordinary datasets."
        )
    if plist.get_external_count() > 0:
        name = plist.get_external(0)[0].decode(errors="replace")
        raise WeightFileError(
            f"{where}: dataset {path} keeps its data in the external file {name!r}. lstmgen reads only a weight "
            "file's own bytes; save the weights inside the file."
        )
    for i in range(plist.get_nfilters()):
        code = plist.get_filter(i)[0]
        if code not in _H5_FILTERS:
            raise WeightFileError(
                f"{where}: dataset {path} uses HDF5 filter {code}, which needs a plugin; lstmgen reads only "
                "uncompressed, gzip, lzf, szip or shuffle datasets. Save the weights with default settings."
            )
    shape = ds.shape or ()
    return declared_bytes(shape, ds.dtype.itemsize, f"{where}: dataset {path}")


# ------------------------------------------------------------------------------------------ child processes


def in_child(work: Callable[[], object], seconds: float) -> str:
    """Run `work()` in a forked child first: "ok", "raised" (it raised: the caller's own run reports it),
    "hung" (no end within `seconds`: killed) or the name of the signal that killed it ("SIGSEGV").
    "" where fork is unavailable or unsafe (not Linux): nothing ran. The child never returns into the
    caller and runs no atexit handlers; its output goes nowhere."""
    if not sys.platform.startswith("linux"):
        return ""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            faulthandler.disable()  # a crash here is the expected outcome, not news for the user's terminal
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            work()
        except BaseException:
            code = 3
        os._exit(code)
    deadline = time.monotonic() + seconds
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return "hung"
        time.sleep(0.002)
    if os.WIFSIGNALED(status):
        return signal.Signals(os.WTERMSIG(status)).name
    return "ok" if os.WEXITSTATUS(status) == 0 else "raised"
