"""A third-party parser's errors on a damaged file as bad input, without hiding lstmgen's own bugs."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from lstmgen.errors import WeightFileError


def raised_in(exc: BaseException, library: str) -> bool:
    """Whether `exc` was raised by `library`'s own code (its innermost frame), not by lstmgen calling it wrongly."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    module = r"[\\/]".join(map(re.escape, library.split(".")))
    pattern = rf"(^|[\\/]){module}([\\/]|\.py$)"  # h5py/h5o.pyx, .../zipfile.py, .../google/protobuf/...
    return tb is not None and re.search(pattern, tb.tb_frame.f_code.co_filename) is not None


@contextmanager
def parser_errors(library: str, errors: tuple[type[Exception], ...], what: str, advice: str) -> Iterator[None]:
    """`errors` that `library`'s parser raises on a damaged file become WeightFileError (exit 2).

    Only those raised inside the library: the same classes raised by lstmgen's own code pass through,
    as bugs (exit 70). Give only the classes the library is seen to raise on damaged files.
    """
    try:
        yield
    except errors as exc:
        if not raised_in(exc, library):
            raise
        detail = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        raise WeightFileError(f"{what} cannot be read: {library} reports {detail}. {advice}") from None
