"""What a verification found: element-wise comparisons, the report types and their tolerance texts."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from lstmgen.numerics.float_bound import FLOAT_MARGIN

# Quantized models against the float source, when no --max-error is given: a gross-error bound as a
# fraction of the output's range (int8 errors are a few output steps, ~1-3 % of it; an int8 scale
# off by 8x or a wrong zero point gives tens of percent).
GROSS_ERROR_FRACTION = 0.1


@dataclass
class Comparison:
    """Error of one interpreter output against the reference."""

    name: str
    max_abs_error: float
    max_rel_error: float
    worst_index: list[int]
    passed: bool


def _fit(bound: np.ndarray | float, shape: tuple[int, ...]) -> np.ndarray | float:
    """A per-step bound for a reference of `shape` (its largest value where the layouts differ)."""
    try:
        return np.broadcast_to(bound, shape)
    except ValueError:
        return float(np.max(bound, initial=0.0))


def compare(
    name: str, got: np.ndarray, ref: np.ndarray, atol: float, rtol: float, bound: np.ndarray | float = 0.0
) -> Comparison:
    """Element-wise: |got - ref| <= max(atol + rtol|ref|, bound) (bound: a derived float32 sensitivity)."""
    if np.size(got) != ref.size:  # e.g. a source that merges directions differently: no element-wise match
        return Comparison(
            f"{name}: shape {list(np.shape(got))} vs {list(ref.shape)}", float("inf"), float("inf"), [], False
        )
    got = np.asarray(got, np.float64).reshape(ref.shape)
    err = np.abs(got - ref)
    worst = np.unravel_index(int(np.argmax(err)), err.shape) if err.size else ()
    rel = err / np.maximum(np.abs(ref), 1e-12)
    passed = bool(np.all(err <= np.maximum(atol + rtol * np.abs(ref), _fit(bound, ref.shape))))
    return Comparison(name, float(err.max(initial=0.0)), float(rel.max(initial=0.0)), [int(i) for i in worst], passed)


@dataclass
class SourceReport:
    """The model against the source reference (the weight file in its framework's own equations)."""

    reference: str
    quantized: bool
    tolerance: str
    checks: list[Comparison] = field(default_factory=list)
    structure: list[str] = field(default_factory=list)  # differences between the file's ops and what was asked
    structure_is_error: bool = False  # our own builds: any difference is a bug in lstmgen
    incompatible: list[str] = field(default_factory=list)  # sizes that rule the source out before any run
    max_error: float | None = None  # the --max-error gate (quantized models)
    output_step: float | None = None  # the output's quantization step
    worst_time_step: int | None = None
    samples: int = 1  # inputs compared (quantized models: x plus calibration samples)

    @property
    def max_abs_error(self) -> float:
        return max((c.max_abs_error for c in self.checks), default=0.0)

    @property
    def error_in_output_steps(self) -> float | None:
        return self.max_abs_error / self.output_step if self.output_step else None

    @property
    def passed(self) -> bool:
        ok = all(c.passed for c in self.checks) and not self.incompatible
        return ok and not (self.structure_is_error and self.structure)

    @property
    def shape_mismatches(self) -> list[str]:
        """The comparisons that could not be made because the two outputs differ in shape (error inf)."""
        return [c.name for c in self.checks if not math.isfinite(c.max_abs_error)]

    def failure_reason(self) -> str:
        """Why this check failed, in a few words: other sizes, outputs of other shapes, or the error."""
        if self.incompatible:
            return "; ".join(self.incompatible)
        if self.shape_mismatches:
            return "the outputs differ in shape: " + "; ".join(self.shape_mismatches)
        return f"max abs error {self.max_abs_error:.3g}"

    def summary(self) -> str:
        """Two lines or more for the text output: the verdict, then each structural difference."""
        steps = f" = {self.error_in_output_steps:.3g} output steps" if self.error_in_output_steps is not None else ""
        where = f", worst at time step {self.worst_time_step}" if self.worst_time_step is not None else ""
        where += f", over {self.samples} inputs" if self.samples > 1 else ""
        verdict = "PASS" if self.passed else "FAIL"
        lines = [
            f"  against the source ({self.reference}): max abs error {self.max_abs_error:.3g}{steps}{where} "
            f"(tolerance {self.tolerance}): {verdict}"
        ]
        if self.shape_mismatches:
            lines = [
                f"  against the source ({self.reference}): the outputs differ in shape "
                f"({'; '.join(self.shape_mismatches)}; model vs source), e.g. every step against the last step "
                "(--return-sequences / --last-step say which the source returns): FAIL"
            ]
        if self.incompatible:
            lines = [f"  against the source ({self.reference}): not this LSTM, its sizes differ: FAIL"]
            lines += [f"    {d}" for d in self.incompatible]
        kind = "error" if self.structure_is_error else "note"
        lines += [f"    {kind}: {d}" for d in self.structure]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "reference": self.reference,
            "max_abs_error": self.max_abs_error,
            "tolerance": self.tolerance,
            "quantized": self.quantized,
            "max_error": self.max_error,
            "output_step": self.output_step,
            "error_in_output_steps": self.error_in_output_steps,
            "worst_time_step": self.worst_time_step,
            "samples": self.samples,
            "structure": list(self.structure),
            "structure_is_error": self.structure_is_error,
            "incompatible": list(self.incompatible),
            "checks": [asdict(c) for c in self.checks],
        }


@dataclass
class VerifyReport:
    """What `verify` found; `passed` is the verdict."""

    model: str
    runtime: str
    runtime_version: str
    input_shape: list[int]
    seed: int
    atol: float
    rtol: float
    mode: str = "none"
    checks: list[Comparison] = field(default_factory=list)
    runtimes: list[str] = field(default_factory=list)  # extra runtimes checked (TFLite Micro)
    quantization: list[dict[str, Any]] = field(default_factory=list)  # qcheck reports, per runtime
    against_source: SourceReport | None = None
    scope: list[str] = field(default_factory=list)  # LSTM ops inside a larger graph: what was checked, what not
    float_bound: float = 0.0  # float models: the largest derived float32-sensitivity bound (0: the floor held)
    # integer models: each runtime against the exact emulation of its kernel (numerics/emulate/report.py)
    emulation: list[dict[str, Any]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return (
            all(c.passed for c in self.checks)
            and (self.against_source is None or self.against_source.passed)
            and all(e["ok"] for e in self.emulation)
        )

    @property
    def max_abs_error(self) -> float:
        return max((c.max_abs_error for c in self.checks), default=0.0)

    @property
    def max_rel_error(self) -> float:
        return max((c.max_rel_error for c in self.checks), default=0.0)

    def tolerance_text(self) -> str:
        if self.mode == "none":
            return float_tolerance_text(self.atol, self.rtol, self.float_bound)
        return f"{self.mode}: derived per time step, up to {self.atol:.3g}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(passed=self.passed, max_abs_error=self.max_abs_error, max_rel_error=self.max_rel_error)
        d["tolerance"] = self.tolerance_text()
        d["against_source"] = self.against_source.to_dict() if self.against_source else None
        return d


# Above this derived bound the float check no longer pins the late time steps down; say so.
WEAK_BOUND = 0.05


def float_tolerance_text(atol: float, rtol: float, bound: float) -> str:
    fixed = f"{atol:g} + {rtol:g}·|ref|"
    if bound <= atol:
        return fixed
    derived = f"the reference's float32 sensitivity x{FLOAT_MARGIN:g} per time step"
    text = f"{fixed}, or {derived} where larger (up to {bound:.3g})"
    if bound > WEAK_BOUND:  # a chaotic cell: float32 rounding alone moves its late outputs this far
        text += "; WEAK: this cell amplifies rounding, so late time steps prove little (check shorter sequences)"
    return text


def first_step_note(src: SourceReport, y: np.ndarray, y_src: np.ndarray, t_axis: int, atol: float, rtol: float) -> None:
    """Where a failure starts says what to look for: outputs apart already at the first step from the zero
    state point at the weights or gate equations (a cell clip of 1 or more cannot bind there: |c| <= |i*g|)."""
    if (src.checks and src.checks[-1].passed) or np.ndim(y) != 3 or np.shape(y) != np.shape(y_src):
        return  # only after the output comparison just made failed, and only on sequences of one shape
    first, ref = np.take(y, 0, axis=t_axis), np.take(y_src, 0, axis=t_axis)
    err = float(np.max(np.abs(first - ref), initial=0.0))
    if err > atol + rtol * float(np.max(np.abs(ref), initial=0.0)):
        src.structure.append(
            f"the outputs differ already at the first time step from the zero state (max abs error {err:.3g}), "
            "before any recurrence and where a cell clip of 1 or more cannot bind: look at the weights themselves "
            "(another checkpoint, gate order, forget bias), not at the clips"
        )
