"""Rewrite the measured numbers in README.md and docs/measurements.md from `make bench`'s JSON output.

Usage: python docs/update_numbers.py BENCH_DIR (holding build.json from benchmarks/bench_build.py --json,
quant.json from benchmarks/bench_quant.py --json, process.json from benchmarks/bench_process.py,
forms.json from benchmarks/bench_forms.py and peers.json from benchmarks/bench_peers.py).
Each `<!-- bench:NAME -->...<!-- /bench:NAME -->` region is replaced; a region whose numbers are missing
is left as it is.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FILES = (ROOT / "README.md", ROOT / "docs" / "measurements.md")
# bench_quant.py's mode names (it calls quantize() directly, whose dynamic-int8 is symmetric unless told otherwise)
MODE_NAMES = {
    "none": "float32",
    "dynamic-int8": "dynamic-int8 `--symmetric-inputs`",
    "dynamic-int8+asym": "dynamic-int8 (default: asymmetric inputs)",
}


def headline(p: dict[str, Any]) -> str:
    c = p["cases"]
    nv, v = c["big_no_verify"], c["big_verify"]
    return (
        f"A {p['model_mb']} MB model ({p['num_units']} units, input {p['input_size']}) builds from an `.npz` in "
        f"{nv['best_wall_s']:.2g} s and {nv['peak_rss_mb']:.0f} MB peak RSS with `--no-verify` "
        f"({v['best_wall_s']:.2g} s and {v['peak_rss_mb']:.0f} MB verified), as whole `lstmgen` processes"
    )


def process_table(p: dict[str, Any]) -> str:
    """benchmarks/bench_process.py: whole processes, and the targets they are held to."""
    names = {
        "big_no_verify": f"`build --weights big.npz --no-verify` ({p['model_mb']} MB model)",
        "big_verify": "`build --weights big.npz` (verified)",
        "small_verify": "`build --num-units 64 --input-size 32` (verified)",
        "help": "`lstmgen --help`",
        "version": "`lstmgen --version`",
        "import_numpy": '`python -c "import numpy"`',
    }
    m = p["machine"]
    lines = [
        f"`benchmarks/bench_process.py` ({p['date']}): whole processes, {m['cpus']}-core machine, "
        f"Python {m['python']}; the big model has {p['num_units']} units, input {p['input_size']}, "
        "float32 weights in a TF1 `.npz`.",
        "",
        "| command | wall time (best) | median | CPU time (best) | peak RSS | runs |",
        "|---|---|---|---|---|---|",
    ]
    for key, r in p["cases"].items():
        lines.append(
            f"| {names.get(key, key)} | {r['best_wall_s']} s | {r['median_wall_s']} s | {r.get('best_cpu_s', '-')} s "
            f"| {r['peak_rss_mb']} MB | {r['runs']} |"
        )
    lines += ["", "| target | measured | limit | met |", "|---|---|---|---|"]
    for t in p["targets"]:
        lines.append(f"| {t['target']} | {t['measured']} | {t['limit']} | {'yes' if t['met'] else '**no**'} |")
    return "\n".join(lines)


def build_table(b: dict[str, Any]) -> str:
    return "\n".join(
        [
            f"`benchmarks/bench_build.py`: {b['num_units']} units, input {b['input_size']}, float32, no verification, "
            f"{b['cpus']}-core machine, Python {b['python']}:",
            "",
            "| model | wall time (best) | median | peak traced memory | peak RSS growth |",
            "|---|---|---|---|---|",
            f"| {b['model_mb']} MB (`--init glorot_uniform`) | {b['best_wall_s']} s | {b['median_wall_s']} s | "
            f"{b['traced_peak_mb']} MB = {b['traced_peak_x_model']}x the model | {b['rss_growth_mb']} MB |",
        ]
    )


def quant_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| units | mode | size | vs float | invoke | vs float |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['units']} | {MODE_NAMES.get(r['mode'], r['mode'])} | {r['bytes'] / 1e6:.2f} MB | "
            f"{r['size_ratio']:.3f}x | {r['invoke_ms']:.3g} ms | {r['speed_ratio']:.2f}x |"
        )
    return "\n".join(lines)


def _forms_rows(f: dict[str, Any]) -> dict[tuple[int, str], dict[tuple[bool, int], dict[str, Any]]]:
    table: dict[tuple[int, str], dict[tuple[bool, int], dict[str, Any]]] = {}
    for r in f["rows"]:
        table.setdefault((r["units"], r["mode"]), {})[(r["xnnpack"], r["threads"])] = r
    return table


def forms_table(f: dict[str, Any]) -> str:
    """benchmarks/bench_forms.py: invoke time graph / fused (unrolled; and the WHILE loop), per size, mode,
    XNNPACK and threads."""
    cols = [(True, 1), (True, 2), (False, 1), (False, 2)]
    loop = any("loop_over_fused" in r for r in f["rows"])
    lines = [
        f"`benchmarks/bench_forms.py` ({f['date']}, {f['machine']['cpus']}-core machine, load "
        f"{f['machine']['load']:.1f}; median of {f['rounds']} paired rounds of {f['invokes']} invokes"
        + ("; each cell: unrolled / WHILE loop" if loop else "")
        + "):",
        "",
        "| units (input) | weights | XNNPACK, 1 thread | XNNPACK, 2 threads | builtin, 1 thread | builtin, 2 threads |",
        "|---|---|---|---|---|---|",
    ]
    for (units, mode), by in _forms_rows(f).items():
        keys = ("graph_over_fused", "loop_over_fused") if loop else ("graph_over_fused",)
        cells = [" / ".join(_ratio(by[c][k]) for k in keys if k in by[c]) for c in cols if c in by]
        lines.append(f"| {units} ({by[cols[0]]['input']}) | {mode} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _ratio(v: float) -> str:
    return f"**{v:.2f}**" if round(v, 2) < 1 else f"{v:.2f}"


def forms_detail(f: dict[str, Any]) -> str:
    """Absolute medians and peak RSS (XNNPACK, 2 threads), and accuracy against the float64 reference."""
    loop = any("loop_over_fused" in r for r in f["rows"])
    lines = [
        "| units | weights | XNNPACK threads | fused | graph | graph / fused | peak RSS fused | peak RSS graph |"
        + (" loop | loop / fused | peak RSS loop |" if loop else ""),
        "|---|---|---|---|---|---|---|---|" + ("---|---|---|" if loop else ""),
    ]
    for (units, mode), by in _forms_rows(f).items():
        for threads in (1, 2):
            r = by.get((True, threads))
            if r is None:
                continue
            lines.append(
                f"| {units} | {mode} | {threads} | {r['fused_ms']:.3g} ms | {r['graph_ms']:.3g} ms | "
                f"{r['graph_over_fused']:.2f} | {r['fused_rss_mb']:.0f} MB | {r['graph_rss_mb']:.0f} MB |"
                + (
                    f" {r['loop_ms']:.3g} ms | {r['loop_over_fused']:.2f} | {r['loop_rss_mb']:.0f} MB |"
                    if "loop_ms" in r
                    else ""
                )
            )
    lines += [
        "",
        "Error against the float64 reference of the float weights (8 sensor-like sequences, T = 50; "
        "hybrid = `dynamic-int8`, asymmetric inputs):",
        "",
        "| units | weights | hybrid fused (one scale per matrix): max / mean | hybrid graph (per row): max / mean |",
        "|---|---|---|---|",
    ]
    for key, errs in f["accuracy"].items():
        units, _, rest = key.partition(" ")
        fused, graph = errs["dynamic-int8 fused"], errs["dynamic-int8 graph"]
        lines.append(
            f"| {units} | {rest or 'glorot (rows alike)'} | {fused['max_abs_error']:.3g} / "
            f"{fused['mean_abs_error']:.3g} | {graph['max_abs_error']:.3g} / {graph['mean_abs_error']:.3g} |"
        )
    return "\n".join(lines)


PEER_FORMS = ("fused", "graph", "loop", "onnx2tf")


def peers_table(p: dict[str, Any]) -> str:
    """benchmarks/bench_peers.py: invoke times against onnx2tf, hybrid and int8 error, int8 build cost."""
    m, v = p["machine"], p["versions"]
    lines = [
        f"`benchmarks/bench_peers.py` ({p['date']}, {m['cpus']}-core machine, load {m['load_before'][0]:.1f} before, "
        f"{m['load_after'][0]:.1f} after; lstmgen's LiteRT {v['litert']}; peers: onnx2tf {v['peer']['onnx2tf']}, "
        f"TensorFlow {v['peer']['tensorflow']}, tf-keras {v['peer']['tf-keras']}; T = {p['steps']}, batch 1). "
        f"Invoke time with XNNPACK (LiteRT's default), median of {p['rounds']} paired rounds of 20 invokes; "
        "ratios are medians of per-round ratios:",
        "",
        "| units (input) | weights | threads | fused | graph unrolled | graph loop | onnx2tf | unrolled / onnx2tf "
        "| loop / onnx2tf | peak RSS fused / unrolled / loop / onnx2tf |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in p["rows"]:
        rss = " / ".join(f"{r[f'{f}_rss_mb']:.0f}" for f in PEER_FORMS)
        lines.append(
            f"| {r['units']} ({r['input']}) | {'hybrid' if r['mode'] == 'dynamic-int8' else r['mode']} | "
            f"{r['threads']} | "
            + " | ".join(f"{r[f'{f}_ms']:.3g} ms" for f in PEER_FORMS)
            + f" | {_ratio(r['graph_over_onnx2tf'])} | {_ratio(r['loop_over_onnx2tf'])} | {rss} MB |"
        )
    return "\n".join([*lines, "", *_peers_errors(p), "", *_peers_builds(p)])


def _peers_errors(p: dict[str, Any]) -> list[str]:
    checks = "; ".join(
        f"{u} units: Keras {c['keras_float_max_abs_error']:.2g}, onnx2tf {c['onnx2tf_float_max_abs_error']:.2g}"
        for u, c in p["peer_float_check"].items()
    )
    names = [f"dynamic-int8_{f}" for f in PEER_FORMS] + ["int8_lstmgen", "int8_tf"]
    lines = [
        "Error against the float64 reference of the float weights (8 sequences; max / mean abs). The peers' float "
        f"models compute the same LSTM (max abs error of their float32 outputs: {checks}).",
        "",
        "| units | kernels | hybrid fused | hybrid unrolled | hybrid loop | hybrid onnx2tf | int8 lstmgen | int8 TF |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for units, errs in p["accuracy"].items():
        for kernels in ("xnnpack", "builtin"):
            cells = [errs[f"{n} {kernels}"] for n in names]
            lines.append(
                f"| {units} | {'XNNPACK' if kernels == 'xnnpack' else 'builtin'} | "
                + " | ".join(f"{e['max_abs_error']:.3g} / {e['mean_abs_error']:.3g}" for e in cells)
                + " |"
            )
    return lines


def _peers_builds(p: dict[str, Any]) -> list[str]:
    names = {
        "lstmgen": "`lstmgen build --quantize int8 --calibration-data` (verified)",
        "lstmgen --no-verify": "the same with `--no-verify`",
        "tf": "TF's converter (tf.keras LSTM)",
    }
    lines = [
        f"Full-integer int8 builds from the same `.npz` and the same {p['builds'][0]['calibration_sequences']} "
        "calibration sequences, whole processes, alternating (wall and CPU time: medians; TF / this: median of the "
        "per-round wall-time ratios; peak RSS: the largest). TF's converter: `Optimize.DEFAULT`, representative "
        "dataset, int8 ops and input/output; it verifies nothing:",
        "",
        "| units (input) | build | wall | runs | CPU | peak RSS | TF / this |",
        "|---|---|---|---|---|---|---|",
    ]
    for b in p["builds"]:
        for name, r in b["builders"].items():
            lines.append(
                f"| {b['units']} ({b['input']}) | {names.get(name, name)} | {r['wall_s']:.3g} s | "
                f"{', '.join(f'{w:.3g}' for w in r['walls_s'])} | {r['cpu_s']:.3g} s | {r['rss_mb']} MB | "
                f"{r['tf_over_this']:.2g}x |"
            )
    return lines


REGIONS: dict[str, tuple[str, Callable[[Any], str]]] = {
    "forms": ("forms.json", forms_table),
    "forms_detail": ("forms.json", forms_detail),
    "headline": ("process.json", headline),
    "process": ("process.json", process_table),
    "build": ("build.json", build_table),
    "quant": ("quant.json", quant_table),
    "peers": ("peers.json", peers_table),
}


def main(bench_dir: Path) -> None:
    for path in FILES:
        text = path.read_text(encoding="utf-8")
        for name, (source, render) in REGIONS.items():
            src = bench_dir / source
            if not src.is_file():
                continue
            body = render(json.loads(src.read_text()))
            inline = not body.count("\n")
            sep = "" if inline else "\n"
            text = re.sub(
                rf"(<!-- bench:{name} -->).*?(<!-- /bench:{name} -->)",
                lambda m, body=body, sep=sep: f"{m[1]}{sep}{body}{sep}{m[2]}",
                text,
                flags=re.S,
            )
        path.write_text(text, encoding="utf-8")
        print(f"updated {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "build/bench"))
