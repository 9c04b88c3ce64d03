"""Constant folding of the small ONNX subgraphs exporters put in front of an LSTM node's inputs.

torch.onnx.export builds the zero initial state from the input's shape (Shape -> Gather -> Concat ->
Expand / ConstantOfShape) and may reorder the gates of W, R, B with Slice/Concat/Split. Those values
are fixed by the file (or zero whatever the batch size), so they are evaluated here with NumPy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from lstmgen.weights.library_errors import raised_in


class Unfoldable(Exception):
    """A value that depends on data fed at run time (the message says which node or input)."""


class _Zeros:
    """An all-zero tensor whose shape depends on a run-time input (e.g. the batch size)."""

    def __repr__(self) -> str:
        return "ZEROS"


ZEROS = _Zeros()
Value = Any  # np.ndarray, or ZEROS

# Ops whose output is all zeros when their first (data) input is, whatever the other inputs hold.
_ZERO_KEEPING = frozenset(
    {"Identity", "Cast", "CastLike", "Expand", "Reshape", "Unsqueeze", "Squeeze", "Transpose", "Tile", "Slice",
     "Gather", "Flatten", "Concat"}
)  # fmt: skip
_MAX_NODES = 10_000  # a bound on the nodes visited for one value (a hostile graph cannot loop us)


def _axes(node_attrs: Mapping[str, Any], inputs: list[Value], k: int) -> list[int] | None:
    """Axes from input k (opset >= 13) or the 'axes' attribute (older opsets)."""
    if len(inputs) > k and inputs[k] is not None:
        return [int(a) for a in np.asarray(inputs[k]).ravel()]
    axes = node_attrs.get("axes")
    return None if axes is None else [int(a) for a in axes]


def _unsqueeze(a: Mapping[str, Any], x: list[Value]) -> np.ndarray:
    axes = _axes(a, x, 1) or []
    rank = x[0].ndim + len(axes)
    out = x[0]
    for axis in sorted(ax % rank for ax in axes):
        out = np.expand_dims(out, axis)
    return np.asarray(out)


def _squeeze(a: Mapping[str, Any], x: list[Value]) -> np.ndarray:
    axes = _axes(a, x, 1)
    return np.asarray(np.squeeze(x[0], axis=None if axes is None else tuple(axes)))


def _reshape(a: Mapping[str, Any], x: list[Value]) -> np.ndarray:
    shape = [int(s) for s in np.asarray(x[1]).ravel()]
    if not a.get("allowzero", 0):
        if any(s == 0 and i >= np.ndim(x[0]) for i, s in enumerate(shape)):
            raise Unfoldable(f"shape {shape} copies (0) a dimension the rank-{np.ndim(x[0])} input lacks")
        shape = [np.shape(x[0])[i] if s == 0 else s for i, s in enumerate(shape)]
    return np.reshape(x[0], shape)


def _slice(a: Mapping[str, Any], x: list[Value]) -> np.ndarray:
    data = x[0]
    if len(x) > 1:  # opset >= 10: starts, ends, axes, steps as inputs
        starts, ends = (np.asarray(v).ravel() for v in x[1:3])
        axes = np.asarray(x[3]).ravel() if len(x) > 3 and x[3] is not None else np.arange(len(starts))
        steps = np.asarray(x[4]).ravel() if len(x) > 4 and x[4] is not None else np.ones(len(starts), np.int64)
    else:
        starts, ends = np.asarray(a["starts"]), np.asarray(a["ends"])
        axes = np.asarray(a.get("axes", range(len(starts))))
        steps = np.ones(len(starts), np.int64)
    rank = data.ndim
    if not len(starts) == len(ends) == len(axes) == len(steps) or not all(-rank <= int(ax) < rank for ax in axes):
        raise Unfoldable(f"starts, ends, axes and steps {starts}, {ends}, {axes}, {steps} for a rank-{rank} input")
    if not all(int(st) for st in steps):
        raise Unfoldable("a step is 0")
    index = [slice(None)] * data.ndim
    for s, e, ax, st in zip(starts, ends, axes, steps, strict=True):
        index[int(ax)] = slice(*slice(int(s), int(e), int(st)).indices(data.shape[int(ax)]))
    return np.asarray(data[tuple(index)])


def _split(a: Mapping[str, Any], x: list[Value], outputs: int) -> list[np.ndarray]:
    axis = int(a.get("axis", 0))
    sizes = x[1] if len(x) > 1 and x[1] is not None else a.get("split")
    if sizes is None:
        return list(np.array_split(x[0], outputs, axis=axis))
    return list(np.split(x[0], np.cumsum([int(s) for s in np.asarray(sizes).ravel()])[:-1], axis=axis))


def _div(a: Mapping[str, Any], x: list[Value]) -> np.ndarray:
    if np.asarray(x[0]).dtype.kind in "iu":  # ONNX integer division truncates toward zero
        return np.asarray(np.trunc(np.divide(x[0], x[1])).astype(np.asarray(x[0]).dtype))
    return np.asarray(np.divide(x[0], x[1]))


def _expand(a: Mapping[str, Any], x: list[Value]) -> np.ndarray:
    shape = np.broadcast_shapes(np.shape(x[0]), tuple(int(s) for s in np.asarray(x[1]).ravel()))
    return np.array(np.broadcast_to(x[0], shape))


def _cast(onnx: Any) -> Callable[[Mapping[str, Any], list[Value]], np.ndarray]:
    def cast(a: Mapping[str, Any], x: list[Value]) -> np.ndarray:
        return np.asarray(x[0]).astype(onnx.helper.tensor_dtype_to_np_dtype(int(a["to"])))

    return cast


_OPS: dict[str, Callable[[Mapping[str, Any], list[Value]], np.ndarray]] = {
    "Identity": lambda a, x: np.asarray(x[0]),
    "CastLike": lambda a, x: np.asarray(x[0]).astype(np.asarray(x[1]).dtype),
    "Gather": lambda a, x: np.asarray(np.take(x[0], np.asarray(x[1]), axis=int(a.get("axis", 0)))),
    "Concat": lambda a, x: np.concatenate([np.asarray(v) for v in x], axis=int(a["axis"])),
    "Unsqueeze": _unsqueeze,
    "Squeeze": _squeeze,
    "Reshape": _reshape,
    "Slice": _slice,
    "Expand": _expand,
    "Transpose": lambda a, x: np.transpose(x[0], a.get("perm")),
    "Tile": lambda a, x: np.tile(x[0], [int(r) for r in np.asarray(x[1]).ravel()]),
    "Flatten": lambda a, x: np.reshape(x[0], (int(np.prod(np.shape(x[0])[: int(a.get("axis", 1))])), -1)),
    "Add": lambda a, x: np.asarray(np.add(x[0], x[1])),
    "Sub": lambda a, x: np.asarray(np.subtract(x[0], x[1])),
    "Mul": lambda a, x: np.asarray(np.multiply(x[0], x[1])),
    "Div": _div,
    "Neg": lambda a, x: np.asarray(np.negative(x[0])),
    "Size": lambda a, x: np.asarray(np.size(x[0]), np.int64),
}


# The inputs each op cannot do without (the rest are optional), and the attributes: checked before folding, so
# the helpers above index only what is there (an IndexError or KeyError of theirs is a bug in lstmgen).
_ARITY = {"Gather": 2, "CastLike": 2, "Reshape": 2, "Expand": 2, "Tile": 2, "Add": 2, "Sub": 2, "Mul": 2, "Div": 2}
_REQUIRED_ATTRIBUTES = {"Concat": ("axis",), "Cast": ("to",)}


def _malformed(op: str, attrs: Mapping[str, Any], inputs: list[Value]) -> str | None:
    """What a node lacks that its op needs (None: nothing)."""
    need = _ARITY.get(op, 1)
    if op == "Slice" and len(inputs) == 1:
        missing = [k for k in ("starts", "ends") if k not in attrs]
        if missing:
            return f"has no {' or '.join(missing)} (neither as inputs nor attributes)"
    elif op == "Slice":
        need = 3
    if len(inputs) < need or any(v is None for v in inputs[:need]):
        return f"has {sum(v is not None for v in inputs)} input(s); it needs {need}"
    missing = [k for k in _REQUIRED_ATTRIBUTES.get(op, ()) if k not in attrs]
    return f"has no '{missing[0]}' attribute" if missing else None


class Folder:
    """Evaluates one value of a graph from its initializers, Constant nodes and static input shapes."""

    def __init__(
        self,
        onnx: Any,
        model: Any,
        tensor: Callable[[Any], np.ndarray],
    ) -> None:
        self.onnx, self.tensor = onnx, tensor
        self.ops = {**_OPS, "Cast": _cast(onnx)}  # Cast maps ONNX type numbers through onnx itself
        graph = model.graph
        self.inits = {t.name: t for t in graph.initializer}
        self.producers = {out: n for n in graph.node for out in n.output if out}
        self.inputs = {i.name for i in graph.input}
        self.shapes = {v.name: v for v in (*graph.input, *graph.value_info)}
        self.memo: dict[str, Value] = {}
        self.visited = 0

    def value(self, name: str) -> Value:
        """The array behind `name`, ZEROS for an all-zero run-time-shaped one; Unfoldable otherwise."""
        if name not in self.memo:
            self.memo[name] = self._eval(name)
        return self.memo[name]

    def _eval(self, name: str) -> Value:
        self.visited += 1
        if self.visited > _MAX_NODES:
            raise Unfoldable(f"more than {_MAX_NODES} nodes feed '{name}'")
        if name in self.inits:
            return self.tensor(self.inits[name])
        node = self.producers.get(name)
        if node is None:
            why = "a graph input fed at run time" if name in self.inputs else "not defined in the graph"
            raise Unfoldable(f"'{name}' is {why}")
        attrs = {a.name: self.onnx.helper.get_attribute_value(a) for a in node.attribute}
        op = node.op_type
        where = f"the {op} node '{node.name or node.output[0]}'"
        if node.domain not in ("", "ai.onnx"):
            raise Unfoldable(f"'{name}' is computed at run time by {where} of domain '{node.domain}'")
        if op == "Constant":
            return self._constant(attrs, where)
        if op == "Shape":
            return self._shape(node.input[0], attrs, where)
        if op == "ConstantOfShape":
            fill = self.tensor(attrs["value"]) if "value" in attrs else np.zeros(1, np.float32)
            try:
                shape = self.value(node.input[0])
            except Unfoldable:
                if not np.any(fill):
                    return ZEROS
                raise
            return np.full([int(s) for s in np.asarray(shape).ravel()], fill.ravel()[0], dtype=fill.dtype)
        if op == "Split":
            parts = _split(attrs, [self.value(i) if i else None for i in node.input], len(node.output))
            for out, part in zip(node.output, parts, strict=True):
                self.memo[out] = part
            return self.memo[name]
        if op not in self.ops:
            raise Unfoldable(f"'{name}' is computed at run time by {where}")
        data = self.value(node.input[0]) if node.input and node.input[0] else None
        try:
            rest = [self.value(i) if i else None for i in node.input[1:]]
        except Unfoldable:
            if op in _ZERO_KEEPING and op != "Concat" and self._all_zero(data):
                return ZEROS  # e.g. Expand(0, Concat(1, Shape(x)[0], H)): zeros for any batch size
            raise
        inputs = [data, *rest]
        if any(v is ZEROS for v in inputs):
            # Zeros in, zeros out: the data input of a reshaping op, or every input of a Concat.
            zeros_in = inputs if op == "Concat" else [data]
            if op in _ZERO_KEEPING and all(self._all_zero(v) for v in zeros_in if v is not None):
                return ZEROS
            raise Unfoldable(f"'{name}' has a run-time shape ({where})")
        problem = _malformed(op, attrs, inputs)
        if problem is not None:
            raise Unfoldable(f"{where} {problem}")
        try:
            return self.ops[op](attrs, inputs)
        except (ValueError, TypeError, IndexError, KeyError) as exc:
            # numpy refusing the file's values (shapes, axes, dtypes: from its C code too, so any frame for
            # ValueError/TypeError, AxisError among them), an index numpy or onnx looks up (np.take, a type
            # number); an IndexError or KeyError of lstmgen's own code is a bug (exit 70)
            if isinstance(exc, (IndexError, KeyError)) and not (raised_in(exc, "numpy") or raised_in(exc, "onnx")):
                raise
            raise Unfoldable(f"{where} cannot be evaluated ({exc})") from None

    @staticmethod
    def _all_zero(value: Value) -> bool:
        return value is ZEROS or (isinstance(value, np.ndarray) and not np.any(value))

    def _constant(self, attrs: Mapping[str, Any], where: str) -> np.ndarray:
        if "value" in attrs:
            return self.tensor(attrs["value"])
        table = {
            "value_float": np.float32,
            "value_floats": np.float32,
            "value_int": np.int64,
            "value_ints": np.int64,
        }
        for key, dtype in table.items():
            if key in attrs:
                return np.asarray(attrs[key], dtype)
        raise Unfoldable(f"{where} holds no numeric value")

    def _shape(self, name: str, attrs: Mapping[str, Any], where: str) -> np.ndarray:
        info = self.shapes.get(name)
        dims: list[int] | None = None
        if info is not None and info.type.tensor_type.HasField("shape"):
            raw = info.type.tensor_type.shape.dim
            if all(d.HasField("dim_value") for d in raw):
                dims = [int(d.dim_value) for d in raw]
        if dims is None:
            try:
                value = self.value(name)
            except Unfoldable:
                raise Unfoldable(f"{where} takes the run-time shape of '{name}'") from None
            if value is ZEROS:
                raise Unfoldable(f"{where} takes the run-time shape of '{name}'")
            dims = list(np.shape(value))
        start, end = attrs.get("start", 0), attrs.get("end")
        return np.asarray(dims[start:end], np.int64)
