"""Seeded fuzzing of .tflite models: byte- and record-level mutations of small lstmgen models.

Each mutated file goes through `inspect`, `verify` and `run` in child processes (in batches, so
the interpreter is imported once per batch). Outcomes are counted: exit 0/1/2 are fine; exit 70
(internal error), death by a signal (crash) and no answer within the time limit (hang) are not.

    python tests/fuzz_models.py --count 10000 --seed 0 --jobs 2     # what `make fuzz` runs
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
# Small base models (build arguments): every op lstmgen writes, float and quantized.
BASES: dict[str, tuple[str, ...]] = {
    "float": ("--num-units", "4", "--input-size", "3", "--use-peepholes", "--num-proj", "2", "--cell-clip", "3"),
    "last_step": ("--num-units", "4", "--input-size", "3", "--last-step", "--time-steps", "3"),
    "bidirectional": ("--num-units", "3", "--input-size", "2", "--bidirectional", "--num-layers", "2"),
    "cifg_layer_norm": ("--num-units", "4", "--input-size", "3", "--cifg", "--layer-norm"),
    "hybrid": ("--num-units", "4", "--input-size", "3", "--quantize", "dynamic-int8"),
    "float16": ("--num-units", "4", "--input-size", "3", "--quantize", "float16"),
    "int8": (
        "--num-units",
        "4",
        "--input-size",
        "3",
        "--time-steps",
        "3",
        "--quantize",
        "int8",
        "--calibration",
        "random",
        "--io-type",
        "float32",
    ),
    # the graph form (no fused op: ordinary ops the checker evaluates one by one), unrolled, looped, streaming
    "graph": ("--num-units", "4", "--input-size", "3", "--form", "graph", "--time-steps", "3", "--cell-clip", "3"),
    "graph_loop": ("--num-units", "4", "--input-size", "3", "--form", "graph", "--use-peepholes", "--num-proj", "2"),
    "graph_state": ("--num-units", "3", "--input-size", "2", "--form", "graph", "--state-io", "--num-layers", "2"),
    "graph_hybrid": (
        "--num-units",
        "4",
        "--input-size",
        "3",
        "--form",
        "graph",
        "--quantize",
        "dynamic-int8",
        "--time-steps",
        "3",
    ),
}
PER_FILE_SECONDS = 20.0  # a hang: no answer for this long (tiny models answer in milliseconds)


@dataclass
class Outcome:
    counts: Counter[str] = field(default_factory=Counter)
    failures: list[dict[str, Any]] = field(default_factory=list)

    def add(self, path: str, command: str, result: str) -> None:
        self.counts[result] += 1
        if result in ("crash", "internal_error", "hang"):
            self.failures.append({"file": path, "command": command, "result": result})


# ------------------------------------------------------------------------------------ mutations


def build_bases(folder: Path) -> dict[str, Path]:
    from click.testing import CliRunner

    from lstmgen.cli.main import main

    out = {}
    for name, args in BASES.items():
        path = folder / f"base_{name}.tflite"
        result = CliRunner().invoke(main, ["build", *args, "-o", str(path), "--no-verify", "-q"])
        if result.exit_code == 0:
            out[name] = path
    return out


def _byte_mutation(data: bytes, rng: np.random.Generator) -> bytes:
    buf = bytearray(data)
    kind = rng.integers(5)
    if kind == 0:  # flip a few random bytes
        for _ in range(int(rng.integers(1, 9))):
            buf[int(rng.integers(len(buf)))] = int(rng.integers(256))
    elif kind == 1:  # an aligned 32-bit word to a special value (what a corrupted index or offset is)
        pos = int(rng.integers(len(buf) // 4)) * 4
        value = int(rng.choice([-1, 0, 1, 0x7FFFFFFF, -0x80000000, 0xFFFF, len(buf), 24, 1000]))
        buf[pos : pos + 4] = value.to_bytes(4, "little", signed=True)
    elif kind == 2:  # truncate
        del buf[int(rng.integers(8, len(buf))) :]
    elif kind == 3:  # bytes inserted (every offset after them shifts)
        pos = int(rng.integers(len(buf)))
        buf[pos:pos] = bytes(rng.integers(0, 256, int(rng.integers(1, 17)), dtype=np.uint8))
    else:  # a 4-byte word in the first 1 KB (tables, vtables, vectors' lengths) to a random value
        pos = int(rng.integers(min(len(buf), 1024) // 4)) * 4
        buf[pos : pos + 4] = int(rng.integers(-(2**31), 2**31)).to_bytes(4, "little", signed=True)
    return bytes(buf)


def _record_mutation(data_bytes: bytes, rng: np.random.Generator) -> bytes:
    """Parse, change one field of one record (a valid flatbuffer with invalid contents), serialize."""
    from lstmgen.tflite.reader import read_model
    from lstmgen.tflite.records import Options, Quantization, materialize
    from lstmgen.tflite.writer import serialize

    model = materialize(read_model(data_bytes))
    tensors, ops = list(model.tensors), list(model.operators)
    kind = rng.integers(8)
    special = [-1, 0, 1, 2, 7, len(tensors) - 1, len(tensors), 10**6, -7]
    if kind == 0 and ops:  # an operator input to -1 or another tensor
        k = int(rng.integers(len(ops)))
        op = ops[k]
        if op.inputs:
            slot = int(rng.integers(len(op.inputs)))
            inputs = list(op.inputs)
            inputs[slot] = int(rng.choice(special))
            ops[k] = replace(op, inputs=tuple(inputs))
    elif kind == 1 and ops:  # an operator output, or the intermediates
        k = int(rng.integers(len(ops)))
        op = ops[k]
        if rng.integers(2) and op.intermediates:
            ops[k] = replace(op, intermediates=op.intermediates[: int(rng.integers(len(op.intermediates)))])
        else:
            ops[k] = replace(op, outputs=(int(rng.choice(special)),))
    elif kind == 2:  # a tensor's shape (a constant keeps its data, reshaped when the size allows)
        i = int(rng.integers(len(tensors)))
        t = tensors[i]
        shape = list(t.shape) or [1]
        shape[int(rng.integers(len(shape)))] = int(rng.choice([0, 1, 2, 3, 5, -1, 100000]))
        if rng.integers(3) == 0:
            shape = shape[:-1] if len(shape) > 1 else [*shape, 1]
        data = t.data
        if data is not None:
            size = int(np.prod(shape)) if all(d >= 0 for d in shape) else -1
            # Reshaped when the size allows; otherwise the constant loses its buffer (also a corruption).
            data = np.asarray(data).reshape(-1)[:size].reshape(shape) if 0 <= size <= data.size else None
        tensors[i] = replace(t, shape=tuple(shape), data=data)
    elif kind == 3:  # a tensor's type (data reinterpreted when the byte size allows)
        i = int(rng.integers(len(tensors)))
        t = tensors[i]
        new = np.dtype(rng.choice(["<f4", "<i1", "<i2", "<i4", "<f2", "<i8", "u1"]))
        data = t.data
        if data is not None:
            raw = np.ascontiguousarray(data).view(np.uint8).reshape(-1)
            if raw.size % new.itemsize:
                return _byte_mutation(data_bytes, rng)
            data = raw.view(new)
            data = data.reshape(t.shape) if data.size == int(np.prod(t.shape)) else None
        tensors[i] = replace(t, dtype=new, data=data)
    elif kind == 4:  # quantization parameters
        i = int(rng.integers(len(tensors)))
        n = int(rng.choice([1, 2, 3, 4, 8]))
        scale = tuple(float(s) for s in rng.choice([0.0, -1.0, 1e-30, 0.02, np.inf, np.nan, 1e30], n))
        zp = tuple(int(z) for z in rng.choice([0, 1, -128, 127, 300, -70000], int(rng.choice([n, 1, 0]))))
        tensors[i] = replace(tensors[i], quantization=Quantization(scale, zp, int(rng.integers(-1, 4))))
    elif kind == 5 and ops:  # an options field, or the wrong options table
        k = int(rng.integers(len(ops)))
        op = ops[k]
        if op.options is not None and rng.integers(3):
            fields = list(op.options.fields)
            if fields:
                j = int(rng.integers(len(fields)))
                name, value = fields[j]
                if isinstance(value, bool):
                    new: Any = not value
                elif isinstance(value, int):
                    new = int(rng.choice([-1, 0, 1, 2, 5, 7, 127, 255]))
                elif isinstance(value, float):
                    new = float(rng.choice([0.0, -1.0, 1e-30, np.inf, np.nan, 1e30]))
                else:
                    return _byte_mutation(data_bytes, rng)
                fields[j] = (name, new)
                ops[k] = replace(op, options=Options(op.options.table, tuple(fields)))
        else:
            table = str(
                rng.choice(["StridedSliceOptions", "ConcatenationOptions", "UnidirectionalSequenceLSTMOptions"])
            )
            ops[k] = replace(op, options=Options(table, ()))
    elif kind == 6:  # subgraph inputs/outputs
        which = "inputs" if rng.integers(2) else "outputs"
        value = (int(rng.choice(special)),) if rng.integers(3) else ()
        model = replace(model, **{which: value})
    elif ops:  # drop, duplicate or swap operators
        k = int(rng.integers(len(ops)))
        choice = rng.integers(3)
        if choice == 0:
            del ops[k]
        elif choice == 1:
            ops.insert(k, ops[k])
        else:
            ops[k], ops[-1] = ops[-1], ops[k]
    try:
        return bytes(serialize(replace(model, tensors=tuple(tensors), operators=tuple(ops))))
    except Exception:  # the writer refused the record (e.g. a dtype it has no code for): mutate bytes instead
        return _byte_mutation(data_bytes, rng)


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    return _record_mutation(data, rng) if rng.integers(2) else _byte_mutation(data, rng)


def make_corpus(folder: Path, count: int, seed: int) -> list[Path]:
    bases = build_bases(folder)
    names = sorted(bases)
    blobs = {n: bases[n].read_bytes() for n in names}
    rng = np.random.default_rng(seed)
    files = []
    for k in range(count):
        name = names[k % len(names)]
        path = folder / f"m{k:05d}_{name}.tflite"
        path.write_bytes(mutate(blobs[name], rng))
        files.append(path)
    return files


# ------------------------------------------------------------------------------------- running

# The child: runs each command in-process and prints "start"/"done" lines, so the parent can tell
# which file a crash or hang belongs to.
_CHILD = r"""
import json, os, sys
from click.testing import CliRunner
from lstmgen.cli.main import main
if os.environ.get("LSTMGEN_FUZZ_NO_CHECK"):  # the harness's own test: model checker and crash probe off
    import lstmgen.modelinfo, lstmgen.runtimes.interpreter
    lstmgen.modelinfo.check_model = lambda model, source: None
    lstmgen.runtimes.interpreter.probe = lambda path, what, step: None
x = sys.argv[1]
for line in sys.stdin:
    path, command = json.loads(line)
    args = {"inspect": ["inspect", path, "--json"], "verify": ["verify", path, "--json"],
            "micro": ["verify", path, "--micro"],
            "run": ["run", path, "--input", x, "--output", path + ".y.npy"]}[command]
    print(json.dumps(["start", path, command]), flush=True)
    result = CliRunner().invoke(main, args)
    code = result.exit_code
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        code = 70
    print(json.dumps(["done", path, command, code]), flush=True)
"""


def _classify(code: int) -> str:
    return {0: "ok", 1: "verify_failed", 2: "refused", 70: "internal_error"}.get(code, f"exit_{code}")


def _run_batch(items: list[tuple[str, str]], x: Path, outcome: Outcome) -> None:
    """Run items in one child; on a crash or hang, record it and go on with the rest in a new child."""
    while items:
        proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(x)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=REPO,
            start_new_session=True,
        )
        assert proc.stdin is not None and proc.stdout is not None
        lines: queue.Queue[str | None] = queue.Queue()
        pump = threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True)
        pump.start()
        # fed from a thread: a child stuck on one file stops reading, and a write that blocks here would keep
        # the timeout below from ever firing (a 14-million-step model ran for 9 minutes that way)
        feed = "".join(json.dumps(i) + "\n" for i in items)
        threading.Thread(target=_feed, args=(proc.stdin, feed), daemon=True).start()
        done = 0
        current: tuple[str, str] | None = None
        timeout = 60 + PER_FILE_SECONDS  # the first answer includes the imports
        hung = False
        while True:
            try:
                line = lines.get(timeout=timeout)
            except queue.Empty:
                hung = True
                os.killpg(proc.pid, signal.SIGKILL)
                break
            if line is None:  # the child exited
                break
            msg = json.loads(line)
            if msg[0] == "start":
                current, timeout = (msg[1], msg[2]), PER_FILE_SECONDS
            else:
                outcome.add(msg[1], msg[2], _classify(int(msg[3])))
                done, current = done + 1, None
        rc = proc.wait()
        pump.join(timeout=10)
        proc.stdout.close()
        items = items[done:]
        if not items:
            return
        if current is None:  # died between files: count it against the next one
            current = items[0]
        outcome.add(current[0], current[1], "hang" if hung else ("crash" if rc < 0 else _classify(rc)))
        items = items[1:]


def _feed(stream: Any, text: str) -> None:
    with contextlib.suppress(OSError):  # BrokenPipeError: the child was killed mid-feed
        try:
            stream.write(text)
        finally:
            stream.close()


def _pump(stream: Any, lines: queue.Queue[str | None]) -> None:
    for line in stream:
        if line.startswith("["):
            lines.put(line)
    lines.put(None)


def run_fuzz(count: int, seed: int, jobs: int = 2, folder: Path | None = None, micro: bool | None = None) -> Outcome:
    """Mutate `count` models and run each through inspect, verify and run; returns the counts."""
    with tempfile.TemporaryDirectory(prefix="lstmgen-fuzz-") as tmp:
        work = folder or Path(tmp)
        files = make_corpus(work, count, seed)
        x = work / "x.npy"
        np.save(x, np.random.default_rng(seed).standard_normal((1, 3, 3)).astype(np.float32))
        if micro is None:
            try:
                import tflite_micro  # noqa: F401

                micro = True
            except ImportError:
                micro = False
        commands = ["inspect", "verify", "run", *(["micro"] if micro else [])]
        items = [(str(f), c) for f in files for c in commands]
        batches = [items[k::jobs] for k in range(jobs)]
        outcome = Outcome()
        threads = [threading.Thread(target=_run_batch, args=(b, x, outcome)) for b in batches if b]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--keep", type=Path, help="Write the mutated files here (kept) instead of a temp dir.")
    args = parser.parse_args(argv)
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    outcome = run_fuzz(args.count, args.seed, args.jobs, args.keep)
    wall = time.perf_counter() - t0
    c = outcome.counts
    print(
        f"fuzz: {args.count} mutated models (seed {args.seed}), {sum(c.values())} runs in {wall:.0f} s: "
        f"{c['crash']} crashes, {c['internal_error']} internal errors, {c['hang']} hangs; "
        + ", ".join(f"{k} {v}" for k, v in sorted(c.items()) if k not in ("crash", "internal_error", "hang"))
    )
    for f in outcome.failures[:50]:
        print(f"  {f['result']}: lstmgen {f['command']} {f['file']}")
    return 1 if outcome.failures else 0


if __name__ == "__main__":
    sys.exit(main())
