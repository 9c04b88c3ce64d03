"""Atomic output: write to a temp file beside the target, check it, then rename over the target."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from lstmgen.errors import OutputError


def check_target(target: Path) -> Path:
    """Fail early, with a clear message, if `target` cannot be an output file; returns its folder."""
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"output directory {parent} does not exist. Create it first (mkdir -p {parent}).")
    if target.is_dir():
        raise OutputError(f"output path {target} is a directory; pass a file name such as {target}/model.tflite.")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"output directory {parent} is not writable. Choose another -o path or fix permissions.")
    return parent


@contextlib.contextmanager
def _temp_beside(target: Path) -> Iterator[Path]:
    parent = check_target(target)
    tmp = parent / f".{target.name}.{os.getpid()}.tmp"
    try:
        yield tmp
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_atomic(target: Path, data: memoryview | bytes, check: Callable[[Path], None] | None = None) -> None:
    """Write `data` to `target` so that no partial or unchecked file is ever visible there.

    `check(temp_path)` runs on the complete temp file before the rename; if it raises, nothing
    is left behind and an existing target is untouched. Overwrites like a compiler does.
    """
    target = Path(target)
    with _temp_beside(target) as tmp:
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # umask applies, as for cc -o
        except OSError as exc:
            raise OutputError(
                f"cannot write {target}: {exc.strerror} in {tmp.parent}. Choose a writable output directory."
            ) from None
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())  # the rename must not expose a file whose data is not on disk
        except OSError as exc:
            raise OutputError(f"cannot write {target}: {exc.strerror}.") from None
        if check is not None:
            check(tmp)
        try:
            os.replace(tmp, target)
        except OSError as exc:
            raise OutputError(f"cannot replace {target}: {exc.strerror}.") from None
