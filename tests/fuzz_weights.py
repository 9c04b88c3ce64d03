"""Seeded fuzzing of weight files: byte mutations of small real ones, read through lstmgen.weights.

Each mutated file is opened and every layer loaded, in this process. Outcomes: "ok" (read), "refused"
(LstmgenError: exit 2), "internal_error" (any other exception: exit 70, a bug). The readers carry no
catch-all, so every parser error of h5py, onnx, zipfile, the npy header, safetensors and TF bundles must
be turned into a clear refusal where the library is called; this finds the ones that are not.

    python tests/fuzz_weights.py --count 2000 --seed 0     # what `make fuzz` runs after fuzz_models.py
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Base files (one per parser), relative to the repository; torch's two formats are written at run time.
BASES: tuple[str, ...] = (
    "examples/classifier.keras",
    "examples/stacked.weights.h5",
    "tests/fixtures/real/tk2_stacked_head.h5",
    "examples/model.onnx",
    "examples/encoder.npz",
    "examples/weights_tf1.npz",
    "examples/tf1_ckpt/model.ckpt.index",
    "examples/tf1_ckpt/model.ckpt.data-00000-of-00001",
    "tests/fixtures/cudnn/k2_cudnn.h5",
    "tests/fixtures/cudnn/opaque_l1.npz",
)


@dataclass
class Outcome:
    counts: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)  # one line per distinct (base, class, place)


def torch_bases(folder: Path) -> list[Path]:
    """A .pt and a .safetensors of a small nn.LSTM, when torch (and safetensors) are installed."""
    try:
        import torch
    except ImportError:
        return []
    torch.manual_seed(0)
    state = torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True).state_dict()
    out = [folder / "base.pt"]
    torch.save(state, out[0])
    try:
        from safetensors.torch import save_file
    except ImportError:
        return out
    save_file(state, str(folder / "base.safetensors"))
    return [*out, folder / "base.safetensors"]


def _mutate(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    for _ in range(rng.choice([1, 2, 4, 16])):
        b[rng.randrange(len(b))] = rng.randrange(256)
    if rng.random() < 0.1:
        del b[rng.randrange(len(b)) :]
    return bytes(b)


def _read(path: Path) -> str:
    from lstmgen import weights
    from lstmgen.errors import LstmgenError

    try:
        with weights.open(path) as source:
            source.load_layers()
    except LstmgenError:
        return "refused"
    return "ok"


def _target(base: Path, folder: Path) -> tuple[Path, Path]:
    """Where a mutation of `base` goes, and the path to read: a checkpoint file is mutated inside a copy."""
    if ".ckpt" not in base.name:
        return folder / f"mutated{''.join(base.suffixes)}", folder / f"mutated{''.join(base.suffixes)}"
    copy = folder / "ckpt"
    if not copy.exists():
        shutil.copytree(base.parent, copy)
    return copy / base.name, copy / "model.ckpt"


def run_fuzz(count: int, seed: int, folder: Path, bases: list[Path] | None = None) -> Outcome:
    """`count` mutations of each base file (default: BASES and torch_bases)."""
    bases = bases if bases is not None else [REPO / b for b in BASES] + torch_bases(folder)
    outcome = Outcome()
    rng = random.Random(seed)
    for base in bases:
        data = base.read_bytes()
        for _ in range(count):
            write, read = _target(base, folder)
            write.write_bytes(_mutate(data, rng))
            try:
                result = _read(read)
            except Exception as exc:  # a bug in lstmgen: what this harness counts
                last = traceback.extract_tb(exc.__traceback__)[-1]
                line = f"{base.name}: {type(exc).__name__} at {last.filename}:{last.lineno}: {str(exc)[:160]}"
                if line not in outcome.failures:
                    outcome.failures.append(line)
                result = "internal_error"
            outcome.counts[result] += 1
        if ".ckpt" in base.name:
            write.write_bytes(data)  # the copy's other file is mutated next
    return outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=2000, help="mutations per base file")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        outcome = run_fuzz(args.count, args.seed, Path(tmp))
    print(dict(outcome.counts))
    for line in outcome.failures:
        print(line)
    return 1 if outcome.failures else 0


if __name__ == "__main__":
    sys.exit(main())
