"""`inspect`: describe a fused-LSTM model file (hyperparameters, slots, version, sizes) as a dict."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .lstm import LstmOp
from .slots import Slot
from .tables import MIN_RUNTIME_VERSION, NUMPY_TO_TFLITE, TENSOR_TYPE_NAMES
from .verify import read_lstm


def _min_runtime(lstm: LstmOp) -> str | None:
    raw = lstm.model.metadata_dict().get("min_runtime_version")
    return raw.rstrip(b"\0").decode(errors="replace") if raw else None


def describe(path: str | Path) -> dict[str, Any]:
    """Everything `inspect` shows; the keys are listed in schemas/report.schema.json."""
    path = Path(path)
    lstm = read_lstm(path)
    in_t = lstm.model.tensors[lstm.input_index]
    sig = in_t.shape_signature or in_t.shape
    t_axis, b_axis = (0, 1) if lstm.time_major else (1, 0)
    slots = []
    for slot in Slot:
        index = lstm.op.inputs[slot] if slot < len(lstm.op.inputs) else -1
        if index < 0:
            slots.append({"slot": int(slot), "name": slot.key, "present": False})
            continue
        t = lstm.model.tensors[index]
        slots.append(
            {
                "slot": int(slot),
                "name": slot.key,
                "present": True,
                "tensor": t.name,
                "tensor_index": index,
                "shape": list(t.shape),
                "shape_signature": list(t.shape_signature) if t.shape_signature else None,
                "dtype": TENSOR_TYPE_NAMES[NUMPY_TO_TFLITE[t.dtype]].lower(),
                "is_variable": t.is_variable,
                "constant": t.data is not None,
            }
        )
    hp = lstm.metadata.get("hyperparameters", {})
    return {
        "file": str(path),
        "file_size": path.stat().st_size,
        "generator": lstm.metadata.get("generator"),
        "op": "UNIDIRECTIONAL_SEQUENCE_LSTM",
        "op_version": lstm.op.version,
        "min_runtime_version": _min_runtime(lstm) or MIN_RUNTIME_VERSION.get(lstm.op.version),
        "num_units": lstm.num_units,
        "input_size": lstm.input_size,
        "num_proj": lstm.num_proj,
        "output_size": lstm.output_size,
        "state_size": {"c": lstm.num_units, "h": lstm.output_size},
        "use_peepholes": lstm.use_peepholes,
        "cell_clip": lstm.cell_clip,
        "proj_clip": lstm.proj_clip,
        "activation": lstm.activation,
        "time_major": lstm.time_major,
        "batch_size": None if sig[b_axis] == -1 else int(sig[b_axis]),
        "time_steps": None if sig[t_axis] == -1 else int(sig[t_axis]),
        "forget_bias_folded": hp.get("forget_bias"),
        "name": hp.get("name"),
        "provenance": lstm.metadata.get("provenance"),
        "signature": [s.key for s in lstm.model.signatures],
        "slots": slots,
    }


def format_text(info: dict[str, Any]) -> str:
    """Human-readable form of describe()."""
    lines = [
        f"{info['file']}: {info['op']} v{info['op_version']} (min runtime {info['min_runtime_version']}), "
        f"{info['file_size']:,} bytes" + (f", made by {info['generator']}" if info["generator"] else ""),
        f"  cell: num_units={info['num_units']} input_size={info['input_size']} num_proj={info['num_proj']} "
        f"use_peepholes={info['use_peepholes']} activation={info['activation']}",
        f"        cell_clip={info['cell_clip']:g} proj_clip={info['proj_clip']:g}"
        + (f" forget_bias(folded)={info['forget_bias_folded']:g}" if info["forget_bias_folded"] is not None else ""),
        f"  output_size={info['output_size']} state_size=(c={info['state_size']['c']}, h={info['state_size']['h']})",
        f"  shape: batch={info['batch_size'] or 'dynamic'} time={info['time_steps'] or 'dynamic'} "
        f"{'time-major' if info['time_major'] else 'batch-major'}; "
        f"signatures: {', '.join(info['signature']) or 'none'}",
        "  slots:",
    ]
    for s in info["slots"]:
        if s["present"]:
            kind = "variable" if s["is_variable"] else ("const" if s["constant"] else "")
            lines.append(
                f"    {s['slot']:>2} {s['name']:<32} {s['dtype']:<8} {s['shape']!s:<14} {kind:<8} {s['tensor']}"
            )
        else:
            lines.append(f"    {s['slot']:>2} {s['name']:<32} -")
    return "\n".join(lines)
