"""LSTM-agnostic TFLite flatbuffer records, writer and reader (tensors, buffers, operators)."""

from __future__ import annotations

import mmap
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, BinaryIO

import flatbuffers
import numpy as np

from lstmgen.errors import ModelFileError, OutputError
from lstmgen.tflite.schema import BUILTIN_OPTIONS, BUILTIN_OPTIONS_CODE, OPTIONS, TABLES, Reader, TableSchema
from lstmgen.tflite.tables import NUMPY_TO_TFLITE, TFLITE_TO_NUMPY

FILE_IDENTIFIER = b"TFL3"
SCHEMA_VERSION = 3
DATA_ALIGNMENT = 16  # schema: Buffer.data (force_align: 16); the Python codegen ignores it, so we do it
_MAX_FLATBUFFER = 2**31 - 1
_CHUNK_BYTES = 4 * 2**20  # slab of a streamed write (PlannedFile.write_to): small enough to stay in cache
_TILE_ROWS, _TILE_COLS = 1024, 64  # tile of a transposing copy (_copy_tiled), measured best on 96 MB
_GREATER_OP_CODES = 127  # PLACEHOLDER_FOR_GREATER_OP_CODES in deprecated_builtin_code


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
    """A single-subgraph model."""

    tensors: tuple[TensorRecord, ...]
    operators: tuple[OperatorRecord, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    subgraph_name: str = "main"
    description: str = ""
    signatures: tuple[Signature, ...] = ()
    metadata: tuple[tuple[str, bytes], ...] = field(default=())
    empty_subgraphs: int = 0  # empty subgraphs after the first (TF's converter leaves some): ignored

    def metadata_dict(self) -> dict[str, bytes]:
        return dict(self.metadata)


# ----------------------------------------------------------------------------------------- writer


@dataclass(frozen=True)
class _Hole:
    """Room left in the builder for one tensor's constant data, filled from `array` when the file is written."""

    pos: int  # absolute position in the builder's bytes
    array: np.ndarray
    dtype: np.dtype  # little-endian file type

    @property
    def nbytes(self) -> int:
        return int(self.array.size) * self.dtype.itemsize


def _data_vector(
    builder: flatbuffers.Builder, array: np.ndarray | Deferred, dtype: np.dtype, holes: list[_Hole]
) -> int:
    """A 16-byte-aligned byte vector: generated in place (Deferred), or left as a hole filled at write time."""
    le = dtype.newbyteorder("<")
    nbytes = int(array.size) * le.itemsize
    builder.StartVector(1, nbytes, DATA_ALIGNMENT)
    builder.head -= nbytes
    if isinstance(array, Deferred):
        dest = np.frombuffer(builder.Bytes, dtype=le, count=int(array.size), offset=builder.head)
        array.fill(dest.reshape(array.shape))
    else:
        holes.append(_Hole(builder.head, array, le))
    return builder.EndVector()


def _copy_tiled(dest: np.ndarray, src: np.ndarray) -> None:
    """np.copyto, in tiles when `src` is a transposed view: each tile's reads and writes stay in cache.

    A plain copy of a transposed [N, I] view walks the source I floats apart, a cache miss per element;
    tiles of _TILE_ROWS x _TILE_COLS read _TILE_COLS source rows contiguously instead (3-4x faster on 96 MB).
    """
    if src.ndim != 2 or abs(src.strides[0]) >= abs(src.strides[1]) or src.size < _TILE_ROWS * _TILE_COLS:
        np.copyto(dest, src, casting="equiv")
        return
    rows, cols = src.shape
    for r in range(0, rows, _TILE_ROWS):
        for c in range(0, cols, _TILE_COLS):
            tile = (slice(r, r + _TILE_ROWS), slice(c, c + _TILE_COLS))
            np.copyto(dest[tile], src[tile], casting="equiv")


def _slabs(hole: _Hole) -> Iterator[tuple[Any, int]]:
    """(index of the tensor's rows, bytes) in slabs of at most _CHUNK_BYTES of the file, along its first axis."""
    shape = hole.array.shape
    if not shape or hole.nbytes == 0:
        yield ..., hole.nbytes
        return
    row_bytes = hole.nbytes // max(shape[0], 1)
    step = max(1, _CHUNK_BYTES // max(row_bytes, 1))
    for start in range(0, shape[0], step):
        stop = min(shape[0], start + step)
        yield slice(start, stop), (stop - start) * row_bytes


class PlannedFile:
    """A laid-out model whose constant data is copied from the source arrays only as the file is written.

    The tables sit in the builder's memory; each weight is copied once, slab by slab, into a small
    reused buffer and written out, so the whole model never exists in memory.
    """

    def __init__(self, data: mmap.mmap, head: int, holes: list[_Hole]) -> None:
        self._data, self._head = data, head
        self._holes = sorted(holes, key=lambda h: h.pos)  # file order

    @property
    def size(self) -> int:
        return len(self._data) - self._head

    def write_to(self, fh: BinaryIO) -> None:
        """Write the file: the tables from the builder, each weight copied once through the reused slab buffer."""
        view = memoryview(self._data)
        staging = np.empty(min(_CHUNK_BYTES, max((h.nbytes for h in self._holes), default=0)) + 64, np.uint8)
        pos = self._head
        for hole in self._holes:
            fh.write(view[pos : hole.pos])  # tables, a vector's length, padding
            for rows, nbytes in _slabs(hole):
                part = hole.array[rows]
                dest = staging[:nbytes].view(hole.dtype).reshape(part.shape)
                _copy_tiled(dest, part)
                fh.write(staging[:nbytes].data)
            pos = hole.pos + hole.nbytes
        fh.write(view[pos:])
        view.release()

    def to_memory(self) -> memoryview:
        """The whole file in memory (the builder's buffer with the data copied in; no further copy)."""
        for hole in self._holes:
            dest = np.frombuffer(self._data, dtype=hole.dtype, count=int(hole.array.size), offset=hole.pos)
            _copy_tiled(dest.reshape(hole.array.shape), hole.array)
        self._holes = []
        return memoryview(self._data)[self._head :]


def _int_vector(builder: flatbuffers.Builder, values: Sequence[int], dtype: str = "<i4") -> int:
    return builder.CreateNumpyVector(np.asarray(values, dtype=dtype))


def _offsets_vector(builder: flatbuffers.Builder, offsets: Sequence[int]) -> int:
    builder.StartVector(4, len(offsets), 4)
    for off in reversed(offsets):
        builder.PrependUOffsetTRelative(off)
    return builder.EndVector()


def _options(builder: flatbuffers.Builder, options: Options) -> int:
    return OPTIONS[options.table].build(builder, options.fields)


def _quantization(builder: flatbuffers.Builder, q: Quantization) -> int:
    scale = builder.CreateNumpyVector(np.asarray(q.scale, dtype="<f4"))
    zp = builder.CreateNumpyVector(np.asarray(q.zero_point, dtype="<i8"))
    fields = (("Scale", scale), ("ZeroPoint", zp), ("QuantizedDimension", q.quantized_dimension))
    return _QUANTIZATION.build(builder, fields)


_MODEL, _SUBGRAPH, _TENSOR, _BUFFER = TABLES["Model"], TABLES["SubGraph"], TABLES["Tensor"], TABLES["Buffer"]
_OPERATOR, _OPCODE, _METADATA = TABLES["Operator"], TABLES["OperatorCode"], TABLES["Metadata"]
_QUANTIZATION, _SIGNATURE, _TENSOR_MAP = TABLES["QuantizationParameters"], TABLES["SignatureDef"], TABLES["TensorMap"]


def estimate_size(model: ModelRecord) -> int:
    """Upper bound of the serialized size: constant data plus generous per-object overhead."""
    data = sum(t.data.size * t.dtype.itemsize + 2 * DATA_ALIGNMENT for t in model.tensors if t.data is not None)
    meta = sum(len(v) + 2 * DATA_ALIGNMENT for _, v in model.metadata)
    names = sum(len(t.name) + 64 + 8 * len(t.shape) for t in model.tensors)
    return data + meta + names + 64 * 1024


def serialize(model: ModelRecord) -> memoryview:
    """Serialize a model into memory; the result views the builder's buffer (no final copy).

    Release the result (memoryview.release) to free the buffer while other references remain.
    """
    return plan_file(model).to_memory()


def plan_file(model: ModelRecord) -> PlannedFile:
    """Lay out a model's tables, leaving room for the constant data, which PlannedFile copies when written."""
    size = estimate_size(model)
    if size > _MAX_FLATBUFFER:
        raise OutputError(
            f"the model would be {size / 2**30:.2f} GiB, over the 2 GiB flatbuffer limit. "
            "Reduce num_units/input_size/num_proj (files this large need TFLite's buffer-offset mode, "
            "which lstmgen does not write yet)."
        )
    # Pre-sized so the builder never grows (growing copies everything written so far). Alignment is
    # relative to the end of the buffer, so a 64-multiple size also aligns the absolute addresses.
    b = flatbuffers.Builder(0)
    # An anonymous map instead of the builder's bytearray: its pages are zero-filled on first write, so
    # the room left for constant data costs no memory until (unless) it is filled in memory.
    b.Bytes = mmap.mmap(-1, -(-size // 64) * 64)
    b.head = len(b.Bytes)

    # Constant data first: flatbuffers build back to front, so the weights end up at the end of
    # the file, after all the small tables.
    holes: list[_Hole] = []
    buffer_of: list[int] = []
    data_offsets: list[int | None] = [None]  # buffer 0: the empty sentinel
    for t in model.tensors:
        if t.data is None:
            buffer_of.append(0)
            continue
        if tuple(t.data.shape) != tuple(t.shape):
            raise ValueError(f"tensor {t.name}: data shape {t.data.shape} != declared shape {t.shape}")
        buffer_of.append(len(data_offsets))
        data_offsets.append(_data_vector(b, t.data, t.dtype, holes))
    meta_buffer: list[int] = []
    for _, blob in model.metadata:
        meta_buffer.append(len(data_offsets))
        data_offsets.append(_data_vector(b, np.frombuffer(blob, dtype=np.uint8), np.dtype(np.uint8), holes))

    buffers = [_BUFFER.build(b, (("Data", off),)) for off in data_offsets]

    tensors = []
    for t, buf in zip(model.tensors, buffer_of, strict=True):
        name = b.CreateString(t.name)
        shape = _int_vector(b, t.shape)
        sig = _int_vector(b, t.shape_signature) if t.shape_signature is not None else None
        quant = _quantization(b, t.quantization) if t.quantization is not None else None
        tensor_fields = (
            ("Shape", shape),
            ("Type", NUMPY_TO_TFLITE[np.dtype(t.dtype)]),
            ("Buffer", buf),
            ("Name", name),
            ("Quantization", quant),
            ("IsVariable", t.is_variable),
            ("ShapeSignature", sig),
        )
        tensors.append(_TENSOR.build(b, tensor_fields))

    codes: list[tuple[int, int]] = sorted({(op.opcode, op.version) for op in model.operators})
    operators = []
    for op in model.operators:
        inputs = _int_vector(b, op.inputs)
        outputs = _int_vector(b, op.outputs)
        inter = _int_vector(b, op.intermediates) if op.intermediates else None
        opts = _options(b, op.options) if op.options is not None else None
        fields = (
            ("OpcodeIndex", codes.index((op.opcode, op.version))),
            ("Inputs", inputs),
            ("Outputs", outputs),
            ("BuiltinOptionsType", BUILTIN_OPTIONS_CODE[op.options.table] if op.options is not None else None),
            ("BuiltinOptions", opts),
            ("Intermediates", inter),
        )
        operators.append(_OPERATOR.build(b, fields))

    sg_name = b.CreateString(model.subgraph_name)
    sg_tensors = _offsets_vector(b, tensors)
    sg_inputs = _int_vector(b, model.inputs)
    sg_outputs = _int_vector(b, model.outputs)
    sg_ops = _offsets_vector(b, operators)
    subgraph = _SUBGRAPH.build(
        b,
        (
            ("Tensors", sg_tensors),
            ("Inputs", sg_inputs),
            ("Outputs", sg_outputs),
            ("Operators", sg_ops),
            ("Name", sg_name),
        ),
    )
    empty = []
    for _ in range(model.empty_subgraphs):  # what TF's converter sometimes leaves behind (kept on a rewrite)
        vectors = [_offsets_vector(b, []), _int_vector(b, []), _int_vector(b, []), _offsets_vector(b, [])]
        # the interpreters want every vector present, even empty
        empty.append(_SUBGRAPH.build(b, zip(("Tensors", "Inputs", "Outputs", "Operators"), vectors, strict=True)))

    opcodes = []
    for code, version in codes:
        # Both fields: pre-2.3 runtimes read only the deprecated one.
        code_fields = (
            ("DeprecatedBuiltinCode", min(code, _GREATER_OP_CODES)),
            ("BuiltinCode", code),
            ("Version", version),
        )
        opcodes.append(_OPCODE.build(b, code_fields))

    sigdefs = [_signature(b, s) for s in model.signatures]
    metas = []
    for (name, _), buf in zip(model.metadata, meta_buffer, strict=True):
        metas.append(_METADATA.build(b, (("Name", b.CreateString(name)), ("Buffer", buf))))

    desc = b.CreateString(model.description)
    v_opcodes = _offsets_vector(b, opcodes)
    v_subgraphs = _offsets_vector(b, [subgraph, *empty])
    v_buffers = _offsets_vector(b, buffers)
    v_sigs = _offsets_vector(b, sigdefs) if sigdefs else None
    v_meta = _offsets_vector(b, metas) if metas else None
    root = _MODEL.build(
        b,
        (
            ("Version", SCHEMA_VERSION),
            ("OperatorCodes", v_opcodes),
            ("Subgraphs", v_subgraphs),
            ("Description", desc),
            ("Buffers", v_buffers),
            ("Metadata", v_meta),
            ("SignatureDefs", v_sigs),
        ),
    )
    b.Finish(root, file_identifier=FILE_IDENTIFIER)
    return PlannedFile(b.Bytes, b.Head(), holes)


def _signature(b: flatbuffers.Builder, s: Signature) -> int:
    def maps(items: tuple[tuple[str, int], ...]) -> int:
        offs = []
        for name, index in items:
            offs.append(_TENSOR_MAP.build(b, (("Name", b.CreateString(name)), ("TensorIndex", index))))
        return _offsets_vector(b, offs)

    ins, outs, key = maps(s.inputs), maps(s.outputs), b.CreateString(s.key)
    fields = (("Inputs", ins), ("Outputs", outs), ("SignatureKey", key), ("SubgraphIndex", 0))
    return _SIGNATURE.build(b, fields)


# ----------------------------------------------------------------------------------------- reader


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
    if n_subgraphs == 0 or busy:
        raise ModelFileError(
            f"{source}: has {n_subgraphs} subgraphs, {len(busy)} of them besides the first with operators; "
            "lstmgen handles one subgraph (plus empty ones). Control flow (WHILE, IF) runs in extra subgraphs: a "
            "TF-converted Keras 3 LSTM is a WHILE loop, not a fused LSTM."
        )
    total = len(buf)
    n_buffers = m.length("Buffers")

    def buffer_bytes(index: int) -> np.ndarray | None:
        if index == 0:
            return None
        if index >= n_buffers:
            raise ModelFileError(f"{source}: refers to buffer {index}, but the file has {n_buffers} (corrupt).")
        bb = m.item("Buffers", index)
        off = bb.get("Offset")
        if off > 1:  # buffer-offset mode: data stored after the flatbuffer
            size = bb.get("Size")
            if off + size > total:
                raise ModelFileError(f"{source}: buffer {index} points past the end of the file (truncated?).")
            return np.frombuffer(buf, dtype=np.uint8, count=size, offset=off)
        data = bb.numpy("Data")
        return data if data is not None and data.size else None

    def ints(table: Reader, name: str) -> tuple[int, ...]:
        vector = table.numpy(name)
        return tuple(int(x) for x in vector) if vector is not None else ()

    sg = m.item("Subgraphs", 0)
    tensors = []
    for i, t in enumerate(sg.items("Tensors")):
        dtype = TFLITE_TO_NUMPY.get(t.get("Type"))
        if dtype is None:
            raise ModelFileError(f"{source}: tensor {i} has a tensor type ({t.get('Type')}) lstmgen does not read.")
        shape = ints(t, "Shape")
        raw = buffer_bytes(t.get("Buffer"))
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
            zero_point = ints(q, "ZeroPoint")
            quant = Quantization(
                tuple(float(s) for s in scale) if scale is not None else (),
                zero_point if zero_point else (0,) * q.length("Scale"),
                q.get("QuantizedDimension"),
            )
        tensors.append(
            TensorRecord(
                name=_text(t.get("Name")),
                shape=shape,
                dtype=dtype,
                data=data,
                shape_signature=ints(t, "ShapeSignature") or None,
                is_variable=t.get("IsVariable"),
                quantization=quant,
            )
        )

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
                inputs=ints(op, "Inputs"),
                outputs=ints(op, "Outputs"),
                options=_read_options(op),
                intermediates=ints(op, "Intermediates"),
            )
        )

    def tensor_maps(s: Reader, name: str) -> tuple[tuple[str, int], ...]:
        return tuple((_text(e.get("Name")), e.get("TensorIndex")) for e in s.items(name))

    signatures = [
        Signature(key=_text(s.get("SignatureKey")), inputs=tensor_maps(s, "Inputs"), outputs=tensor_maps(s, "Outputs"))
        for s in m.items("SignatureDefs")
    ]
    metadata = []
    for md in m.items("Metadata"):
        raw = buffer_bytes(md.get("Buffer"))
        metadata.append((_text(md.get("Name")), bytes(raw) if raw is not None else b""))

    record = ModelRecord(
        tensors=tuple(tensors),
        operators=tuple(operators),
        inputs=ints(sg, "Inputs"),
        outputs=ints(sg, "Outputs"),
        subgraph_name=_text(sg.get("Name")),
        description=_text(m.get("Description")),
        signatures=tuple(signatures),
        metadata=tuple(metadata),
        empty_subgraphs=n_subgraphs - 1,
    )
    _check_indices(record, source)
    return record


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


def materialize(model: ModelRecord) -> ModelRecord:
    """Replace Deferred data by arrays (for transforms that read the weights, e.g. quantization)."""

    def real(t: TensorRecord) -> TensorRecord:
        if not isinstance(t.data, Deferred):
            return t
        out = np.empty(t.data.shape, np.dtype(t.dtype).newbyteorder("="))
        t.data.fill(out)
        return replace(t, data=out)

    return replace(model, tensors=tuple(real(t) for t in model.tensors))
