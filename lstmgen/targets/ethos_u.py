"""Arm Ethos-U target: the rules vela applies before placing a fused LSTM on the NPU, and a vela runner.

The rules are those of ethos-u-vela 5.2.0 (its SUPPORTED_OPS.md is generated from the constraint
docstrings of ethosu/vela/tflite_model_semantic.py and tflite_supported_operators.py; the LSTM
lowering is ethosu/vela/lstm.py). A model that breaks one is not an error to vela: it quietly runs
that operator on the CPU, which is why lstmgen refuses it up front.
"""

from __future__ import annotations

import csv
import importlib.util
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lstmgen.errors import RuntimeNotAvailable, VerificationError
from lstmgen.numerics.tables import F32, I8, I16
from lstmgen.targets import DEFAULT_ACCELERATOR
from lstmgen.targets.checks import (
    Rule,
    cifg,
    diagonal,
    dynamic_shapes,
    input_count,
    layer_norm,
    lstms,
    non_variable_state,
    op_name,
    peepholes,
    projection,
    tensor,
)
from lstmgen.tflite.records import ModelRecord
from lstmgen.tflite.schema import BuiltinOperator as Op
from lstmgen.tflite.slots import Slot

VELA_VERSION = "5.2.0"  # the version these rules were read from
_SUPPORTED = f"ethos-u-vela {VELA_VERSION} SUPPORTED_OPS.md"
# Operators lstmgen writes that vela maps to the NPU (tflite_supported_operators.py: mac_main_ops,
# concat_ops, split_ops, npu_post_ops); REVERSE_V2 and DEQUANTIZE are not in its lists.
NPU_OPS: frozenset[int] = frozenset({Op.UNIDIRECTIONAL_SEQUENCE_LSTM, Op.CONCATENATION, Op.STRIDED_SLICE, Op.QUANTIZE})
NPU_TYPES: frozenset[np.dtype] = frozenset({np.dtype(np.uint8), I8, I16, np.dtype(np.int32)})
TENSOR_DIM_RANGE = (1, 65535)


def _cpu_ops(model: ModelRecord) -> list[str]:
    found = []
    for k, op in enumerate(model.operators):
        if op.opcode not in NPU_OPS:
            found.append(f"operator {k} {op_name(op)} (not in vela's supported operators)")
            continue
        io = [model.tensors[i] for i in (*op.inputs[:1], *op.outputs) if i >= 0]
        bad = sorted({t.dtype.name for t in io if t.dtype not in NPU_TYPES})
        if bad:
            found.append(f"operator {k} {op_name(op)} on {', '.join(bad)} tensors")
    return found


def _float_lstm(model: ModelRecord) -> list[str]:
    found = []
    for where, op in lstms(model):
        x, w = tensor(model, op, Slot.INPUT), tensor(model, op, Slot.INPUT_TO_FORGET_WEIGHTS)
        if x is not None and w is not None and x.dtype == F32 and w.dtype == F32:
            found.append(f"{where}: float32 input and weights")
    return found


def _hybrid_lstm(model: ModelRecord) -> list[str]:
    found = []
    for where, op in lstms(model):
        x, w = tensor(model, op, Slot.INPUT), tensor(model, op, Slot.INPUT_TO_FORGET_WEIGHTS)
        if x is not None and w is not None and x.dtype == F32 and w.dtype != F32:
            found.append(f"{where}: float32 input, {w.dtype.name} weights")
    return found


def _other_input_type(model: ModelRecord) -> list[str]:
    found = []
    for where, op in lstms(model):
        x = tensor(model, op, Slot.INPUT)
        if x is not None and x.dtype not in (F32, I8, I16):
            found.append(f"{where}: {x.dtype.name} input")
    return found


def _in_out_types(model: ModelRecord) -> list[str]:
    found = []
    for where, op in lstms(model):
        x = tensor(model, op, Slot.INPUT)
        if x is not None and op.outputs and model.tensors[op.outputs[0]].dtype != x.dtype:
            found.append(f"{where}: input {x.dtype.name}, output {model.tensors[op.outputs[0]].dtype.name}")
    return found


def _rank(model: ModelRecord) -> list[str]:
    found = []
    for where, op in lstms(model):
        x = tensor(model, op, Slot.INPUT)
        y = model.tensors[op.outputs[0]] if op.outputs else None
        if x is None or y is None or len(x.shape) != 3 or len(y.shape) != 3:
            found.append(f"{where}: input shape {list(x.shape) if x else None}, output {list(y.shape) if y else None}")
    return found


def _intermediates(model: ModelRecord) -> list[str]:
    return [
        f"{where}: {len(op.intermediates)} intermediates" for where, op in lstms(model) if len(op.intermediates) != 5
    ]


def _per_channel(model: ModelRecord) -> list[str]:
    found = []
    for where, op in lstms(model):
        for slot in range(1, len(op.inputs)):
            t = tensor(model, op, slot)
            if t is not None and t.quantization is not None and len(t.quantization.scale) > 1:
                found.append(f"{where}: {Slot(slot).key} has {len(t.quantization.scale)} scales")
    return found


def _dimensions(model: ModelRecord) -> list[str]:
    lo, hi = TENSOR_DIM_RANGE
    found = []
    for where, op in lstms(model):
        # vela checks the op's IFM, weights (input 1) and OFM (get_ifm_ifm2_weights_ofm)
        for label, t in (
            ("input", tensor(model, op, Slot.INPUT)),
            ("input_to_input_weights", tensor(model, op, Slot.INPUT_TO_INPUT_WEIGHTS)),
            ("output", model.tensors[op.outputs[0]] if op.outputs else None),
        ):
            if t is not None and not all(lo <= d <= hi for d in t.shape):
                found.append(f"{where}: {label} shape {list(t.shape)}")
    return found


def _hidden_scale(model: ModelRecord) -> list[str]:
    found = []
    for where, op in lstms(model):
        h = tensor(model, op, Slot.OUTPUT_STATE)
        if len(op.intermediates) != 5 or h is None:
            continue
        inter = model.tensors[op.intermediates[4]].quantization
        h_q = h.quantization
        if h_q is not None and (inter is None or inter.scale[:1] != h_q.scale[:1]):
            found.append(f"{where}: intermediate 4 scale {inter.scale[:1] if inter else None}, h {h_q.scale[:1]}")
    return found


ETHOS_U_RULES: tuple[Rule, ...] = (
    Rule(
        "operator vela runs on the CPU",
        _cpu_ops,
        f"{_SUPPORTED}: vela places only its supported operators on tensors of type int8, int16, int32 or uint8 "
        "on the NPU ('Tensors must be of type: int16, int32, int8, uint8'); REVERSE_V2 (--go-backwards, "
        "--bidirectional), DEQUANTIZE and QUANTIZE from float32 (--io-type float32) stay on the CPU. Build a "
        "unidirectional model with integer I/O.",
    ),
    Rule(
        "float32 LSTM",
        _float_lstm,
        f"{_SUPPORTED}, UNIDIRECTIONAL_SEQUENCE_LSTM: 'IFM must be int8 or int16'. Quantize with --quantize int8 "
        "or int16x8.",
    ),
    Rule(
        "hybrid (int8 weights, float activations)",
        _hybrid_lstm,
        f"{_SUPPORTED}, UNIDIRECTIONAL_SEQUENCE_LSTM: 'IFM must be int8 or int16'; a hybrid (dynamic-int8) LSTM "
        "has float32 activations. Use --quantize int8 or int16x8.",
    ),
    Rule(
        "LSTM input type",
        _other_input_type,
        f"{_SUPPORTED}, UNIDIRECTIONAL_SEQUENCE_LSTM: 'IFM must be int8 or int16'.",
    ),
    Rule(
        "input and output types differ",
        _in_out_types,
        f"{_SUPPORTED}, UNIDIRECTIONAL_SEQUENCE_LSTM: 'IFM and OFM data types must match'.",
    ),
    Rule(
        "input or output not 3-D",
        _rank,
        f"{_SUPPORTED}, UNIDIRECTIONAL_SEQUENCE_LSTM: 'IFM and OFM must have 3D shape'.",
    ),
    Rule(
        "20-input LSTM form",
        input_count,
        f"{_SUPPORTED}, UNIDIRECTIONAL_SEQUENCE_LSTM: 'Must have 24 input tensors'.",
    ),
    Rule(
        "intermediates",
        _intermediates,
        f"{_SUPPORTED}, UNIDIRECTIONAL_SEQUENCE_LSTM: 'Must have 5 intermediate tensors' (vela takes the hidden "
        "state's rescale from intermediate 4).",
    ),
    Rule(
        "non-variable state",
        non_variable_state,
        f"{_SUPPORTED}, UNIDIRECTIONAL_SEQUENCE_LSTM: 'State tensors must be variable'.",
    ),
    Rule("CIFG (no input gate)", cifg, f"{_SUPPORTED}, UNIDIRECTIONAL_SEQUENCE_LSTM: 'Must not use CIFG'."),
    Rule(
        "peepholes",
        peepholes,
        f"{_SUPPORTED}, UNIDIRECTIONAL_SEQUENCE_LSTM: 'Must not use Peephole'. Build without --use-peepholes.",
    ),
    Rule(
        "projection",
        projection,
        f"{_SUPPORTED}, UNIDIRECTIONAL_SEQUENCE_LSTM: 'Must not use Projection'. Build without --num-proj.",
    ),
    Rule(
        "layer normalization",
        layer_norm,
        f"{_SUPPORTED}, UNIDIRECTIONAL_SEQUENCE_LSTM: 'Must not use Normalisation'.",
    ),
    Rule(
        "diagonal recurrent weights",
        diagonal,
        f"{_SUPPORTED}, UNIDIRECTIONAL_SEQUENCE_LSTM: 'All recurrent weights must be 2D'.",
    ),
    Rule(
        "per-channel weights",
        _per_channel,
        f"{_SUPPORTED}, generic: 'Per-axis quantization is only supported for the following op types: "
        "CONV_2D, DEPTHWISE_CONV_2D, TRANSPOSE_CONV, FULLY_CONNECTED'; LSTM weights must be per-tensor.",
    ),
    Rule(
        "tensor dimension out of range",
        _dimensions,
        f"{_SUPPORTED}, generic: 'Tensor dimensions must be in the range [1, 65535]' (input, first weight and "
        "output of the op).",
    ),
    Rule(
        "dynamic shape",
        dynamic_shapes,
        "vela compiles Tensor.shape and never reads shape_signature (ethosu/vela/tflite_reader.py), so a "
        "resizable axis is compiled at its stored size (lstmgen stores 1 time step). Build with fixed "
        "--time-steps and --batch-size.",
    ),
    Rule(
        "hidden intermediate differs from the output state",
        _hidden_scale,
        "vela's LSTM lowering (ethosu/vela/lstm.py, calculate_output_state) rescales o * tanh(c) with "
        "intermediate 4's scale but stores it with the output state's quantization; when they differ the NPU "
        "output is silently wrong.",
    ),
)


# ------------------------------------------------------------------------------------------ vela


@dataclass
class VelaReport:
    """What vela said about a model: where its operators run, memory and the performance estimate."""

    accelerator: str
    npu_operators: int
    cpu_operators: int
    sram_kib: float
    off_chip_flash_kib: float
    cycles_total: int
    cycles_npu: int
    inference_seconds: float
    vela_version: str

    @property
    def ok(self) -> bool:
        return self.cpu_operators == 0

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "ok": self.ok}

    def line(self) -> str:
        return (
            f"  vela {self.vela_version} ({self.accelerator}): {self.npu_operators} NPU / {self.cpu_operators} CPU "
            f"operators, SRAM {self.sram_kib:.2f} KiB, flash {self.off_chip_flash_kib:.2f} KiB, "
            f"{self.cycles_total:,} cycles ({self.inference_seconds * 1e3:.3g} ms at the default clock)"
        )


def vela_installed() -> bool:
    return importlib.util.find_spec("ethosu") is not None and importlib.util.find_spec("ethosu.vela") is not None


def _count(text: str, what: str) -> int:
    m = re.search(rf"{what} operators = (\d+)", text)
    if m is None:
        raise RuntimeNotAvailable(f"vela's output has no '{what} operators' line; is ethos-u-vela {VELA_VERSION}?")
    return int(m.group(1))


def run_vela(model: bytes | Path, accelerator: str = DEFAULT_ACCELERATOR) -> VelaReport:
    """Compile the model with vela in a temporary directory and read its summary."""
    if not vela_installed():
        raise RuntimeNotAvailable(
            "vela is not installed: pip install 'lstmgen[ethos-u]' (or pip install ethos-u-vela)."
        )
    from importlib import metadata

    with tempfile.TemporaryDirectory(prefix="lstmgen-vela-") as tmp:
        src = Path(tmp) / "model.tflite"
        src.write_bytes(model.read_bytes() if isinstance(model, Path) else model)
        out = Path(tmp) / "out"
        cmd = [sys.executable, "-m", "ethosu.vela", str(src), "--accelerator-config", accelerator]
        proc = subprocess.run([*cmd, "--output-dir", str(out)], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
            raise VerificationError(f"vela could not compile the model (exit {proc.returncode}): {' | '.join(tail)}")
        summary = next(out.glob("model_summary_*.csv"), None)
        if summary is None:
            raise RuntimeNotAvailable("vela wrote no summary CSV.")
        with summary.open() as fh:
            row = next(csv.DictReader(fh))
    return VelaReport(
        accelerator=accelerator,
        npu_operators=_count(proc.stdout, "NPU"),
        cpu_operators=_count(proc.stdout, "CPU"),
        sram_kib=float(row["sram_memory_used"]),
        off_chip_flash_kib=float(row["off_chip_flash_memory_used"]),
        cycles_total=int(float(row["cycles_total"])),
        cycles_npu=int(float(row["cycles_npu"])),
        inference_seconds=float(row["inference_time"]),
        vela_version=metadata.version("ethos-u-vela"),
    )
