"""Benchmark: build a ~100 MB float model (2048 units, input 1024) without verification.

Reports wall time per phase and peak memory (Python allocations via tracemalloc, and the
process's peak RSS above its size after imports). Target (issue #2): < 1 s and peak memory
< 2x the model size on a 2-core machine. Run: `make bench` or `python benchmarks/bench_build.py`.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path


def rss_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num-units", type=int, default=2048)
    ap.add_argument("--input-size", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from lstmgen.build import build  # imports outside the measured region

    base_rss = rss_peak_mb()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "big.tflite"
        for _ in range(args.repeat):
            tracemalloc.start()
            t0 = time.perf_counter()
            result = build(out, {"num_units": args.num_units, "input_size": args.input_size}, verify=False)
            wall = time.perf_counter() - t0
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            runs.append({"wall_s": wall, "traced_peak_mb": peak / 2**20, **result.seconds})
        size_mb = out.stat().st_size / 2**20
    best = min(runs, key=lambda r: r["wall_s"])
    report = {
        "num_units": args.num_units,
        "input_size": args.input_size,
        "model_mb": round(size_mb, 1),
        "best_wall_s": round(best["wall_s"], 3),
        "median_wall_s": round(sorted(r["wall_s"] for r in runs)[len(runs) // 2], 3),
        "phases_s": {k: best[k] for k in ("read", "layout_and_write", "verify_and_save")},
        "traced_peak_mb": round(best["traced_peak_mb"], 1),
        "traced_peak_x_model": round(best["traced_peak_mb"] / size_mb, 2),
        "rss_growth_mb": round(rss_peak_mb() - base_rss, 1),
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(
            f"model {report['model_mb']} MB ({args.num_units} units, input {args.input_size}): "
            f"best {report['best_wall_s']} s, median {report['median_wall_s']} s over {args.repeat} runs; "
            f"phases {report['phases_s']}"
        )
        print(
            f"peak traced memory {report['traced_peak_mb']} MB = {report['traced_peak_x_model']}x the model; "
            f"peak RSS growth {report['rss_growth_mb']} MB"
        )


if __name__ == "__main__":
    main()
