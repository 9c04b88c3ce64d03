"""What every source reference shares: the stated hyperparameters, the cell interface, float64 maths."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

Array = np.ndarray
Fn = Callable[[Array], Array]
Jitter = Callable[[Array, Array, Array], tuple[Array, Array, Array]]  # (x_t, h, c) perturbed before each step
# The op's constant inputs by their slot names (input_to_forget_weights [N, I], forget_gate_bias [N] with the
# source's forget bias added, ...), each taken from the source arrays through the framework's own gate table.
Tensors = Callable[[], dict[str, Array]]


class SourceUnsupported(Exception):
    """The source states something no reference here computes (so it cannot judge the model)."""


@dataclass(frozen=True)
class Stated:
    """The hyperparameters the user stated (or the build resolved); a framework's file may override some."""

    activation: str = "tanh"
    cell_clip: float = 0.0
    proj_clip: float = 0.0
    forget_bias: float | None = None  # None: the framework's own default
    time_major: bool = False
    go_backwards: bool = False
    return_sequences: bool = True


@dataclass
class Cell:
    """One source cell ready to run: `step(x_t, h, c) -> (h, c, out)` in float64, plus what its file states."""

    framework: str
    num_units: int
    output_size: int
    step: Callable[[Array, Array, Array], tuple[Array, Array]]
    input_size: int = 0
    features: frozenset[str] = frozenset()  # optional parts the source has: peephole, projection, cifg, ...
    backward: bool | None = None  # None: the file does not say; its place in the layer decides
    overrides: Mapping[str, object] = field(default_factory=dict)  # file-stated time_major, go_backwards, ...
    tensors: Tensors | None = None  # the source's arrays in the op's per-gate form (check/tensors.py)
    # the biases a writer sums from several terms (b_ih + b_hh, cuDNN's two, a forget bias): each may carry a
    # rounding per partial sum; None: every bias (the others must be the source's value rounded once)
    folded: frozenset[str] | None = None

    def run(
        self, seq: Array, h0: Array | None, c0: Array | None, jitter: Jitter | None = None
    ) -> tuple[Array, Array, Array]:
        """Run over seq [T, B, I] in the given order; returns (outputs [T, B, P], final h, final c).

        jitter, if given, perturbs (x_t, h, c) before every step (float sensitivity, see numerics/float_bound.py)."""
        batch = seq.shape[1]
        h = np.zeros((batch, self.output_size)) if h0 is None else np.asarray(h0, np.float64).reshape(batch, -1)
        c = np.zeros((batch, self.num_units)) if c0 is None else np.asarray(c0, np.float64).reshape(batch, -1)
        out = []
        for x_t in seq:
            if jitter is not None:
                x_t, h, c = jitter(x_t, h, c)
            h, c = self.step(x_t, h, c)
            out.append(h)
        return np.stack(out) if out else np.zeros((0, batch, self.output_size)), h, c


FORGET_ONLY = frozenset({"forget_gate_bias"})  # one bias array per gate: only a stated forget bias is added


class CellFactory(Protocol):
    def __call__(self, arrays: Mapping[str, Array], attrs: Mapping[str, object], stated: Stated) -> Cell: ...


def f64(a: object) -> Array:
    return np.asarray(a, dtype=np.float64)


def stored(a: object) -> Array:
    """A matrix as the file holds it, not copied: mm widens it once, on first use."""
    return np.asarray(a)


# (data address, shape, strides) -> (the stored view, its float64 copy): each matrix is widened once
# per reference, for every step of every run, and dropped by forget_widened() when the runs are done
# (so the float64 copies never coexist with the checker's own widened constants).
_WIDENED: dict[tuple[int, tuple[int, ...], tuple[int, ...]], tuple[Array, Array]] = {}


def mm(x: Array, w: Array) -> Array:
    """x @ w in float64, w as stored (any float type; exact widening, cached). A float64 matrix is used in
    place unless it is misaligned (an .npz member mapped at an odd offset), which NumPy multiplies without
    BLAS, 4x slower: such a matrix gets an aligned copy, once."""
    if w.dtype == np.float64 and w.flags.aligned:
        return np.asarray(x, np.float64) @ w
    key = (w.__array_interface__["data"][0], w.shape, w.strides)
    hit = _WIDENED.get(key)
    if hit is None:
        hit = _WIDENED[key] = (w, np.array(w, np.float64))
    return np.asarray(x, np.float64) @ hit[1]


def forget_widened() -> None:
    _WIDENED.clear()


def sigmoid(x: Array) -> Array:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # the logistic function, without overflow


def clip(x: Array, bound: float) -> Array:
    return np.clip(x, -bound, bound) if bound > 0 else x


def relu(x: Array) -> Array:
    return np.maximum(x, 0.0)


def per_gate(
    names: Mapping[str, str], blocks: Callable[[str], dict[str, Array]], forget_bias: float
) -> dict[str, Array]:
    """The op's per-gate tensors from a framework's gate letters: names maps letter -> op gate name
    (input, forget, cell, output); blocks(letter) gives that gate's {"input_to", "recurrent_to", "bias"}
    arrays (views where they can be). The source's run-time forget bias is added to the forget bias."""
    out: dict[str, Array] = {}
    for letter, gate in names.items():
        for kind, value in blocks(letter).items():
            key = f"{gate}_gate_bias" if kind == "bias" else f"{kind}_{gate}_weights"
            out[key] = f64(value) + forget_bias if kind == "bias" and gate == "forget" else value
    return out
