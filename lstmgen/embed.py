"""`embed`: firmware sources NAME.cc/NAME.h with the aligned model bytes, TFLM-measured arena size and op list."""

from __future__ import annotations

import hashlib
import re
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lstmgen import guard
from lstmgen.errors import ConfigError, ModelFileError
from lstmgen.modelinfo import LstmModel, read_lstm_model
from lstmgen.output import check_target, write_atomic
from lstmgen.runtimes.micro import capture_stderr, import_tflm
from lstmgen.runtimes.probe import probe
from lstmgen.targets.rules import find_problems
from lstmgen.tflite.records import ModelRecord, TensorRecord
from lstmgen.tflite.schema import BuiltinOperator as Op
from lstmgen.tflite.tables import BUILTIN_OPERATOR_NAMES
from lstmgen.version import __version__

# Builtin name -> the tflite::MicroMutableOpResolver method that registers it (micro_mutable_op_resolver.h),
# for every builtin with a TFLM kernel (targets/micro.py MICRO_BUILTIN_OPS; a test keeps the two in step).
_RESOLVER_TEXT = """
    ABS:Abs ADD:Add ADD_N:AddN ARG_MAX:ArgMax ARG_MIN:ArgMin ASSIGN_VARIABLE:AssignVariable
    AVERAGE_POOL_2D:AveragePool2D BATCH_MATMUL:BatchMatMul BATCH_TO_SPACE_ND:BatchToSpaceNd
    BROADCAST_ARGS:BroadcastArgs BROADCAST_TO:BroadcastTo CALL_ONCE:CallOnce CAST:Cast CEIL:Ceil
    CONCATENATION:Concatenation CONV_2D:Conv2D COS:Cos CUMSUM:CumSum DEPTH_TO_SPACE:DepthToSpace
    DEPTHWISE_CONV_2D:DepthwiseConv2D DEQUANTIZE:Dequantize DIV:Div DYNAMIC_UPDATE_SLICE:DynamicUpdateSlice
    ELU:Elu EMBEDDING_LOOKUP:EmbeddingLookup EQUAL:Equal EXP:Exp EXPAND_DIMS:ExpandDims FILL:Fill FLOOR:Floor
    FLOOR_DIV:FloorDiv FLOOR_MOD:FloorMod FULLY_CONNECTED:FullyConnected GATHER:Gather GATHER_ND:GatherNd
    GREATER:Greater GREATER_EQUAL:GreaterEqual HARD_SWISH:HardSwish IF:If L2_NORMALIZATION:L2Normalization
    L2_POOL_2D:L2Pool2D LEAKY_RELU:LeakyRelu LESS:Less LESS_EQUAL:LessEqual LOG:Log LOG_SOFTMAX:LogSoftmax
    LOGICAL_AND:LogicalAnd LOGICAL_NOT:LogicalNot LOGICAL_OR:LogicalOr LOGISTIC:Logistic MAX_POOL_2D:MaxPool2D
    MAXIMUM:Maximum MEAN:Mean MINIMUM:Minimum MIRROR_PAD:MirrorPad MUL:Mul NEG:Neg NOT_EQUAL:NotEqual PACK:Pack
    PAD:Pad PADV2:PadV2 PRELU:Prelu QUANTIZE:Quantize READ_VARIABLE:ReadVariable REDUCE_ALL:ReduceAll
    REDUCE_MAX:ReduceMax REDUCE_MIN:ReduceMin RELU:Relu RELU6:Relu6 RESHAPE:Reshape RESIZE_BILINEAR:ResizeBilinear
    RESIZE_NEAREST_NEIGHBOR:ResizeNearestNeighbor REVERSE_V2:ReverseV2 ROUND:Round RSQRT:Rsqrt SELECT_V2:SelectV2
    SHAPE:Shape SIN:Sin SLICE:Slice SOFTMAX:Softmax SPACE_TO_BATCH_ND:SpaceToBatchNd SPACE_TO_DEPTH:SpaceToDepth
    SPLIT:Split SPLIT_V:SplitV SQRT:Sqrt SQUARE:Square SQUARED_DIFFERENCE:SquaredDifference SQUEEZE:Squeeze
    STRIDED_SLICE:StridedSlice SUB:Sub SUM:Sum SVDF:Svdf TANH:Tanh TRANSPOSE:Transpose TRANSPOSE_CONV:TransposeConv
    UNIDIRECTIONAL_SEQUENCE_LSTM:UnidirectionalSequenceLSTM UNPACK:Unpack VAR_HANDLE:VarHandle WHILE:While
    ZEROS_LIKE:ZerosLike"""
RESOLVER_BY_NAME: dict[str, str] = {
    name: f"Add{method}" for name, method in (pair.split(":") for pair in _RESOLVER_TEXT.split())
}
RESOLVER_METHODS: dict[int, str] = {
    code: RESOLVER_BY_NAME[name] for code, name in BUILTIN_OPERATOR_NAMES.items() if name in RESOLVER_BY_NAME
}
# The micro rule embed turns into a note instead of a refusal: TFLM runs a dynamic axis at its stored size,
# and T=1 with the state in variable tensors is the usual streaming pattern on a microcontroller.
DYNAMIC_RULE = "dynamic shape"
ALIGNMENT = 16  # TFLM reads the flatbuffer in place; many targets need 16-byte aligned model data
# Checked in tflite-micro's source (main at 90b983c2, 2026-08-20: kernels/cmsis_nn/unidirectional_sequence_lstm.cc
# passes scratch buffer 2 as cell_state and no hidden_state; CMSIS-NN arm_lstm_unidirectional_s8/s16 then zero the
# cell and skip the recurrent term at t=0). Fix proposed in tflite-micro PR #3564 (closed, not merged).
CMSIS_NN_NOTE = (
    "CMSIS-NN: TFLM built with OPTIMIZED_KERNEL_DIR=cmsis_nn runs this integer LSTM with CMSIS-NN's kernel, which "
    "starts every Invoke() from the zero state (tflite-micro main as of 2026-08 never hands it the state tensors). "
    "Whole sequences per Invoke() after Reset() compute right; streaming a few time steps per Invoke() with the "
    "state carried over is wrong there (each call forgets the previous ones). To stream on such a build, compile "
    "the reference kernel for this op (kernels/unidirectional_sequence_lstm.cc instead of "
    "kernels/cmsis_nn/unidirectional_sequence_lstm.cc), or apply tflite-micro PR #3564; check on the device with "
    "lstmgen vectors. Batch-major input with batch > 1 is also misread by CMSIS-NN releases before its PR #219."
)
# The measured figure comes from TFLM on this (64-bit) host: its own structures are smaller with 32-bit
# pointers, but another kernel set (e.g. CMSIS-NN's scratch buffers) or allocator can need more.
MARGIN_FRACTION = 0.25
MARGIN_MIN = 1024
_MEASURE_ARENA = 64 * 1024 * 1024  # generous arena for the measurement run
FIT_SECONDS = 60.0  # one load and invoke of a model in TFLM (a child past it counts as not fitting)
_BYTES_PER_LINE = 12
_C_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CXX_KEYWORDS_TEXT = """alignas alignof and and_eq asm auto bitand bitor bool break case catch char char8_t char16_t
    char32_t class
    compl concept const consteval constexpr constinit const_cast continue co_await co_return co_yield decltype default
    delete do double dynamic_cast else enum explicit export extern false float for friend goto if inline int long
    mutable namespace new noexcept not not_eq nullptr operator or or_eq private protected public register
    reinterpret_cast requires return short signed sizeof static static_assert static_cast struct switch template this
    thread_local throw true try typedef typeid typename union unsigned using virtual void volatile wchar_t while xor
    xor_eq"""
_CXX_KEYWORDS = frozenset(_CXX_KEYWORDS_TEXT.split())


@dataclass
class EmbedResult:
    """What `embed` wrote, for the CLI summary and --json."""

    source: str
    header: str
    symbol: str
    model_bytes: int
    arena_measured: int
    arena_size: int
    ops: list[str]
    tflm_version: str
    notes: list[str] = field(default_factory=list)
    cmsis_nn: str | None = None  # CMSIS_NN_NOTE, for models with an integer LSTM op

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def symbol_for(path: Path, name: str | None) -> str:
    """The C++ identifier for the array: --name, or the output file's stem made into one."""
    symbol = name if name is not None else re.sub(r"\W", "_", path.stem, flags=re.ASCII)
    if name is None and symbol[:1].isdigit():
        symbol = f"model_{symbol}"
    if not _C_IDENT.match(symbol) or symbol in _CXX_KEYWORDS:
        raise ConfigError(
            f"--name {symbol!r} is not a usable C++ identifier: expected letters, digits and underscores, not "
            "starting with a digit, and not a C++ keyword (e.g. --name g_lstm_model)."
        )
    return symbol


def measure_arena(data: bytes, source: str, path: Path | None = None) -> tuple[int, str]:
    """The smallest tensor arena TFLM loads and invokes the model in (Linux; elsewhere its RecordingMicroAllocator
    total), and TFLM's version."""
    tflm = import_tflm()
    from lstmgen.runtimes.micro import tflm_version

    rt = tflm.runtime
    if path is not None:  # a foreign file meets TFLM in a child first: a crash there is a refusal here
        probe(path, "TensorFlow Lite Micro", lambda: rt.Interpreter.from_bytes(data, _MEASURE_ARENA).invoke())
    with capture_stderr() as log:
        try:
            interp = rt.Interpreter.from_bytes(data, arena_size=_MEASURE_ARENA)
            interp.invoke()  # kernels may request scratch only on the first invoke
            interp.print_allocations()
        except (RuntimeError, ValueError) as exc:
            interp, error = None, exc
    if interp is None:
        detail = "; ".join(line.strip() for line in log if line.strip()) or str(error)
        raise ModelFileError(
            f"{source}: TensorFlow Lite Micro cannot load the model, so its arena cannot be measured: {detail}. "
            "embed needs a model TFLM runs (check with lstmgen inspect MODEL --check micro)."
        )
    totals = [int(m.group(1)) for line in log if (m := re.search(r"Arena allocation total (\d+) bytes", line))]
    if not totals:
        raise ModelFileError(f"{source}: TFLM printed no arena total (tflite-micro {tflm_version(tflm)}).")
    recorded = max(totals)
    if not sys.platform.startswith("linux"):  # no fork: the recording allocator's total (Prepare's temporaries aside)
        return recorded, tflm_version(tflm)
    return _smallest_arena(lambda size: rt.Interpreter.from_bytes(data, arena_size=size).invoke(), recorded), (
        tflm_version(tflm)
    )


def _fits(load_and_invoke: Callable[[int], object], size: int) -> bool:
    """Does TFLM load and invoke the model in `size` bytes? Tried in a forked child: too small an arena can
    crash TFLM (SIGSEGV after a failed temporary allocation in Prepare) instead of raising."""
    return guard.in_child(lambda: load_and_invoke(size), FIT_SECONDS) == "ok"  # Linux only: see measure_arena


def _smallest_arena(load_and_invoke: Callable[[int], object], recorded: int) -> int:
    """The smallest arena (a multiple of 16) TFLM runs the model in, by bisection around the recorded total.

    The recording allocator's total misses the temporaries Prepare allocates and frees (small models
    measured 2,272 bytes recorded but needed more), so the figure is the real minimum instead.
    """
    hi = -(-recorded // ALIGNMENT) * ALIGNMENT
    while not _fits(load_and_invoke, hi):
        if hi >= _MEASURE_ARENA:
            raise ModelFileError("TFLM does not run the model even in a 64 MiB arena.")
        hi *= 2
    lo = 0  # does not fit
    while hi - lo > ALIGNMENT:
        mid = (lo + hi) // 2 // ALIGNMENT * ALIGNMENT
        if mid <= lo:
            break
        if _fits(load_and_invoke, mid):
            hi = mid
        else:
            lo = mid
    return hi


def micro_gate(lm: LstmModel, source: str) -> list[str]:
    """Refuse a model the micro rules (as `inspect --check micro`) say TFLM cannot run, naming the problems;
    a dynamic axis is not refused: the returned notes say what TFLM runs instead."""
    problems = find_problems(lm.model, "micro")
    blocking = [p for p in problems if p.feature != DYNAMIC_RULE]
    if blocking:
        listed = "".join(f"\n  - {p}" for p in blocking)
        raise ModelFileError(
            f"{source}: TensorFlow Lite Micro cannot run this model (the checks of lstmgen inspect MODEL --check "
            f"micro), so no firmware sources were written:{listed}\nFix what each problem says (lstmgen build "
            "--target micro refuses these while building), then embed the new model."
        )
    if len(blocking) == len(problems):
        return []
    x = lm.input
    sig = list(x.shape_signature or x.shape)
    stored = list(x.shape)
    t_axis = 0 if lm.time_major else 1
    streaming = len(stored) == 3 and sig[t_axis] == -1 and stored[t_axis] == 1
    step = (
        "one time step per Invoke(), the LSTM state kept in its variable tensors from one invoke to the next "
        "(Reset() before each independent sequence)"
        if streaming
        else "each -1 axis at its stored size"
    )
    return [
        f"the input has a dynamic axis (shape_signature {sig}), but TFLM ignores shape_signature and cannot "
        f"resize: it runs the stored shape {stored}, {step}; the arena was measured for that shape. For fixed "
        "windows of T steps per invoke, rebuild with --time-steps T (and --batch-size B), or convert with a "
        "fixed input shape, and embed that model."
    ]


def _quant_text(t: TensorRecord) -> str:
    q = t.quantization
    if q is None or not q.scale:
        return "not quantized"
    return f"scale {q.scale[0]:.9g}, zero point {q.zero_point[0]} (real = scale * (q - zero_point))"


def _tensor_line(kind: str, t: TensorRecord) -> str:
    return f"//   {kind} '{t.name}': {t.dtype.name} {list(t.shape)}, {_quant_text(t)}"


def _guard(header: Path) -> str:
    return re.sub(r"\W", "_", header.name.upper(), flags=re.ASCII) + "_"


def render(
    data: bytes,
    model: ModelRecord,
    symbol: str,
    header: Path,
    arena: int,
    measured: int,
    source: str,
    tflm: str,
    notes: tuple[str, ...] = (),
) -> tuple[str, str]:
    """(NAME.h text, NAME.cc text)."""
    codes = sorted({op.opcode for op in model.operators})
    unknown = [BUILTIN_OPERATOR_NAMES.get(c, str(c)) for c in codes if c not in RESOLVER_METHODS]
    if unknown:
        raise ModelFileError(f"{source}: lstmgen does not know the TFLM resolver call for {', '.join(unknown)}.")
    calls = [RESOLVER_METHODS[c] for c in codes]
    digest = hashlib.sha256(data).hexdigest()
    head = [
        f"// Generated by lstmgen {__version__} from {Path(source).name} ({len(data)} bytes, sha256 {digest}).",
        "// Do not edit: rebuild with `lstmgen embed` (or `lstmgen build --embed`).",
        "//",
        f"// Operators to register ({len(calls)}):",
        f"//   static tflite::MicroMutableOpResolver<{len(calls)}> op_resolver;",
        *(f"//   op_resolver.{c}();" for c in calls),
        "//",
        "// Tensor arena:",
        f"//   alignas(16) static uint8_t tensor_arena[{symbol}_arena_size];",
        f"//   {symbol}_arena_size = {arena} bytes: TFLM runs this model in {measured} bytes, no fewer",
        f"//   (tflite-micro {tflm}, 64-bit host), plus a margin of max({MARGIN_MIN} bytes, {MARGIN_FRACTION:.0%}),",
        "//   rounded up to 16. 32-bit targets need less for TFLM's own structures; another kernel set",
        "//   (e.g. CMSIS-NN) may need more: check with MicroInterpreter::arena_used_bytes().",
        "//",
        "// Inputs and outputs:",
        *(_tensor_line(f"input {k}", model.tensors[i]) for k, i in enumerate(model.inputs)),
        *(_tensor_line(f"output {k}", model.tensors[i]) for k, i in enumerate(model.outputs)),
    ]
    if any(op.opcode == Op.UNIDIRECTIONAL_SEQUENCE_LSTM for op in model.operators):
        head += [
            "//",
            "// The LSTM state lives in variable tensors and persists across Invoke(); call",
            "// interpreter.Reset() before each independent sequence.",
        ]
    for note in notes:
        head += ["//", *textwrap.wrap(f"Note: {note}", 100, initial_indent="// ", subsequent_indent="//   ")]
    if integer_lstm(model):
        head += ["//", *textwrap.wrap(CMSIS_NN_NOTE, 100, initial_indent="// ", subsequent_indent="//   ")]
    guard = _guard(header)
    h = "\n".join(
        [
            *head,
            "",
            f"#ifndef {guard}",
            f"#define {guard}",
            "",
            f"constexpr unsigned int {symbol}_len = {len(data)};",
            f"constexpr unsigned int {symbol}_arena_size = {arena};",
            f"alignas({ALIGNMENT}) extern const unsigned char {symbol}[{symbol}_len];",
            "",
            f"#endif  // {guard}",
            "",
        ]
    )
    arr = np.frombuffer(data, np.uint8)
    rows = [
        "  " + ", ".join(f"0x{b:02x}" for b in arr[k : k + _BYTES_PER_LINE]) + ","
        for k in range(0, arr.size, _BYTES_PER_LINE)
    ]
    cc = "\n".join(
        [
            f"// Generated by lstmgen {__version__}: the model bytes of {Path(source).name}; see {header.name}.",
            f'#include "{header.name}"',
            "",
            f"alignas({ALIGNMENT}) const unsigned char {symbol}[{symbol}_len] = {{",
            *rows,
            "};",
            "",
        ]
    )
    return h, cc


def arena_with_margin(measured: int) -> int:
    size = measured + max(MARGIN_MIN, int(np.ceil(measured * MARGIN_FRACTION)))
    return -(-size // ALIGNMENT) * ALIGNMENT


def embed(
    model_path: str | Path, output: str | Path, *, name: str | None = None, source_name: str | None = None
) -> EmbedResult:
    """Write output (NAME.cc) and NAME.h next to it for the model at model_path (named source_name in comments)."""
    src, out = Path(model_path), Path(output)
    check_embed_target(out)
    header = out.with_suffix(".h")
    symbol = symbol_for(out, name)
    lm = read_lstm_model(src, head_ok=True)  # read once and checked (tflite/validate.py) before TFLM sees it
    model = lm.model
    shown = source_name or str(src)
    notes = micro_gate(lm, shown)  # before TFLM: it loads some models it cannot run (hybrid: NaN)
    data = src.read_bytes()
    measured, version = measure_arena(data, str(src), src)
    arena = arena_with_margin(measured)
    h, cc = render(data, model, symbol, header, arena, measured, shown, version, tuple(notes))
    write_atomic(header, h.encode(), inputs={"MODEL": src})
    write_atomic(out, cc.encode(), inputs={"MODEL": src})
    ops = [RESOLVER_METHODS[c] for c in sorted({op.opcode for op in model.operators})]
    cmsis = CMSIS_NN_NOTE if integer_lstm(model) else None
    return EmbedResult(str(out), str(header), symbol, len(data), measured, arena, ops, version, notes, cmsis)


def integer_lstm(model: ModelRecord) -> bool:
    """Does the model hold an int8 or int16 LSTM op (the ones CMSIS-NN's kernel takes)?"""
    return any(
        op.opcode == Op.UNIDIRECTIONAL_SEQUENCE_LSTM and model.tensors[op.inputs[0]].dtype.kind == "i"
        for op in model.operators
    )


def check_embed_target(output: str | Path) -> None:
    """Refuse a bad -o/--embed path before anything is built or written."""
    out = Path(output)
    if out.suffix not in (".cc", ".cpp", ".cxx"):
        raise ConfigError(f"{out}: expected a C++ source path ending in .cc (e.g. firmware/lstm_model.cc).")
    symbol_for(out, None)
    for target in (out, out.with_suffix(".h")):
        check_target(target)
    import_tflm()  # the arena is measured in TFLM: say it is missing before any work


# ------------------------------------------------------------------------------- golden test vectors

_C_TYPES = {"int8": "int8_t", "int16": "int16_t", "float32": "float"}


def _c_values(array: np.ndarray, per_line: int = 16) -> list[str]:
    """Each vector as a brace-enclosed list of C literals (floats in hex: exact), `per_line` to a line."""
    flat = array.reshape(array.shape[0], -1)
    literal = (lambda v: f"{float(v).hex()}f") if array.dtype.kind == "f" else (lambda v: str(int(v)))
    out = []
    for row in flat:
        items = [literal(v) for v in row]
        chunks = [", ".join(items[k : k + per_line]) for k in range(0, len(items), per_line)]
        out.append("  {" + ",\n   ".join(chunks) + "},")
    return out


def render_vectors(
    symbol: str, source: str, inputs: np.ndarray, expected: dict[str, np.ndarray], runtimes: dict[str, str]
) -> tuple[str, str]:
    """(NAME_vectors.h, NAME_vectors.cc): the vectors as C arrays and, where TFLM takes the model,
    NAME_check_vectors(interpreter), which runs each from Reset() and compares the output bit for bit."""
    count = inputs.shape[0]
    in_len, out_len = int(np.prod(inputs.shape[1:])), int(np.prod(next(iter(expected.values())).shape[1:]))
    in_type = _C_TYPES[inputs.dtype.name]
    guard = _guard(Path(f"{symbol}_vectors.h"))
    arrays = [f"extern const {in_type} {symbol}_inputs[{symbol}_vector_count][{symbol}_input_len];"]
    lines = ["// Expected outputs per runtime flavour (the device's codes), from lstmgen's bit-exact emulation:"]
    for flavour, y in expected.items():
        arrays.append(f"extern const {_C_TYPES[y.dtype.name]} {symbol}_expected_{flavour}"
                      f"[{symbol}_vector_count][{symbol}_output_len];")  # fmt: skip
        lines.append(f"//   {symbol}_expected_{flavour}: {runtimes[flavour]}")
    check = "tflm" in expected
    h = [
        f"// Generated by lstmgen {__version__}: {count} golden vectors for {source}. Do not edit.",
        "// Each input is one Invoke() from the zero state (interpreter.Reset() first).",
        *lines,
        "",
        f"#ifndef {guard}",
        f"#define {guard}",
        "",
        "#include <cstdint>",
        "",
        f"constexpr int {symbol}_vector_count = {count};",
        f"constexpr int {symbol}_input_len = {in_len};",
        f"constexpr int {symbol}_output_len = {out_len};",
        *arrays,
    ]
    if check:
        h += [
            "",
            "namespace tflite {",
            "class MicroInterpreter;",
            "}  // namespace tflite",
            "",
            "// Runs every vector through `interpreter` (already AllocateTensors()'d) and compares the output with",
            f"// {symbol}_expected_tflm bit for bit. Returns the number of vectors that differ (0: pass), -1 on error.",
            f"int {symbol}_check_vectors(tflite::MicroInterpreter& interpreter);",
        ]
    h += ["", f"#endif  // {guard}", ""]
    cc = [
        f"// Generated by lstmgen {__version__}: golden vectors for {source}; see {symbol}_vectors.h.",
        f'#include "{symbol}_vectors.h"',
    ]
    if check:
        cc += ["", "#include <cstring>", "", '#include "tensorflow/lite/micro/micro_interpreter.h"']
    cc += ["", f"const {in_type} {symbol}_inputs[{symbol}_vector_count][{symbol}_input_len] = {{",
           *_c_values(inputs), "};"]  # fmt: skip
    for flavour, y in expected.items():
        cc += ["", f"const {_C_TYPES[y.dtype.name]} {symbol}_expected_{flavour}"
               f"[{symbol}_vector_count][{symbol}_output_len] = {{", *_c_values(y), "};"]  # fmt: skip
    if check:
        cc += _check_function(symbol)
    return "\n".join(h), "\n".join([*cc, ""])


def _check_function(symbol: str) -> list[str]:
    expected = f"{symbol}_expected_tflm"
    return [
        "",
        f"int {symbol}_check_vectors(tflite::MicroInterpreter& interpreter) {{",
        "  int differing = 0;",
        f"  for (int k = 0; k < {symbol}_vector_count; ++k) {{",
        "    if (interpreter.Reset() != kTfLiteOk) return -1;",
        "    TfLiteTensor* input = interpreter.input(0);",
        f"    if (input == nullptr || input->bytes != sizeof({symbol}_inputs[k])) return -1;",
        f"    std::memcpy(input->data.raw, {symbol}_inputs[k], sizeof({symbol}_inputs[k]));",
        "    if (interpreter.Invoke() != kTfLiteOk) return -1;",
        "    const TfLiteTensor* output = interpreter.output(0);",
        f"    if (output == nullptr || output->bytes != sizeof({expected}[k])) return -1;",
        f"    if (std::memcmp(output->data.raw, {expected}[k], sizeof({expected}[k])) != 0) ++differing;",
        "  }",
        "  return differing;",
        "}",
    ]
