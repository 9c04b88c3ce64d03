"""Seeded weight initialisers used when no weight file is given (TFLiteLSTMCell's per-gate variables)."""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import numpy as np

from lstmgen.config import CellConfig
from lstmgen.pipeline.layout import CellShape, slot_enabled
from lstmgen.tflite.records import Deferred
from lstmgen.tflite.slots import WEIGHT_SLOTS
from lstmgen.weights import CellWeights


def _glorot_uniform(rng: np.random.Generator, out: np.ndarray) -> None:
    # TF's fan computation: a vector uses its length for both fans.
    shape = out.shape
    fan_out, fan_in = (shape[0], shape[1]) if len(shape) == 2 else (shape[0], shape[0])
    limit = np.float32(np.sqrt(6.0 / (fan_in + fan_out)))
    rng.random(dtype=np.float32, out=out)  # float32 draws, in place: no temporary of the full size
    out *= 2 * limit
    out -= limit


def _orthogonal(rng: np.random.Generator, out: np.ndarray) -> None:
    if out.ndim == 1:
        _glorot_uniform(rng, out)
        return
    rows, cols = out.shape
    a = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))  # make the decomposition unique, as TF does
    out[...] = q if rows >= cols else q.T


def _uniform(rng: np.random.Generator, out: np.ndarray) -> None:
    rng.random(dtype=np.float32, out=out)
    out *= 0.1
    out -= 0.05  # Keras RandomUniform default range [-0.05, 0.05)


def _normal(rng: np.random.Generator, out: np.ndarray) -> None:
    rng.standard_normal(dtype=np.float32, out=out)
    out *= 0.05  # Keras RandomNormal default stddev


def _zeros(rng: np.random.Generator, out: np.ndarray) -> None:
    out[...] = 0


INITIALIZERS: dict[str, Callable[[np.random.Generator, np.ndarray], None]] = {
    "glorot_uniform": _glorot_uniform,
    "orthogonal": _orthogonal,
    "uniform": _uniform,
    "normal": _normal,
    "zeros": _zeros,
}


def init_weights(config: CellConfig, shape: CellShape, cell: tuple[int, int] = (0, 0)) -> CellWeights:
    """Weights for every slot of one cell (layer, direction); biases start at zero, layer-norm
    coefficients at one (forget_bias is folded later).

    Matrices are Deferred: the writer generates them straight into the model buffer, each from
    its own seeded stream (seed, layer, direction, slot), so values do not depend on generation order.
    """
    fill = INITIALIZERS[config.init]
    tensors: dict[str, np.ndarray | Deferred] = {}
    for spec in WEIGHT_SLOTS:
        if not slot_enabled(spec, shape, tensors):
            continue
        dims = shape.slot_shape(spec)
        if spec.slot.key.endswith("_bias"):
            tensors[spec.slot.key] = np.zeros(dims, np.float32)
            continue
        if spec.feature == "layer_norm":
            tensors[spec.slot.key] = np.ones(dims, np.float32)
            continue

        def generate(out: np.ndarray, slot: int = int(spec.slot)) -> None:
            fill(np.random.default_rng([config.seed, *cell, slot]), out)

        tensors[spec.slot.key] = Deferred(dims, generate)
    # A Deferred stands in for an array: resolve() reads only its shape, layout copies it into the file.
    arrays = cast(dict[str, np.ndarray], tensors)
    source = f"--init {config.init} --seed {config.seed}"
    return CellWeights(arrays, f"init:{config.init}", source, forget_bias_default=1.0)
