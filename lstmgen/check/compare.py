"""The verification setup both paths share: start states, the kernel check, the float triple, the tolerances.

A model of LSTM ops only (check/verify.py) and LSTM ops inside a larger graph (check/subgraph.py, each
op on its own input tensor) go through these same functions; the quantized comparison against the
float source is check/against.py.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from lstmgen.check.report import Comparison, VerifyReport, compare, float_tolerance_text
from lstmgen.check.tolerance import check as qcheck_report
from lstmgen.numerics.float_bound import FloatBound
from lstmgen.tflite.records import ModelRecord

States = dict[int, tuple[np.ndarray | None, np.ndarray | None]]
Start = tuple[str, States]


def starts(specs: Sequence[Any], mode: str, batch_of: Callable[[int], int], rng: np.random.Generator) -> list[Start]:
    """The start states checked: the zero state; float models also a random (h, c) in [-1, 1] per LSTM op,
    which proves that the state tensors are wired to the right slots. batch_of(k): op k's batch size."""
    if mode != "none":
        return [("zero state", {})]
    random_states: States = {}
    for k, spec in enumerate(specs):
        h0 = rng.uniform(-1, 1, (batch_of(k), spec.output_size)).astype(np.float32)
        c0 = rng.uniform(-1, 1, (batch_of(k), spec.num_units)).astype(np.float32)
        random_states[k] = (h0, c0)
    return [("zero state", {}), ("random initial state", random_states)]


def kernel_check(
    report: VerifyReport,
    model: ModelRecord,
    feeds: Mapping[int, np.ndarray],
    out: int,
    y: np.ndarray,
    name: str,
    constants: Mapping[int, np.ndarray] | None = None,
) -> None:
    """Quantized: the interpreter's output within the tolerance derived from the kernel's rounding
    (`constants`: the model's constant_values, when the caller widened them already)."""
    q = qcheck_report(model, feeds, {out: y}, mode=report.mode, seed=report.seed, constants=constants)
    o = q["outputs"][0]
    report.quantization.append(q)
    rel = o["max_abs_error"] / max(float(np.abs(y).max(initial=0.0)), 1e-12)
    report.checks.append(Comparison(name, o["max_abs_error"], rel, [o["worst_step"]], o["ok"]))


def float_triple(
    checks: list[Comparison],
    label: str,
    y: tuple[np.ndarray, np.ndarray],
    finals: Sequence[tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]],
    bound: FloatBound,
    atol: float,
    rtol: float,
    prefix: str = "",
    suffix: str = "",
) -> None:
    """Output, and each op's final h and c, against a reference: y = (got, ref); finals[k] = ((h, c) got,
    (h, c) ref); within atol + rtol|ref| or the derived float32 bound (over its tight steps). Names:
    prefix + 'output (label)' + suffix, and 'h op k' / 'c op k' when there are several ops."""
    checks.append(compare(f"{prefix}output ({label}){suffix}", y[0], y[1], atol, rtol, bound.output))
    for k, ((h, c), (h_ref, c_ref)) in enumerate(finals):
        bh, bc = bound.finals[k] if k < len(bound.finals) else (0.0, 0.0)
        op = f" op {k}" if len(finals) > 1 else ""
        checks.append(compare(f"{prefix}h{op} ({label}){suffix}", h, h_ref, atol, rtol, bh))
        checks.append(compare(f"{prefix}c{op} ({label}){suffix}", c, c_ref, atol, rtol, bc))


def finish(report: VerifyReport) -> None:
    """The tolerances the report states: quantized, the largest derived per-step one; float, the source's
    text with the derived float32 bound; and the notes on what the comparisons left out."""
    if report.mode != "none" and report.quantization:
        report.atol = max(max(o["tolerance"]["per_step"]) for q in report.quantization for o in q["outputs"])
        report.rtol = 0.0
    elif report.mode == "none" and report.against_source is not None:
        report.against_source.tolerance = float_tolerance_text(report.atol, report.rtol, report.float_bound)
    report.notes += report.scope_notes()
