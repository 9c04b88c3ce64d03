"""Atomic output: write to a temp file beside the target, check it, then rename over the target."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import BinaryIO

from lstmgen import guard
from lstmgen.errors import OutputError

# Temp files are named `.lstmgen-<pid>-<random>.tmp` (short, whatever the target's name length), so a
# later write in the same folder can recognise and remove those a killed process left (SIGKILL).
TEMP_PREFIX = ".lstmgen-"
TEMP_SUFFIX = ".tmp"
_live: set[Path] = set()  # temp files of this process, removed by cleanup() on SIGTERM/SIGINT/SIGHUP


def resolve(target: Path) -> Path:
    """The file a write to `target` lands in: a symlink is written through to its target."""
    target = Path(target)
    return Path(os.path.realpath(target)) if target.is_symlink() else target


def check_target(target: Path, inputs: Mapping[str, Path | str | None] | None = None) -> Path:
    """Fail early, with a clear message, if `target` cannot be an output file; returns its folder.

    `inputs` maps option names to the command's input files: the output may be none of them
    (same path after resolving links, or the same inode), since writing it would destroy the input.
    """
    real = resolve(target)
    parent = real.parent if str(real.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"output directory {parent} does not exist. Create it first (mkdir -p {parent}).")
    try:
        st = os.stat(real)
    except OSError:
        st = None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise OutputError(f"output path {target} is a directory; pass a file name such as {target}/model.tflite.")
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise OutputError(
            f"output path {target} is not a regular file (a device, FIFO or socket); lstmgen writes only regular "
            "files. Choose another output path."
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"output directory {parent} is not writable. Choose another -o path or fix permissions.")
    if st is not None:
        for option, path in (inputs or {}).items():
            if path is not None and _same_file(st, real, Path(path)):
                raise OutputError(
                    f"output path {target} is the input {option} {path}; writing it would destroy the input. "
                    "Choose another output path."
                )
    return parent


def refuse_same(outputs: Mapping[str, Path | str | None]) -> None:
    """Two outputs of one command may not be the same file (the second would replace the first)."""
    seen: dict[str, str] = {}
    for option, path in outputs.items():
        if path is None:
            continue
        key = os.path.realpath(path)
        if key in seen:
            raise OutputError(f"{option} {path} is the same file as {seen[key]}; give each output its own path.")
        seen[key] = f"{option} {path}"


def _same_file(st: os.stat_result, real: Path, other: Path) -> bool:
    try:
        ost = os.stat(other)
    except OSError:
        return False
    return (st.st_dev, st.st_ino) == (ost.st_dev, ost.st_ino) or os.path.realpath(other) == os.path.realpath(real)


def remove_stale(parent: Path) -> None:
    """Remove temp files that killed lstmgen processes left in `parent` (the PID in their name is gone).

    A live PID (this process, or another lstmgen writing beside us) keeps its file, whatever its age.
    """
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return
    for entry in entries:
        name = entry.name
        if not (name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX)):
            continue
        pid = name[len(TEMP_PREFIX) :].split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid() or _alive(int(pid)):
            continue
        with contextlib.suppress(OSError):
            if entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def cleanup() -> None:
    """Remove this process's temp files (called from the signal handlers before exiting)."""
    for tmp in list(_live):
        with contextlib.suppress(OSError):
            tmp.unlink()
        _live.discard(tmp)


@contextlib.contextmanager
def _temp_beside(real: Path) -> Iterator[Path]:
    parent = real.parent if str(real.parent) else Path(".")
    remove_stale(parent)
    tmp = parent / f"{TEMP_PREFIX}{os.getpid()}-{os.urandom(4).hex()}{TEMP_SUFFIX}"
    _live.add(tmp)
    guard.mark_own(tmp)  # verifying it needs no crash probe: lstmgen built every record in it
    try:
        yield tmp
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        _live.discard(tmp)
        guard.mark_own(tmp, False)


def write_atomic(
    target: Path,
    data: memoryview | bytes | Callable[[BinaryIO], None],
    check: Callable[[Path], None] | None = None,
    *,
    inputs: Mapping[str, Path | str | None],
) -> None:
    """Write `data` (bytes, or a function writing them to a file) to `target`, never visibly partial or unchecked.

    `check(temp_path)` runs on the complete temp file before the rename; if it raises, nothing
    is left behind and an existing target is untouched. Overwrites like a compiler does, through a
    symlink to its target and keeping an existing file's permissions (a 0600 file stays 0600).
    `inputs` (required, so no caller can forget it) names the files the command read: the one shared
    guard against an output that is an input (same path, a symlink to it, or a hard link).
    """
    target = Path(target)
    check_target(target, inputs)
    real = resolve(target)
    try:
        mode: int | None = stat.S_IMODE(os.stat(real).st_mode)
    except OSError:
        mode = None
    with _temp_beside(real) as tmp:
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if mode is not None else 0o666)
        except OSError as exc:
            raise OutputError(
                f"cannot write {target}: {exc.strerror} in {tmp.parent}. Choose a writable output directory."
            ) from None
        try:
            with os.fdopen(fd, "wb") as fh:
                if mode is not None:
                    os.fchmod(fh.fileno(), mode)  # the replaced file's permissions, not the umask's
                if callable(data):
                    data(fh)
                else:
                    fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())  # the rename must not expose a file whose data is not on disk
        except OSError as exc:
            raise OutputError(f"cannot write {target}: {exc.strerror}.") from None
        if check is not None:
            check(tmp)
        try:
            os.replace(tmp, real)
        except OSError as exc:
            raise OutputError(f"cannot replace {target}: {exc.strerror}.") from None
