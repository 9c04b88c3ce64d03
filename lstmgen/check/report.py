"""What a verification found: element-wise comparisons, the report types and their tolerance texts."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from lstmgen.check.tensors import TensorCheck, worst
from lstmgen.numerics.float_bound import FLOAT_MARGIN


@dataclass
class Comparison:
    """Error of one interpreter output against the reference."""

    name: str
    max_abs_error: float
    max_rel_error: float
    worst_index: list[int]
    passed: bool
    scope: str = ""  # "" = every element; else which time steps were compared and why not the rest


# Where the reference's own float32 sensitivity exceeds this (x max(1, max|ref|)), float32 rounding alone
# moves the output that far: the step proves nothing, so the comparison stops before it (WEAK is not PASS).
WEAK_BOUND = 0.05


def _fit(bound: np.ndarray | float, shape: tuple[int, ...]) -> np.ndarray | float:
    """A per-step bound for a reference of `shape` (its largest value where the layouts differ)."""
    try:
        return np.broadcast_to(bound, shape)
    except ValueError:
        return float(np.max(bound, initial=0.0))


def _tight_steps(bound: np.ndarray | float, ref: np.ndarray) -> tuple[int | None, int, int]:
    """(time axis, leading time steps where the bound still proves something, all steps); axis None: no
    per-step bound (a scalar, or one step), where K = 0 means that bound is too loose to prove anything."""
    limit = WEAK_BOUND * max(1.0, float(np.abs(ref).max(initial=0.0)))
    b = np.asarray(bound, np.float64)
    long = [a for a in range(b.ndim) if b.shape[a] > 1]
    if b.ndim != 3 or ref.ndim != 3 or len(long) != 1 or b.shape[long[0]] != ref.shape[long[0]]:
        return None, int(float(np.max(b, initial=0.0)) <= limit), 1
    axis = long[0]
    per_step = b.reshape(-1)
    loose = np.flatnonzero(per_step > limit)
    return axis, int(loose[0]) if loose.size else per_step.size, per_step.size


def compare(
    name: str, got: np.ndarray, ref: np.ndarray, atol: float, rtol: float, bound: np.ndarray | float = 0.0
) -> Comparison:
    """Element-wise: |got - ref| <= max(atol + rtol|ref|, bound) (bound: a derived float32 sensitivity),
    over the leading time steps where the bound is tight (WEAK_BOUND); the rest is left out and said so."""
    if np.size(got) == ref.size and np.max(bound, initial=0.0) > WEAK_BOUND:
        axis, k, total = _tight_steps(bound, ref)
        got = np.asarray(got, np.float64).reshape(ref.shape)
        if axis is None and k == 0:  # a final state past the chaotic steps
            err = float(np.abs(got - ref).max(initial=0.0))
            return Comparison(name, err, 0.0, [], True, "not compared: chaotic in float32 at the last step")
        if axis is not None and k < total:
            cut = [slice(None)] * 3
            cut[axis] = slice(0, k)
            c = compare(name, got[tuple(cut)], ref[tuple(cut)], atol, rtol, np.asarray(bound)[tuple(cut)])
            c.scope = f"steps 1-{k} of {total}; later steps are chaotic in float32"
            c.passed = c.passed and k > 0
            return c
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
    tensors: list[TensorCheck] = field(default_factory=list)  # each LSTM constant against the source's array
    options: list[str] = field(default_factory=list)  # options that change the source's numbers (each a FAIL)
    notes: list[str] = field(default_factory=list)  # what the inputs tested, options that never bind, ...
    # an integer cell state the source's goes beyond on the compared inputs (check/cell_range.py): the cause
    # of a failure against the source, a warning on a pass
    saturated: list[str] = field(default_factory=list)

    @property
    def max_abs_error(self) -> float:
        return max((c.max_abs_error for c in self.checks), default=0.0)

    @property
    def error_in_output_steps(self) -> float | None:
        return self.max_abs_error / self.output_step if self.output_step else None

    @property
    def passed(self) -> bool:
        ok = all(c.passed for c in self.checks) and not self.incompatible and not self.options
        ok = ok and all(t.passed for t in self.tensors)
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
        bad = worst(self.tensors)
        if bad is not None:
            return f"a constant tensor differs from the source's: {bad.describe(self.ops)}"
        if self.options:
            return "; ".join(self.options)
        return f"max abs error {self.max_abs_error:.3g}" + "".join(f"; {d}" for d in self.saturated)

    @property
    def ops(self) -> int:
        return 1 + max((t.op for t in self.tensors), default=0)

    def tensor_line(self) -> str:
        """One line on the tensor-level check: how many tensors, the worst."""
        if not self.tensors:
            return "    tensors: no per-tensor view of this source (outputs only)"
        bad = [t for t in self.tensors if not t.passed]
        if bad:
            return f"    tensors: {len(bad)} of {len(self.tensors)} differ from the source: FAIL; worst " + (
                worst(self.tensors).describe(self.ops)  # type: ignore[union-attr]
            )
        top = max(self.tensors, key=lambda t: t.steps / t.allowed)
        if top.steps == 0:
            return f"    tensors: all {len(self.tensors)} LSTM constants equal the source's exactly"
        return (
            f"    tensors: all {len(self.tensors)} LSTM constants equal the source's within their type "
            f"(largest: {top.steps:.2g} steps, {top.name})"
        )

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
        lines.append(self.tensor_line())
        lines += [f"    error: {d}" for d in self.options]
        lines += [f"    {'warning' if self.passed else 'cause'}: {d}" for d in self.saturated]
        kind = "error" if self.structure_is_error else "note"
        lines += [f"    {kind}: {d}" for d in self.structure]
        lines += [f"    note: {d}" for d in self.notes]
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
            "tensors": [t.to_dict() for t in self.tensors],
            "options": list(self.options),
            "notes": list(self.notes),
            "saturated": list(self.saturated),
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
    notes: list[str] = field(default_factory=list)  # what the check could not see, labels that disagree, ...
    # integer models: each runtime against the exact emulation of its kernel (numerics/emulate/report.py)
    emulation: list[dict[str, Any]] = field(default_factory=list)
    # A live torch/Keras object run itself (lstmgen.api._witness.FrameworkReport; the Python API only).
    framework: Any = None

    @property
    def passed(self) -> bool:
        return (
            all(c.passed for c in self.checks)
            and (self.against_source is None or self.against_source.passed)
            and all(e["ok"] for e in self.emulation)
            and (self.framework is None or self.framework.passed is not False)
        )

    @property
    def max_abs_error(self) -> float:
        return max((c.max_abs_error for c in self.checks), default=0.0)

    @property
    def max_rel_error(self) -> float:
        return max((c.max_rel_error for c in self.checks), default=0.0)

    def scope_notes(self) -> list[str]:
        """What the comparisons left out (chaotic steps), once per distinct reason."""
        checks = self.checks + (self.against_source.checks if self.against_source else [])
        found = []
        for c in checks:
            note = f"{c.name}: compared over {c.scope}" if c.scope.startswith("steps") else f"{c.name}: {c.scope}"
            if c.scope and note not in found:
                found.append(note)
        return found

    def tolerance_text(self) -> str:
        if self.mode == "none":
            return float_tolerance_text(self.atol, self.rtol, self.float_bound)
        return f"{self.mode}: derived per time step, up to {self.atol:.3g}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(passed=self.passed, max_abs_error=self.max_abs_error, max_rel_error=self.max_rel_error)
        d["tolerance"] = self.tolerance_text()
        d["against_source"] = self.against_source.to_dict() if self.against_source else None
        if self.framework is None:
            del d["framework"]  # the CLI's reports (schemas/report.schema.json) never have one
        return d


def float_tolerance_text(atol: float, rtol: float, bound: float) -> str:
    fixed = f"{atol:g} + {rtol:g}·|ref|"
    if bound <= atol:
        return fixed
    derived = f"the reference's float32 sensitivity x{FLOAT_MARGIN:g} per time step"
    text = f"{fixed}, or {derived} where larger (up to {bound:.3g})"
    if bound > WEAK_BOUND:  # a chaotic cell: float32 rounding alone moves its late outputs this far
        text += "; outputs compared only over the steps where that stays below 0.05 (later ones are chaotic)"
    return text


def first_step_note(src: SourceReport, y: np.ndarray, y_src: np.ndarray, t_axis: int, atol: float, rtol: float) -> None:
    """Where a failure starts says what to look for: outputs apart already at the first step from the zero
    state point at the weights or gate equations (a cell clip of 1 or more cannot bind there: |c| <= |i*g|)."""
    if np.ndim(y) != 3 or np.shape(y) != np.shape(y_src):
        return  # only on sequences of one shape (the first step is always within the tight steps: a miss
        # there fails the output comparison too)
    first, ref = np.take(y, 0, axis=t_axis), np.take(y_src, 0, axis=t_axis)
    err = float(np.max(np.abs(first - ref), initial=0.0))
    if err > atol + rtol * float(np.max(np.abs(ref), initial=0.0)):
        src.structure.append(
            f"the outputs differ already at the first time step from the zero state (max abs error {err:.3g}), "
            "before any recurrence and where a cell clip of 1 or more cannot bind: look at the weights themselves "
            "(another checkpoint, gate order, forget bias), not at the clips"
        )
