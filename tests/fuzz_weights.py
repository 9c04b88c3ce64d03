"""Seeded fuzzing of weight files: byte mutations of small real ones, read through lstmgen.weights.

Each mutated file is opened and every layer loaded (the command line runs each base file in a child
process). Outcomes: "ok" (read), "refused" (LstmgenError: exit 2), "internal_error" (any other
exception: exit 70, a bug), "crash" (a parser killed the process, e.g. a segfault inside libhdf5). The readers carry no
catch-all, so every parser error of h5py, onnx, zipfile, the npy header, safetensors and TF bundles must
be turned into a clear refusal where the library is called; this finds the ones that are not.

    python tests/fuzz_weights.py --count 2000 --seed 0     # what `make fuzz` runs after fuzz_models.py
"""

from __future__ import annotations

import argparse
import random
import select
import shutil
import subprocess
import sys
import tempfile
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MUTATION_SECONDS = 30.0  # one mutation read in a child (it prints a line each); longer without a line is a hang
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


def _one(base: Path, data: bytes, seed: int, k: int, folder: Path) -> tuple[str, str]:
    """Mutation k of `base` (its own seeded generator: any one can be replayed alone), read; (result, detail)."""
    write, read = _target(base, folder)
    write.write_bytes(_mutate(data, random.Random(f"{seed}:{base.name}:{k}")))
    try:
        return _read(read), ""
    except Exception as exc:  # a bug in lstmgen: what this harness counts
        last = traceback.extract_tb(exc.__traceback__)[-1]
        return "internal_error", f"{base.name}: {type(exc).__name__} at {last.filename}:{last.lineno}: {str(exc)[:160]}"


def run_fuzz(count: int, seed: int, folder: Path, bases: list[Path] | None = None, start: int = 0) -> Outcome:
    """Mutations start..count-1 of each base file (default: BASES and torch_bases), in this process."""
    bases = bases if bases is not None else [REPO / b for b in BASES] + torch_bases(folder)
    outcome = Outcome()
    for base in bases:
        data = base.read_bytes()
        for k in range(start, count):
            result, detail = _one(base, data, seed, k, folder)
            outcome.counts[result] += 1
            if detail and detail not in outcome.failures:
                outcome.failures.append(detail)
        if ".ckpt" in base.name:
            _target(base, folder)[0].write_bytes(data)  # the copy's other file is mutated next
    return outcome


def _child(base: Path, count: int, seed: int, start: int, folder: Path) -> None:
    """Mutations start.. of one base, one line per mutation on stdout (the parent sees how far a crash got)."""
    data = base.read_bytes()
    for k in range(start, count):
        result, detail = _one(base, data, seed, k, folder)
        print(k, result, detail, flush=True)


def _watched(cmd: list[str]) -> tuple[str, int | None]:
    """Run a child that prints one line per mutation; kill it when a line takes over MUTATION_SECONDS (a hang
    inside a parser: the exit code is then None). Returns its stdout and exit code."""
    lines: list[str] = []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) as proc:
        assert proc.stdout is not None
        while True:
            ready, _, _ = select.select([proc.stdout], [], [], MUTATION_SECONDS)
            if not ready:
                proc.kill()
                proc.wait()
                return "".join(lines), None
            line = proc.stdout.readline()
            if not line:
                return "".join(lines), proc.wait()
            lines.append(line)


def run_in_children(count: int, seed: int, folder: Path, keep: Path | None) -> Outcome:
    """Each base in a child process: a parser that crashes the process (a signal) is counted, and the run goes on."""
    outcome = Outcome()
    bases = [REPO / b for b in BASES] + torch_bases(folder)
    for base in bases:
        print(f"fuzz_weights: {count} mutations of {base.name}", file=sys.stderr, flush=True)
        start = 0
        while start < count:
            args = ["--child", str(base), "--start", str(start), "--count", str(count), "--seed", str(seed)]
            cmd = [sys.executable, __file__, *args, "--folder", str(folder)]
            stdout, code = _watched(cmd)
            what = "hung" if code is None else f"crashed: exit {code}"
            lines = [ln.split(" ", 2) for ln in stdout.splitlines()]
            for _, result, *detail in lines:
                outcome.counts[result] += 1
                if detail and detail[0] and detail[0] not in outcome.failures:
                    outcome.failures.append(detail[0])
            start += len(lines)
            if code != 0 and start < count:  # mutation `start` killed the process, or never returned
                outcome.counts["crash" if what != "hung" else "hang"] += 1
                outcome.failures.append(f"{base.name}: mutation {start} (seed {seed}) {what}")
                if keep is not None:
                    keep.mkdir(parents=True, exist_ok=True)
                    mutated = _mutate(base.read_bytes(), random.Random(f"{seed}:{base.name}:{start}"))
                    (keep / f"crash_{start}_{base.name}").write_bytes(mutated)
                start += 1
    return outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=2000, help="mutations per base file")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, help="Write the files that crashed the reading process here.")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--start", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        _child(args.child, args.count, args.seed, args.start, args.folder)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        outcome = run_in_children(args.count, args.seed, Path(tmp), args.keep)
    print(dict(outcome.counts))
    for line in outcome.failures:
        print(line)
    return 1 if outcome.failures else 0


if __name__ == "__main__":
    sys.exit(main())
