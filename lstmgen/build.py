"""`build`: resolve config + weights, lay out the model, write it atomically, verify it."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast

import numpy as np

from lstmgen import guard
from lstmgen.config import INTEGER_MODES, CellConfig, check_fields
from lstmgen.errors import ConfigError, VerificationError, WeightFileError
from lstmgen.init import init_weights
from lstmgen.layout import CellShape, layout, shapes_from_config
from lstmgen.output import write_atomic
from lstmgen.progress import task
from lstmgen.samples import read_samples
from lstmgen.tflite.flatbuf import Deferred, ModelRecord, estimate_size, materialize, plan_file
from lstmgen.weights import CellWeights, WeightSource
from lstmgen.weights import open as open_weights
from lstmgen.weights.raw import SourceArrays

if TYPE_CHECKING:
    from lstmgen.check.source import SourceModel
    from lstmgen.check.verify import VerifyReport
    from lstmgen.quant.calibrate import CalibrationStats
# Quantization, calibration, TFLM and target rules are imported where used: a float build never loads them.

CONFIG_FIELDS = tuple(f.name for f in fields(CellConfig))
# Options that only a weight file can settle per layer, and what a conflict means in words.
_CONFLICT_HINTS = {
    "cifg": "--cifg means no input gate, but the weights have input-gate arrays (input_to_input_weights, ...)",
    "layer_norm": "layer normalisation needs the four *_layer_norm_coefficients arrays",
}


def _layout_note(time_major: bool, source: str) -> str:
    chosen, other = ("time-major [T,B,I]", "batch-major [B,T,I]")[:: 1 if time_major else -1]
    return (
        f"input layout {chosen} as requested, although {source} was {other}; the weights are the same "
        "either way (only the order of the input and output axes differs)"
    )


# Settings that describe how the source model was fed, not its weights: an explicit option wins over
# what the file implies (with a note), since the user decides the layout of the model they build.
USER_CHOICES: dict[str, Callable[[bool, str], str]] = {"time_major": _layout_note}


def _implied_flags(cell: CellWeights) -> dict[str, object]:
    implied = cell.implied()
    implied["cifg"] = "input_to_input_weights" not in cell.tensors
    implied["layer_norm"] = "forget_layer_norm_coefficients" in cell.tensors
    implied["diagonal_recurrent"] = len(cell.tensors["recurrent_to_forget_weights"].shape) == 1
    return implied


def _check_conflict(key: str, wanted: object, implied: object, source: str) -> None:
    if key == "use_peepholes" and wanted and implied:
        return
    if wanted != implied:
        shown = "not set" if implied is None else implied
        hint = f" ({_CONFLICT_HINTS[key]})" if key in _CONFLICT_HINTS else ""
        raise ConfigError(
            f"--{key.replace('_', '-')} {wanted!r} disagrees with {source}, which implies {key} = {shown}{hint}. "
            "Drop the option (it is inferred) or use matching weights."
        )


def _topology(opts: dict[str, Any], layers: list[list[CellWeights]]) -> None:
    """Settle num_layers/bidirectional/go_backwards from the cells' count and directions."""
    source = layers[0][0].source
    dirs = {len(cells) for cells in layers}
    if dirs == {2} and not opts.get("bidirectional", False):
        raise ConfigError(
            f"{source} holds a backward direction for every layer (bidirectional weights) but --bidirectional was "
            "not given. Pass --bidirectional to build both directions, or pick one cell with --layer."
        )
    if opts.get("bidirectional") and dirs != {2}:
        raise ConfigError(
            f"--bidirectional needs a backward cell for every layer, but {source} has only forward cells. "
            "Drop --bidirectional or use bidirectional weights."
        )
    single = layers[0][0]
    if len(layers) == 1 and dirs == {1} and single.direction == "backward":
        if "go_backwards" not in single.hyperparameters:
            # PyTorch _reverse, ONNX reverse, TF1 'bw', a Keras Bidirectional's backward half: the framework
            # re-aligns the outputs to input positions (y[t] follows x[t..T-1]); --go-backwards keeps
            # processing order (Keras go_backwards), so building it alone would shift every output in time.
            raise ConfigError(
                f"{source}: the selected cell ({single.layer or 'the only cell'}) is the backward direction of a "
                "bidirectional layer: its framework runs it over the reversed sequence and returns the outputs "
                "aligned to the input positions (y[t] depends on x[t..T-1]). lstmgen builds such a cell only inside "
                "its bidirectional layer; alone, --go-backwards would return the outputs in processing order "
                "(Keras go_backwards), shifted in time against the framework's. Build the whole layer with "
                "--bidirectional (drop --layer, or name the layer), or pick the forward cell."
            )
        opts.setdefault("go_backwards", True)
    if "num_layers" in opts and opts["num_layers"] != len(layers):
        raise ConfigError(f"--num-layers {opts['num_layers']} but {source} provides {len(layers)} layer(s).")
    opts["num_layers"] = len(layers)
    opts["bidirectional"] = dirs == {2}


def resolve(
    options: Mapping[str, Any], layers: list[list[CellWeights]] | None
) -> tuple[CellConfig, list[list[CellWeights]], list[list[CellShape]], list[str]]:
    """Merge explicit options with what the weights imply; conflicts are errors, not guesses."""
    opts = {k: v for k, v in options.items() if v is not None}
    notes: list[str] = []
    if layers:
        _topology(opts, layers)
        first = layers[0][0]
        implied = _implied_flags(first)
        # Stated hyperparameters (activation, time_major, ...) may come from any cell; the last
        # layer decides return_sequences (Keras return_sequences=False on the top layer).
        for cells in layers:
            for cell in cells:
                for key, value in cell.hyperparameters.items():
                    if key in CONFIG_FIELDS and key not in ("num_units", "input_size", "num_proj"):
                        implied.setdefault(key, value)
        last_rs = [c.hyperparameters.get("return_sequences") for c in layers[-1]]
        if None not in last_rs:
            implied["return_sequences"] = last_rs[0]
        for key, value in implied.items():
            if key not in CONFIG_FIELDS:
                continue
            if key in USER_CHOICES and key in opts:
                if opts[key] != value:
                    notes.append(USER_CHOICES[key](bool(opts[key]), first.source))
                continue
            if key in opts:
                _check_conflict(key, opts[key], value, first.source)
            opts[key] = value
    for key in ("num_units", "input_size"):
        if key not in opts:
            raise ConfigError(f"{key} is required when no --weights are given (e.g. --num-units 64 --input-size 32).")
    config = CellConfig(**opts)
    if layers:
        shapes = _shapes_from_weights(config, layers)
    else:
        shapes = shapes_from_config(config)
        layers = [
            [init_weights(config, shape, (k, d)) for d, shape in enumerate(cells)] for k, cells in enumerate(shapes)
        ]
    fb_defaults = {c.forget_bias_default for cells in layers for c in cells}
    fb = opts.get("forget_bias", max(fb_defaults))
    config = CellConfig(**(opts | {"forget_bias": float(fb)}))
    fmt = layers[0][0].format
    if fb:
        if options.get("forget_bias") is not None:
            why = "given explicitly"
        elif fmt.startswith("init"):
            why = "TFLiteLSTMCell's default, used with --init"
        else:
            why = f"default for {fmt}: that framework adds it at run time"
        notes.append(f"forget_bias {fb:g} folded into forget_gate_bias ({why})")
    else:
        notes.append(f"forget_bias 0 (biases taken as complete: {fmt})")
    return config, layers, shapes, notes


def _shapes_from_weights(config: CellConfig, layers: list[list[CellWeights]]) -> list[list[CellShape]]:
    """Per-cell shapes from the arrays, checked for a consistent chain of layer sizes."""
    shapes: list[list[CellShape]] = []
    width = config.input_size
    for k, cells in enumerate(layers):
        row = []
        for d, cell in enumerate(cells):
            imp = _implied_flags(cell)
            for key in ("use_peepholes", "cifg", "layer_norm", "diagonal_recurrent"):
                if imp[key] != getattr(config, key) and not (key == "use_peepholes" and config.use_peepholes):
                    raise ConfigError(
                        f"{cell.source}: layer {k}{' backward' if d else ''} has {key} = {imp[key]} but layer 0 has "
                        f"{getattr(config, key)}; lstmgen builds every layer with the same cell variant."
                    )
            shape = CellShape(
                int(cast(int, imp["num_units"])),
                int(cast(int, imp["input_size"])),
                imp["num_proj"],  # type: ignore[arg-type]
                config.use_peepholes,
                config.cifg,
                config.layer_norm,
                config.diagonal_recurrent,
            )
            if shape.input_size != width:
                raise ConfigError(
                    f"{cell.source}: inconsistent per-layer sizes: layer {k}{' backward' if d else ''} takes inputs of "
                    f"size {shape.input_size}, but {'the model input' if k == 0 else f'layer {k - 1} outputs'} "
                    f"{width} features{' (both directions concatenated)' if k and config.bidirectional else ''}."
                )
            row.append(shape)
        if len({(s.num_units, s.num_proj) for s in row}) > 1:
            raise ConfigError(f"{cells[0].source}: layer {k}'s forward and backward cells differ in size.")
        shapes.append(row)
        width = row[0].output_size * len(row)
    return shapes


def check_options(opts: Mapping[str, Any], calibration_data: str | Path | None, calibration: str) -> None:
    """Refuse bad options before any weight is read: each field alone, then the calibration options.

    (Rules between fields that a weight file can settle, e.g. proj_clip needing a projection, wait for it.)
    """
    check_fields({k: v for k, v in opts.items() if v is not None})  # None: not given
    if calibration not in ("data", "random"):
        raise ConfigError(
            f"--calibration {calibration!r} is unknown; choose 'data' (with --calibration-data) or "
            "'random' (a smoke test)."
        )
    mode = opts.get("quantize", "none")
    if mode not in INTEGER_MODES:
        if calibration_data is not None or calibration != "data":
            raise ConfigError(
                "--calibration-data / --calibration apply to --quantize int8 / int16x8 only; drop them or add one."
            )
    elif calibration == "random" and calibration_data is not None:
        raise ConfigError("--calibration random and --calibration-data exclude each other; pick one.")
    elif calibration == "data" and calibration_data is None:
        raise ConfigError(
            f"--quantize {mode} needs activation ranges: pass --calibration-data X.npy with "
            "representative inputs of shape [n, *input shape] (tens to hundreds of samples), or --calibration "
            "random for a smoke test (the model is then labelled as calibrated on random data)."
        )


def _calibrate(
    record: ModelRecord, config: CellConfig, data: str | Path | None, calibration: str
) -> tuple[CalibrationStats, np.ndarray | None]:
    """Integer-mode ranges from --calibration-data (representative inputs) or, labelled, from random inputs."""
    from lstmgen.quant.calibrate import calibrate, random_calibration

    if data is None:  # --calibration random (check_options refused the other combinations)
        return random_calibration(record, 16, config.seed), None
    x = record.tensors[record.inputs[0]]
    samples, reading = read_samples(data, x.shape, x.shape_signature, config.time_major, "calibration data")
    return calibrate(record, samples, source=f"{data} ({reading})"), samples


def load_stack(source: WeightSource, layer: str | None, num_layers: int | None) -> list[list[CellWeights]]:
    """The cells to build, as layers x directions, chosen by --layer / --num-layers."""
    path = source.path
    listed = source.cells(layer)
    names = "; ".join(" + ".join(c or "(unnamed)" for c in cells) for cells in listed)
    if num_layers is None and len(listed) > 1:
        raise WeightFileError(
            f"{path} holds {len(listed)} LSTM layers ({names}). Build the stack with --num-layers {len(listed)} "
            "(or the first N layers with --num-layers N), or pick one cell with --layer NAME."
        )
    want = num_layers or 1
    if want > len(listed):
        raise WeightFileError(f"--num-layers {want}: {path} holds only {len(listed)} LSTM layer(s) ({names}).")
    if len(listed) == 1 and len(listed[0]) == 1:  # a single cell: read just it (also a selected one)
        return [[source.load(listed[0][0] if layer is not None else None)]]
    return source.load_layers(layer)[:want]


def _generated(tensors: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """--init arrays as values: Deferred matrices are generated again (the same seeded numbers)."""
    out = {}
    for key, value in tensors.items():
        if isinstance(value, Deferred):
            value_array = np.empty(value.shape, np.float32)
            value.fill(value_array)
            value = value_array
        out[key] = value
    return out


def source_reference(
    config: CellConfig, layers: list[list[CellWeights]], stated_forget_bias: float | None
) -> tuple[SourceModel | None, str | None]:
    """The judging reference: the source arrays in their framework's equations plus the stated options.

    --init weights are their own source (the op's equations on the generated arrays, forget bias
    as resolved). Returns (None, why) when the source cannot be computed.
    """
    from lstmgen.check.source import SourceUnsupported, source_model
    from lstmgen.check.source.common import Stated

    if all(c.origin is None and c.format.startswith("init") for cells in layers for c in cells):
        layers = [[replace(c, origin=SourceArrays("tflite", _generated(c.tensors))) for c in cells] for cells in layers]
        stated_forget_bias = config.forget_bias
    stated = Stated(
        activation=config.activation,
        cell_clip=config.cell_clip,
        proj_clip=config.proj_clip,
        forget_bias=stated_forget_bias,
        time_major=config.time_major,
        go_backwards=config.go_backwards,
        return_sequences=config.return_sequences,
    )
    try:
        return source_model(layers, stated), None
    except SourceUnsupported as exc:
        return None, f"no source reference: {exc}"


def source_failure(report: VerifyReport) -> str:
    """Why the model failed against the source, in one sentence (for the error message)."""
    src = report.against_source
    if src is None or src.passed:
        return ""
    if src.structure and src.structure_is_error:
        return "the file's LSTM ops differ from what was asked: " + "; ".join(src.structure) + ". "
    steps = f" ({src.error_in_output_steps:.3g} output steps)" if src.error_in_output_steps is not None else ""
    return (
        f"the model does not compute the source LSTM ({src.reference}): max abs error {src.max_abs_error:.3g}"
        f"{steps} exceeds {src.tolerance}. "
    )


@dataclass
class BuildResult:
    """Summary of one build (printed by the CLI, --json gives this as a dict)."""

    output: str
    config: CellConfig
    weights_format: str
    weights_source: str
    weights_layer: str | None
    file_size: int
    notes: list[str]
    seconds: dict[str, float] = field(default_factory=dict)
    verification: VerifyReport | None = None
    layers: list[LayerSummary] = field(default_factory=list)  # every op, in op order
    output_width: int | None = None  # features of the model's output (both directions of the last layer)
    vela: dict[str, Any] | None = None  # --target ethos-u with vela installed: its NPU/CPU counts, SRAM, cycles
    embed: dict[str, Any] | None = None  # --embed: the firmware sources written (embed.EmbedResult)

    def to_dict(self) -> dict[str, Any]:
        return {
            "output": self.output,
            "hyperparameters": self.config.to_dict()
            | {"output_size": self.config.output_size, "state_size": self.config.state_size},
            "weights_format": self.weights_format,
            "weights_source": self.weights_source,
            "weights_layer": self.weights_layer,
            "file_size": self.file_size,
            "notes": self.notes,
            "seconds": self.seconds,
            "verification": self.verification.to_dict() if self.verification else None,
            "layers": [ls.to_dict() for ls in self.layers],
            "output_width": self.output_width,
            "vela": self.vela,
            "embed": self.embed,
            "against_source": src.to_dict()
            if self.verification and (src := self.verification.against_source)
            else None,
        }


def _cell_notes(cells: list[CellWeights]) -> list[str]:
    """The readers' notes, each said once: "<cell>: text" repeated for several cells becomes "text (cells a, b)"."""
    by_text: dict[str, list[str]] = {}
    for c in cells:
        for n in c.notes:
            named = bool(c.layer) and n.startswith(f"{c.layer}: ")
            text = n[len(f"{c.layer}: ") :] if named else n
            by_text.setdefault(text, []).extend([str(c.layer)] if named else [])
    out = []
    for text, who in by_text.items():
        if len(who) == 1:
            out.append(f"{who[0]}: {text}")
        elif who:
            out.append(f"{text} (cells {', '.join(who)})" if len(who) < len(cells) else f"{text} (every cell)")
        else:
            out.append(text)
    return out


_DIRECTION = ("forward", "backward")  # index 1: the backward op of a bidirectional layer, or go_backwards


@dataclass(frozen=True)
class LayerSummary:
    """One LSTM op of a build: which layer and direction, its sizes and the cell it was read from."""

    layer: int
    direction: str
    num_units: int
    input_size: int
    output_size: int
    source: str | None

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def build(
    output: str | Path,
    options: Mapping[str, Any] | CellConfig,
    weights: str | Path | CellWeights | list[list[CellWeights]] | None = None,
    *,
    weights_format: str = "auto",
    layer: str | None = None,
    calibration_data: str | Path | None = None,
    calibration: str = "data",
    verify: bool = True,
    runtime: str = "auto",
    progress: Callable[[str], None] | None = None,
    accelerator: str | None = None,
    embed: str | Path | None = None,
    max_error: float | None = None,
) -> BuildResult:
    """Build, write and (by default) verify one model; raises LstmgenError subclasses on bad input.

    Example:
        >>> build("model.tflite", {"num_units": 64, "input_size": 32})      # doctest: +SKIP
    """
    say = progress or (lambda _msg: None)
    opts = options.to_dict() if isinstance(options, CellConfig) else dict(options)
    unknown = sorted(set(opts) - set(CONFIG_FIELDS))
    if unknown:
        raise ConfigError(f"unknown option(s) {', '.join(unknown)}; known: {', '.join(CONFIG_FIELDS)}.")
    check_options(opts, calibration_data, calibration)
    if embed is not None:
        from lstmgen.embed import check_embed_target

        check_embed_target(embed)
    if verify and opts.get("target") in ("micro", "ethos-u"):
        from lstmgen.runtimes.micro import import_tflm

        import_tflm()  # the TFLM check needs it: say so before reading, calibrating and writing anything
    t0 = time.perf_counter()
    if weights is None and weights_format != "auto":
        raise ConfigError(
            f"--weights-format {weights_format} was given without --weights; pass the weight file "
            "(or drop --weights-format to use --init)."
        )
    layers: list[list[CellWeights]] | None
    source: WeightSource | None = None
    if isinstance(weights, (str, Path)):
        say(f"reading weights {weights}")
        source = open_weights(weights, weights_format)
        layers = load_stack(source, layer, opts.get("num_layers"))
        source.release()  # the readers' checks touched every array; the write reads each again, once
    elif isinstance(weights, CellWeights):
        layers = [[weights]]
    else:
        layers = weights
    config, layers, shapes, notes = resolve(opts, layers)
    cell_weights = layers[0][0]
    notes = _cell_notes([c for cells in layers for c in cells]) + notes
    t1 = time.perf_counter()
    provenance = {
        "weights_format": cell_weights.format,
        "weights_file": Path(cell_weights.source).name if weights is not None else cell_weights.source,
        "layers": [[c.layer for c in cells] for cells in layers],
        "notes": notes,
    }
    tensors = [[c.tensors for c in cells] for cells in layers]
    record = layout(config, tensors, shapes, provenance, source=cell_weights.source)
    # After layout: its checks have refused malformed arrays.
    reference, no_reference = source_reference(config, layers, opts.get("forget_bias")) if verify else (None, None)
    if no_reference:
        notes.append(no_reference)
    samples = None
    if config.quantize != "none" and config.diagonal_recurrent:
        raise ConfigError(
            f"--quantize {config.quantize} with diagonal recurrent weights: the quantized kernels' diagonal path "
            "is untested by lstmgen, so it is refused rather than risk a silently wrong model. Build it in float32."
        )
    if config.quantize != "none":
        float_size = estimate_size(record)
        if float_size > guard.MODEL_SIZE_LIMIT:  # checked before the float32 weights are allocated
            raise ConfigError(
                f"--quantize {config.quantize} starts from the float32 model in memory, which would be "
                f"{float_size / 2**30:.2f} GiB, over the 2 GiB model-size limit. Reduce num_units/input_size/num_proj."
            )
        say(f"quantizing ({config.quantize})")
        record = materialize(record)
        stats = None
        if config.quantize in INTEGER_MODES:
            stats, samples = _calibrate(record, config, calibration_data, calibration)
            # stats.source says "SMOKE TEST" itself for random calibration
            notes.append(f"{config.quantize} calibration: {stats.source}, {stats.num_samples} sample(s)")
        if config.quantize == "dynamic-int8":
            notes.append(
                "dynamic-int8 with asymmetric input quantization (as TF's converter): op version 3, needs a TFLite "
                "runtime >= 2.3.0; --symmetric-inputs writes version 2 (>= 1.14.0), less accurate"
                if config.asymmetric_inputs
                else "dynamic-int8 with symmetric input quantization: op version 2 (TFLite runtime >= 1.14.0)"
            )
        from lstmgen.quant.quantize import quantize

        record = quantize(
            record,
            config.quantize,
            calibration=stats,
            asymmetric_inputs=bool(config.asymmetric_inputs),
            io_type=config.io_type,
        )
    if config.target != "tflite":
        from lstmgen.targets.rules import TARGET_NAMES, check_target

        problems = check_target(record, config.target)
        if problems:
            raise ConfigError(
                f"--target {config.target}: {TARGET_NAMES[config.target]} cannot run this model: "
                + "; ".join(problems).rstrip(".")
                + ". Nothing was written. Build without those features, or for --target tflite."
            )
    say("writing model")
    planned = plan_file(record)  # the tables; each weight is copied once, as the file is written
    result = BuildResult(
        str(output), config, cell_weights.format, cell_weights.source, cell_weights.layer, planned.size, notes
    )
    result.layers = [
        LayerSummary(k, _DIRECTION[d or config.go_backwards], s.num_units, s.input_size, s.output_size, cells[d].layer)
        for k, (dirs, cells) in enumerate(zip(shapes, layers, strict=True))
        for d, s in enumerate(dirs)
    ]
    result.output_width = sum(s.output_size for s in shapes[-1])

    def check(tmp: Path) -> None:
        if not verify:
            return
        from lstmgen.check.verify import verify_model

        say("verifying against the NumPy reference")
        x = samples[0] if samples is not None else None  # int8: verify on representative data
        micro = config.target in ("micro", "ethos-u")  # Ethos-U firmware runs the model in TFLM
        with task("verifying"):
            report = verify_model(
                tmp,
                runtime=runtime,
                seed=config.seed,
                x=x,
                micro=micro,
                source=reference,
                max_error=max_error,
                strict_structure=True,
                source_inputs=samples,
            )
        report.model = str(output)
        result.verification = report
        if not report.passed:
            src = report.against_source
            gate = src is not None and src.max_error is not None
            own = "" if gate else " Please report this with the command line used (it is a bug in lstmgen)."
            if (
                src is not None
                and src.quantized
                and not gate
                and report.checks
                and all(c.passed for c in report.checks)
            ):
                # The kernel computes the file faithfully; the file is just far from the float model.
                own = (
                    " The interpreter runs the quantized file as written, but the file is far from the float model: "
                    "calibrate on representative data (--calibration-data) or pass --max-error to accept this error; "
                    "if the calibration data is representative, please report it (it may be a quantizer bug)."
                )
            raise VerificationError(
                f"verification failed on {report.runtime} {report.runtime_version}: "
                + (
                    source_failure(report)
                    or f"max abs error {report.max_abs_error:.3g} exceeds the tolerance ({report.tolerance_text()}). "
                )
                + f"No model was written.{own}",
                payload={"verification": report.to_dict()},
            )

    def npu(tmp: Path) -> None:
        if config.target != "ethos-u":
            return
        from lstmgen.targets.ethos_u import DEFAULT_ACCELERATOR, run_vela, vela_installed

        if not vela_installed():
            notes.append("ethos-u: vela is not installed (pip install 'lstmgen[ethos-u]'); only lstmgen's rules ran")
            return
        say("compiling with vela")
        vela = run_vela(tmp, accelerator or DEFAULT_ACCELERATOR)
        result.vela = vela.to_dict()
        if not vela.ok:
            raise VerificationError(
                f"--target ethos-u: vela {vela.vela_version} put {vela.cpu_operators} operator(s) on the CPU "
                f"({vela.npu_operators} on the NPU) although lstmgen's rules passed; no model was written. "
                "Please report this with the command line used.",
                payload={"vela": vela.to_dict()},
            )

    def check_all(tmp: Path) -> None:
        check(tmp)
        npu(tmp)
        if embed is not None:  # from the verified bytes, before the model itself is renamed into place
            from lstmgen.embed import embed as write_sources

            say("writing firmware sources")
            result.embed = write_sources(tmp, embed, source_name=Path(output).name).to_dict()

    written: list[float] = []

    def write(fh: BinaryIO) -> None:
        planned.write_to(fh, on_copied=source.release if source is not None else None)
        written.append(time.perf_counter())

    write_atomic(Path(output), write, check_all)
    t3 = time.perf_counter()
    result.seconds = {
        "read": round(t1 - t0, 4),
        "layout_and_write": round(written[0] - t1, 4),
        "verify_and_save": round(t3 - written[0], 4),
    }
    return result
