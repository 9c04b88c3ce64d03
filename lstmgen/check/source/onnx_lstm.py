"""ONNX LSTM (opset 14): W [D, 4H, I], R [D, 4H, H], B [D, 8H] = Wb || Rb, P [D, 3H]; gates i, o, f, c.

From the operator spec: it = f(Xt Wi^T + Ht-1 Ri^T + Pi*Ct-1 + Wbi + Rbi), ft likewise with Pf,
ct = g(Xt Wc^T + Ht-1 Rc^T + Wbc + Rbc), Ct = ft*Ct-1 + it*ct, ot = f(... + Po*Ct + ...),
Ht = ot*h(Ct); `clip` bounds every activation's input; activations default to Sigmoid, Tanh, Tanh;
the reverse direction's Y is aligned to input positions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from lstmgen.check.source.common import (
    Array,
    Cell,
    Fn,
    SourceUnsupported,
    Stated,
    clip,
    f64,
    mm,
    per_gate,
    relu,
    sigmoid,
    stored,
)

GATES = ("i", "o", "f", "c")  # W, R and each half of B
PEEPHOLES = ("i", "o", "f")  # P
NAMES = {"i": "input", "o": "output", "f": "forget", "c": "cell"}  # the op's gate per ONNX gate


def _activation(name: str, alpha: float | None, beta: float | None) -> Fn:
    table: dict[str, Fn] = {
        "sigmoid": sigmoid,
        "tanh": np.tanh,
        "relu": relu,
        "hardsigmoid": lambda v: np.clip((0.2 if alpha is None else alpha) * v + (0.5 if beta is None else beta), 0, 1),
        "softsign": lambda v: v / (1.0 + np.abs(v)),
        "softplus": lambda v: np.logaddexp(0.0, v),
        "affine": lambda v: (1.0 if alpha is None else alpha) * v + (0.0 if beta is None else beta),
    }
    if name.lower() not in table:
        raise SourceUnsupported(f"ONNX LSTM activation {name!r}")
    return table[name.lower()]


# The node's (f, g, h) activations as the fused op's one activation (the gates are always sigmoid).
_LSTMGEN_ACTIVATION: dict[tuple[str, ...], str] = {
    ("sigmoid", "tanh", "tanh"): "tanh",
    ("sigmoid", "relu", "relu"): "relu",
}


def onnx_cell(arrays: Mapping[str, Array], attrs: Mapping[str, object], stated: Stated) -> Cell:
    d = int(attrs.get("direction_index", 0))  # type: ignore[call-overload]
    if attrs.get("input_forget", 0):
        raise SourceUnsupported("ONNX LSTM input_forget=1")
    w, r = stored(arrays["W"])[d], stored(arrays["R"])[d]
    n = w.shape[0] // 4
    b = f64(arrays["B"])[d] if "B" in arrays else np.zeros(8 * n)
    bias = b[: 4 * n] + b[4 * n :]
    p = f64(arrays["P"])[d] if "P" in arrays else None
    peep = {g: p[k * n : (k + 1) * n] for k, g in enumerate(PEEPHOLES)} if p is not None else None
    names: Sequence[str] = attrs.get("activations") or ("Sigmoid", "Tanh", "Tanh")  # type: ignore[assignment]
    alphas: Sequence[float] = attrs.get("activation_alpha") or ()  # type: ignore[assignment]
    betas: Sequence[float] = attrs.get("activation_beta") or ()  # type: ignore[assignment]
    k0 = 3 * d if len(names) > 3 else 0
    fns = [
        _activation(names[k0 + k], *(seq[k0 + k] if k0 + k < len(seq) else None for seq in (alphas, betas)))
        for k in range(3)
    ]
    fa, ga, ha = fns
    onnx_clip = float(attrs.get("clip", 0.0))  # type: ignore[arg-type]
    fb = stated.forget_bias or 0.0
    rows = {g: slice(k * n, (k + 1) * n) for k, g in enumerate(GATES)}

    def step(x: Array, h: Array, c_prev: Array) -> tuple[Array, Array]:
        z = mm(x, w.T) + mm(h, r.T) + bias
        i, o, f, g = (z[:, rows[k]] for k in GATES)
        if peep is not None:
            i, f = i + peep["i"] * c_prev, f + peep["f"] * c_prev
        f = f + fb
        c = fa(clip(f, onnx_clip)) * c_prev + fa(clip(i, onnx_clip)) * ga(clip(g, onnx_clip))
        c = clip(c, stated.cell_clip)
        if peep is not None:
            o = o + peep["o"] * c
        return fa(clip(o, onnx_clip)) * ha(c), c

    # The node's `layout` is not the model's: exporters put Transposes around a layout-0 node for a
    # batch-first graph. The graph's layout is a stated hyperparameter (the reader finds it).
    overrides: dict[str, object] = {}
    own = _LSTMGEN_ACTIVATION.get(tuple(n.lower() for n in names[k0 : k0 + 3]))
    if attrs.get("activations") and own is not None:
        overrides["activation"] = own  # this direction's own: each direction is its own op
    backward = d == 1 or attrs.get("direction") == "reverse"
    features = frozenset({"peephole"} if peep is not None else set())

    def tensors() -> dict[str, Array]:
        def blocks(g: str) -> dict[str, Array]:
            return {"input_to": w[rows[g]], "recurrent_to": r[rows[g]], "bias": bias[rows[g]]}

        out = per_gate(NAMES, blocks, fb)
        out |= {f"cell_to_{NAMES[g]}_weights": v for g, v in (peep or {}).items()}
        return out

    return Cell(
        "onnx",
        n,
        n,
        step,
        input_size=w.shape[1],
        features=features,
        backward=backward,
        overrides=overrides,
        tensors=tensors,
    )
