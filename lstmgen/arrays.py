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


def real_values(arr: np.ndarray, what: str, path: Path) -> np.ndarray:
    """The array if it holds finite real numbers; else one paragraph naming the first bad element (a NaN
    input made verify report a right model as failing, a complex one was cast with its imaginary part lost)."""
    if arr.dtype.kind not in "biuf":
        raise LstmgenError(
            f"{what} {path} holds {arr.dtype} values; expected real numbers (float32, or any float/int type). "
            "Save the data as numpy.float32."
        )
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr)
        if bad.any():
            first = [int(i) for i in np.argwhere(bad)[0]]
            raise LstmgenError(
                f"{what} {path} contains {int(bad.sum())} NaN/Inf value(s), the first at index {first}. An LSTM's "
                "outputs from them say nothing about the model; clean or drop those samples."
            )
    return arr
