"""Read a TFLite flatbuffer into records, refusing a truncated or corrupt file with a clear error."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import numpy as np

from lstmgen.errors import ModelFileError
from lstmgen.tflite.records import (
    FILE_IDENTIFIER,
    SCHEMA_VERSION,
    ModelRecord,
    OperatorRecord,
    Options,
    Quantization,
    Signature,
    TensorRecord,
)
from lstmgen.tflite.schema import BUILTIN_OPTIONS, OPTIONS, TABLES, Reader, TableSchema
from lstmgen.tflite.tables import TFLITE_TO_NUMPY


def _read_options(op: Reader) -> Options | None:
    """The op's options table: every field of a table the schema module lists, only the name of any other."""
    code = op.get("BuiltinOptionsType")
    if code == 0 or code >= len(BUILTIN_OPTIONS):
        return None
    table = BUILTIN_OPTIONS[code]
    # A table the schema module does not list reads as one without fields: its name only.
    raw = op.union("BuiltinOptions", OPTIONS.get(table) or TableSchema(table, 0, ()))
    if raw is None:
        raise ModelFileError(f"{op.source}: an operator names options table {table} but holds none (corrupt).")
    return Options(table, raw.values())


def read_model(data: bytes | bytearray | memoryview, source: str = "<model>") -> ModelRecord:
    """Parse a .tflite flatbuffer into records; constant data are read-only views, not copies."""
    buf = memoryview(data).cast("B") if not isinstance(data, (bytes, bytearray)) else data
    if len(buf) < 8 or bytes(buf[4:8]) != FILE_IDENTIFIER:
        found = bytes(buf[4:8]) if len(buf) >= 8 else f"{len(buf)} bytes"
        raise ModelFileError(
            f"{source}: not a TensorFlow Lite model (expected the file identifier 'TFL3' at byte 4, "
            f"found {found!r}). Pass a .tflite file."
        )
    return _read(buf, source)


def _read(buf: Any, source: str) -> ModelRecord:
    m = Reader.root(buf, TABLES["Model"], source)
    if m.get("Version") != SCHEMA_VERSION:
        raise ModelFileError(f"{source}: schema version {m.get('Version')}, expected {SCHEMA_VERSION}.")
    # TF's converter may leave empty extra subgraphs behind (no operators): the first one is the model.
    n_subgraphs = m.length("Subgraphs")
    busy = [k for k in range(1, n_subgraphs) if m.item("Subgraphs", k).length("Operators")]
    buffers = _Buffers(m, buf, source)
    metadata = []
    for md in m.items("Metadata"):
        raw = buffers.data(md.get("Buffer"))
        metadata.append((_text(md.get("Name")), bytes(raw) if raw is not None else b""))
    loops = bool(busy) and _graph_form(dict(metadata))  # lstmgen's graph form: WHILE loops in extra subgraphs
    if n_subgraphs == 0 or (busy and not loops):
        raise ModelFileError(
            f"{source}: has {n_subgraphs} subgraphs, {len(busy)} of them besides the first with operators; "
            "lstmgen handles one subgraph (plus empty ones). Control flow (WHILE, IF) runs in extra subgraphs: a "
            "TF-converted Keras 3 LSTM is a WHILE loop, not a fused LSTM."
        )
    main = _subgraph(m, 0, buffers, source)
    signatures = tuple(_signature(s) for s in m.items("SignatureDefs"))
    extra = tuple(_subgraph(m, k, buffers, source) for k in range(1, n_subgraphs)) if loops else ()
    record = replace(
        main,
        description=_text(m.get("Description")),
        signatures=signatures,
        metadata=tuple(metadata),
        empty_subgraphs=0 if loops else n_subgraphs - 1,
        subgraphs=extra,
    )
    _check_indices(record, source)
    for k, sg in enumerate(extra, 1):
        _check_indices(sg, f"{source} (subgraph {k})")
    return record


def _subgraph(m: Reader, k: int, buffers: _Buffers, source: str) -> ModelRecord:
    sg = m.item("Subgraphs", k)
    return ModelRecord(
        tensors=tuple(_tensor(t, i, buffers) for i, t in enumerate(sg.items("Tensors"))),
        operators=_operators(m, sg, source),
        inputs=_ints(sg, "Inputs"),
        outputs=_ints(sg, "Outputs"),
        subgraph_name=_text(sg.get("Name")),
    )


def _graph_form(metadata: dict[str, bytes]) -> bool:
    """lstmgen's graph form says so in its metadata (its WHILE loops are the only extra subgraphs read)."""
    try:
        meta = json.loads(metadata.get("lstmgen", b"{}"))
    except (ValueError, RecursionError):
        return False
    return isinstance(meta, dict) and meta.get("form") == "graph"


class _Buffers:
    """The model's buffers: each one's bytes as a read-only view (inline, or after the flatbuffer)."""

    def __init__(self, m: Reader, buf: Any, source: str) -> None:
        self._m, self._buf, self.source = m, buf, source
        self._count = m.length("Buffers")

    def data(self, index: int) -> np.ndarray | None:
        if index == 0:
            return None
        if index >= self._count:
            raise ModelFileError(f"{self.source}: refers to buffer {index}, but the file has {self._count} (corrupt).")
        bb = self._m.item("Buffers", index)
        off = bb.get("Offset")
        if off > 1:  # buffer-offset mode: data stored after the flatbuffer
            size = bb.get("Size")
            if off + size > len(self._buf):
                raise ModelFileError(f"{self.source}: buffer {index} points past the end of the file (truncated?).")
            return np.frombuffer(self._buf, dtype=np.uint8, count=size, offset=off)
        data = bb.numpy("Data")
        return data if data is not None and data.size else None


def _ints(table: Reader, name: str) -> tuple[int, ...]:
    vector = table.numpy(name)
    return tuple(int(x) for x in vector) if vector is not None else ()


def _tensor(t: Reader, i: int, buffers: _Buffers) -> TensorRecord:
    source = buffers.source
    dtype = TFLITE_TO_NUMPY.get(t.get("Type"))
    if dtype is None:
        raise ModelFileError(f"{source}: tensor {i} has a tensor type ({t.get('Type')}) lstmgen does not read.")
    shape = _ints(t, "Shape")
    raw = buffers.data(t.get("Buffer"))
    data = None
    if raw is not None:
        if any(d < 0 for d in shape):
            raise ModelFileError(f"{source}: constant tensor {i} has a negative dimension in shape {list(shape)}.")
        want = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if raw.size != want:
            raise ModelFileError(
                f"{source}: tensor {i} ({_text(t.get('Name'))}) has {raw.size} data bytes, "
                f"expected {want} for shape {list(shape)}."
            )
        data = raw.view(dtype.newbyteorder("<")).reshape(shape)
    q = t.get("Quantization")
    quant = None
    if q is not None and q.length("Scale"):
        scale = q.numpy("Scale")
        zero_point = _ints(q, "ZeroPoint")
        quant = Quantization(
            tuple(float(s) for s in scale) if scale is not None else (),
            zero_point if zero_point else (0,) * q.length("Scale"),
            q.get("QuantizedDimension"),
        )
    return TensorRecord(
        name=_text(t.get("Name")),
        shape=shape,
        dtype=dtype,
        data=data,
        shape_signature=_ints(t, "ShapeSignature") or None,
        is_variable=t.get("IsVariable"),
        quantization=quant,
    )


def _operators(m: Reader, sg: Reader, source: str) -> tuple[OperatorRecord, ...]:
    codes = [
        (max(c.get("BuiltinCode"), c.get("DeprecatedBuiltinCode")), c.get("Version")) for c in m.items("OperatorCodes")
    ]
    operators = []
    for i, op in enumerate(sg.items("Operators")):
        index = op.get("OpcodeIndex")
        if not 0 <= index < len(codes):
            raise ModelFileError(
                f"{source}: operator {i} refers to operator code {index}, but the file has {len(codes)} (corrupt)."
            )
        code, version = codes[index]
        operators.append(
            OperatorRecord(
                opcode=code,
                version=version,
                inputs=_ints(op, "Inputs"),
                outputs=_ints(op, "Outputs"),
                options=_read_options(op),
                intermediates=_ints(op, "Intermediates"),
            )
        )
    return tuple(operators)


def _signature(s: Reader) -> Signature:
    def tensor_maps(name: str) -> tuple[tuple[str, int], ...]:
        return tuple((_text(e.get("Name")), e.get("TensorIndex")) for e in s.items(name))

    return Signature(key=_text(s.get("SignatureKey")), inputs=tensor_maps("Inputs"), outputs=tensor_maps("Outputs"))


def _text(raw: bytes | None) -> str:
    """A flatbuffer string as text (absent -> ''; a corrupt file's invalid UTF-8 shows as U+FFFD, not an error)."""
    return (raw or b"").decode("utf-8", errors="replace")


def _check_indices(model: ModelRecord, source: str) -> None:
    """Every tensor index in the graph must exist; a corrupt index would otherwise fail much later."""
    n = len(model.tensors)
    refs: list[tuple[str, int]] = [("subgraph input", i) for i in model.inputs]
    refs += [("subgraph output", i) for i in model.outputs]
    for k, op in enumerate(model.operators):
        refs += [(f"operator {k} input", i) for i in op.inputs if i != -1]
        refs += [(f"operator {k} output", i) for i in (*op.outputs, *op.intermediates)]
    for sig in model.signatures:
        refs += [(f"signature {sig.key}", i) for _, i in (*sig.inputs, *sig.outputs)]
    for what, index in refs:
        if not 0 <= index < n:
            raise ModelFileError(f"{source}: {what} refers to tensor {index}, but the model has {n} tensors (corrupt).")
