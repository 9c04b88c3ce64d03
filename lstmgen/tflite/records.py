"""A TFLite file's content as plain records (tensors, operators, options, model): writer input, reader output."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

FILE_IDENTIFIER = b"TFL3"
SCHEMA_VERSION = 3
DATA_ALIGNMENT = 16  # schema: Buffer.data (force_align: 16); the Python codegen ignores it, so we do it


@dataclass(frozen=True)
class Quantization:
    """Per-tensor or per-axis affine quantization parameters."""

    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    quantized_dimension: int = 0


@dataclass(frozen=True)
class Deferred:
    """Constant data generated straight into the file buffer, so no second full-size copy exists."""

    shape: tuple[int, ...]
    fill: Callable[[np.ndarray], None]  # writes every element of the (C-contiguous, aligned) view it gets

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


@dataclass(frozen=True)
class TensorRecord:
    """One tensor. `data` (any strides or byte order) is copied once into the file; None = no buffer."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype
    data: np.ndarray | Deferred | None = None
    shape_signature: tuple[int, ...] | None = None
    is_variable: bool = False
    quantization: Quantization | None = None


@dataclass(frozen=True)
class Options:
    """A builtin-options table: schema table name and (CamelCase field, value) pairs."""

    table: str
    fields: tuple[tuple[str, Any], ...]

    def get(self, name: str, default: Any = None) -> Any:
        return dict(self.fields).get(name, default)


@dataclass(frozen=True)
class OperatorRecord:
    """One builtin operator; -1 in `inputs` marks an absent optional input."""

    opcode: int
    version: int
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: Options | None = None
    intermediates: tuple[int, ...] = ()


@dataclass(frozen=True)
class Signature:
    """A SignatureDef: public names of subgraph input and output tensors."""

    key: str
    inputs: tuple[tuple[str, int], ...]
    outputs: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class ModelRecord:
    """A model: its main subgraph, and the subgraphs its WHILE ops run (lstmgen's graph form only)."""

    tensors: tuple[TensorRecord, ...]
    operators: tuple[OperatorRecord, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    subgraph_name: str = "main"
    description: str = ""
    signatures: tuple[Signature, ...] = ()
    metadata: tuple[tuple[str, bytes], ...] = field(default=())
    empty_subgraphs: int = 0  # empty subgraphs after the first (TF's converter leaves some): ignored
    # further subgraphs with operators (a WHILE loop's cond and body), numbered 1, 2, ... after the main one; each
    # holds its own tensors, operators, inputs and outputs (its other fields unused)
    subgraphs: tuple[ModelRecord, ...] = ()

    def metadata_dict(self) -> dict[str, bytes]:
        return dict(self.metadata)


def materialize(model: ModelRecord) -> ModelRecord:
    """Replace Deferred data by arrays (for transforms that read the weights, e.g. quantization)."""

    def real(t: TensorRecord) -> TensorRecord:
        if not isinstance(t.data, Deferred):
            return t
        out = np.empty(t.data.shape, np.dtype(t.dtype).newbyteorder("="))
        t.data.fill(out)
        return replace(t, data=out)

    subgraphs = tuple(materialize(sg) for sg in model.subgraphs)
    return replace(model, tensors=tuple(real(t) for t in model.tensors), subgraphs=subgraphs)
