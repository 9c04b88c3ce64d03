"""Generate the malicious-file corpus of issue 12 (each file small; each names what it attacks).

Run `python tests/hostile_corpus.py OUTDIR` to write the files; tests/test_hostile.py imports the
same makers and writes them into its tmp dir (the corpus is not committed). Every maker takes the
output folder and a `secret` file whose bytes must never reach a model, and returns the file path.
"""

from __future__ import annotations

import io
import json
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

N, I = 4, 3  # noqa: E741  (tiny cell: num_units, input_size)
SECRET_FLOATS = N * I * 4  # the kernel [I, 4N] float32 read from the secret file


def _kernel_parts() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return (
        rng.standard_normal((I, 4 * N)).astype(np.float32),
        rng.standard_normal((N, 4 * N)).astype(np.float32),
        np.zeros(4 * N, np.float32),
    )


def write_secret(folder: Path) -> Path:
    """A file standing for /etc/passwd: recognisable float32 values."""
    path = folder / "secret.bin"
    path.write_bytes((np.arange(SECRET_FLOATS, dtype=np.float32) + 1234.5).tobytes())
    return path


def _keras3_h5(target: Any, kernel: Callable[[Any], None]) -> None:
    """Keras 3 layout layers/lstm/cell/vars/{0,1,2}; `kernel(group)` creates dataset '0'."""
    import h5py

    _, rec, bias = _kernel_parts()
    with h5py.File(target, "w") as f:
        g = f.create_group("layers/lstm/cell/vars")
        kernel(g)
        g.create_dataset("1", data=rec)
        g.create_dataset("2", data=bias)


def h5_external_storage(folder: Path, secret: Path) -> Path:
    path = folder / "external_storage.weights.h5"
    _keras3_h5(
        path,
        lambda g: g.create_dataset("0", shape=(I, 4 * N), dtype="f4", external=[(str(secret), 0, SECRET_FLOATS * 4)]),
    )
    return path


def h5_external_link(folder: Path, secret: Path) -> Path:
    import h5py

    donor = folder / "donor.h5"
    with h5py.File(donor, "w") as f:
        f.create_dataset("k", shape=(I, 4 * N), dtype="f4", external=[(str(secret), 0, SECRET_FLOATS * 4)])
    path = folder / "external_link.weights.h5"
    _keras3_h5(path, lambda g: g.__setitem__("0", h5py.ExternalLink(str(donor), "/k")))
    return path


def h5_virtual(folder: Path, secret: Path) -> Path:
    import h5py

    donor = folder / "vds_source.h5"
    kernel, _, _ = _kernel_parts()
    with h5py.File(donor, "w") as f:
        f.create_dataset("k", data=kernel + 99.0)

    def make(g: Any) -> None:
        layout = h5py.VirtualLayout(shape=(I, 4 * N), dtype="f4")
        layout[:] = h5py.VirtualSource(str(donor), "k", shape=(I, 4 * N))
        g.create_virtual_dataset("0", layout)

    path = folder / "virtual.weights.h5"
    _keras3_h5(path, make)
    return path


def h5_classic_external(folder: Path, secret: Path) -> Path:
    """A tf.keras 2 full-model .h5 layout (model_weights/<layer>/...) with external raw storage."""
    import h5py

    _, rec, bias = _kernel_parts()
    path = folder / "classic_external.h5"
    with h5py.File(path, "w") as f:
        root = f.create_group("model_weights")
        root.attrs["layer_names"] = [b"lstm"]
        g = root.create_group("lstm")
        names = [b"lstm/lstm_cell/kernel:0", b"lstm/lstm_cell/recurrent_kernel:0", b"lstm/lstm_cell/bias:0"]
        g.attrs["weight_names"] = names
        g.create_dataset(
            "lstm/lstm_cell/kernel:0", shape=(I, 4 * N), dtype="f4", external=[(str(secret), 0, SECRET_FLOATS * 4)]
        )
        g.create_dataset("lstm/lstm_cell/recurrent_kernel:0", data=rec)
        g.create_dataset("lstm/lstm_cell/bias:0", data=bias)
    return path


def keras_external(folder: Path, secret: Path) -> Path:
    """A .keras archive whose model.weights.h5 keeps the kernel in an external file."""
    inner = folder / "inner.weights.h5"
    _keras3_h5(
        inner,
        lambda g: g.create_dataset("0", shape=(I, 4 * N), dtype="f4", external=[(str(secret), 0, SECRET_FLOATS * 4)]),
    )
    path = folder / "external.keras"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("model.weights.h5", inner.read_bytes())
        zf.writestr("metadata.json", json.dumps({"keras_version": "3.0.0"}))
    inner.unlink()
    return path


def h5_gzip_bomb(folder: Path, secret: Path) -> Path:
    """A kernel declaring 4 GiB of gzip chunks never written (HDF5 fills them on read): a few KB on disk."""
    path = folder / "gzip_bomb.weights.h5"
    _keras3_h5(
        path, lambda g: g.create_dataset("0", shape=(2**15, 2**15), dtype="f4", chunks=(1024, 1024), compression="gzip")
    )
    return path


def keras_zip_bomb(folder: Path, secret: Path) -> Path:
    """A .keras whose model.weights.h5 member declares 5 GiB uncompressed (zip header)."""
    path = folder / "zip_bomb.keras"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("model.weights.h5", b"\0" * 1024)
    data = bytearray(buf.getvalue())
    _patch_sizes(data, 5 * 2**30 - 1)
    path.write_bytes(bytes(data))
    return path


def _patch_sizes(data: bytearray, size: int) -> None:
    """Set the declared uncompressed size of every member (local and central headers) to `size`."""
    import struct

    pos = data.find(b"PK\x03\x04")
    while pos >= 0:
        data[pos + 22 : pos + 26] = struct.pack("<I", min(size, 0xFFFFFFFE))
        pos = data.find(b"PK\x03\x04", pos + 4)
    pos = data.find(b"PK\x01\x02")
    while pos >= 0:
        data[pos + 24 : pos + 28] = struct.pack("<I", min(size, 0xFFFFFFFE))
        pos = data.find(b"PK\x01\x02", pos + 4)


def _npy_header(shape: tuple[int, ...], descr: str = "<f4") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def npy_tib_header(folder: Path, secret: Path) -> Path:
    """An .npy of 200 bytes whose header declares 4 TiB."""
    path = folder / "tib.npy"
    path.write_bytes(_npy_header((2**40,)) + b"\0" * 64)
    return path


def npz_bomb(folder: Path, secret: Path) -> Path:
    """An .npz whose kernel member declares 4 GiB (header and zip size): a decompression bomb's signature."""
    path = folder / "bomb.npz"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("kernel.npy", _npy_header((2**15, 2**15)) + b"\0" * 4096)
        _, rec, bias = _kernel_parts()
        for name, arr in (("recurrent_kernel", rec), ("bias", bias)):
            member = io.BytesIO()
            np.save(member, arr)
            zf.writestr(f"{name}.npy", member.getvalue())
    path.write_bytes(buf.getvalue())
    return path


def npz_many_duplicates(folder: Path, secret: Path, count: int = 40_000) -> Path:
    """40,000 members with repeated names (the duplicate check must be linear, its message bounded)."""
    path = folder / "dupes.npz"
    member = io.BytesIO()
    np.save(member, np.zeros(1, np.float32))
    blob = member.getvalue()
    import warnings

    with warnings.catch_warnings(), zipfile.ZipFile(path, "w") as zf:
        warnings.simplefilter("ignore")
        for k in range(count):
            zf.writestr(f"k{k // 2}.npy", blob)
    return path


def pt_stride0(folder: Path, secret: Path) -> Path:
    """A 2 KB .pt whose weights are a 1-element storage expanded to 4.4e12 elements (stride 0)."""
    import torch

    big = torch.zeros(1).expand(4 * 2**20, 2**20)
    sd = {
        "weight_ih_l0": big,
        "weight_hh_l0": torch.zeros(1).expand(4 * 2**20, 2**20),
        "bias_ih_l0": torch.zeros(1).expand(4 * 2**20),
    }
    path = folder / "stride0.pt"
    torch.save(sd, path)
    return path


MAKERS: dict[str, Callable[[Path, Path], Path]] = {
    "h5_external_storage": h5_external_storage,
    "h5_external_link": h5_external_link,
    "h5_virtual": h5_virtual,
    "h5_classic_external": h5_classic_external,
    "keras_external": keras_external,
    "h5_gzip_bomb": h5_gzip_bomb,
    "keras_zip_bomb": keras_zip_bomb,
    "npy_tib_header": npy_tib_header,
    "npz_bomb": npz_bomb,
    "npz_many_duplicates": npz_many_duplicates,
    "pt_stride0": pt_stride0,
}


def set_input(src: Path, dst: Path, opcode: int, slot: int, value: int = -1) -> None:
    """Record-level mutation: one operator input index replaced (what a 4-byte corruption does)."""
    from dataclasses import replace

    from lstmgen.tflite.reader import read_model
    from lstmgen.tflite.records import materialize
    from lstmgen.tflite.writer import serialize

    model = read_model(src.read_bytes())
    ops = tuple(
        replace(op, inputs=tuple(value if k == slot else i for k, i in enumerate(op.inputs)))
        if op.opcode == opcode
        else op
        for op in model.operators
    )
    dst.write_bytes(bytes(serialize(materialize(replace(model, operators=ops)))))


# Builtin operator codes of the ops set_input mutates.
LSTM, STRIDED_SLICE = 44, 45


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(f"usage: {argv[0]} OUTDIR", file=sys.stderr)
        return 2
    out = Path(argv[1])
    out.mkdir(parents=True, exist_ok=True)
    secret = write_secret(out)
    for name, make in MAKERS.items():
        try:
            print(f"{name}: {make(out, secret)}")
        except ImportError as exc:  # h5py / torch not installed
            print(f"{name}: skipped ({exc})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
