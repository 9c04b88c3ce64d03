"""`vectors`: golden input/output vectors of an integer model per runtime flavour, as .npy and C++ for firmware."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lstmgen.embed import render_vectors, symbol_for
from lstmgen.errors import ConfigError, LstmgenError, ModelFileError
from lstmgen.modelinfo import read_lstm_model
from lstmgen.numerics.emulate import FLAVOURS, emulate
from lstmgen.output import check_target, write_atomic
from lstmgen.tflite.records import ModelRecord, TensorRecord

MAX_COUNT = 10_000
# flavour -> the runtimes that compute it (CMSIS-NN runs TFLM's arithmetic per step; see docs/embedded.md)
FLAVOUR_RUNTIMES: dict[str, str] = {
    "litert": "LiteRT / TensorFlow Lite (x86 portable kernels)",
    "tflm": "TensorFlow Lite Micro reference kernels (and CMSIS-NN from the zero state)",
}


@dataclass
class VectorsResult:
    """What `vectors` wrote."""

    directory: str
    count: int
    input_shape: list[int]
    output_shape: list[int]
    flavours: list[str]
    files: list[str]
    skipped: dict[str, str] = field(default_factory=dict)  # flavour -> why its kernel does not take the model

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _grid(model: ModelRecord, t: TensorRecord) -> tuple[np.dtype, float, int]:
    """The integer grid of the input: the tensor's own, or that of the QUANTIZE reading a float input."""
    if t.dtype.kind == "i" and t.quantization is not None:
        return t.dtype, float(t.quantization.scale[0]), int(t.quantization.zero_point[0])
    index = model.tensors.index(t)
    for op in model.operators:
        if op.inputs and op.inputs[0] == index:
            out = model.tensors[op.outputs[0]]
            if out.dtype.kind == "i" and out.quantization is not None:
                return out.dtype, float(out.quantization.scale[0]), int(out.quantization.zero_point[0])
    raise ModelFileError(
        "not an integer model: its input is float and no QUANTIZE op reads it. Golden vectors are the integer "
        "kernels' exact outputs; build with --quantize int8 or int16x8."
    )


def draw_inputs(model: ModelRecord, count: int, seed: int) -> np.ndarray:
    """[count, *input shape] in the input's type: the first saturating (each element its type's minimum or
    maximum), the rest normal around the grid's middle with a sixth of its range as deviation, clipped."""
    t = model.tensors[model.inputs[0]]
    dtype, scale, zp = _grid(model, t)
    info = np.iinfo(dtype)
    rng = np.random.default_rng(seed)
    shape = (count, *t.shape)
    drawn = rng.normal((info.min + info.max) / 2, (info.max - info.min) / 6, shape)
    codes = np.clip(np.round(drawn), info.min, info.max)
    codes[0] = np.where(rng.random(t.shape) < 0.5, info.min, info.max)
    if t.dtype.kind == "f":  # reals exactly on the grid: the QUANTIZE op gives the codes back
        return ((codes - zp) * np.float32(scale)).astype(np.float32)
    return codes.astype(dtype)


def expected_outputs(model: ModelRecord, inputs: np.ndarray, flavour: str) -> np.ndarray:
    """Each input through the emulated kernels of `flavour`, from the zero state."""
    out_t = model.tensors[model.outputs[0]]
    return np.stack(
        [emulate(model, {model.inputs[0]: x}, flavour).values[model.outputs[0]] for x in inputs]
    ).astype(out_t.dtype)


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def write_vectors(
    model_path: str | Path, directory: str | Path, *, count: int = 4, seed: int = 0, name: str | None = None
) -> VectorsResult:
    """Write inputs.npy, expected_<flavour>.npy and NAME_vectors.h/.cc (NAME: --name or the model's stem) in
    `directory`, for every flavour whose kernel takes the model."""
    if not 1 <= count <= MAX_COUNT:
        raise ConfigError(f"--count {count} is out of range: expected 1 to {MAX_COUNT}.")
    src, out = Path(model_path), Path(directory)
    if not out.is_dir():
        raise ConfigError(f"-o {out}: expected an existing directory (create it with mkdir -p {out}).")
    symbol = symbol_for(out / f"{src.stem}.cc", name)
    lm = read_lstm_model(src, head_ok=True)
    model = lm.model
    try:
        inputs = draw_inputs(model, count, seed)
    except ModelFileError as exc:
        raise ModelFileError(f"{src}: {exc}") from None
    expected: dict[str, np.ndarray] = {}
    skipped: dict[str, str] = {}
    for flavour in FLAVOURS:
        try:
            expected[flavour] = expected_outputs(model, inputs, flavour)
        except LstmgenError as exc:
            skipped[flavour] = str(exc)
    if not expected:
        reasons = "; ".join(f"{f}: {why}" for f, why in skipped.items())
        raise ModelFileError(f"{src}: no integer kernel lstmgen emulates takes this model ({reasons}).")
    files = {out / "inputs.npy": _npy(inputs)}
    files |= {out / f"expected_{f}.npy": _npy(y) for f, y in expected.items()}
    h_text, cc_text = render_vectors(symbol, src.name, inputs, expected, FLAVOUR_RUNTIMES)
    files |= {out / f"{symbol}_vectors.h": h_text.encode(), out / f"{symbol}_vectors.cc": cc_text.encode()}
    for path in files:
        check_target(path, {"MODEL": src})
    for path, data in files.items():
        write_atomic(path, data, inputs={"MODEL": src})
    return VectorsResult(
        str(out), count, list(inputs.shape[1:]), list(next(iter(expected.values())).shape[1:]),
        list(expected), [str(p) for p in files], skipped,
    )  # fmt: skip
