"""The build's gate: what runs on the complete temp file before it is renamed into place.

Verification against the source reference, vela for --target ethos-u, firmware sources for --embed;
any failure leaves no file behind.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lstmgen.config import CellConfig
from lstmgen.errors import VerificationError
from lstmgen.numerics.tables import INTEGER_MODES
from lstmgen.progress import task
from lstmgen.tflite.records import Deferred
from lstmgen.weights import CellWeights
from lstmgen.weights.raw import SourceArrays

if TYPE_CHECKING:
    from lstmgen.check.source import SourceModel
    from lstmgen.check.verify import VerifyReport


def _generated(tensors: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """--init arrays as values: Deferred matrices are generated again (the same seeded numbers)."""
    out = {}
    for key, value in tensors.items():
        if isinstance(value, Deferred):
            value_array = np.empty(value.shape, np.float32)
            value.fill(value_array)
            value = value_array
        out[key] = value
    return out


def source_reference(
    config: CellConfig, layers: list[list[CellWeights]], stated_forget_bias: float | None
) -> tuple[SourceModel | None, str | None]:
    """The judging reference: the source arrays in their framework's equations plus the stated options.

    --init weights are their own source (the op's equations on the generated arrays, forget bias
    as resolved). Returns (None, why) when the source cannot be computed.
    """
    from lstmgen.check.source import SourceUnsupported, source_model
    from lstmgen.check.source.common import Stated

    if all(c.origin is None and c.format.startswith("init") for cells in layers for c in cells):
        layers = [[replace(c, origin=SourceArrays("tflite", _generated(c.tensors))) for c in cells] for cells in layers]
        stated_forget_bias = config.forget_bias
    stated = Stated(
        activation=config.activation,
        cell_clip=config.cell_clip,
        proj_clip=config.proj_clip,
        forget_bias=stated_forget_bias,
        time_major=config.time_major,
        go_backwards=config.go_backwards,
        return_sequences=config.return_sequences,
    )
    try:
        return source_model(layers, stated), None
    except SourceUnsupported as exc:
        return None, f"no source reference: {exc}"


def source_failure(report: VerifyReport) -> str:
    """Why the model failed against the source, in one sentence (for the error message)."""
    src = report.against_source
    if src is None or src.passed:
        return ""
    if src.structure and src.structure_is_error:
        return "the file's LSTM ops differ from what was asked: " + "; ".join(src.structure) + ". "
    if src.options or not all(t.passed for t in src.tensors):
        return f"the model does not compute the source LSTM ({src.reference}): {src.failure_reason()}. "
    steps = f" ({src.error_in_output_steps:.3g} output steps)" if src.error_in_output_steps is not None else ""
    return (
        f"the model does not compute the source LSTM ({src.reference}): max abs error {src.max_abs_error:.3g}"
        f"{steps} exceeds {src.tolerance}{''.join(f'; {d}' for d in src.saturated)}. "
    )


def verify_written(
    tmp: Path,
    output: str | Path,
    config: CellConfig,
    *,
    runtime: str,
    reference: SourceModel | None,
    max_error: float | None,
    samples: np.ndarray | None,
    say: Callable[[str], None],
) -> VerifyReport:
    """Verify the temp file in an interpreter against the source reference; VerificationError if it fails."""
    from lstmgen.check.verify import verify_model

    say("verifying against the NumPy reference")
    with task("verifying"):
        report = verify_model(
            tmp,
            runtime=runtime,
            seed=config.seed,
            x=samples[0] if samples is not None else None,  # int8: verify on representative data
            micro=config.target in ("micro", "ethos-u"),  # Ethos-U firmware runs the model in TFLM
            source=reference,
            max_error=max_error,
            strict_structure=True,
            source_inputs=samples,
            smoke=config.quantize in INTEGER_MODES and samples is None,  # --calibration random
        )
    report.model = str(output)
    if not report.passed:
        raise VerificationError(
            f"verification failed on {report.runtime} {report.runtime_version}: "
            + (
                source_failure(report)
                or f"max abs error {report.max_abs_error:.3g} exceeds the tolerance ({report.tolerance_text()}). "
            )
            + f"No model was written.{_failure_advice(report)}",
            payload={"verification": report.to_dict()},
        )
    return report


def _failure_advice(report: VerifyReport) -> str:
    """What the user can do about a failed verification: a gate they set, a far quantization, or a bug report."""
    src = report.against_source
    if src is not None and src.max_error is not None:
        return ""  # their own --max-error gate failed: the message says by how much
    if src is not None and src.quantized and report.checks and all(c.passed for c in report.checks):
        # The kernel computes the file faithfully; the file is just far from the float model.
        return (
            " The interpreter runs the quantized file as written, but the file is far from the float model: "
            "calibrate on representative data (--calibration-data) or pass --max-error to accept this error; "
            "if the calibration data is representative, please report it (it may be a quantizer bug)."
        )
    return " Please report this with the command line used (it is a bug in lstmgen)."


def compile_for_npu(
    tmp: Path, accelerator: str | None, notes: list[str], say: Callable[[str], None]
) -> dict[str, Any] | None:
    """--target ethos-u: compile with vela when installed (a note when not); any CPU operator fails the build."""
    from lstmgen.targets.ethos_u import DEFAULT_ACCELERATOR, run_vela, vela_installed

    if not vela_installed():
        notes.append("ethos-u: vela is not installed (pip install 'lstmgen[ethos-u]'); only lstmgen's rules ran")
        return None
    say("compiling with vela")
    vela = run_vela(tmp, accelerator or DEFAULT_ACCELERATOR)
    if not vela.ok:
        raise VerificationError(
            f"--target ethos-u: vela {vela.vela_version} put {vela.cpu_operators} operator(s) on the CPU "
            f"({vela.npu_operators} on the NPU) although lstmgen's rules passed; no model was written. "
            "Please report this with the command line used.",
            payload={"vela": vela.to_dict()},
        )
    return vela.to_dict()


def write_firmware(tmp: Path, embed: str | Path, output: str | Path, say: Callable[[str], None]) -> dict[str, Any]:
    """--embed: firmware sources from the verified temp file, before the model is renamed into place."""
    from lstmgen.embed import embed as write_sources

    say("writing firmware sources")
    return write_sources(tmp, embed, source_name=Path(output).name).to_dict()
