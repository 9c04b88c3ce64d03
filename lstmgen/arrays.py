"""Safe loading of user-supplied .npy/.npz arrays (inputs, states, calibration data): never unpickles."""

from __future__ import annotations

import zipfile
from collections.abc import Mapping, Sequence
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
    require_finite(arr, f"{what} {path}")
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
            arrays = {k: npz[k] for k in npz.files}
    except FileNotFoundError:
        raise LstmgenError(f"{what} {path} does not exist.") from None
    except (ValueError, OSError, EOFError, AttributeError, zipfile.BadZipFile) as exc:
        raise LstmgenError(f"{what} {path} is not a readable .npz ({exc}); lstmgen never unpickles.") from None
    for key, arr in arrays.items():
        require_finite(arr, f"{what} {path}, array {key!r},")
    return arrays


def free_shape(shape: Sequence[int], signature: Sequence[int] | None, time_major: bool) -> str:
    """A model input's shape as users read it: free axes by name, '[1, T, 16] (T free)', not a placeholder 1."""
    sig = list(signature) if signature else list(shape)
    names = ("T", "B", "I") if time_major else ("B", "T", "I")
    dims = [names[k] if s == -1 and k < 3 else str(d) for k, (d, s) in enumerate(zip(shape, sig, strict=True))]
    free = [names[k] for k, s in enumerate(sig) if s == -1 and k < 3]
    return f"[{', '.join(dims)}]" + (f" ({' and '.join(free)} free)" if free else "")


def looks_transposed(shape: Sequence[int], model_shape: Sequence[int], signature: Sequence[int] | None,
                     time_major: bool) -> bool:  # fmt: skip
    """Data [a, b, I] for a model with a fixed batch B: b == B != a reads as the other layout ([T,B,I] data for a
    batch-major model, or [B,T,I] data for a time-major one): the time steps would be taken as rows."""
    sig = list(signature) if signature else list(model_shape)
    b_axis = 1 if time_major else 0
    if len(shape) != 3 or len(model_shape) != 3 or sig[b_axis] == -1:
        return False
    batch, other = model_shape[b_axis], 1 - b_axis
    return shape[b_axis] != batch and shape[other] == batch and sig[other] in (-1, shape[b_axis])


def either_layout(shape: Sequence[int], model_shape: Sequence[int], signature: Sequence[int] | None,
                  time_major: bool) -> bool:  # fmt: skip
    """Data [a, b, I] whose batch a the model's fixed batch refuses, and that reads as well in the other layout
    (a steps of b rows): the batch error must not advise --dynamic-batch alone."""
    sig = list(signature) if signature else list(model_shape)
    b_axis = 1 if time_major else 0
    if len(shape) != 3 or len(model_shape) != 3 or sig[b_axis] == -1:
        return False
    other = 1 - b_axis
    return shape[b_axis] != model_shape[b_axis] and sig[other] in (-1, shape[b_axis])


def layout_hint(label: str, shape: Sequence[int], model_shape: Sequence[int], signature: Sequence[int] | None,
                time_major: bool) -> str:  # fmt: skip
    """Why data of the other layout does not fit, and the way forward (--time-major / --batch-major)."""
    want = free_shape(model_shape, signature, time_major)
    if not looks_transposed(shape, model_shape, signature, time_major):  # either reading: say both ways out
        b_axis = 1 if time_major else 0
        flag, mine, theirs = (
            ("--batch-major", "time-major [T, B, I]", "batch-major [B, T, I]")
            if time_major
            else (
                "--time-major",
                "batch-major [B, T, I]",
                "time-major [T, B, I] (nn.LSTM's default, batch_first=False)",
            )
        )
        return (
            f"{label} has shape {list(shape)}, but the model is {mine} = {want}, with a fixed batch of "
            f"{model_shape[b_axis]}. If the data are {theirs}, rebuild the model with {flag} (or transpose the data: "
            f"x.transpose(1, 0, 2)); if they are a batch of {shape[b_axis]}, rebuild it with --dynamic-batch (or "
            f"--batch-size {shape[b_axis]})."
        )
    if time_major:
        return (
            f"{label} has shape {list(shape)}, but the model is time-major [T, B, I] = {want}. The data look "
            f"batch-major [B, T, I] (B = {shape[0]}): rebuild the model with --batch-major (lstmgen's default), or "
            "transpose the data to [T, B, I] (x.transpose(1, 0, 2))."
        )
    return (
        f"{label} has shape {list(shape)}, but the model is batch-major [B, T, I] = {want}. The data look "
        f"time-major [T, B, I] (T = {shape[0]} steps of {shape[1]} row(s)), as nn.LSTM takes them by default "
        "(batch_first=False): rebuild the model with --time-major, or transpose the data to [B, T, I] "
        f"(x.transpose(1, 0, 2)). (--dynamic-batch would not help: it reads the {shape[0]} time steps as "
        f"{shape[0]} separate sequences.)"
    )


def require_finite(arr: np.ndarray, what: str) -> None:
    """Refuse NaN/Inf in a floating array (an input, a state), naming the first position: the model's output
    on them is NaN, which no check can judge."""
    if arr.dtype.kind == "c":  # cast to float further on, the imaginary part silently dropped (red team)
        raise LstmgenError(f"{what} holds {arr.dtype} values; expected real numbers. Save the data as numpy.float32.")
    if arr.dtype.kind != "f" or arr.size == 0:
        return
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(np.sum(arr)):  # one pass, no temporary; only a non-finite sum needs the element check
            return
    bad = ~np.isfinite(arr)
    if bad.any():
        first = [int(i) for i in np.argwhere(bad)[0]]
        raise LstmgenError(
            f"{what} contains {int(bad.sum())} NaN/Inf value(s), the first at index {first} "
            f"({arr[tuple(first)]}). Inputs must be finite: clean or drop those values."
        )


# float32's largest value; a gate's pre-activation beyond it is Inf, and Inf - Inf in the kernel is NaN.
_F32_MAX = float(np.finfo(np.float32).max)


def _row_bound(*arrays: object) -> float:
    """max over rows of sum |row| (+ |bias|): the largest a gate's pre-activation gets with inputs of magnitude 1."""
    total: np.ndarray | None = None
    for arr in arrays:
        if not isinstance(arr, np.ndarray):
            continue
        part = np.abs(arr.astype(np.float64)).reshape(arr.shape[0] if arr.ndim else 1, -1).sum(1)
        total = part if total is None else total + part
    return 0.0 if total is None else float(np.max(total))


def overflow_risk(tensors: Mapping[str, object], where: str) -> str | None:
    """Why a cell's float32 math overflows on inputs of magnitude 1 (None if it does not).

    A gate row's pre-activation is bounded by sum|W| + sum|R| + |b| when |x|, |h| <= 1; past float32's
    largest value the kernel computes Inf and then NaN, whatever the framework computed in float64.
    """
    bounds = {
        f"{g} gate's": _row_bound(*(tensors.get(f"{k}") for k in (f"input_to_{g}_weights", f"recurrent_to_{g}_weights",
                                                                   f"{g}_gate_bias")))
        for g in ("input", "forget", "cell", "output")
    }  # fmt: skip
    bounds["projection's"] = _row_bound(tensors.get("projection_weights"), tensors.get("projection_bias"))
    name, worst = max(bounds.items(), key=lambda kv: kv[1])
    if worst <= _F32_MAX / 4:
        return None
    return (
        f"{where}: the {name} weights sum to {worst:.3g} in magnitude, so on inputs of magnitude 1 its "
        f"pre-activation can exceed float32's largest value ({_F32_MAX:.3g}) and the TFLite kernel computes "
        "Inf and NaN. These weights are finite but unusable in float32; check the training run or the export "
        "(weights of an LSTM are typically below 10), or whether the file is damaged (save it again)"
    )
