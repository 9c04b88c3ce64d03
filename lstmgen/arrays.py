"""Safe loading of user-supplied .npy/.npz arrays (inputs, states, calibration data): never unpickles."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from lstmgen import guard
from lstmgen.errors import LstmgenError


def load_npy(path: Path, what: str) -> np.ndarray:
    """One .npy array; every failure is a one-paragraph LstmgenError naming `what` and the file."""
    guard.check_npy(path, what, LstmgenError)  # regular file, declared size within the file and the budget
    try:
        arr = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise LstmgenError(f"{what} {path} does not exist.") from None
    except (ValueError, OSError, EOFError) as exc:
        raise LstmgenError(
            f"{what} {path} is not a readable .npy array ({exc}); lstmgen never unpickles. Save it with numpy.save."
        ) from None
    if not isinstance(arr, np.ndarray):
        arr.close()
        raise LstmgenError(f"{what} {path} is an .npz archive; expected a single .npy array (numpy.save).")
    return arr


def load_npz(path: Path, what: str) -> dict[str, np.ndarray]:
    """All arrays of an .npz (no pickled objects)."""
    guard.regular_file(path, what)
    try:
        guard.check_npz(path, what, LstmgenError)  # unique keys, member sizes declared within the budget
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise LstmgenError(f"{what} {path} is a single array; expected an .npz (numpy.savez(path, name=array)).")
        with loaded as npz:
            return {k: npz[k] for k in npz.files}
    except FileNotFoundError:
        raise LstmgenError(f"{what} {path} does not exist.") from None
    except (ValueError, OSError, EOFError, AttributeError, zipfile.BadZipFile) as exc:
        raise LstmgenError(f"{what} {path} is not a readable .npz ({exc}); lstmgen never unpickles.") from None
