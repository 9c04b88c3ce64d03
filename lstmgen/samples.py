"""Sample sets (calibration or test inputs) as users hold them, read as [n, *model input] with the reading said."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lstmgen.arrays import layout_hint, load_npy, load_npz, looks_transposed
from lstmgen.errors import ConfigError, LstmgenError


def _arrays(path: Path, what: str) -> list[tuple[str, np.ndarray]]:
    """(name, array) of an .npy, every array of an .npz, or every .npy of a directory (sorted by name)."""
    try:
        if path.is_dir():
            files = sorted(path.glob("*.npy"))
            if not files:
                raise ConfigError(f"{what} {path} is a directory without .npy files; put one array per file in it.")
            return [(f.name, load_npy(f, what)) for f in files]
        if path.suffix.lower() == ".npz":
            arrays = sorted(load_npz(path, what).items())
            if not arrays:
                raise ConfigError(f"{what} {path} is an empty .npz; save the samples into it.")
            return arrays
        return [(path.name, load_npy(path, what))]
    except ConfigError:
        raise
    except LstmgenError as exc:
        raise ConfigError(str(exc)) from None


def _shape_text(shape: Sequence[int], sig: Sequence[int]) -> str:
    return "[" + ", ".join("T" if s == -1 else str(d) for d, s in zip(shape, sig, strict=True)) + "]"


def as_samples(
    array: np.ndarray, shape: Sequence[int], sig: Sequence[int], time_major: bool, name: str
) -> tuple[np.ndarray, str]:
    """One array as [n, *shape] (a free time axis is kept), and how it was read."""
    rank = len(shape)
    batch_axis = 1 if time_major else 0
    want = _shape_text(shape, sig)

    def fits(a_shape: Sequence[int]) -> bool:
        return len(a_shape) == rank and all(s == -1 or g == d for g, d, s in zip(a_shape, shape, sig, strict=True))

    if array.ndim == rank + 1 and fits(array.shape[1:]):
        return array, f"{name} {list(array.shape)}: {array.shape[0]} sample(s) of the model input {want}"
    if array.ndim == rank:
        batch, free_batch = shape[batch_axis], sig[batch_axis] == -1
        per_row = [d for k, d in enumerate(array.shape) if k != 0]
        rest = [(d, s) for k, (d, s) in enumerate(zip(shape, sig, strict=True)) if k != batch_axis]
        rows_fit = all(s == -1 or g == d for g, (d, s) in zip(per_row, rest, strict=True))
        if fits(array.shape):  # first: [T, 1, I] for a time-major model is one sample, not T one-step sequences
            return array[None], f"{name} {list(array.shape)}: one sample (one batch of the model input {want})"
        if looks_transposed(array.shape, shape, sig, time_major) and array.shape[1] == 1:
            # [T, 1, I] data for a batch-major model would read as T one-step sequences: say so, not run that
            raise ConfigError(
                layout_hint(name, array.shape, shape, sig, time_major)
                + f" If these really are {array.shape[0]} one-step sequences, pass them as "
                f"[{array.shape[0]}, 1, 1, {array.shape[2]}] (n samples of the model input)."
            )
        if batch == 1 and not free_batch and rows_fit:
            # [N, T, I] for a batch-1 model: N sequences, each fed as one batch of one row.
            out = np.expand_dims(array, 1 + batch_axis)
            seq = "[N, T, I]"
            return out, f"{name} {list(array.shape)} read as {seq}: {array.shape[0]} sequence(s), one per sample"
        if not time_major and not free_batch and rows_fit and array.shape[0] % batch == 0:
            n = array.shape[0] // batch
            out = array.reshape(n, batch, *array.shape[1:])
            return out, f"{name} {list(array.shape)}: {array.shape[0]} sequences grouped into {n} batch(es) of {batch}"
    inner = want[1:-1]
    raise ConfigError(
        f"{name} has shape {list(array.shape)}, expected [n, {inner}] (n samples of the model input {want}). "
        f"Also accepted: one sample {want}; [N, T, I] sequences, one per sample for a batch-1 model (grouped "
        "into batches of the model's batch size otherwise); a directory or .npz of such arrays. Reshape the "
        "data to one of these."
    )


def read_samples(
    path: str | Path, shape: Sequence[int], sig: Sequence[int] | None, time_major: bool, what: str
) -> tuple[np.ndarray, str]:
    """Every sample in `path` as one [n, *shape] float array, and a sentence saying how it was read."""
    path = Path(path)
    sig = tuple(sig) if sig is not None else tuple(shape)
    parts = [as_samples(a, shape, sig, time_major, f"{path.name}:{k}" if path.suffix == ".npz" or path.is_dir()
                        else str(path.name)) for k, a in _arrays(path, what)]  # fmt: skip
    arrays = [a for a, _ in parts]
    if len({a.shape[1:] for a in arrays}) > 1:
        shapes = ", ".join(str(list(a.shape[1:])) for a in arrays)
        raise ConfigError(
            f"{what} {path}: the samples differ in shape ({shapes}); one run feeds them one by one through one "
            "model input, so they must share a shape. Pad or trim them to one length, or split the set."
        )
    samples = arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
    tails = {r.partition(" ")[2] for _, r in parts}  # each reading without its array's name
    if len(parts) > 1 and len(tails) == 1:  # a directory of like files: say it once
        reading = f"{len(parts)} arrays ({parts[0][1].partition(' ')[0]}, ...), each {tails.pop()}"
    else:
        reading = "; ".join(r for _, r in parts)
    kinds = sorted({str(a.dtype) for a in arrays if a.dtype.kind in "iub"})
    if kinds:  # taken as the real values they hold: raw int16 audio is not scaled to [-1, 1]
        reading += f"; {'/'.join(kinds)} values taken as real numbers as they are (no scaling)"
    return samples, f"{what}: {reading} ({samples.shape[0]} sample(s) in all)"
