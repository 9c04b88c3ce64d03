"""The frozen cell configuration, validated at construction, and config-file loading."""

from __future__ import annotations

import functools
import json
import math
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from lstmgen import guard
from lstmgen.errors import ConfigError
from lstmgen.numerics.tables import INTEGER_MODES, QUANTIZE_MODES
from lstmgen.tflite.tables import ACTIVATIONS, REFUSED_ACTIVATIONS

INITIALIZERS: tuple[str, ...] = ("glorot_uniform", "orthogonal", "uniform", "normal", "zeros")
IO_TYPES: tuple[str, ...] = ("int8", "int16", "float32")
TARGETS: tuple[str, ...] = ("tflite", "micro", "ethos-u")
DTYPES: tuple[str, ...] = ("float32",)
# fused: one UNIDIRECTIONAL_SEQUENCE_LSTM op per layer and direction (runs everywhere, TFLM too);
# graph: the cell unrolled into builtin ops that XNNPACK and other delegates take (layout_graph.py).
FORMS: tuple[str, ...] = ("fused", "graph")
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_./-]{0,127}$")
_MAX_DIM = 1 << 20
_MAX_BIAS = 1e30  # far inside float32 (3.4e38), so bias + forget_bias stays finite
_MAX_CLIP = 3.4028234663852886e38  # the op stores its clips as float32: nothing larger fits
_MAX_DEPTH = 32  # config nesting: every key takes one scalar, so any deep nesting is a mistake (or an attack)


def _fail(field: str, value: Any, allowed: str, hint: str = "") -> ConfigError:
    shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:60] + "..."
    msg = f"{field} = {shown} is not allowed: expected {allowed}."
    return ConfigError(f"{msg} {hint}".strip())


def _check_int(field: str, value: Any, lo: int, hi: int = _MAX_DIM) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(field, value, f"an integer from {lo} to {hi}")
    if not lo <= value <= hi:
        raise _fail(field, value, f"an integer from {lo} to {hi}")


def _check_float(field: str, value: Any, lo: float, hint: str = "", hi: float = math.inf) -> None:
    allowed = f"a finite number >= {lo:g}" if hi == math.inf else f"a number from {lo:g} to {hi:.8g}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(field, value, allowed, hint)
    try:
        ok = math.isfinite(value) and lo <= value <= hi  # an int beyond float's range overflows here
    except OverflowError:
        ok = False
    if not ok:
        raise _fail(field, value, allowed, hint)


def _check_bool(field: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise _fail(field, value, "true or false")


def _check_choice(field: str, value: Any, choices: tuple[str, ...] | list[str], hint: str = "") -> None:
    if not isinstance(value, str) or value not in choices:  # a list or table is not hashable, nor a choice
        raise _fail(field, value, "one of " + ", ".join(choices), hint)


def _check_forget_bias(value: Any) -> None:
    _check_float("forget_bias", value, -_MAX_BIAS)
    if value > _MAX_BIAS:  # folded into float32 biases: it must stay finite there
        raise _fail("forget_bias", value, f"a number from {-_MAX_BIAS:g} to {_MAX_BIAS:g}")


def _check_activation(value: Any) -> None:
    act = value.lower() if isinstance(value, str) else value
    if isinstance(act, str) and act in REFUSED_ACTIVATIONS:
        raise ConfigError(
            f"activation = {value!r} cannot be used: {REFUSED_ACTIVATIONS[act]}. Use one of: {', '.join(ACTIVATIONS)}."
        )
    _check_choice("activation", act, list(ACTIVATIONS))


def _check_name(value: Any) -> None:
    if not isinstance(value, str) or not _NAME_RE.match(value):
        raise _fail("name", value, "1-128 characters from A-Z a-z 0-9 _ . / - (a tensor-name prefix)")


# What the graph form does not write: (field, is it refused for this config, why and what to use instead).
GRAPH_QUANTIZE: tuple[str, ...] = ("none", "float16", "dynamic-int8")
_GRAPH_REFUSALS: tuple[tuple[Callable[[Any], bool], str], ...] = (
    (
        lambda c: c.dynamic_batch,
        "form = 'graph' fixes the batch size (its reshapes hold it): drop --dynamic-batch or use --form fused",
    ),
    (
        lambda c: c.diagonal_recurrent,
        "form = 'graph' does not write diagonal recurrent weights (IndyLSTM): use --form fused",
    ),
    (
        lambda c: c.target != "tflite",
        "form = 'graph' is for TFLite and its delegates; TFLite Micro and Ethos-U run the fused op: "
        "use --form fused with this --target",
    ),
    (
        lambda c: c.quantize not in GRAPH_QUANTIZE,
        "form = 'graph' writes float32, float16 and dynamic-int8 (per-channel weight scales) only; full-integer "
        "int8 and int16x8 are written in the fused form (--form fused)",
    ),
)

_NO_CLIP = "Use 0 (or leave it out) for no clipping; the op stores the clip as float32, so 3.4e38 is the largest."
_FLAGS: tuple[str, ...] = ("use_peepholes", "time_major", "dynamic_batch", "bidirectional", "cifg", "layer_norm")
_FLAGS += ("return_sequences", "go_backwards", "diagonal_recurrent", "asymmetric_inputs", "state_io")
# Each field's own rule (type, range, choices). None is "not set" for the optional fields; the rules
# between fields are CellConfig.__post_init__'s. check_fields runs these on options before any file is read.
FIELD_CHECKS: dict[str, Callable[[Any], None]] = {
    "num_units": lambda v: _check_int("num_units", v, 1),
    "input_size": lambda v: _check_int("input_size", v, 1),
    "cell_clip": lambda v: _check_float("cell_clip", v, 0.0, _NO_CLIP, _MAX_CLIP),
    "num_proj": lambda v: _check_int("num_proj", v, 1),
    "proj_clip": lambda v: _check_float("proj_clip", v, 0.0, _NO_CLIP, _MAX_CLIP),
    "forget_bias": _check_forget_bias,
    "activation": _check_activation,
    "init": lambda v: _check_choice("init", v, INITIALIZERS),
    "seed": lambda v: _check_int("seed", v, 0, 2**32 - 1),
    "name": _check_name,
    "dtype": lambda v: _check_choice("dtype", v, DTYPES, "Quantized models come from --quantize."),
    "batch_size": lambda v: _check_int("batch_size", v, 1),
    "time_steps": lambda v: _check_int("time_steps", v, 1),
    "num_layers": lambda v: _check_int("num_layers", v, 1, 64),
    "quantize": lambda v: _check_choice("quantize", v, QUANTIZE_MODES),
    "io_type": lambda v: _check_choice("io_type", v, IO_TYPES),
    "target": lambda v: _check_choice("target", v, TARGETS),
    "form": lambda v: _check_choice("form", v, FORMS),
    **{flag: functools.partial(_check_bool, flag) for flag in _FLAGS},
}
_OPTIONAL = ("num_proj", "forget_bias", "time_steps", "asymmetric_inputs")


def check_fields(values: Mapping[str, Any]) -> None:
    """Each given field on its own (type, range, choices): what can be refused before any weight is read."""
    for key, value in values.items():
        if key in FIELD_CHECKS and not (value is None and key in _OPTIONAL):
            FIELD_CHECKS[key](value)


@dataclass(frozen=True)
class CellConfig:
    """Everything that defines one LSTM cell and the model around it.

    Names follow TF1's TFLiteLSTMCell; cell_clip/proj_clip of 0 mean "no clipping".
    forget_bias None means "the weight source's default" and is resolved before layout.
    """

    num_units: int
    input_size: int
    use_peepholes: bool = False
    cell_clip: float = 0.0
    num_proj: int | None = None
    proj_clip: float = 0.0
    forget_bias: float | None = None
    activation: str = "tanh"
    init: str = "glorot_uniform"
    seed: int = 0
    name: str = "lstm"
    dtype: str = "float32"
    batch_size: int = 1
    time_steps: int | None = None
    time_major: bool = False
    dynamic_batch: bool = False
    num_layers: int = 1
    bidirectional: bool = False
    cifg: bool = False
    layer_norm: bool = False
    return_sequences: bool = True
    go_backwards: bool = False
    diagonal_recurrent: bool = False
    quantize: str = "none"
    asymmetric_inputs: bool | None = None  # None: True for dynamic-int8 (as TF's converter), else False
    io_type: str = "int8"
    target: str = "tflite"
    form: str = "fused"
    state_io: bool = False  # graph form: each cell's initial h/c as model inputs, its final h/c as outputs

    def __post_init__(self) -> None:
        check_fields({f.name: getattr(self, f.name) for f in fields(self)})
        if isinstance(self.activation, str):
            object.__setattr__(self, "activation", self.activation.lower())
        if self.proj_clip > 0 and self.num_proj is None:
            raise ConfigError(
                f"proj_clip = {self.proj_clip!r} needs a projection: the kernel clips the projected output, "
                "and this cell has none (num_proj is not set). Set num_proj, or drop proj_clip."
            )
        if self.diagonal_recurrent and self.num_proj is not None:
            raise ConfigError(
                f"diagonal_recurrent = true with num_proj = {self.num_proj}: diagonal recurrent weights multiply h "
                "elementwise into the num_units cells, so h must have num_units elements; drop the projection."
            )
        if self.asymmetric_inputs is None:  # the default: asymmetric for dynamic-int8 (as TF's converter)
            object.__setattr__(self, "asymmetric_inputs", self.quantize == "dynamic-int8")
        if self.asymmetric_inputs and self.quantize != "dynamic-int8":
            raise ConfigError(
                f"asymmetric_inputs = true only applies to quantize = 'dynamic-int8' (hybrid), not {self.quantize!r}: "
                "it selects how the hybrid kernel quantizes float inputs on the fly."
            )
        if self.quantize == "int16x8" and self.io_type == "int8":
            object.__setattr__(self, "io_type", "int16")  # the default io_type means "the activation type"
        if self.io_type == "int16" and self.quantize != "int16x8":
            raise ConfigError(
                f"io_type = 'int16' only applies to quantize = 'int16x8' (int16 activations), not {self.quantize!r}. "
                "Use io_type 'int8' or 'float32'."
            )
        if self.quantize in INTEGER_MODES and self.activation != "tanh":
            raise ConfigError(
                f"activation = {self.activation!r} with quantize = {self.quantize!r}: LiteRT's integer LSTM kernel "
                "ignores the activation option and computes tanh, while TFLite Micro's honours it, so the file would "
                "compute different things in the two runtimes. Use activation 'tanh', or quantize 'dynamic-int8' or "
                "'float16' (their kernels compute the activation the file names)."
            )
        if self.form == "graph":
            why = next((text for refused, text in _GRAPH_REFUSALS if refused(self)), None)
            if why is not None:
                raise ConfigError(f"{why}.")
        if self.state_io and self.form != "graph":
            raise ConfigError(
                "state_io = true is for form = 'graph': the fused form already carries every layer's h and c in "
                "variable tensors between invokes (run --chunk streams it, run --initial-state sets them). Drop "
                "--state-io, or add --form graph."
            )
        if self.go_backwards and (self.bidirectional or self.num_layers > 1):
            raise ConfigError(
                "go_backwards = true reverses a single unidirectional layer (Keras go_backwards); it cannot be "
                f"combined with bidirectional = {self.bidirectional} / num_layers = {self.num_layers}. A bidirectional "
                "layer already runs its backward direction over the reversed sequence."
            )

    @property
    def output_size(self) -> int:
        """Size of h and of each output step: num_proj when projecting, else num_units."""
        return self.num_proj if self.num_proj is not None else self.num_units

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def state_size(self) -> dict[str, int]:
        """Sizes of the two state tensors, as TF's LSTMStateTuple(c, h)."""
        return {"c": self.num_units, "h": self.output_size}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


CONFIG_KEYS: tuple[str, ...] = tuple(f.name for f in fields(CellConfig))
# Keys a config file may hold besides the cell fields (paths relative to the file).
FILE_ONLY_KEYS: tuple[str, ...] = ("weights", "weights_format", "layer", "calibration_data", "calibration")


def check_keys(mapping: dict[str, Any], where: str) -> None:
    """Refuse unknown keys, suggesting the nearest known one."""
    known = CONFIG_KEYS + FILE_ONLY_KEYS
    for key in mapping:
        if key not in known:
            import difflib

            close = difflib.get_close_matches(key.replace("-", "_"), known, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"{where}: unknown key '{key}'.{hint} Known keys: {', '.join(known)}.")


_OPEN, _CLOSE = frozenset("[{"), frozenset("]}")


def _check_depth(text: str, path: Path, kind: str) -> None:
    """Refuse brackets nested deeper than _MAX_DEPTH (outside strings and, in TOML, comments)."""
    if sum(text.count(c) for c in "[{") <= _MAX_DEPTH:
        return  # the usual flat file: no scan
    depth = deepest = 0
    quote: str | None = None
    escaped = comment = False
    for ch in text:
        if comment:
            comment = ch != "\n"
        elif quote is not None:
            if escaped:
                escaped = False
            elif ch == "\\" and quote == '"':
                escaped = True
            elif ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "#" and kind == "TOML":
            comment = True
        elif ch in _OPEN:
            depth += 1
            deepest = max(deepest, depth)
            if deepest > _MAX_DEPTH:
                raise ConfigError(
                    f"config file {path}: brackets nested more than {_MAX_DEPTH} deep. A config is flat (every key "
                    "takes one value: num_units = 64); fix the file."
                )
        elif ch in _CLOSE:
            depth = max(depth - 1, 0)


def load_config_file(path: Path) -> dict[str, Any]:
    """Read a TOML or JSON cell config; relative 'weights' paths are resolved against its folder."""
    if sys.version_info >= (3, 11):  # imported here: most runs read no config file
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib

    raw = guard.read_capped(path, "config file", error=ConfigError)  # no FIFO, no /dev/zero
    kind = "JSON" if path.suffix.lower() == ".json" else "TOML"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path}: not valid {kind} ({exc}). Fix the syntax.") from None
    _check_depth(text, path, kind)  # before the parsers, which recurse per level (RecursionError)
    try:
        data = json.loads(text) if kind == "JSON" else tomllib.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path}: not valid {kind} ({exc}). Fix the syntax.") from None
    except RecursionError:  # the depth scan is approximate (it skips strings and comments simply)
        raise ConfigError(f"config file {path}: nested too deeply to parse. A config is flat: key = value.") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: expected a table of keys, found {type(data).__name__}.")
    check_keys(data, f"config file {path}")
    for key, value in data.items():  # every key takes one scalar; a list or table is a typo
        if isinstance(value, (list, dict)):
            raise _fail(key, value, "a single value, not a list or table")
    for key in ("weights_format", "layer", "calibration"):
        if key in data and not isinstance(data[key], str):
            raise _fail(key, data[key], "a string")
    for key in ("weights", "calibration_data"):
        if key in data:
            if not isinstance(data[key], str):
                raise _fail(key, data[key], "a path string")
            data[key] = str(path.parent / data[key])
    return data
