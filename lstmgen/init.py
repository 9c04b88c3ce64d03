"""Seeded weight initialisers used when no weight file is given (TFLiteLSTMCell's per-gate variables)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .config import CellConfig
from .slots import WEIGHT_SLOTS
from .weights import CellWeights


def _glorot_uniform(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    # TF's fan computation: a vector uses its length for both fans.
    fan_out, fan_in = (shape[0], shape[1]) if len(shape) == 2 else (shape[0], shape[0])
    limit = np.float32(np.sqrt(6.0 / (fan_in + fan_out)))
    out = rng.random(shape, dtype=np.float32)  # float32 draws: no float64 temporary of the full size
    out *= 2 * limit
    out -= limit
    return out


def _orthogonal(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    if len(shape) == 1:
        return _glorot_uniform(rng, shape)
    rows, cols = shape
    a = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))  # make the decomposition unique, as TF does
    return (q if rows >= cols else q.T).astype(np.float32)


def _uniform(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    out = rng.random(shape, dtype=np.float32)
    out *= 0.1
    out -= 0.05  # Keras RandomUniform default range [-0.05, 0.05)
    return out


def _normal(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    out = rng.standard_normal(shape, dtype=np.float32)
    out *= 0.05  # Keras RandomNormal default stddev
    return out


def _zeros(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return np.zeros(shape, np.float32)


INITIALIZERS: dict[str, Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]] = {
    "glorot_uniform": _glorot_uniform,
    "orthogonal": _orthogonal,
    "uniform": _uniform,
    "normal": _normal,
    "zeros": _zeros,
}


def init_weights(config: CellConfig) -> CellWeights:
    """Weights for every slot the config enables; biases start at zero (forget_bias is folded later)."""
    sizes = {"N": config.num_units, "I": config.input_size, "P": config.output_size}
    rng = np.random.default_rng(config.seed)
    fill = INITIALIZERS[config.init]
    enabled = {"core", "input_gate"}
    if config.use_peepholes:
        enabled.add("peephole")
    if config.num_proj is not None:
        enabled.add("projection")
    tensors: dict[str, np.ndarray] = {}
    for spec in WEIGHT_SLOTS:
        if spec.feature not in enabled:
            continue
        shape = tuple(sizes[s] for s in spec.shape)
        is_bias = spec.slot.key.endswith("_bias")
        tensors[spec.slot.key] = np.zeros(shape, np.float32) if is_bias else fill(rng, shape)
    return CellWeights(tensors, f"init:{config.init}", f"--init {config.init} --seed {config.seed}",
                       forget_bias_default=1.0)
