"""The parts of the TFLite schema (schema.fbs) lstmgen reads and writes, as tables, plus a generic writer and reader.

Each table lists its fields as (name, slot, kind, default); the generated `tflite` package is only a test oracle
(tests/test_schema.py checks every slot, kind, default and enum value here against it), because importing it costs
~200 modules at every start.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Any, NamedTuple

import flatbuffers
import numpy as np
from flatbuffers import encode, number_types, packer
from flatbuffers.table import Table

from lstmgen.errors import ModelFileError

# ------------------------------------------------------------------------------------------- enums


class BuiltinOperator:
    """schema.fbs enum BuiltinOperator (int32); plain ints, not an IntEnum: 209 members would cost import time."""

    ADD = 0
    AVERAGE_POOL_2D = 1
    CONCATENATION = 2
    CONV_2D = 3
    DEPTHWISE_CONV_2D = 4
    DEPTH_TO_SPACE = 5
    DEQUANTIZE = 6
    EMBEDDING_LOOKUP = 7
    FLOOR = 8
    FULLY_CONNECTED = 9
    HASHTABLE_LOOKUP = 10
    L2_NORMALIZATION = 11
    L2_POOL_2D = 12
    LOCAL_RESPONSE_NORMALIZATION = 13
    LOGISTIC = 14
    LSH_PROJECTION = 15
    LSTM = 16
    MAX_POOL_2D = 17
    MUL = 18
    RELU = 19
    RELU_N1_TO_1 = 20
    RELU6 = 21
    RESHAPE = 22
    RESIZE_BILINEAR = 23
    RNN = 24
    SOFTMAX = 25
    SPACE_TO_DEPTH = 26
    SVDF = 27
    TANH = 28
    CONCAT_EMBEDDINGS = 29
    SKIP_GRAM = 30
    CALL = 31
    CUSTOM = 32
    EMBEDDING_LOOKUP_SPARSE = 33
    PAD = 34
    UNIDIRECTIONAL_SEQUENCE_RNN = 35
    GATHER = 36
    BATCH_TO_SPACE_ND = 37
    SPACE_TO_BATCH_ND = 38
    TRANSPOSE = 39
    MEAN = 40
    SUB = 41
    DIV = 42
    SQUEEZE = 43
    UNIDIRECTIONAL_SEQUENCE_LSTM = 44
    STRIDED_SLICE = 45
    BIDIRECTIONAL_SEQUENCE_RNN = 46
    EXP = 47
    TOPK_V2 = 48
    SPLIT = 49
    LOG_SOFTMAX = 50
    DELEGATE = 51
    BIDIRECTIONAL_SEQUENCE_LSTM = 52
    CAST = 53
    PRELU = 54
    MAXIMUM = 55
    ARG_MAX = 56
    MINIMUM = 57
    LESS = 58
    NEG = 59
    PADV2 = 60
    GREATER = 61
    GREATER_EQUAL = 62
    LESS_EQUAL = 63
    SELECT = 64
    SLICE = 65
    SIN = 66
    TRANSPOSE_CONV = 67
    SPARSE_TO_DENSE = 68
    TILE = 69
    EXPAND_DIMS = 70
    EQUAL = 71
    NOT_EQUAL = 72
    LOG = 73
    SUM = 74
    SQRT = 75
    RSQRT = 76
    SHAPE = 77
    POW = 78
    ARG_MIN = 79
    FAKE_QUANT = 80
    REDUCE_PROD = 81
    REDUCE_MAX = 82
    PACK = 83
    LOGICAL_OR = 84
    ONE_HOT = 85
    LOGICAL_AND = 86
    LOGICAL_NOT = 87
    UNPACK = 88
    REDUCE_MIN = 89
    FLOOR_DIV = 90
    REDUCE_ANY = 91
    SQUARE = 92
    ZEROS_LIKE = 93
    FILL = 94
    FLOOR_MOD = 95
    RANGE = 96
    RESIZE_NEAREST_NEIGHBOR = 97
    LEAKY_RELU = 98
    SQUARED_DIFFERENCE = 99
    MIRROR_PAD = 100
    ABS = 101
    SPLIT_V = 102
    UNIQUE = 103
    CEIL = 104
    REVERSE_V2 = 105
    ADD_N = 106
    GATHER_ND = 107
    COS = 108
    WHERE = 109
    RANK = 110
    ELU = 111
    REVERSE_SEQUENCE = 112
    MATRIX_DIAG = 113
    QUANTIZE = 114
    MATRIX_SET_DIAG = 115
    ROUND = 116
    HARD_SWISH = 117
    IF = 118
    WHILE = 119
    NON_MAX_SUPPRESSION_V4 = 120
    NON_MAX_SUPPRESSION_V5 = 121
    SCATTER_ND = 122
    SELECT_V2 = 123
    DENSIFY = 124
    SEGMENT_SUM = 125
    BATCH_MATMUL = 126
    PLACEHOLDER_FOR_GREATER_OP_CODES = 127
    CUMSUM = 128
    CALL_ONCE = 129
    BROADCAST_TO = 130
    RFFT2D = 131
    CONV_3D = 132
    IMAG = 133
    REAL = 134
    COMPLEX_ABS = 135
    HASHTABLE = 136
    HASHTABLE_FIND = 137
    HASHTABLE_IMPORT = 138
    HASHTABLE_SIZE = 139
    REDUCE_ALL = 140
    CONV_3D_TRANSPOSE = 141
    VAR_HANDLE = 142
    READ_VARIABLE = 143
    ASSIGN_VARIABLE = 144
    BROADCAST_ARGS = 145
    RANDOM_STANDARD_NORMAL = 146
    BUCKETIZE = 147
    RANDOM_UNIFORM = 148
    MULTINOMIAL = 149
    GELU = 150
    DYNAMIC_UPDATE_SLICE = 151
    RELU_0_TO_1 = 152
    UNSORTED_SEGMENT_PROD = 153
    UNSORTED_SEGMENT_MAX = 154
    UNSORTED_SEGMENT_SUM = 155
    ATAN2 = 156
    UNSORTED_SEGMENT_MIN = 157
    SIGN = 158
    BITCAST = 159
    BITWISE_XOR = 160
    RIGHT_SHIFT = 161
    STABLEHLO_LOGISTIC = 162
    STABLEHLO_ADD = 163
    STABLEHLO_DIVIDE = 164
    STABLEHLO_MULTIPLY = 165
    STABLEHLO_MAXIMUM = 166
    STABLEHLO_RESHAPE = 167
    STABLEHLO_CLAMP = 168
    STABLEHLO_CONCATENATE = 169
    STABLEHLO_BROADCAST_IN_DIM = 170
    STABLEHLO_CONVOLUTION = 171
    STABLEHLO_SLICE = 172
    STABLEHLO_CUSTOM_CALL = 173
    STABLEHLO_REDUCE = 174
    STABLEHLO_ABS = 175
    STABLEHLO_AND = 176
    STABLEHLO_COSINE = 177
    STABLEHLO_EXPONENTIAL = 178
    STABLEHLO_FLOOR = 179
    STABLEHLO_LOG = 180
    STABLEHLO_MINIMUM = 181
    STABLEHLO_NEGATE = 182
    STABLEHLO_OR = 183
    STABLEHLO_POWER = 184
    STABLEHLO_REMAINDER = 185
    STABLEHLO_RSQRT = 186
    STABLEHLO_SELECT = 187
    STABLEHLO_SUBTRACT = 188
    STABLEHLO_TANH = 189
    STABLEHLO_SCATTER = 190
    STABLEHLO_COMPARE = 191
    STABLEHLO_CONVERT = 192
    STABLEHLO_DYNAMIC_SLICE = 193
    STABLEHLO_DYNAMIC_UPDATE_SLICE = 194
    STABLEHLO_PAD = 195
    STABLEHLO_IOTA = 196
    STABLEHLO_DOT_GENERAL = 197
    STABLEHLO_REDUCE_WINDOW = 198
    STABLEHLO_SORT = 199
    STABLEHLO_WHILE = 200
    STABLEHLO_GATHER = 201
    STABLEHLO_TRANSPOSE = 202
    DILATE = 203
    STABLEHLO_RNG_BIT_GENERATOR = 204
    REDUCE_WINDOW = 205
    STABLEHLO_COMPOSITE = 206
    STABLEHLO_SHIFT_LEFT = 207
    STABLEHLO_CBRT = 208


class TensorType:
    """schema.fbs enum TensorType (int8)."""

    FLOAT32 = 0
    FLOAT16 = 1
    INT32 = 2
    UINT8 = 3
    INT64 = 4
    STRING = 5
    BOOL = 6
    INT16 = 7
    COMPLEX64 = 8
    INT8 = 9
    FLOAT64 = 10
    COMPLEX128 = 11
    UINT64 = 12
    RESOURCE = 13
    VARIANT = 14
    UINT32 = 15
    UINT16 = 16
    INT4 = 17
    BFLOAT16 = 18


class ActivationFunctionType:
    """schema.fbs enum ActivationFunctionType (int8)."""

    NONE = 0
    RELU = 1
    RELU_N1_TO_1 = 2
    RELU6 = 3
    TANH = 4
    SIGN_BIT = 5


# schema.fbs union BuiltinOptions: the member table of each type code (the code is the index).
BUILTIN_OPTIONS: tuple[str, ...] = (
    "NONE",
    "Conv2DOptions",
    "DepthwiseConv2DOptions",
    "ConcatEmbeddingsOptions",
    "LSHProjectionOptions",
    "Pool2DOptions",
    "SVDFOptions",
    "RNNOptions",
    "FullyConnectedOptions",
    "SoftmaxOptions",
    "ConcatenationOptions",
    "AddOptions",
    "L2NormOptions",
    "LocalResponseNormalizationOptions",
    "LSTMOptions",
    "ResizeBilinearOptions",
    "CallOptions",
    "ReshapeOptions",
    "SkipGramOptions",
    "SpaceToDepthOptions",
    "EmbeddingLookupSparseOptions",
    "MulOptions",
    "PadOptions",
    "GatherOptions",
    "BatchToSpaceNDOptions",
    "SpaceToBatchNDOptions",
    "TransposeOptions",
    "ReducerOptions",
    "SubOptions",
    "DivOptions",
    "SqueezeOptions",
    "SequenceRNNOptions",
    "StridedSliceOptions",
    "ExpOptions",
    "TopKV2Options",
    "SplitOptions",
    "LogSoftmaxOptions",
    "CastOptions",
    "DequantizeOptions",
    "MaximumMinimumOptions",
    "ArgMaxOptions",
    "LessOptions",
    "NegOptions",
    "PadV2Options",
    "GreaterOptions",
    "GreaterEqualOptions",
    "LessEqualOptions",
    "SelectOptions",
    "SliceOptions",
    "TransposeConvOptions",
    "SparseToDenseOptions",
    "TileOptions",
    "ExpandDimsOptions",
    "EqualOptions",
    "NotEqualOptions",
    "ShapeOptions",
    "PowOptions",
    "ArgMinOptions",
    "FakeQuantOptions",
    "PackOptions",
    "LogicalOrOptions",
    "OneHotOptions",
    "LogicalAndOptions",
    "LogicalNotOptions",
    "UnpackOptions",
    "FloorDivOptions",
    "SquareOptions",
    "ZerosLikeOptions",
    "FillOptions",
    "BidirectionalSequenceLSTMOptions",
    "BidirectionalSequenceRNNOptions",
    "UnidirectionalSequenceLSTMOptions",
    "FloorModOptions",
    "RangeOptions",
    "ResizeNearestNeighborOptions",
    "LeakyReluOptions",
    "SquaredDifferenceOptions",
    "MirrorPadOptions",
    "AbsOptions",
    "SplitVOptions",
    "UniqueOptions",
    "ReverseV2Options",
    "AddNOptions",
    "GatherNdOptions",
    "CosOptions",
    "WhereOptions",
    "RankOptions",
    "ReverseSequenceOptions",
    "MatrixDiagOptions",
    "QuantizeOptions",
    "MatrixSetDiagOptions",
    "HardSwishOptions",
    "IfOptions",
    "WhileOptions",
    "DepthToSpaceOptions",
    "NonMaxSuppressionV4Options",
    "NonMaxSuppressionV5Options",
    "ScatterNdOptions",
    "SelectV2Options",
    "DensifyOptions",
    "SegmentSumOptions",
    "BatchMatMulOptions",
    "CumsumOptions",
    "CallOnceOptions",
    "BroadcastToOptions",
    "Rfft2dOptions",
    "Conv3DOptions",
    "HashtableOptions",
    "HashtableFindOptions",
    "HashtableImportOptions",
    "HashtableSizeOptions",
    "VarHandleOptions",
    "ReadVariableOptions",
    "AssignVariableOptions",
    "RandomOptions",
    "BucketizeOptions",
    "GeluOptions",
    "DynamicUpdateSliceOptions",
    "UnsortedSegmentProdOptions",
    "UnsortedSegmentMaxOptions",
    "UnsortedSegmentMinOptions",
    "UnsortedSegmentSumOptions",
    "ATan2Options",
    "SignOptions",
    "BitcastOptions",
    "BitwiseXorOptions",
    "RightShiftOptions",
)


# ------------------------------------------------------------------------------------------- tables

# Scalar kinds: the flatbuffers number type (reading) and the Builder method (writing) of each.
_N = number_types
SCALARS: dict[str, tuple[Any, str]] = {
    "bool": (_N.BoolFlags, "PrependBoolSlot"),
    "int8": (_N.Int8Flags, "PrependInt8Slot"),
    "uint8": (_N.Uint8Flags, "PrependUint8Slot"),
    "int16": (_N.Int16Flags, "PrependInt16Slot"),
    "uint16": (_N.Uint16Flags, "PrependUint16Slot"),
    "int32": (_N.Int32Flags, "PrependInt32Slot"),
    "uint32": (_N.Uint32Flags, "PrependUint32Slot"),
    "int64": (_N.Int64Flags, "PrependInt64Slot"),
    "uint64": (_N.Uint64Flags, "PrependUint64Slot"),
    "float32": (_N.Float32Flags, "PrependFloat32Slot"),
    "float64": (_N.Float64Flags, "PrependFloat64Slot"),
}


class Field(NamedTuple):
    """One table field. kind: a scalar kind, "string", "union", a table name, or "[kind]" for a vector of kind."""

    name: str  # CamelCase, as the generated accessors spell it
    slot: int  # declaration index in schema.fbs (deprecated fields keep theirs)
    kind: str
    default: bool | int | float | None = None  # scalars only; offsets default to absent


class TableSchema:
    """A table's layout, with the generic writer over flatbuffers.Builder (fields added in the caller's order)."""

    __slots__ = ("fields", "name", "size")

    def __init__(self, name: str, size: int, fields: Iterable[Field]) -> None:
        self.name, self.size = name, size  # size: the vtable length StartObject reserves
        self.fields = {f.name: f for f in fields}

    def start(self, b: flatbuffers.Builder) -> None:
        b.StartObject(self.size)

    def add(self, b: flatbuffers.Builder, name: str, value: Any) -> None:
        """Add a scalar value, or an offset created before start(); a default value is left out, as flatc does."""
        f = self.fields[name]
        scalar = SCALARS.get(f.kind)
        if scalar is None:
            b.PrependUOffsetTRelativeSlot(f.slot, value, 0)
        else:
            getattr(b, scalar[1])(f.slot, value, f.default)

    def build(self, b: flatbuffers.Builder, values: Iterable[tuple[str, Any]]) -> int:
        """One table from (field, value) pairs in order; None values are left out."""
        self.start(b)
        for name, value in values:
            if value is not None:
                self.add(b, name, value)
        return int(b.EndObject())


def _tables(*tables: TableSchema) -> dict[str, TableSchema]:
    return {t.name: t for t in tables}


F, T = Field, TableSchema

# The model's structure: every field of each table (the reader reads some, the writer writes some).
TABLES: dict[str, TableSchema] = _tables(
    T(
        "Model",
        8,
        (
            F("Version", 0, "uint32", 0),
            F("OperatorCodes", 1, "[OperatorCode]"),
            F("Subgraphs", 2, "[SubGraph]"),
            F("Description", 3, "string"),
            F("Buffers", 4, "[Buffer]"),
            F("MetadataBuffer", 5, "[int32]"),
            F("Metadata", 6, "[Metadata]"),
            F("SignatureDefs", 7, "[SignatureDef]"),
        ),
    ),
    T(
        "SubGraph",
        6,
        (
            F("Tensors", 0, "[Tensor]"),
            F("Inputs", 1, "[int32]"),
            F("Outputs", 2, "[int32]"),
            F("Operators", 3, "[Operator]"),
            F("Name", 4, "string"),
            F("DebugMetadataIndex", 5, "int32", -1),
        ),
    ),
    T(
        "Tensor",
        10,
        (
            F("Shape", 0, "[int32]"),
            F("Type", 1, "int8", 0),
            F("Buffer", 2, "uint32", 0),
            F("Name", 3, "string"),
            F("Quantization", 4, "QuantizationParameters"),
            F("IsVariable", 5, "bool", False),
            F("Sparsity", 6, "SparsityParameters"),
            F("ShapeSignature", 7, "[int32]"),
            F("HasRank", 8, "bool", False),
            F("VariantTensors", 9, "[VariantSubType]"),
        ),
    ),
    T("Buffer", 3, (F("Data", 0, "[uint8]"), F("Offset", 1, "uint64", 0), F("Size", 2, "uint64", 0))),
    T(
        "Operator",
        14,
        (
            F("OpcodeIndex", 0, "uint32", 0),
            F("Inputs", 1, "[int32]"),
            F("Outputs", 2, "[int32]"),
            F("BuiltinOptionsType", 3, "uint8", 0),
            F("BuiltinOptions", 4, "union"),
            F("CustomOptions", 5, "[uint8]"),
            F("CustomOptionsFormat", 6, "int8", 0),
            F("MutatingVariableInputs", 7, "[bool]"),
            F("Intermediates", 8, "[int32]"),
            F("LargeCustomOptionsOffset", 9, "uint64", 0),
            F("LargeCustomOptionsSize", 10, "uint64", 0),
            F("BuiltinOptions2Type", 11, "uint8", 0),
            F("BuiltinOptions2", 12, "union"),
            F("DebugMetadataIndex", 13, "int32", -1),
        ),
    ),
    T(
        "OperatorCode",
        4,
        (
            F("DeprecatedBuiltinCode", 0, "int8", 0),
            F("CustomCode", 1, "string"),
            F("Version", 2, "int32", 1),
            F("BuiltinCode", 3, "int32", 0),
        ),
    ),
    T(
        "QuantizationParameters",
        7,
        (
            F("Min", 0, "[float32]"),
            F("Max", 1, "[float32]"),
            F("Scale", 2, "[float32]"),
            F("ZeroPoint", 3, "[int64]"),
            F("DetailsType", 4, "uint8", 0),
            F("Details", 5, "union"),
            F("QuantizedDimension", 6, "int32", 0),
        ),
    ),
    T("Metadata", 2, (F("Name", 0, "string"), F("Buffer", 1, "uint32", 0))),
    T(
        "SignatureDef",
        5,
        (
            F("Inputs", 0, "[TensorMap]"),
            F("Outputs", 1, "[TensorMap]"),
            F("SignatureKey", 2, "string"),
            # slot 3: deprecated_tag
            F("SubgraphIndex", 4, "uint32", 0),
        ),
    ),
    T("TensorMap", 2, (F("Name", 0, "string"), F("TensorIndex", 1, "uint32", 0))),
)

_ACT = F("FusedActivationFunction", 0, "int8", 0)
_CLIPS = (F("CellClip", 1, "float32", 0.0), F("ProjClip", 2, "float32", 0.0))

# The BuiltinOptions tables of the ops lstmgen writes and of those common around an LSTM in converter output.
# The reader gives the others as their name without fields (see read_options).
OPTIONS: dict[str, TableSchema] = _tables(
    T(
        "UnidirectionalSequenceLSTMOptions",
        6,
        (
            _ACT,
            *_CLIPS,
            F("TimeMajor", 3, "bool", False),
            F("AsymmetricQuantizeInputs", 4, "bool", False),
            F("DiagonalRecurrentTensors", 5, "bool", False),
        ),
    ),
    T(
        "BidirectionalSequenceLSTMOptions",
        6,
        (
            _ACT,
            *_CLIPS,
            F("MergeOutputs", 3, "bool", False),
            F("TimeMajor", 4, "bool", True),
            F("AsymmetricQuantizeInputs", 5, "bool", False),
        ),
    ),
    T(
        "LSTMOptions",
        5,
        (_ACT, *_CLIPS, F("KernelType", 3, "int8", 0), F("AsymmetricQuantizeInputs", 4, "bool", False)),
    ),
    T(
        "StridedSliceOptions",
        6,
        (
            F("BeginMask", 0, "int32", 0),
            F("EndMask", 1, "int32", 0),
            F("EllipsisMask", 2, "int32", 0),
            F("NewAxisMask", 3, "int32", 0),
            F("ShrinkAxisMask", 4, "int32", 0),
            F("Offset", 5, "bool", False),
        ),
    ),
    T("ConcatenationOptions", 2, (F("Axis", 0, "int32", 0), F("FusedActivationFunction", 1, "int8", 0))),
    T(
        "FullyConnectedOptions",
        5,
        (
            _ACT,
            F("WeightsFormat", 1, "int8", 0),
            F("KeepNumDims", 2, "bool", False),
            F("AsymmetricQuantizeInputs", 3, "bool", False),
            F("QuantizedBiasType", 4, "int8", 0),
        ),
    ),
    T("SoftmaxOptions", 1, (F("Beta", 0, "float32", 0.0),)),
    T("ReshapeOptions", 1, (F("NewShape", 0, "[int32]"),)),
    T("SqueezeOptions", 1, (F("SqueezeDims", 0, "[int32]"),)),
    T("GatherOptions", 2, (F("Axis", 0, "int32", 0), F("BatchDims", 1, "int32", 0))),
    T("WhileOptions", 2, (F("CondSubgraphIndex", 0, "int32", 0), F("BodySubgraphIndex", 1, "int32", 0))),
    T("PackOptions", 2, (F("ValuesCount", 0, "int32", 0), F("Axis", 1, "int32", 0))),
    T("UnpackOptions", 2, (F("Num", 0, "int32", 0), F("Axis", 1, "int32", 0))),
    T("AddOptions", 2, (_ACT, F("PotScaleInt16", 1, "bool", True))),
    T("SubOptions", 2, (_ACT, F("PotScaleInt16", 1, "bool", True))),
    T("MulOptions", 1, (_ACT,)),
    T("DivOptions", 1, (_ACT,)),
    T("SplitOptions", 1, (F("NumSplits", 0, "int32", 0),)),
    T("ShapeOptions", 1, (F("OutType", 0, "int8", 0),)),
    T("ReducerOptions", 1, (F("KeepDims", 0, "bool", False),)),
    T("CastOptions", 2, (F("InDataType", 0, "int8", 0), F("OutDataType", 1, "int8", 0))),
    T(
        "BatchMatMulOptions",
        3,
        (F("AdjX", 0, "bool", False), F("AdjY", 1, "bool", False), F("AsymmetricQuantizeInputs", 2, "bool", False)),
    ),
    T("LeakyReluOptions", 1, (F("Alpha", 0, "float32", 0.0),)),
    *(
        T(name, 0, ())
        for name in (
            "ReverseV2Options",
            "LessOptions",
            "QuantizeOptions",
            "DequantizeOptions",
            "TransposeOptions",
            "ExpandDimsOptions",
            "SliceOptions",
        )
    ),
)
BUILTIN_OPTIONS_CODE: dict[str, int] = {name: code for code, name in enumerate(BUILTIN_OPTIONS)}

# ------------------------------------------------------------------------------------------- reader

# What reading a truncated or corrupt buffer raises inside flatbuffers: struct.error (an offset past the end),
# ValueError (np.frombuffer of a vector past the end), IndexError (a byte index past the end), TypeError
# (flatbuffers' enforce_number on an offset that comes out negative).
MALFORMED: tuple[type[Exception], ...] = (struct.error, ValueError, IndexError, TypeError)


class Reader:
    """One table of a buffer, read through its TableSchema.

    Only flatbuffers' own accessors run inside the guard that reports a malformed buffer as ModelFileError:
    an error in the caller's code is a bug (exit 70), not a corrupt file.
    """

    __slots__ = ("_tab", "schema", "source")

    def __init__(self, tab: Table, schema: TableSchema, source: str) -> None:
        self._tab, self.schema, self.source = tab, schema, source

    @classmethod
    def root(cls, buf: Any, schema: TableSchema, source: str) -> Reader:
        """The root table of a finished buffer."""
        try:
            return cls(Table(buf, encode.Get(packer.uoffset, buf, 0)), schema, source)
        except MALFORMED as exc:
            raise _corrupt(source, schema.name, "root", exc) from None

    def _offset(self, f: Field) -> int:
        return int(self._tab.Offset(4 + 2 * f.slot))

    def get(self, name: str) -> Any:
        """A scalar (its default when absent), a string as bytes, or a sub-table as a Reader (None when absent)."""
        f = self.schema.fields[name]
        try:
            o = self._offset(f)
            scalar = SCALARS.get(f.kind)
            if scalar is not None:
                if o == 0:
                    return f.default
                value = self._tab.Get(scalar[0], o + self._tab.Pos)
                return bool(value) if f.kind == "bool" else value
            if o == 0:
                return None
            if f.kind == "string":
                return self._tab.String(o + self._tab.Pos)
            sub = Table(self._tab.Bytes, self._tab.Indirect(o + self._tab.Pos))
        except MALFORMED as exc:
            raise _corrupt(self.source, self.schema.name, name, exc) from None
        return Reader(sub, TABLES[f.kind], self.source)

    def has(self, name: str) -> bool:
        """Whether an offset field (string, table, vector, union) is present."""
        try:
            return self._offset(self.schema.fields[name]) != 0
        except MALFORMED as exc:
            raise _corrupt(self.source, self.schema.name, name, exc) from None

    def length(self, name: str) -> int:
        """The length of a vector field (0 when absent)."""
        try:
            o = self._offset(self.schema.fields[name])
            return int(self._tab.VectorLen(o)) if o else 0
        except MALFORMED as exc:
            raise _corrupt(self.source, self.schema.name, name, exc) from None

    def numpy(self, name: str) -> np.ndarray | None:
        """A vector of scalars as a read-only view into the buffer (None when absent)."""
        f = self.schema.fields[name]
        try:
            o = self._offset(f)
            return self._tab.GetVectorAsNumpy(SCALARS[f.kind[1:-1]][0], o) if o else None
        except MALFORMED as exc:
            raise _corrupt(self.source, self.schema.name, name, exc) from None

    def item(self, name: str, index: int) -> Reader:
        """Element `index` of a vector of tables."""
        f = self.schema.fields[name]
        try:
            o = self._offset(f)
            sub = Table(self._tab.Bytes, self._tab.Indirect(self._tab.Vector(o) + 4 * index))
        except MALFORMED as exc:
            raise _corrupt(self.source, self.schema.name, name, exc) from None
        return Reader(sub, TABLES[f.kind[1:-1]], self.source)

    def items(self, name: str) -> list[Reader]:
        return [self.item(name, i) for i in range(self.length(name))]

    def union(self, name: str, schema: TableSchema) -> Reader | None:
        """A union field read as the table `schema` (which its type field names); None when absent."""
        try:
            o = self._offset(self.schema.fields[name])
            if o == 0:
                return None
            sub = Table(self._tab.Bytes, self._tab.Indirect(o + self._tab.Pos))
        except MALFORMED as exc:
            raise _corrupt(self.source, self.schema.name, name, exc) from None
        return Reader(sub, schema, self.source)

    def values(self) -> tuple[tuple[str, Any], ...]:
        """Every scalar and scalar-vector field (vectors as tuples), sorted by name: how options are recorded."""
        out = []
        for name, f in sorted(self.schema.fields.items()):
            if f.kind in SCALARS:
                out.append((name, self.get(name)))
            elif f.kind.startswith("[") and f.kind[1:-1] in SCALARS:
                vector = self.numpy(name)
                out.append((name, tuple(vector.tolist()) if vector is not None else ()))
        return tuple(out)


def _corrupt(source: str, table: str, name: str, exc: Exception) -> ModelFileError:
    return ModelFileError(
        f"{source}: the TFLite flatbuffer is truncated or corrupt (reading {table}.{name}: "
        f"{type(exc).__name__}: {exc}). Rebuild or re-download the file."
    )
