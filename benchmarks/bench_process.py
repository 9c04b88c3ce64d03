"""Whole-process benchmarks: wall time and peak RSS of `lstmgen` runs, checked against the issue-10 targets.

Each run is a fresh process (`python -m lstmgen ...` in this interpreter's environment); its peak RSS
comes from os.wait4's rusage for that child alone, its wall time from fork to exit. Cases:
  big --no-verify   96 MB float model (2048 units, input 1024) from a TF1 .npz, not verified
  big verify        the same with verification (the default)
  small verify      the 64-unit default build (--init weights, verified)
  int8 verify       int8, calibrated on 100 sequences (T = 50), verified: 1024 units, input 512 (issue 20:
                    at most half of TF's converter time, 12.7 s); int8 small verify the same at 64 units, input 32
  --help / numpy    `lstmgen --help` against `python -c "import numpy"`
Each case runs once unmeasured first (bytecode caches written, files in the page cache), as an
installed lstmgen would run. The parent never imports numpy or holds the weights: Linux counts the
RSS a child had before exec (a vfork shares the parent's memory) in its peak, so a large parent would
inflate every figure.
Run: `make bench` (writes build/bench/process.json; docs/update_numbers.py puts it into the README and
docs/measurements.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

MB = 2**20


def run(argv: Sequence[str], env: Mapping[str, str] | None = None) -> tuple[float, float, float]:
    """(wall seconds, peak RSS in MiB, CPU seconds) of one child process; fails loudly if the child fails."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env or CHILD_ENV)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"benchmark command failed ({proc.returncode}): {' '.join(argv)}\n{err.decode()}")
    return wall, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime  # ru_maxrss: KiB on Linux


# What an installed lstmgen runs with: bytecode caches (pip compiles them at install; an editable install
# writes them on first import). A shell with PYTHONDONTWRITEBYTECODE=1 would otherwise make every run
# compile lstmgen's ~80 modules again (about 0.1 s), which no user's run does.
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def measure(argv: Sequence[str], repeat: int) -> dict[str, float]:
    run(argv)  # warm-up, not counted: writes the bytecode caches and fills the page cache
    runs = [run(argv) for _ in range(repeat)]
    walls = [w for w, _, _ in runs]
    return {
        "best_wall_s": round(min(walls), 3),
        "median_wall_s": round(statistics.median(walls), 3),
        # CPU time (user + system) moves less than wall time when other work shares the machine.
        "best_cpu_s": round(min(c for _, _, c in runs), 3),
        "peak_rss_mb": round(max(r for _, r, _ in runs), 1),
        "runs": repeat,
    }


MAKE_NPZ = """
import sys
import numpy as np
path, units, inputs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(0)
kernel = rng.uniform(-0.05, 0.05, (inputs + units, 4 * units)).astype(np.float32)
np.savez(path, kernel=kernel, bias=np.zeros(4 * units, np.float32))
"""


MAKE_INT8 = """
import sys
import numpy as np
folder, units, inputs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(units)
limit = np.sqrt(6 / (inputs + units + 4 * units))  # glorot uniform over the TF1 kernel's fan-in and fan-out
kernel = rng.uniform(-limit, limit, (inputs + units, 4 * units)).astype(np.float32)
np.savez(f"{folder}/int8_{units}.npz", kernel=kernel, bias=np.zeros(4 * units, np.float32))
np.save(f"{folder}/calib_{units}.npy", rng.standard_normal((100, 50, inputs)).astype(np.float32))
"""
INT8_CASES = {"int8_verify": (1024, 512), "int8_small_verify": (64, 32)}
INT8_TARGET_S = 12.7 / 2  # issue 20: half of TF's converter time for the 1024-unit int8 build


def int8_cases(cli: list[str], tmp: Path) -> dict[str, list[str]]:
    """Verified int8 builds calibrated on 100 sequences of 50 steps (weights and data made in a child)."""
    cases = {}
    for name, (units, inputs) in INT8_CASES.items():
        subprocess.run([sys.executable, "-c", MAKE_INT8, str(tmp), str(units), str(inputs)], check=True)
        cases[name] = [
            *cli, "build", "--weights", str(tmp / f"int8_{units}.npz"), "--time-steps", "50", "--quantize", "int8",
            "--calibration-data", str(tmp / f"calib_{units}.npy"), "-o", str(tmp / f"int8_{units}.tflite"), "-q",
        ]  # fmt: skip
    return cases


def big_npz(path: Path, units: int, inputs: int) -> None:
    """A TF1 LSTMCell's variables (kernel [I+N, 4N], bias [4N]), the .npz users export from TF1 (made in a child)."""
    subprocess.run([sys.executable, "-c", MAKE_NPZ, str(path), str(units), str(inputs)], check=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num-units", type=int, default=2048)
    ap.add_argument("--input-size", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=3, help="runs per case (best and median are reported)")
    ap.add_argument("--output", type=Path, default=Path("build/bench/process.json"), help="results file (JSON)")
    ap.add_argument("--cases", nargs="*", help="run only these cases (no results file is written)")
    ap.add_argument("--label", default="", help="free text stored with the results (e.g. a commit id)")
    args = ap.parse_args()

    cli = [sys.executable, "-m", "lstmgen"]
    results: dict[str, dict[str, float]] = {}
    print(f"load average before: {os.getloadavg()[0]:.2f}", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "big.npz"
        big_npz(weights, args.num_units, args.input_size)
        out = Path(tmp) / "big.tflite"
        small = Path(tmp) / "small.tflite"
        cases = {
            "big_no_verify": [*cli, "build", "--weights", str(weights), "-o", str(out), "--no-verify", "-q"],
            "big_verify": [*cli, "build", "--weights", str(weights), "-o", str(out), "-q"],
            "small_verify": [*cli, "build", "--num-units", "64", "--input-size", "32", "-o", str(small), "-q"],
            **int8_cases(cli, Path(tmp)),
            "help": [*cli, "--help"],
            "version": [*cli, "--version"],
            "import_numpy": [sys.executable, "-c", "import numpy"],
        }
        repeats = {"big_verify": max(1, args.repeat - 1), "help": 3 * args.repeat, "version": 3 * args.repeat}
        repeats["import_numpy"] = 3 * args.repeat
        for name, argv in cases.items():
            if args.cases and name not in args.cases:
                continue
            results[name] = measure(argv, repeats.get(name, args.repeat))
            print(f"{name:>14}: {results[name]}", file=sys.stderr)
        model_mb = out.stat().st_size / MB if out.exists() else 96.0
    if args.cases:
        return
    model = round(model_mb, 1)
    bnv, bv, sv, hp, npy = (results[k] for k in ("big_no_verify", "big_verify", "small_verify", "help", "import_numpy"))
    targets = [
        ("big --no-verify wall <= 0.5 s", bnv["best_wall_s"], 0.5),
        ("big --no-verify peak RSS <= 1.3x model + 60 MB", bnv["peak_rss_mb"], 1.3 * model_mb + 60),
        ("big verified peak RSS <= 4x model + 60 MB", bv["peak_rss_mb"], 4 * model_mb + 60),
        ("--help wall <= 1.5x import numpy", hp["best_wall_s"], 1.5 * npy["best_wall_s"]),
        ("64-unit default build wall <= 0.31 s", sv["best_wall_s"], 0.31),
        ("1024-unit int8 verified build wall <= 6.35 s", results["int8_verify"]["best_wall_s"], INT8_TARGET_S),
    ]
    checks = [{"target": t, "measured": m, "limit": round(lim, 3), "met": m <= lim} for t, m, lim in targets]
    report = {
        "label": args.label,
        "model_mb": model,
        "num_units": args.num_units,
        "input_size": args.input_size,
        "cases": results,
        "targets": checks,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "system": platform.platform()},
        "date": time.strftime("%Y-%m-%d"),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    width = max(len(k) for k in results)
    for k, v in results.items():
        print(
            f"{k:<{width}}  best {v['best_wall_s']:.3f} s  median {v['median_wall_s']:.3f} s  "
            f"CPU {v['best_cpu_s']:.3f} s  peak RSS {v['peak_rss_mb']:.1f} MB  ({v['runs']} runs)"
        )
    for t in checks:
        print(f"{'met' if t['met'] else 'NOT MET'}: {t['target']} (measured {t['measured']}, limit {t['limit']})")


if __name__ == "__main__":
    main()
