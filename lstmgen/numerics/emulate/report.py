"""The interpreter against the emulator of its own kernel, in output steps (LSB): verify's `emulation` objects."""

from __future__ import annotations

import platform
from typing import Any

import numpy as np

from lstmgen.errors import LstmgenError
from lstmgen.numerics.emulate.runner import Emulation, emulate_graph
from lstmgen.numerics.graph import DATA_OPS
from lstmgen.tflite.records import ModelRecord, TensorRecord
from lstmgen.tflite.schema import BuiltinOperator as Op

# interpreter name (Session.runtime) -> emulator flavour
RUNTIME_FLAVOUR: dict[str, str] = {"litert": "litert", "tflite-runtime": "litert", "tensorflow": "litert",
                                   "tflite-micro": "tflm"}  # fmt: skip
NEON_MACHINES = ("arm64", "aarch64", "armv7l", "armv8l")
# x86-64 builds whose peephole is the portable C++ (measured: tflite-runtime 2.14.0), not NEON through NEON_2_SSE
# (measured: ai-edge-litert 2.3.0; tensorflow's wheels are assumed to build like it)
PORTABLE_X86 = ("tflite-runtime",)


def platform_flavour(flavour: str, runtime: str = "litert", machine: str | None = None) -> str:
    """The kernel build the numbers come from: TFLM's reference kernels; LiteRT's x86-64 wheels, which run the
    NEON peephole through NEON_2_SSE (SSE4.1 builds) or the portable one; or Arm's NEON kernels."""
    if flavour == "tflm":
        return "tflm-reference"
    if (machine or platform.machine()).lower() in NEON_MACHINES:
        return "arm-neon"
    return "x86-64-portable" if runtime in PORTABLE_X86 else "x86-64-sse4.1"


def build_knobs(label: str) -> Any:
    """The emulator settings for a LiteRT build label (None: the defaults)."""
    from lstmgen.numerics.emulate.litert import Knobs

    return Knobs(neon_peephole=False) if label == "x86-64-portable" else None


def allowed_lsb(model: ModelRecord, label: str) -> int:
    """0, except on Arm, where LiteRT's NEON projection and layer norm round exact negative ties of their
    requantization half up (MultiplyByQuantizedMultiplier4Rows; not emulated): one step, where the model has them."""
    if label != "arm-neon":
        return 0
    for op in model.operators:
        if op.opcode == Op.UNIDIRECTIONAL_SEQUENCE_LSTM and any(
            s < len(op.inputs) and op.inputs[s] >= 0 for s in (16, 20, 21, 22, 23)
        ):
            return 1
    return 0


def _codes(t: TensorRecord, real: np.ndarray) -> np.ndarray:
    q = t.quantization
    if q is None or len(q.scale) == 0 or not np.isfinite(q.scale[0]) or q.scale[0] <= 0 or len(q.zero_point) == 0:
        raise LstmgenError(f"the integer tensor {t.name!r} has no usable quantization (scale, zero point)")
    return np.round(np.asarray(real, np.float64) / q.scale[0]) + q.zero_point[0]


def _feed(t: TensorRecord, x: np.ndarray) -> np.ndarray:
    if t.dtype.kind == "f":
        return np.asarray(x, np.float32)
    info = np.iinfo(t.dtype)
    return np.clip(_codes(t, x), info.min, info.max).astype(np.int64)


def _float_grid(model: ModelRecord, index: int) -> float:
    """The grid a float tensor's values sit on: the scale of the integer tensor DEQUANTIZE reads it from."""
    t = model.tensors[index]
    src = next((model.tensors[o.inputs[0]] for o in model.operators if o.outputs and o.outputs[0] == index), None)
    if src is None or src.quantization is None or len(src.quantization.scale) == 0:
        raise LstmgenError(f"the float tensor {t.name!r} is not dequantized from an integer tensor: no grid to count "
                           "steps on")  # fmt: skip
    return float(src.quantization.scale[0])


def _steps(model: ModelRecord, index: int, got_real: np.ndarray, emulated: np.ndarray) -> int:
    """Largest difference in steps of the tensor's grid (a float output: of the grid DEQUANTIZE reads)."""
    t = model.tensors[index]
    if t.dtype.kind == "f":
        diff = np.abs(np.asarray(got_real, np.float64) - emulated) / _float_grid(model, index)
    else:
        diff = np.abs(_codes(t, got_real) - emulated)
    return int(np.round(diff.max(initial=0.0)))


def runtime_disagreements(model: ModelRecord) -> list[str]:
    """Where LiteRT's and TFLM's integer kernels read the same file differently, and which reads it right:
    a file another tool wrote can compute different things in the two runtimes, both bit-exact to their kernels."""
    found = []
    for k, op in enumerate(model.operators):
        if op.opcode != Op.UNIDIRECTIONAL_SEQUENCE_LSTM or model.tensors[op.inputs[0]].dtype != np.int8:
            continue
        state = model.tensors[op.inputs[18]].quantization
        hidden = model.tensors[op.intermediates[4]].quantization if len(op.intermediates) == 5 else None
        projection = len(op.inputs) > 16 and op.inputs[16] >= 0
        if hidden is None or state is None or projection:
            continue
        if (hidden.scale[0], hidden.zero_point[0]) != (state.scale[0], state.zero_point[0]):
            found.append(
                f"LSTM op {k}: LiteRT's integer kernel writes the hidden state on intermediate 4's grid (scale "
                f"{hidden.scale[0]:.6g}, zero point {hidden.zero_point[0]}), but the file reads it back as the output "
                f"state and the output with scale {state.scale[0]:.6g}, zero point {state.zero_point[0]}, which "
                "TFLM's kernel uses: on this file LiteRT's output is wrong (off by the ratio of the scales, "
                "saturating where intermediate 4's is smaller) and TFLM's right. Give intermediate 4 the output "
                "state's scale and zero point (lstmgen writes them equal)."
            )
    return found


def emulation_report(
    model: ModelRecord,
    runtime: str,
    x: np.ndarray,
    y: np.ndarray,
    finals: list[tuple[np.ndarray, np.ndarray]] | None = None,
    knobs: Any = None,
) -> dict[str, Any]:
    """{"runtime", "flavour", "max_lsb", "allowed_lsb", "ok"} for the interpreter `runtime` that turned the real
    input x into the real output y (and final states `finals`, real, per LSTM op), from the zero state.
    A model the emulator cannot run gives max_lsb None and the reason in "skipped"."""
    flavour = RUNTIME_FLAVOUR.get(runtime, runtime)
    label = platform_flavour(flavour, runtime)
    knobs = knobs if knobs is not None or flavour != "litert" else build_knobs(label)
    out: dict[str, Any] = {"runtime": runtime, "flavour": label, "max_lsb": None, "allowed_lsb": 0, "ok": True}
    disagreements = runtime_disagreements(model)
    if disagreements:
        out["runtimes_disagree"] = disagreements
    try:
        em: Emulation = emulate_graph(
            model, {model.inputs[0]: _feed(model.tensors[model.inputs[0]], x)}, flavour,
            knobs=knobs, data_ops=DATA_OPS,
        )  # fmt: skip
        worst = _worst_steps(model, y, em, finals)
    except LstmgenError as exc:
        out["skipped"] = str(exc)
        return out
    allowed = allowed_lsb(model, label)
    out |= {"max_lsb": worst, "allowed_lsb": allowed, "ok": worst <= allowed}
    return out


def _worst_steps(
    model: ModelRecord, y: np.ndarray, em: Emulation, finals: list[tuple[np.ndarray, np.ndarray]] | None
) -> int:
    """The largest difference in grid steps over the output and every LSTM op's final h and c."""
    worst = _steps(model, model.outputs[0], y, em.values[model.outputs[0]])
    lstm_ops = [k for k, op in enumerate(model.operators) if op.opcode == Op.UNIDIRECTIONAL_SEQUENCE_LSTM]
    for k, (h, c) in zip(lstm_ops, finals or [], strict=False):
        op = model.operators[k]
        for index, real in ((op.inputs[18], h), (op.inputs[19], c)):
            worst = max(worst, _steps(model, index, real, em.final_states[k][0 if index == op.inputs[18] else 1]))
    return worst


def emulation_lines(reports: list[dict[str, Any]]) -> list[str]:
    """One line per runtime for verify's text output."""
    lines = []
    for r in reports:
        name = f"bit-exact [{r['runtime']}]"
        if r["max_lsb"] is None:
            lines.append(f"{name:<34} not emulated: {r.get('skipped', '')}")
            continue
        allowed = f" (allowed {r['allowed_lsb']}: NEON tie rounding)" if r["allowed_lsb"] else ""
        lines.append(f"{name:<34} {r['max_lsb']} LSB from its kernel's exact emulation ({r['flavour']}){allowed}  "
                     f"{'ok' if r['ok'] else 'FAIL'}")  # fmt: skip
    for note in dict.fromkeys(n for r in reports for n in r.get("runtimes_disagree", [])):
        lines.append(f"runtimes disagree: {note}")
    return lines


def emulation_verdict(reports: list[dict[str, Any]]) -> str:
    """What the emulation says about a failed verification: which runtime is off, or that the kernels compute
    exactly what the file says (so the file, not the runtime, is what differs from the reference)."""
    off = [r for r in reports if not r["ok"]]
    if off:
        return " " + "; ".join(
            f"{r['runtime']} differs by {r['max_lsb']} LSB from the exact emulation of its own integer kernel "
            f"({r['flavour']}): this runtime build computes something other than its kernel's documented arithmetic"
            for r in off
        ) + "."
    disagree = list(dict.fromkeys(n for r in reports for n in r.get("runtimes_disagree", [])))
    if disagree:
        return " " + " ".join(disagree)
    exact = [r["runtime"] for r in reports if r["max_lsb"] is not None]
    if exact:
        return (
            f" {' and '.join(exact)} computed exactly what the file's integer tensors say (0 LSB against the "
            "emulated kernel): the runtime is right; what the file holds (its constants, scales, zero points or "
            "options) is what differs from the reference."
        )
    return ""
